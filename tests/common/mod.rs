//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod reference;

use nabla::{Tensor, gradcheck};
use proptest::prelude::*;

/// The bar every gradient must clear: analytic vs central differences in f64.
pub const TOLERANCE: f64 = 1e-6;

/// Asserts that backward's gradients of `f` at `inputs` match finite differences.
pub fn assert_gradients(
    name: &str,
    f: impl Fn(&[Tensor<f64>]) -> Tensor<f64>,
    inputs: &[Tensor<f64>],
) {
    let report = gradcheck(f, inputs);
    assert!(
        report.passed(TOLERANCE),
        "{name}: gradients disagree with finite differences\n{report}"
    );
}

/// Standard-normal values of the given shape from a seed.
pub fn randn(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::randn(shape, 0.0, 1.0, &mut nabla::rng(seed))
}

/// Normal values pushed at least `gap` away from zero, for ops with a kink there.
pub fn away_from_zero(shape: &[usize], seed: u64, gap: f64) -> Tensor<f64> {
    randn(shape, seed).map(|v| if v >= 0.0 { v + gap } else { v - gap })
}

/// Positive values in [0.5, 2.5), for log, sqrt, pow and division.
pub fn positive(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::rand_uniform(shape, 0.5, 2.5, &mut nabla::rng(seed))
}

/// A shape of 1 to `max_rank` axes, each of size 1 to 4.
pub fn shape_strategy(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 1..=max_rank)
}

/// Two shapes that broadcast together: the second is a suffix of the first with
/// some axes set to 1 (and the roles randomly swapped).
pub fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (shape_strategy(3), any::<u64>(), any::<bool>()).prop_map(|(full, bits, swap)| {
        let keep = (bits as usize) % (full.len() + 1);
        let mut small: Vec<usize> = full[full.len() - keep..].to_vec();
        for (i, size) in small.iter_mut().enumerate() {
            if bits >> (8 + i) & 1 == 1 {
                *size = 1;
            }
        }
        if swap { (small, full) } else { (full, small) }
    })
}

pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The crate root, where the binary's relative paths (data/mnist, examples/) resolve.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs the `nabla` binary from the crate root (the tests that call it need the
/// `cli` feature, which builds the binary).
pub fn nabla(args: &[&str]) -> std::process::Output {
    let Some(binary) = option_env!("CARGO_BIN_EXE_nabla") else {
        panic!("this test needs the nabla binary: build with the `cli` feature")
    };
    std::process::Command::new(binary)
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("the binary runs")
}

/// Everything a command printed, stdout then stderr.
pub fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nabla-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The bytes of an IDX file of unsigned bytes with the given dimensions.
pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(data);
    bytes
}

/// `bytes`, gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[cfg(feature = "images")]
/// Two shapes drawn on 8×8 grey images: a bright left half or a bright top half.
pub fn shapes_folder(root: &std::path::Path) -> std::path::PathBuf {
    for i in 0..24u32 {
        let split = if i < 20 { "train" } else { "test" };
        let noise = (i * 7 % 5) as u8 * 10;
        let left = image::GrayImage::from_fn(8, 8, |x, _| {
            image::Luma([if x < 4 { 200 + noise } else { noise }])
        });
        let top = image::GrayImage::from_fn(8, 8, |_, y| {
            image::Luma([if y < 4 { 200 + noise } else { noise }])
        });
        for (class, image) in [("left", left), ("top", top)] {
            let path = root.join(format!("{split}/{class}/{i}.png"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            image.save(path).unwrap();
        }
    }
    root.join("test/top/21.png")
}
