//! Data-parallel training over MPI (feature `mpi`): `mpirun -np N nabla train`
//! trains the model one process trains, every rank holds the same weights after
//! every step, a checkpoint moves between rank counts, and bad launches and dead
//! ranks end with a clear error instead of a hang.
//!
//! Needs Open MPI's `mpirun` (Debian: openmpi-bin); `.ci/run` installs it and runs
//! `cargo test --features mpi --test distributed`.

mod common;

use common::{ROOT, Spawned, binary, temp_dir, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A small MNIST classifier, `extra` appended to `[train]` (and `layers` replaced
/// when given).
fn config(dir: &Path, epochs: usize, layers: Option<&str>, extra: &str) -> String {
    let layers = layers.unwrap_or(
        r#"[{ type = "linear", out = 64 }, { type = "relu" }, { type = "linear", out = 10 }]"#,
    );
    let body = format!(
        r#"
[data]
kind = "mnist"
path = "{ROOT}/data/mnist"
batch_size = 50
train_limit = 1000
test_limit = 300

[model]
layers = {layers}

[train]
epochs = {epochs}
seed = 5
optimizer = {{ kind = "sgd", lr = 0.02, momentum = 0.9 }}
{extra}
"#
    );
    let path = dir.join(format!("run-{epochs}.toml"));
    std::fs::write(&path, body).unwrap();
    path.to_string_lossy().into_owned()
}

/// `mpirun -np ranks [mca…] nabla args…`, one kernel thread per rank, checking the
/// ranks' weights after every step.
fn mpirun(ranks: usize, mca: &[&str], args: &[&str]) -> Output {
    Command::new("mpirun")
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            &ranks.to_string(),
        ])
        .args(mca)
        .arg(binary())
        .args(args)
        .env("NABLA_THREADS", "1")
        .env("NABLA_CHECK_REPLICAS", "step")
        .current_dir(ROOT)
        .output()
        .expect("mpirun runs (Debian: apt-get install openmpi-bin)")
}

fn train(ranks: usize, config: &str, out: &Path, extra_args: &[&str]) -> Output {
    let out = out.to_string_lossy();
    let mut args = vec!["train", config, "--out", &out];
    args.extend_from_slice(extra_args);
    let output = mpirun(ranks, &[], &args);
    assert!(
        output.status.success(),
        "-np {ranks} failed:\n{}",
        text(&output)
    );
    output
}

/// `nabla train CONFIG --out OUT --threads THREADS`, without mpirun.
fn train_alone(config: &str, out: &Path, threads: &str) -> Output {
    Command::new(binary())
        .args([
            "train",
            config,
            "--out",
            &out.to_string_lossy(),
            "--threads",
            threads,
        ])
        .current_dir(ROOT)
        .output()
        .unwrap()
}

fn weights(run: &Path) -> Vec<(String, Vec<f32>)> {
    nabla::checkpoint::load_tensors::<f32>(run.join("model.safetensors"))
        .unwrap()
        .tensors
        .into_iter()
        .map(|(name, tensor)| (name, tensor.to_vec()))
        .collect()
}

/// The largest `max|a − b| / max|a|` over the tensors of two runs.
fn relative_difference(a: &Path, b: &Path) -> f64 {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|((name_a, a), (name_b, b))| {
            assert_eq!(name_a, name_b);
            let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
            let diff = a
                .iter()
                .zip(b)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) as f64;
            diff / scale.max(1e-30)
        })
        .fold(0.0, f64::max)
}

/// Trains `config` under `-np 1` and `-np ranks` (run directories `one` and `ranks-N`
/// in `dir`) and checks that they end with the same weights to ≤ 1e-6 relative;
/// returns the two run directories and the second run's output.
fn same_model_as_one_rank(dir: &Path, config: &str, ranks: usize) -> (PathBuf, PathBuf, Output) {
    let (one, many) = (dir.join("one"), dir.join(format!("ranks-{ranks}")));
    train(1, config, &one, &[]);
    let output = train(ranks, config, &many, &[]);
    let difference = relative_difference(&one, &many);
    assert!(
        difference <= 1e-6,
        "-np {ranks} vs -np 1: {difference:e} relative"
    );
    (one, many, output)
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn one_rank_is_exactly_single_process_training() {
    let dir = temp_dir("dist-one-rank");
    let config = config(&dir, 2, None, "");
    let (plain, one) = (dir.join("plain"), dir.join("one"));
    let output = train_alone(&config, &plain, "1");
    assert!(output.status.success(), "{}", text(&output));
    train(1, &config, &one, &[]);
    assert_eq!(
        weights(&plain),
        weights(&one),
        "mpirun -np 1 must change nothing"
    );
}

/// Two ranks, each on half of every batch, end where one process ends: the sums
/// differ only in rounding (each rank sums its half, then the halves are added).
#[test]
fn two_ranks_train_the_model_one_process_trains() {
    let dir = temp_dir("dist-two-ranks");
    let config = config(&dir, 1, None, "");
    let (one, two, output) = same_model_as_one_rank(&dir, &config, 2);
    // rank 0 alone prints, and it says how the batch is split
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(stdout.matches("epoch 1/1").count(), 1, "{stdout}");
    assert!(stdout.contains("data-parallel over 2 ranks: each takes 25–25 samples"));
    // evaluation is split across the ranks and summed: the same test loss
    let (m1, m2) = (&metrics(&one)[0], &metrics(&two)[0]);
    let (l1, l2) = (
        m1["test_loss"].as_f64().unwrap(),
        m2["test_loss"].as_f64().unwrap(),
    );
    assert!((l1 - l2).abs() <= 1e-5 * l1, "test loss {l1} vs {l2}");
    assert_eq!(m1["test_accuracy"], m2["test_accuracy"]);
    // the communication is recorded: the gradient payload is every parameter once
    let communication = &m2["communication"];
    let parameters = 784 * 64 + 64 + 64 * 10 + 10;
    assert_eq!(communication["gradient_bytes"], 4 * parameters);
    assert_eq!(communication["steps"], 20);
    assert!(communication["all_reduce_seconds"].as_f64().unwrap() > 0.0);
    assert!(m1.get("communication").is_none());
}

/// Three ranks (uneven shares: 16, 17 and 17 of 50) with a first layer of 157 k
/// weights, over half a gradient bucket, so that its gradient is summed in its own
/// memory, lent to the all-reduce (and MPI sums in place): still the one-process model.
#[test]
fn three_ranks_with_a_lent_gradient_train_the_one_process_model() {
    let dir = temp_dir("dist-three-ranks");
    let wide =
        r#"[{ type = "linear", out = 200 }, { type = "relu" }, { type = "linear", out = 10 }]"#;
    let config = config(&dir, 1, Some(wide), "");
    same_model_as_one_rank(&dir, &config, 3);
}

/// `fixed_chunks = 4`: 1, 2 and 4 ranks, and one process without mpirun, train
/// bit-identical weights — dropout, Adam and all.
#[test]
fn fixed_chunks_train_the_same_bits_on_1_2_and_4_ranks() {
    let dir = temp_dir("dist-fixed-chunks");
    let layers = r#"[{ type = "linear", out = 64 }, { type = "relu" }, { type = "dropout", p = 0.2 }, { type = "linear", out = 10 }]"#;
    let config = config(&dir, 2, Some(layers), "fixed_chunks = 4");
    let body = std::fs::read_to_string(&config).unwrap();
    let adam = body.replace(
        r#"kind = "sgd", lr = 0.02, momentum = 0.9"#,
        r#"kind = "adam", lr = 0.002"#,
    );
    assert_ne!(adam, body);
    std::fs::write(&config, adam).unwrap();
    let plain = dir.join("plain");
    let output = train_alone(&config, &plain, "2");
    assert!(output.status.success(), "{}", text(&output));
    for ranks in [1, 2, 4] {
        let run = dir.join(format!("ranks-{ranks}"));
        train(ranks, &config, &run, &[]);
        assert_eq!(weights(&plain), weights(&run), "{ranks} ranks");
    }
    // a rank count that does not divide the chunks is refused
    let out = dir.join("three").to_string_lossy().into_owned();
    let output = mpirun(3, &[], &["train", &config, "--out", &out]);
    assert!(!output.status.success());
    assert!(text(&output).contains("fixed_chunks = 4 with 3 rank(s)"));
}

/// Batch norm keeps per-rank statistics (as PyTorch's DDP does) and the running
/// averages are averaged over the ranks after every step, so the replicas stay
/// identical (checked after every step by NABLA_CHECK_REPLICAS=step); dropout
/// draws a different mask on every rank.
#[test]
fn replicas_stay_identical_with_batch_norm_and_dropout() {
    let dir = temp_dir("dist-bn");
    let layers = r#"[{ type = "linear", out = 64 }, { type = "batch_norm" }, { type = "relu" }, { type = "dropout", p = 0.3 }, { type = "linear", out = 10 }]"#;
    let config = config(&dir, 2, Some(layers), "");
    let run = dir.join("run");
    train(2, &config, &run, &[]);
    let last = &metrics(&run)[1];
    assert!(last["test_accuracy"].as_f64().unwrap() > 0.75, "{last}");
}

/// `sync_batch_norm = true`: batch statistics over both ranks' shares, so two ranks
/// train the one-process model even with batch norm.
#[test]
fn synchronised_batch_norm_trains_the_one_process_model() {
    let dir = temp_dir("dist-sync-bn");
    let layers = r#"[{ type = "linear", out = 64 }, { type = "batch_norm" }, { type = "relu" }, { type = "linear", out = 10 }]"#;
    let config = config(&dir, 1, Some(layers), "sync_batch_norm = true");
    let (one, _, _) = same_model_as_one_rank(&dir, &config, 2);
    // without it, each rank's statistics are its own half's: a different model
    let unsynced = config.replace(".toml", "-unsynced.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&unsynced, text.replace("sync_batch_norm = true", "")).unwrap();
    let per_rank = dir.join("per-rank");
    train(2, &unsynced, &per_rank, &[]);
    assert!(relative_difference(&one, &per_rank) > 1e-4);
}

/// Open MPI over TCP, as between machines: the same sums, so the same weights.
#[test]
fn tcp_transport_gives_the_same_model() {
    let dir = temp_dir("dist-tcp");
    let config = config(&dir, 1, None, "");
    let (shared, tcp) = (dir.join("shared"), dir.join("tcp"));
    train(2, &config, &shared, &[]);
    let out = tcp.to_string_lossy();
    let mca = [
        "--mca",
        "btl",
        "tcp,self",
        "--mca",
        "btl_tcp_if_include",
        "lo",
    ];
    let output = mpirun(2, &mca, &["train", &config, "--out", &out]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(weights(&shared), weights(&tcp));
}

/// A checkpoint written by two ranks resumes under one rank and under two.
#[test]
fn resume_across_rank_counts() {
    let dir = temp_dir("dist-resume");
    let (short, long) = (config(&dir, 1, None, ""), config(&dir, 2, None, ""));
    let straight = dir.join("straight");
    train(2, &long, &straight, &[]);
    for ranks in [1, 2] {
        let resumed = dir.join(format!("resumed-{ranks}"));
        train(2, &short, &resumed, &[]);
        let path = resumed.to_string_lossy().into_owned();
        let output = mpirun(ranks, &[], &["train", "--resume", &path, "--epochs", "2"]);
        assert!(output.status.success(), "{}", text(&output));
        let difference = relative_difference(&straight, &resumed);
        if ranks == 2 {
            assert_eq!(
                weights(&straight),
                weights(&resumed),
                "same ranks: same bits"
            );
        }
        assert!(difference <= 1e-6, "resumed under {ranks}: {difference:e}");
        assert_eq!(metrics(&resumed).len(), 2);
    }
}

#[test]
fn ranks_with_different_configs_are_refused() {
    let dir = temp_dir("dist-differ");
    let config = config(&dir, 1, None, "");
    let out = dir.join("run").to_string_lossy().into_owned();
    let train = ["train", config.as_str(), "--out", out.as_str()];
    let output = Command::new("mpirun")
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            "1",
            binary(),
        ])
        .args(train)
        .args([":", "-np", "1", binary()])
        .args(train)
        .args(["--seed", "9"])
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stderr.contains("the ranks disagree on the resolved config: rank 0 has"),
        "{stderr}"
    );
    assert!(stderr.contains("same --epochs/--seed"), "{stderr}");
}

#[test]
fn more_ranks_than_samples_per_batch_are_refused() {
    let dir = temp_dir("dist-too-many");
    let config = std::fs::read_to_string(config(&dir, 1, None, "")).unwrap();
    let config = config.replace("batch_size = 50", "batch_size = 2");
    let path = dir.join("small-batch.toml");
    std::fs::write(&path, config).unwrap();
    let out = dir.join("run").to_string_lossy().into_owned();
    let output = mpirun(3, &[], &["train", &path.to_string_lossy(), "--out", &out]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stderr.contains("3 ranks but batch_size = 2: every rank needs at least one sample"),
        "{stderr}"
    );
    // synchronised batch norm needs every rank in every batch, the last one too
    let config = std::fs::read_to_string(&path).unwrap();
    let config = config
        .replace("batch_size = 2", "batch_size = 50")
        .replace("train_limit = 1000", "train_limit = 1001")
        .replace("[train]", "[train]\nsync_batch_norm = true");
    std::fs::write(&path, config).unwrap();
    let output = mpirun(2, &[], &["train", &path.to_string_lossy(), "--out", &out]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stderr.contains(
            "sync_batch_norm: the last batch of an epoch has 1 samples, fewer than the 2 ranks"
        ),
        "{stderr}"
    );
}

/// `mpirun -np 2 nabla train CONFIG --out OUT`, running on (one kernel thread per rank).
fn spawn_training(config: &str, out: &Path, stdout: Stdio) -> Spawned {
    Spawned::start(
        Command::new("mpirun")
            .args([
                "--allow-run-as-root",
                "--oversubscribe",
                "-np",
                "2",
                binary(),
            ])
            .args(["train", config, "--out", &out.to_string_lossy()])
            .env("NABLA_THREADS", "1")
            .current_dir(ROOT)
            .stdout(stdout)
            .stderr(Stdio::piped()),
    )
}

/// The process id of rank `rank` of the job writing into `out`.
fn rank_pid(out: &Path, rank: usize) -> Option<u32> {
    let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let has = |haystack: &[u8], needle: &[u8]| {
                haystack.split(|&b| b == 0).any(|part| part == needle)
            };
            (has(&cmdline, out.to_string_lossy().as_bytes()) && has(&environ, wanted.as_bytes()))
                .then_some(pid)
        })
}

/// SIGKILL one rank mid-training: the others stop within a minute (no hang), the
/// launcher reports the failure, and the last checkpoint still resumes.
#[test]
fn a_killed_rank_stops_the_job_and_the_checkpoint_survives() {
    let dir = temp_dir("dist-kill");
    let config = config(&dir, 10_000, None, "");
    let out: PathBuf = dir.join("run");
    let mut job = spawn_training(&config, &out, Stdio::null());
    let waiting = Instant::now();
    while !out.join("metrics.jsonl").exists()
        || std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count()
            < 2
    {
        assert!(
            waiting.elapsed() < Duration::from_secs(120),
            "no epoch finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let victim = rank_pid(&out, 1).expect("rank 1 is running");
    let killed = Instant::now();
    Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    loop {
        if let Some(status) = job.try_wait().unwrap() {
            assert!(!status.success());
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "the job hangs after a rank died"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "stopped {:.2} s after SIGKILL",
        killed.elapsed().as_secs_f64()
    );
    // the checkpoint is whole: one process carries on from it
    let path = out.to_string_lossy().into_owned();
    let epochs_done = metrics(&out).len();
    let resumed = Command::new(binary())
        .args([
            "train",
            "--resume",
            &path,
            "--epochs",
            &(epochs_done + 1).to_string(),
        ])
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert!(
        String::from_utf8_lossy(&resumed.stdout)
            .into_owned()
            .contains("resuming")
    );
}

/// Ctrl-C to mpirun (which passes the ranks SIGTERM): the ranks agree to stop at the
/// same step, rank 0 checkpoints, and the run resumes.
#[test]
fn ctrl_c_under_mpirun_checkpoints_every_rank_at_the_same_step() {
    let dir = temp_dir("dist-ctrl-c");
    let config = config(&dir, 10_000, None, "");
    let out: PathBuf = dir.join("run");
    let job = spawn_training(&config, &out, Stdio::piped());
    let waiting = Instant::now();
    while !out.join("checkpoint.safetensors").exists() {
        assert!(
            waiting.elapsed() < Duration::from_secs(120),
            "no epoch finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    job.signal("INT");
    let output = job.output();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        stdout.contains("checkpoint saved; continue with"),
        "{stdout}"
    );
    let path = out.to_string_lossy().into_owned();
    let epochs = (metrics(&out).len() + 1).to_string();
    let resumed = mpirun(1, &[], &["train", "--resume", &path, "--epochs", &epochs]);
    assert!(resumed.status.success(), "{}", text(&resumed));
}
