//! The `nabla` command. Training from a config file arrives with the CLI issue;
//! for now it reports the version and points at the examples.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("-V") => println!("nabla {}", env!("CARGO_PKG_VERSION")),
        _ => {
            println!(
                "nabla {} — neural networks by backpropagation",
                env!("CARGO_PKG_VERSION")
            );
            println!("The train/eval/explain commands are not built yet.");
            println!("Try: cargo run --release --example xor");
        }
    }
}
