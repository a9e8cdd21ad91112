//! Writes the small CSV datasets the example configs train on, from fixed seeds:
//!
//! - `data/spirals.csv`: TensorFlow Playground's two interleaved spirals (no linear
//!   model can separate them), 500 points per class;
//! - `data/xor.csv`: 400 points near the corners of the unit square, labelled
//!   x XOR y.
//!
//! Run: `cargo run --release --example make_datasets`

use std::fmt::Write as _;

use rand::RngExt;

fn main() -> std::io::Result<()> {
    let mut rng = nabla::rng(2024);
    let mut spirals = String::from("x,y,label\n");
    let per_class = 500;
    for class in 0..2 {
        let phase = if class == 0 {
            0.0
        } else {
            std::f64::consts::PI
        };
        for i in 0..per_class {
            // as the Playground: radius grows with i, angle turns 1.75 times around
            let progress = i as f64 / per_class as f64;
            let radius = 5.0 * progress;
            let angle = 1.75 * progress * 2.0 * std::f64::consts::PI + phase;
            let noise = |rng: &mut rand::rngs::StdRng| rng.random_range(-0.1..0.1);
            let x = radius * angle.sin() + noise(&mut rng);
            let y = radius * angle.cos() + noise(&mut rng);
            writeln!(spirals, "{x:.5},{y:.5},{class}").unwrap();
        }
    }
    std::fs::write("data/spirals.csv", spirals)?;

    let mut xor = String::from("a,b,label\n");
    for _ in 0..400 {
        let (a, b) = (rng.random_range(0..2u8), rng.random_range(0..2u8));
        let jitter = |rng: &mut rand::rngs::StdRng| rng.random_range(-0.15..0.15);
        writeln!(
            xor,
            "{:.4},{:.4},{}",
            a as f64 + jitter(&mut rng),
            b as f64 + jitter(&mut rng),
            a ^ b
        )
        .unwrap();
    }
    std::fs::write("data/xor.csv", xor)?;
    println!("wrote data/spirals.csv and data/xor.csv");
    Ok(())
}
