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

/// Starts `nabla ARGS` and presses Ctrl-C once `metrics` has its first line, with the
/// run surely still going: it is frozen (SIGSTOP) while the lines are counted, so the
/// interruption lands before line `lines_at_end`, or the test fails (never skips).
/// Returns the interrupted run's output; it must end with status 130.
pub fn interrupt_after_first_line(
    args: &[&str],
    metrics: &std::path::Path,
    lines_at_end: usize,
) -> std::process::Output {
    let run = Spawned::start(
        std::process::Command::new(binary())
            .args(args)
            .current_dir(ROOT)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    let lines = || std::fs::read_to_string(metrics).map_or(0, |m| m.lines().count());
    let started = std::time::Instant::now();
    while lines() < 1 {
        assert!(
            started.elapsed().as_secs() < 120,
            "no metrics line after 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    run.signal("STOP");
    let written = lines();
    assert!(
        written < lines_at_end,
        "the run finished before it could be interrupted: make it longer"
    );
    // pending while stopped, handled as soon as it runs again
    run.signal("INT");
    run.signal("CONT");
    let output = run.output();
    assert_eq!(
        output.status.code(),
        Some(130),
        "Ctrl-C ends a run with 130\n{}",
        text(&output)
    );
    output
}

/// Property tests: a fresh seed each run (more inputs over time), printed so that a
/// failure's log says how to replay it: `PROPTEST_RNG_SEED=N cargo test NAME`.
pub fn config() -> ProptestConfig {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            use std::hash::BuildHasher;
            std::hash::RandomState::new().hash_one(std::process::id())
        });
    eprintln!("property test seed {seed}: replay with PROPTEST_RNG_SEED={seed}");
    ProptestConfig {
        cases: 12,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

/// The crate root, where the binary's relative paths (data/mnist, examples/) resolve.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `nabla` binary (the tests that call it need the `cli` feature, which builds it).
pub fn binary() -> &'static str {
    let Some(binary) = option_env!("CARGO_BIN_EXE_nabla") else {
        panic!("this test needs the nabla binary: build with the `cli` feature")
    };
    binary
}

/// Runs the `nabla` binary from the crate root.
pub fn nabla(args: &[&str]) -> std::process::Output {
    std::process::Command::new(binary())
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

/// A fresh, empty directory for one test, removed when the test passes and kept (its
/// path printed) when it fails, for a look at what the run left.
pub fn temp_dir(name: &str) -> TempDir {
    let path = std::env::temp_dir().join(format!("nabla-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    TempDir(path)
}

/// See [`temp_dir`]; reads as the `Path` it holds.
pub struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for a look", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A spawned process (and everything it started) that is killed when this goes out
/// of scope: a failed assertion must not leave a 10,000-epoch job holding the cores.
/// The process leads its own process group, so the kill reaches `mpirun`'s ranks too.
pub struct Spawned(Option<std::process::Child>);

impl Spawned {
    /// Starts `command` in a new process group.
    pub fn start(command: &mut std::process::Command) -> Spawned {
        use std::os::unix::process::CommandExt;
        Spawned(Some(
            command
                .process_group(0)
                .spawn()
                .expect("the process starts"),
        ))
    }

    /// Sends `signal` (`"INT"`, `"KILL"`, …) to the process alone.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {}", self.id());
    }

    /// Waits for it to end and collects what it printed (see `Child::wait_with_output`).
    pub fn output(mut self) -> std::process::Output {
        let child = self.0.take().expect("not waited for yet");
        child.wait_with_output().unwrap()
    }
}

impl std::ops::Deref for Spawned {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.0.as_ref().expect("not waited for yet")
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("not waited for yet")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let Some(child) = self.0.as_mut() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            // the whole group: mpirun's ranks are in it
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }
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
