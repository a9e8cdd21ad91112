//! `examples/custom_model.rs` — a network written as a Rust struct, trained with the
//! run directory, progress, checkpoints and resume of `nabla train` — trains, and
//! after a SIGKILL resumes from its last checkpoint to the very same weights as a run
//! that was never stopped. (`cargo test` builds the examples first; with `--test
//! custom_model` alone, `cargo build --example custom_model` first.)

#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::temp_dir;

/// The example's binary, built beside this test's (target/<profile>/examples/).
fn example() -> PathBuf {
    let test = std::env::current_exe().unwrap();
    let profile = test.parent().and_then(Path::parent).unwrap();
    let binary = profile.join("examples").join("custom_model");
    assert!(
        binary.is_file(),
        "{} is not built: run `cargo test` (which builds the examples), or `cargo build --example custom_model` first",
        binary.display()
    );
    binary
}

fn run(out: &Path, steps: usize, resume: bool) -> Command {
    let mut command = Command::new(example());
    command
        .args([
            "--out",
            out.to_str().unwrap(),
            "--steps",
            &steps.to_string(),
        ])
        .current_dir(common::ROOT)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if resume {
        command.arg("--resume");
    }
    command
}

/// The metrics lines without what depends on the clock and the machine.
fn epochs(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            let fields = value.as_object_mut().unwrap();
            fields.remove("seconds");
            fields.remove("rss_mb");
            value
        })
        .collect()
}

#[test]
fn a_rust_model_trains_and_resumes_exactly_after_a_kill() {
    let dir = temp_dir("custom-model");
    // a kill must land after the first checkpoint (step 50) and before the end: a
    // longer run is tried if the process was faster than the kill
    for steps in [300, 1000, 3000] {
        let (whole, killed) = (
            dir.join(format!("whole-{steps}")),
            dir.join(format!("killed-{steps}")),
        );
        let out = run(&whole, steps, false).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(printed.contains("done: test accuracy"), "{printed}");
        let history = epochs(&whole);
        assert_eq!(history.len(), 3);
        let accuracy = history[2]["test_accuracy"].as_f64().unwrap();
        assert!(
            accuracy > 0.9,
            "test accuracy {accuracy} after {} steps",
            3 * steps
        );

        let mut child = run(&killed, steps, false).spawn().unwrap();
        let started = Instant::now();
        while !killed.join("checkpoint.safetensors").is_file()
            && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if status.success() {
            eprintln!(
                "the run of {steps} steps an epoch ended before the kill; trying a longer one"
            );
            continue;
        }
        let out = run(&killed, steps, true).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(epochs(&killed), history, "the resumed run's epochs");
        let model = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
        assert!(
            model(&killed) == model(&whole),
            "the resumed run's weights differ from the uninterrupted run's"
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    panic!("the example finished before it could be killed, even with 3000 steps an epoch");
}
