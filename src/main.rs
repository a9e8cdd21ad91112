//! The `nabla` command; everything lives in `nabla::cli`.

fn main() -> std::process::ExitCode {
    nabla::cli::main()
}
