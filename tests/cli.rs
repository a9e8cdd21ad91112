//! The `nabla` binary end to end: train, eval, predict, gradcheck, explain, resume
//! after an interruption, data export, and a table of bad configs with the errors
//! they must give. (`data fetch` over HTTP is `tests/fetch.rs`, feature `fetch`.)

mod common;

use common::{ROOT, Spawned, interrupt_after_first_line, nabla, temp_dir, text};
use std::io::Read;
use std::path::Path;
use std::process::Command;

fn write_config(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.to_string_lossy().into_owned()
}

const SMALL_MLP: &str = r#"
[data]
kind = "mnist"
path = "data/mnist"
batch_size = 64
train_limit = 5000
test_limit = 500

[model]
layers = [
  { type = "linear", out = 32 },
  { type = "relu" },
  { type = "linear", out = 10 },
]

[train]
epochs = 2
seed = 1
optimizer = { kind = "sgd", lr = 0.05, momentum = 0.9 }
"#;

#[test]
fn train_eval_predict() {
    let dir = temp_dir("train");
    let config = write_config(&dir, "small.toml", SMALL_MLP);
    let run = dir.join("run");
    let out = nabla(&["train", &config, "--out", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    for file in [
        "config.toml",
        "metrics.jsonl",
        "model.safetensors",
        "checkpoint.safetensors",
        "curves.png",
    ] {
        assert!(run.join(file).exists(), "{file} missing");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for key in [
        "epoch",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "seconds",
        "lr",
        "grad_norm",
        "dead_relu_fraction",
    ] {
        assert!(!lines[1][key].is_null(), "metrics.jsonl lacks {key}");
    }
    assert!(lines[1]["train_loss"].as_f64() < lines[0]["train_loss"].as_f64());
    assert!(
        lines[1]["test_accuracy"].as_f64().unwrap() > 0.8,
        "{metrics}"
    );
    assert!(lines[1]["grad_norm"]["0.weight"].as_f64().unwrap() > 0.0);
    assert_eq!(
        &std::fs::read(run.join("curves.png")).unwrap()[1..4],
        b"PNG"
    );

    let out = nabla(&["eval", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("accuracy")
            && report.contains("precision")
            && report.contains("confusion matrix"),
        "{report}"
    );
    assert!(run.join("confusion.png").exists());

    // predict: three test images as an IDX file, and one as a PNG
    let (images, labels) = first_test_images(3);
    let mut idx = vec![0, 0, 8, 3];
    for d in [3u32, 28, 28] {
        idx.extend(d.to_be_bytes());
    }
    idx.extend(&images);
    let idx_path = dir.join("three.idx");
    std::fs::write(&idx_path, idx).unwrap();
    let png_path = dir.join("digit.png");
    image::GrayImage::from_raw(28, 28, images[..784].to_vec())
        .unwrap()
        .save(&png_path)
        .unwrap();
    let out = nabla(&[
        "predict",
        run.to_str().unwrap(),
        idx_path.to_str().unwrap(),
        png_path.to_str().unwrap(),
        "--top",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<String> = text(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (line, label) in lines
        .iter()
        .zip(labels.iter().chain(std::iter::once(&labels[0])))
    {
        // the trained model gets these easy digits right: the top class is the label
        assert!(
            line.contains(&format!(": {label} ")),
            "{line} (label {label})"
        );
        assert!(line.contains('%'));
    }
}

fn first_test_images(count: usize) -> (Vec<u8>, Vec<usize>) {
    let images =
        nabla::data::read_idx(format!("{ROOT}/data/mnist/t10k-images-idx3-ubyte.gz")).unwrap();
    let labels =
        nabla::data::read_idx(format!("{ROOT}/data/mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    (
        images.data[..count * 784].to_vec(),
        labels.data[..count].iter().map(|&l| l as usize).collect(),
    )
}

#[test]
fn gradcheck_command() {
    let out = nabla(&["gradcheck", "examples/xor.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("0.weight")
            && report.contains("2.bias")
            && report.contains("all gradients pass"),
        "{report}"
    );
    let dir = temp_dir("gradcheck");
    let conv = SMALL_MLP.replace(
        "{ type = \"linear\", out = 32 },",
        "{ type = \"conv2d\", out_channels = 2, kernel = 3, stride = 2 },\n  { type = \"batch_norm\" },\n  { type = \"relu\" },\n  { type = \"max_pool2d\", kernel = 2 },\n  { type = \"flatten\" },\n  { type = \"linear\", out = 32 },",
    );
    let config = write_config(&dir, "conv.toml", &conv);
    let out = nabla(&["gradcheck", &config, "--max-elements", "16"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("all gradients pass"));
    // a residual block with a projection shortcut, and the classes width
    let residual = SMALL_MLP.replace(
        "{ type = \"linear\", out = 32 },",
        "{ type = \"conv2d\", out_channels = 2, kernel = 3, stride = 2, bias = false },\n  { type = \"residual\", layers = [{ type = \"conv2d\", out_channels = 3, kernel = 3, padding = 1 }, { type = \"batch_norm\" }], shortcut = [{ type = \"conv2d\", out_channels = 3, kernel = 1, bias = false }] },\n  { type = \"relu\" },\n  { type = \"global_avg_pool\" },\n  { type = \"linear\", out = 32 },",
    );
    let config = write_config(&dir, "residual.toml", &residual);
    let out = nabla(&["gradcheck", &config, "--max-elements", "16"]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("1.shortcut.0.weight") && report.contains("all gradients pass"),
        "{report}"
    );
}

/// Recomputes the default lesson (2-2-1 sigmoid, x = (1, 0), t = 1, η = 0.5) here,
/// independently, and checks every gradient and updated weight the command prints.
#[test]
fn explain_prints_correct_numbers() {
    let dir = temp_dir("explain");
    let dot = dir.join("graph.dot");
    let out = nabla(&["explain", "--dot", dot.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    let (w1, b1, w2, b2) = (
        [[0.15, 0.20], [0.25, 0.30]],
        [0.35, 0.35],
        [0.40, 0.45],
        0.60,
    );
    let x = [1.0, 0.0];
    let z1: Vec<f64> = (0..2)
        .map(|j| w1[j][0] * x[0] + w1[j][1] * x[1] + b1[j])
        .collect();
    let a1: Vec<f64> = z1.iter().map(|&z| sigmoid(z)).collect();
    let y = sigmoid(w2[0] * a1[0] + w2[1] * a1[1] + b2);
    let loss = 0.5 * (y - 1.0) * (y - 1.0);
    let delta2 = (y - 1.0) * y * (1.0 - y);
    let delta1: Vec<f64> = (0..2)
        .map(|j| w2[j] * delta2 * a1[j] * (1.0 - a1[j]))
        .collect();
    let number = |v: f64| format!("{v:.6}");
    let expect = |needle: String| {
        assert!(
            printed.contains(&needle),
            "missing `{needle}` in\n{printed}"
        )
    };
    expect(format!("a1[0] = σ({}) = {}", number(z1[0]), number(a1[0])));
    expect(format!("prediction y = [{}]", number(y)));
    expect(format!("= {}\n", number(loss)));
    expect(format!(
        "dL/dW2[0][1] = δ2[0]·a1[1] = {}·{} = {}",
        number(delta2),
        number(a1[1]),
        number(delta2 * a1[1])
    ));
    expect(format!("dL/db2[0] = δ2[0] = {}", number(delta2)));
    expect(format!(
        "dL/dW1[1][0] = δ1[1]·a0[0] = {}·{} = {}",
        number(delta1[1]),
        number(1.0),
        number(delta1[1])
    ));
    expect(format!(
        "W2[0][0] = {} − 0.5·{} = {}",
        number(0.40),
        number(delta2 * a1[0]),
        number(0.40 - 0.5 * delta2 * a1[0])
    ));
    // every analytic gradient equals its numerical check as printed
    for line in printed.lines().filter(|l| l.contains("(numerical: ")) {
        let analytic = line
            .split(" = ")
            .last()
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        let numerical = line
            .split("(numerical: ")
            .nth(1)
            .unwrap()
            .trim_end_matches(')');
        assert_eq!(analytic, numerical, "{line}");
    }
    assert!(printed.contains("— lower"));
    let graph = std::fs::read_to_string(dot).unwrap();
    assert!(graph.starts_with("digraph") && graph.contains("grad:"));
}

#[test]
fn resume_after_an_interruption_matches_an_uninterrupted_run() {
    let dir = temp_dir("resume");
    let body = SMALL_MLP
        .replace("epochs = 2", "epochs = 8")
        .replace("train_limit = 5000", "train_limit = 6000");
    let config = write_config(&dir, "resume.toml", &body);
    let straight = dir.join("straight");
    assert!(
        nabla(&["train", &config, "--out", straight.to_str().unwrap()])
            .status
            .success()
    );

    // Ctrl-C once the first epoch has finished, then resume
    let interrupted = dir.join("interrupted");
    let metrics = interrupted.join("metrics.jsonl");
    let stopped = interrupt_after_first_line(
        &["train", &config, "--out", interrupted.to_str().unwrap()],
        &metrics,
        8,
    );
    assert!(
        text(&stopped).contains("checkpoint saved"),
        "{}",
        text(&stopped)
    );
    let out = nabla(&["train", "--resume", interrupted.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("resuming"));
    let a = nabla::checkpoint::load_tensors::<f32>(straight.join("model.safetensors")).unwrap();
    let b = nabla::checkpoint::load_tensors::<f32>(interrupted.join("model.safetensors")).unwrap();
    for ((name, x), (_, y)) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(x.to_vec(), y.to_vec(), "{name} differs after resuming");
    }
    assert_eq!(
        std::fs::read_to_string(&metrics).unwrap().lines().count(),
        8
    );
    // every step once, with the numbers of the run that was never stopped
    let steps = |run: &Path| std::fs::read_to_string(run.join("steps.jsonl")).unwrap();
    assert_eq!(
        steps(&straight).lines().count(),
        8 * 6000_usize.div_ceil(64)
    );
    assert!(
        steps(&straight) == steps(&interrupted),
        "steps.jsonl differs after resuming"
    );
}

/// `examples/resnet20.toml`'s data and training sections, with a small network and
/// 3 epochs, train on files in CIFAR-10's binary format (generated: red or blue
/// pictures as classes 0 and 1); eval and predict name CIFAR-10's classes.
#[test]
fn a_cifar_config_trains_on_cifar_format_files() {
    let dir = temp_dir("cifar-run");
    let data = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&data).unwrap();
    // a record: the label byte, then the red, green and blue 32×32 planes
    let record = |label: u8, seed: usize| -> Vec<u8> {
        let mut bytes = vec![label];
        for plane in 0..3 {
            let bright = (label == 0 && plane == 0) || (label == 1 && plane == 2);
            bytes.extend((0..1024).map(|p| {
                let noise = ((p * 31 + seed * 17) % 40) as u8;
                if bright { 180 + noise } else { noise }
            }));
        }
        bytes
    };
    let batch = |first: usize, count: usize| -> Vec<u8> {
        (first..first + count)
            .flat_map(|i| record((i % 2) as u8, i))
            .collect()
    };
    for file in 1..=5 {
        std::fs::write(
            data.join(format!("data_batch_{file}.bin")),
            batch(file * 40, 40),
        )
        .unwrap();
    }
    std::fs::write(data.join("test_batch.bin"), batch(0, 20)).unwrap();
    let example = std::fs::read_to_string(format!("{ROOT}/examples/resnet20.toml")).unwrap();
    let (data_section, rest) = example.split_once("[model]").unwrap();
    let (_, train_section) = rest.split_once("[train]").unwrap();
    let body = format!(
        "{}\n[model]\nlayers = [\n  {{ type = \"conv2d\", out_channels = 4, kernel = 3, stride = 2, padding = 1 }},\n  {{ type = \"relu\" }},\n  {{ type = \"global_avg_pool\" }},\n  {{ type = \"linear\", out = \"classes\" }},\n]\n\n[train]{}",
        data_section.replace("data/cifar-10-batches-bin", data.to_str().unwrap()),
        train_section.replace("epochs = 160", "epochs = 3")
    );
    assert!(
        body.contains("kind = \"cifar10\"") && body.contains("random_crop"),
        "{body}"
    );
    let config = write_config(&dir, "cifar.toml", &body);
    let run = dir.join("run");
    let out = nabla(&["train", &config, "--out", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = nabla(&["eval", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("test samples 20") && text(&out).contains("accuracy 100.00%"),
        "{}",
        text(&out)
    );
    // the test batch again, as --data, and one picture through predict
    let out = nabla(&[
        "eval",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(text(&out).contains("accuracy 100.00%"), "{}", text(&out));
    let picture = dir.join("blue.png");
    image::RgbImage::from_pixel(32, 32, image::Rgb([10, 20, 200]))
        .save(&picture)
        .unwrap();
    let out = nabla(&["predict", run.to_str().unwrap(), picture.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("blue.png: automobile"),
        "{}",
        text(&out)
    );
}

/// Every benchmark workload runs, two steps of it, and prints the JSON line that
/// `bench/compare.sh` reads: its name, a positive time, a finite loss.
#[test]
fn every_bench_workload_runs_two_steps() {
    for workload in ["mlp", "cnn", "tiny", "resnet", "gpt"] {
        let mut args = vec![
            "bench",
            "--workload",
            workload,
            "--steps",
            "2",
            "--threads",
            "2",
        ];
        if matches!(workload, "mlp" | "cnn") {
            args.extend(["--epochs", "1"]);
        }
        let out = nabla(&args);
        assert!(out.status.success(), "{workload}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
            .collect();
        assert_eq!(lines.len(), 1, "{workload}: {stdout}");
        let line = &lines[0];
        assert_eq!(line["workload"], workload);
        assert_eq!(line["framework"], "nabla");
        let time = ["train_seconds", "us_per_step", "ms_per_step"]
            .iter()
            .find_map(|key| line[key].as_f64())
            .unwrap_or_else(|| panic!("{workload}: no time in {line}"));
        assert!(time > 0.0, "{line}");
        let loss = ["final_train_loss", "final_loss"]
            .iter()
            .find_map(|key| line[key].as_f64())
            .unwrap_or(f64::NAN);
        assert!(loss.is_finite() && loss > 0.0, "{workload}: loss in {line}");
        if matches!(workload, "mlp" | "cnn") {
            assert_eq!(line["steps_per_epoch"], 2, "{line}");
        }
        assert!(
            ["baseline", "avx2", "avx512"].contains(&line["isa"].as_str().unwrap_or("")),
            "{line}"
        );
        // the product arithmetic per step, and the share of the GEMM peak it ran at
        let gflop = line["gflop_per_step"].as_f64().unwrap_or(0.0);
        match workload {
            "tiny" => assert!(line["gflop_per_step"].is_null(), "{line}"),
            // 784-256-128-10 at batch 128: forward 2·128·(784·256 + 256·128 + 128·10),
            // backward the same again without the first layer's dL/dx (the data's)
            "mlp" => {
                let macs = [784 * 256, 256 * 128, 128 * 10];
                let step = 2 * 128 * (macs.iter().sum::<u64>() + macs[0] + 2 * (macs[1] + macs[2]));
                assert_eq!(gflop, (step as f64 / 1e3).round() / 1e6, "{line}");
            }
            // ResNet-20: 41 M multiply-adds per 32×32 image, batch 128, ×3 with backward
            "resnet" => assert!((30.0..32.5).contains(&gflop), "{line}"),
            _ => assert!(gflop > 0.0, "{line}"),
        }
        if workload != "tiny" {
            let percent = line["percent_of_gemm_peak"].as_f64().unwrap_or(0.0);
            assert!(percent > 0.0 && percent < 200.0, "{line}");
        }
    }
    // NABLA_ISA caps the vector instructions, and the line says which were used
    for (asked, allowed) in [
        ("baseline", &["baseline"][..]),
        ("avx2", &["baseline", "avx2"]),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_nabla"))
            .args(["bench", "--workload", "tiny", "--steps", "2"])
            .env("NABLA_ISA", asked)
            .current_dir(ROOT)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            allowed.contains(&line["isa"].as_str().unwrap_or("")),
            "{asked}: {line}"
        );
    }
}

/// The same config and seed give the same trained model, so the same file bytes:
/// a model's checksum identifies it (the metadata header is written sorted).
#[test]
fn two_runs_with_one_seed_write_identical_model_files() {
    let dir = temp_dir("reproducible");
    let body = SMALL_MLP
        .replace("train_limit = 5000", "train_limit = 1000")
        .replace("epochs = 2", "epochs = 1");
    let config = write_config(&dir, "same.toml", &body);
    let files: Vec<Vec<u8>> = ["first", "second"]
        .iter()
        .map(|name| {
            let run = dir.join(name);
            let out = nabla(&["train", &config, "--out", run.to_str().unwrap()]);
            assert!(out.status.success(), "{}", text(&out));
            std::fs::read(run.join("model.safetensors")).unwrap()
        })
        .collect();
    assert!(
        files[0] == files[1],
        "model.safetensors differs between two identical runs"
    );
}

/// PyTorch made `sgd_init.safetensors`, trained 4 plain-SGD steps on the first 256
/// images in file order, and saved the result (tests/reference/make_sgd_reference.py).
#[test]
fn init_and_fixed_order_match_pytorch() {
    let dir = temp_dir("pytorch-sgd");
    let body = r#"
[data]
kind = "mnist"
path = "data/mnist"
batch_size = 64
shuffle = false
train_limit = 256
test_limit = 100

[model]
layers = [{ type = "linear", out = 32 }, { type = "relu" }, { type = "linear", out = 10 }]

[train]
epochs = 1
init = "tests/reference/sgd_init.safetensors"
optimizer = { kind = "sgd", lr = 0.1 }
"#;
    let config = write_config(&dir, "sgd.toml", body);
    let run = dir.join("run");
    let out = nabla(&["train", &config, "--out", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let ours = nabla::checkpoint::load_tensors::<f32>(run.join("model.safetensors")).unwrap();
    let theirs = nabla::checkpoint::load_tensors::<f32>(format!(
        "{ROOT}/tests/reference/sgd_expected.safetensors"
    ))
    .unwrap();
    let expected: std::collections::HashMap<_, _> = theirs.tensors.into_iter().collect();
    for (name, tensor) in ours.tensors {
        let reference = expected[&name].to_vec();
        for (a, b) in tensor.to_vec().iter().zip(&reference) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{name}: nabla {a} vs PyTorch {b}"
            );
        }
    }
}

/// Without the HTTP client the command is still there, and says how to get one.
#[cfg(not(feature = "fetch"))]
#[test]
fn data_fetch_without_the_fetch_feature_says_how_to_build_it() {
    let out = nabla(&["data", "fetch", "fashion-mnist", "--dir", "unused"]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("built without the `fetch` feature")
            && said.contains("cargo build --release --features fetch"),
        "{said}"
    );
    assert!(!Path::new("unused").exists(), "nothing written");
}

#[test]
fn data_export_writes_mnist_as_an_image_folder_of_its_own_pixels() {
    let dir = temp_dir("export");
    let out = nabla(&[
        "data",
        "export",
        "mnist",
        dir.to_str().unwrap(),
        "--limit",
        "30",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let images =
        nabla::data::read_idx(format!("{ROOT}/data/mnist/t10k-images-idx3-ubyte.gz")).unwrap();
    let labels =
        nabla::data::read_idx(format!("{ROOT}/data/mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    for split in ["train", "test"] {
        let count: usize = std::fs::read_dir(dir.join(split))
            .unwrap()
            .map(|class| std::fs::read_dir(class.unwrap().path()).unwrap().count())
            .sum();
        assert_eq!(count, 30, "{split}");
    }
    // test image 7, in its label's folder, holds exactly its 28×28 IDX bytes
    let png = dir
        .join("test")
        .join(labels.data[7].to_string())
        .join("00007.png");
    let decoded = image::open(&png).unwrap().to_luma8();
    assert_eq!(decoded.dimensions(), (28, 28));
    assert_eq!(decoded.into_raw(), images.data[7 * 784..8 * 784].to_vec());

    let out = nabla(&["data", "export", "cifar10", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("export knows `mnist` and `fashion-mnist`"),
        "{}",
        text(&out)
    );
}

#[test]
fn every_command_has_help_with_an_example() {
    for command in [
        "train",
        "eval",
        "predict",
        "generate",
        "gradcheck",
        "explain",
        "bench",
        "dashboard",
        "data fetch",
        "data export",
    ] {
        let words: Vec<&str> = command.split(' ').chain(["--help"]).collect();
        let out = nabla(&words);
        assert!(out.status.success());
        assert!(
            text(&out).contains("Example"),
            "{command} --help has no example"
        );
    }
}

/// Broken configs and command lines, each with the error it must give.
#[test]
fn bad_configs_get_clear_errors() {
    let dir = temp_dir("bad");
    let base = SMALL_MLP;
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "misspelled key",
            base.replace("lr = 0.05", "lr_rate = 0.05"),
            vec!["unknown field `lr_rate`", "did you mean `lr`?", "line 19"],
        ),
        (
            "unknown optimizer",
            base.replace("kind = \"sgd\"", "kind = \"adamm\""),
            vec!["unknown variant `adamm`", "did you mean `adam`?"],
        ),
        (
            "unknown layer",
            base.replace("type = \"relu\"", "type = \"relux\""),
            vec!["unknown variant `relux`", "did you mean `relu`?"],
        ),
        (
            "unknown section key",
            base.replace("batch_size = 64", "batch_sise = 64"),
            vec!["unknown field `batch_sise`", "did you mean `batch_size`?"],
        ),
        (
            "wrong type",
            base.replace("epochs = 2", "epochs = \"two\""),
            vec!["line 17", "invalid type"],
        ),
        (
            "negative learning rate",
            base.replace("lr = 0.05", "lr = -0.05"),
            vec!["`lr`", "positive", "-0.05"],
        ),
        (
            "zero batch size",
            base.replace("batch_size = 64", "batch_size = 0"),
            vec!["`batch_size`", "at least 1"],
        ),
        (
            "zero epochs",
            base.replace("epochs = 2", "epochs = 0"),
            vec!["`epochs`", "at least 1"],
        ),
        (
            "shapes do not connect",
            base.replace(
                "{ type = \"linear\", out = 32 },",
                "{ type = \"conv2d\", out_channels = 4, kernel = 3 },",
            ),
            vec!["layer 2 (`linear`)", "[4, 26, 26]", "flatten"],
        ),
        (
            "wrong class count",
            base.replace("out = 10", "out = 7"),
            vec!["outputs shape [7]", "10 classes"],
        ),
        (
            "missing section",
            base.replace("[train]", "[training]"),
            vec!["unknown field `training`", "did you mean `train`?"],
        ),
        (
            "dropout probability",
            base.replace("{ type = \"relu\" },", "{ type = \"dropout\", p = 1.5 },"),
            vec!["dropout probability", "1.5"],
        ),
        (
            "missing data",
            base.replace("data/mnist", "data/nowhere"),
            vec![
                "data/nowhere",
                "neither train-images-idx3-ubyte.gz nor train-images-idx3-ubyte is in",
            ],
        ),
        (
            "csv without label column",
            base.replace("kind = \"mnist\"", "kind = \"csv\"")
                .replace("data/mnist", "data/xor.csv"),
            vec!["label_column"],
        ),
        (
            "kernel larger than input",
            base.replace(
                "{ type = \"linear\", out = 32 },",
                "{ type = \"conv2d\", out_channels = 1, kernel = 40 },",
            ),
            vec!["layer 0 (`conv2d`)", "does not fit", "[1, 28, 28]"],
        ),
        ("not toml", "[data\nkind = ".to_string(), vec!["line 1"]),
    ];
    for (name, body, expected) in &cases {
        let config = write_config(&dir, "bad.toml", body);
        let out = nabla(&["train", &config, "--out", dir.join("run").to_str().unwrap()]);
        let message = text(&out);
        assert!(!out.status.success(), "{name}: should fail\n{message}");
        assert!(!message.contains("panicked"), "{name}: panicked\n{message}");
        for needle in expected {
            assert!(
                message.contains(needle),
                "{name}: expected `{needle}` in\n{message}"
            );
        }
        // every mistake in the config names the config file; missing data names the data
        let file = if *name == "missing data" {
            "data/nowhere"
        } else {
            "bad.toml"
        };
        assert!(message.contains(file), "{name}: no file name\n{message}");
    }
    // command-line values out of range
    for (args, needle) in [
        (
            vec!["train", "examples/xor.toml", "--epochs", "0"],
            "--epochs",
        ),
        (
            vec!["--threads", "0", "train", "examples/xor.toml"],
            "--threads",
        ),
        (vec!["predict", "runs/none"], "INPUTS"),
        (
            vec!["explain", "--input", "1,x"],
            "expected comma-separated numbers",
        ),
        (vec!["explain", "--input", "1,2,3"], "--input has 3 values"),
    ] {
        let out = nabla(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            text(&out).contains(needle),
            "{args:?}: expected `{needle}` in {}",
            text(&out)
        );
    }
}

/// CSV rows are standardised with the training split's statistics before predicting.
#[test]
fn predict_csv_rows() {
    let dir = temp_dir("predict-csv");
    let run = dir.join("xor");
    let out = nabla(&["train", "examples/xor.toml", "--out", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = dir.join("rows.csv");
    std::fs::write(&rows, "a,b,label\n1,0,1\n0,0,0\n1,1,0\n0,1,1\n").unwrap();
    let out = nabla(&[
        "predict",
        run.to_str().unwrap(),
        rows.to_str().unwrap(),
        "--top",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    let predicted: Vec<&str> = printed
        .lines()
        .map(|l| l.split(": ").nth(1).unwrap().split(' ').next().unwrap())
        .collect();
    // x XOR y for the four corners
    assert_eq!(predicted, ["1", "0", "0", "1"], "{printed}");
}

/// `nabla explain CONFIG --sample N` explains any model, a conv net here: every
/// layer's output going forward, every δ going back, and every parameter's gradient
/// beside its finite-difference estimate — which must agree.
#[test]
fn explain_a_conv_net_layer_by_layer() {
    let out = nabla(&[
        "explain",
        "examples/mnist-cnn.toml",
        "--sample",
        "3",
        "--lr",
        "0.01",
    ]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    for needle in [
        "FORWARD PROPAGATION",
        "Conv2d(1, 6",
        "MaxPool2d",
        "δ0 (Conv2d",
        "0.weight",
        "3.bias",
        "UPDATE",
    ] {
        assert!(printed.contains(needle), "missing `{needle}` in\n{printed}");
    }
    assert_eq!(
        printed.matches("numerical check of").count(),
        10,
        "one check per parameter"
    );
    let worst: f64 = printed
        .lines()
        .last()
        .and_then(|line| line.split("to ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no worst error in\n{printed}"));
    assert!(
        worst < 1e-6,
        "analytic and numerical gradients differ by {worst}"
    );

    // a config without --input is explained on its first training sample
    let out = nabla(&["explain", "examples/mnist-mlp.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).starts_with("Sample 0 of examples/mnist-mlp.toml"),
        "{}",
        text(&out)
    );

    let out = nabla(&["explain", "examples/mnist-cnn.toml", "--sample", "60000"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--sample 60000"), "{}", text(&out));
}

#[test]
fn tensorboard_event_files_go_where_the_flag_or_the_config_says() {
    let dir = temp_dir("tensorboard");
    let spirals = std::fs::read_to_string(Path::new(ROOT).join("examples/spirals.toml")).unwrap();
    let from_config = write_config(
        &dir,
        "spirals.toml",
        &spirals
            .replace("data/spirals.csv", &format!("{ROOT}/data/spirals.csv"))
            .replace("seed = 0", "seed = 0\ntensorboard = true"),
    );
    let events_in = |logs: &Path| -> Vec<u8> {
        let entries: Vec<_> = std::fs::read_dir(logs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(entries.len(), 1, "one event file in {}", logs.display());
        assert!(
            entries[0]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        );
        std::fs::read(&entries[0]).unwrap()
    };
    let run = dir.join("from-config");
    let out = nabla(&[
        "train",
        &from_config,
        "--epochs",
        "2",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let events = events_in(&run.join("tensorboard"));
    // the file holds a record per scalar and histogram: the epoch's loss tag among them
    assert!(events.windows(10).any(|w| w == b"loss/train"));
    assert!(events.windows(16).any(|w| w == b"weights/0.weight"));

    let elsewhere = dir.join("logs");
    let run = dir.join("from-flag");
    let args = [
        "train",
        "examples/spirals.toml",
        "--epochs",
        "1",
        "--out",
        run.to_str().unwrap(),
        "--tensorboard",
        elsewhere.to_str().unwrap(),
    ];
    let out = nabla(&args);
    assert!(out.status.success(), "{}", text(&out));
    events_in(&elsewhere);
    assert!(!run.join("tensorboard").exists());
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // `nabla train … | head -1`: the reader goes away while nabla is still printing;
    // nabla stops with status 0, as Unix tools do, rather than panicking on the write
    let dir = temp_dir("closed-stdout");
    let mut child = Spawned::start(
        Command::new(env!("CARGO_BIN_EXE_nabla"))
            .args(["train", "examples/xor.toml", "--out"])
            .arg(dir.join("run"))
            .current_dir(ROOT)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    drop(child.stdout.take()); // the reader closes its end at once
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(status.success(), "status {status}, stderr: {stderr}");
}

/// `bench --batch` and `--context` change the workload they name (what
/// bench/cost_growth.sh sweeps), and only those.
#[test]
fn bench_batch_and_context_change_the_step() {
    let json = |args: &[&str]| -> serde_json::Value {
        let out = nabla(args);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
    };
    let line = json(&[
        "bench",
        "--workload",
        "mlp",
        "--epochs",
        "1",
        "--batch",
        "8",
        "--steps",
        "2",
    ]);
    assert_eq!(line["batch_size"], 8, "{line}");
    // a product count that follows the batch: 8 of 128 samples
    let macs: u64 = 784 * 256 + 256 * 128 + 128 * 10;
    let step = 2 * 8 * (macs + 784 * 256 + 2 * (256 * 128 + 128 * 10));
    assert_eq!(
        line["gflop_per_step"].as_f64().unwrap(),
        (step as f64 / 1e3).round() / 1e6
    );
    let short = json(&[
        "bench",
        "--workload",
        "gpt",
        "--context",
        "16",
        "--steps",
        "1",
    ]);
    let long = json(&[
        "bench",
        "--workload",
        "gpt",
        "--context",
        "32",
        "--steps",
        "1",
    ]);
    assert_eq!(
        (short["context"].clone(), long["context"].clone()),
        (16.into(), 32.into())
    );
    // dense layers grow with the positions, attention with their square: more than 2×
    let ratio =
        long["gflop_per_step"].as_f64().unwrap() / short["gflop_per_step"].as_f64().unwrap();
    assert!(ratio > 2.0 && ratio < 2.2, "{ratio}");
    let out = nabla(&["bench", "--workload", "resnet", "--batch", "8"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--batch is for the mlp and cnn workloads"),
        "{}",
        text(&out)
    );
}
