//! `nabla export` checked by the real runtime: each case trains a small run with the
//! `nabla` binary, exports it (as the network takes inputs, and with the
//! preprocessing in front), computes nabla's logits for 64 test samples, and hands
//! everything to `tests/onnx/compare.py`, which runs the ONNX checker and ONNX
//! Runtime (batch 64 and batch 1) and compares.
//!
//! These tests need a Python with `onnx` and `onnxruntime`, named by
//! `NABLA_ONNX_PYTHON`; `.ci/run` installs one and runs them with `--ignored`.
//! Without it they fail — they never pass by doing nothing.

mod common;

use std::path::Path;

use common::{ROOT, nabla, temp_dir, text};
use nabla::Tensor;
use nabla::data::read_idx;
use nabla::nn::Module;
use nabla::run::SavedRun;

const SAMPLES: usize = 64;

/// Trains `config` (TOML text) into `dir/run` and exports it twice.
fn train_and_export(dir: &Path, config: &str) -> SavedRun {
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config).unwrap();
    let run = dir.join("run");
    let out = nabla(&[
        "train",
        config_path.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    for (file, extra) in [
        ("model.onnx", None),
        ("prepared.onnx", Some("--with-preprocessing")),
    ] {
        let path = dir.join(file);
        let mut args = vec![
            "export",
            run.to_str().unwrap(),
            "--out",
            path.to_str().unwrap(),
        ];
        args.extend(extra);
        let out = nabla(&args);
        assert!(out.status.success(), "{}", text(&out));
    }
    SavedRun::open(&run).unwrap()
}

/// The first `SAMPLES` test inputs as the network takes them, and its logits for them.
fn test_batch(run: &SavedRun) -> (Tensor, Tensor) {
    let test = run.test_data().unwrap();
    let width: usize = test.feature_shape().iter().product();
    let mut features = vec![0.0; SAMPLES * width];
    for (index, out) in features.chunks_exact_mut(width).enumerate() {
        test.write_features(index, out);
    }
    let batch = Tensor::from_vec(features, &[&[SAMPLES], test.feature_shape()].concat());
    let _no_graph = nabla::no_grad();
    let logits = run.model.forward(&batch);
    (batch, logits)
}

/// One entry of checks.json, with its input and logits written beside it.
fn check(
    dir: &Path,
    model: &str,
    input: &[u8],
    dtype: &str,
    input_shape: &[usize],
    logits: &Tensor,
) -> serde_json::Value {
    let stem = model.trim_end_matches(".onnx");
    std::fs::write(dir.join(format!("{stem}.input")), input).unwrap();
    let logit_bytes: Vec<u8> = logits
        .to_vec()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(dir.join(format!("{stem}.logits")), logit_bytes).unwrap();
    serde_json::json!({
        "model": model,
        "input": format!("{stem}.input"),
        "dtype": dtype,
        "input_shape": input_shape,
        "logits": format!("{stem}.logits"),
        "logits_shape": logits.shape(),
    })
}

fn floats(tensor: &Tensor) -> Vec<u8> {
    tensor
        .to_vec()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// Runs compare.py on `checks`; panics with its report unless every check passed.
fn run_runtime(dir: &Path, checks: Vec<serde_json::Value>) {
    let python = std::env::var("NABLA_ONNX_PYTHON").unwrap_or_else(|_| {
        panic!("set NABLA_ONNX_PYTHON to a Python with onnx and onnxruntime (.ci/run installs one in target/ci-venv)")
    });
    std::fs::write(
        dir.join("checks.json"),
        serde_json::to_string_pretty(&checks).unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new(python)
        .arg(Path::new(ROOT).join("tests/onnx/compare.py"))
        .arg(dir)
        .output()
        .expect("python runs");
    let report = text(&out);
    println!("{report}");
    assert!(
        out.status.success(),
        "ONNX Runtime disagrees with nabla:\n{report}"
    );
}

/// The first `SAMPLES` MNIST test images as raw 0–255 values, `[N, 1, 28, 28]`.
fn mnist_pixels() -> Vec<u8> {
    let images = read_idx(Path::new(ROOT).join("data/mnist/t10k-images-idx3-ubyte.gz")).unwrap();
    let pixels: Vec<f32> = images.data[..SAMPLES * 784]
        .iter()
        .map(|&p| p as f32)
        .collect();
    pixels.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// An MNIST config of `layers`, trained briefly on a slice of the data.
fn mnist_config(layers: &str, normalize: bool) -> String {
    format!(
        r#"
[data]
kind = "mnist"
path = "{ROOT}/data/mnist"
batch_size = 64
train_limit = 1024
test_limit = {SAMPLES}
normalize = {normalize}

[model]
layers = [{layers}]

[train]
epochs = 1
seed = 0
optimizer = {{ kind = "adam", lr = 0.002 }}
"#
    )
}

/// Exported image models, without and with the preprocessing, agree with nabla.
fn check_mnist(name: &str, layers: &str, normalize: bool) -> common::TempDir {
    let dir = temp_dir(name);
    let run = train_and_export(&dir, &mnist_config(layers, normalize));
    let (batch, logits) = test_batch(&run);
    let checks = vec![
        check(
            &dir,
            "model.onnx",
            &floats(&batch),
            "float32",
            batch.shape(),
            &logits,
        ),
        check(
            &dir,
            "prepared.onnx",
            &mnist_pixels(),
            "float32",
            &[SAMPLES, 1, 28, 28],
            &logits,
        ),
    ];
    run_runtime(&dir, checks);
    dir
}

#[test]
#[ignore = "needs NABLA_ONNX_PYTHON (a Python with onnx and onnxruntime); .ci/run runs it"]
fn mlp_matches_onnx_runtime() {
    let layers = r#"{ type = "flatten" }, { type = "linear", out = 128 }, { type = "relu" }, { type = "dropout", p = 0.1 },
        { type = "linear", out = 64 }, { type = "gelu" }, { type = "linear", out = "classes" }"#;
    check_mnist("onnx-mlp", layers, true);
}

#[test]
#[ignore = "needs NABLA_ONNX_PYTHON (a Python with onnx and onnxruntime); .ci/run runs it"]
fn lenet_matches_onnx_runtime() {
    let config = std::fs::read_to_string(Path::new(ROOT).join("examples/mnist-cnn.toml")).unwrap();
    let layers = toml_layers(&config);
    check_mnist("onnx-lenet", &layers, false);
}

#[test]
#[ignore = "needs NABLA_ONNX_PYTHON (a Python with onnx and onnxruntime); .ci/run runs it"]
fn residual_cnn_with_batch_norm_matches_onnx_runtime() {
    let config =
        std::fs::read_to_string(Path::new(ROOT).join("examples/mnist-resnet.toml")).unwrap();
    check_mnist("onnx-resnet", &toml_layers(&config), true);
}

#[test]
#[ignore = "needs NABLA_ONNX_PYTHON (a Python with onnx and onnxruntime); .ci/run runs it"]
fn every_other_layer_kind_matches_onnx_runtime() {
    // what the examples above leave out: strides, dilation, groups, average and
    // adaptive pooling (equal and unequal windows), layer norm over the sample,
    // leaky ReLU, SiLU, softsign, sigmoid, tanh, GELU's tanh form, a projection shortcut
    let layers = r#"
        { type = "conv2d", out_channels = 6, kernel = 3, stride = 2, padding = 1 },
        { type = "leaky_relu", slope = 0.1 },
        { type = "conv2d", out_channels = 6, kernel = 3, dilation = 2, groups = 3, padding = 2, bias = false },
        { type = "batch_norm" }, { type = "silu" },
        { type = "avg_pool2d", kernel = 3, stride = 1, padding = 1 },
        { type = "max_pool2d", kernel = 3, stride = 2, padding = 1 },
        { type = "residual", layers = [ { type = "conv2d", out_channels = 8, kernel = 1 }, { type = "tanh" } ],
          shortcut = [ { type = "conv2d", out_channels = 8, kernel = 1, bias = false } ] },
        { type = "adaptive_avg_pool2d", out = [5, 3] },
        { type = "layer_norm", over = "sample" }, { type = "softsign" },
        { type = "adaptive_avg_pool2d", out = [1, 1] },
        { type = "flatten" }, { type = "linear", out = 16 }, { type = "batch_norm" }, { type = "sigmoid" },
        { type = "linear", out = 16 }, { type = "gelu", tanh_approximation = true },
        { type = "linear", out = "classes" }"#;
    let dir = check_mnist("onnx-layers", layers, true);
    // the newest operator set nabla writes reads the same
    let out = nabla(&[
        "export",
        dir.join("run").to_str().unwrap(),
        "--opset",
        "21",
        "--out",
        dir.join("opset21.onnx").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let run = SavedRun::open(&dir.join("run")).unwrap();
    let (batch, logits) = test_batch(&run);
    run_runtime(
        &dir,
        vec![check(
            &dir,
            "opset21.onnx",
            &floats(&batch),
            "float32",
            batch.shape(),
            &logits,
        )],
    );
}

#[test]
#[ignore = "needs NABLA_ONNX_PYTHON (a Python with onnx and onnxruntime); .ci/run runs it"]
fn character_gpt_matches_onnx_runtime() {
    let dir = temp_dir("onnx-gpt");
    let config = format!(
        r#"
[data]
kind = "text"
path = "{ROOT}/data/shakespeare.txt"
tokenizer = "char"
block_size = 32
val_fraction = 0.1
batch_size = 16

[model]
layers = [
  {{ type = "embedding", dim = 32, init = "gpt" }},
  {{ type = "positional_embedding", init = "gpt" }},
  {{ type = "transformer_block", heads = 4, mlp_ratio = 4 }},
  {{ type = "transformer_block", heads = 4, mlp_ratio = 4 }},
  {{ type = "layer_norm" }},
  {{ type = "linear", out = "vocab", bias = false, init = "gpt" }},
]

[train]
max_steps = 30
seed = 0
optimizer = {{ kind = "adamw", lr = 3e-3 }}
"#
    );
    let run = train_and_export(&dir, &config);
    let (windows, logits) = test_batch(&run);
    let ids: Vec<u8> = windows
        .to_vec()
        .iter()
        .flat_map(|&v| (v as i64).to_le_bytes())
        .collect();
    let mut checks = vec![
        check(&dir, "model.onnx", &ids, "int64", windows.shape(), &logits),
        check(
            &dir,
            "prepared.onnx",
            &ids,
            "int64",
            windows.shape(),
            &logits,
        ),
    ];
    // a shorter context: the graph's time axis is free (up to the block size)
    let short = windows.narrow(1, 0, 9);
    let short_logits = {
        let _no_graph = nabla::no_grad();
        run.model.forward(&short)
    };
    let short_ids: Vec<u8> = short
        .to_vec()
        .iter()
        .flat_map(|&v| (v as i64).to_le_bytes())
        .collect();
    std::fs::copy(dir.join("model.onnx"), dir.join("short.onnx")).unwrap();
    checks.push(check(
        &dir,
        "short.onnx",
        &short_ids,
        "int64",
        short.shape(),
        &short_logits,
    ));
    run_runtime(&dir, checks);
}

#[test]
#[ignore = "needs NABLA_ONNX_PYTHON (a Python with onnx and onnxruntime); .ci/run runs it"]
fn csv_model_with_standardisation_matches_onnx_runtime() {
    let dir = temp_dir("onnx-spirals");
    let config = std::fs::read_to_string(Path::new(ROOT).join("examples/spirals.toml"))
        .unwrap()
        .replace("data/spirals.csv", &format!("{ROOT}/data/spirals.csv"));
    let config = limit_epochs(&config, 3);
    let run = train_and_export(&dir, &config);
    let (batch, logits) = test_batch(&run);
    // raw CSV values: undo the standardisation nabla applied to the test split
    let nabla::run::preprocessing::Input::Table {
        standardizer: Some(standardizer),
        ..
    } = &run.preprocessing.input
    else {
        panic!("spirals.toml standardises its features")
    };
    let width = standardizer.mean.len();
    let raw: Vec<f32> = batch
        .to_vec()
        .iter()
        .enumerate()
        .map(|(i, v)| v * standardizer.std[i % width] + standardizer.mean[i % width])
        .collect();
    // the raw values standardise back to exactly the batch nabla scored? then compare
    let raw_tensor = Tensor::from_vec(raw.clone(), batch.shape());
    let restandardised = run.preprocessing.rows(raw.clone());
    let (logits_of_raw, raw_shape) = {
        let _no_graph = nabla::no_grad();
        (
            run.model.forward(&restandardised),
            raw_tensor.shape().to_vec(),
        )
    };
    let raw_bytes: Vec<u8> = raw.iter().flat_map(|v| v.to_le_bytes()).collect();
    let checks = vec![
        check(
            &dir,
            "model.onnx",
            &floats(&batch),
            "float32",
            batch.shape(),
            &logits,
        ),
        check(
            &dir,
            "prepared.onnx",
            &raw_bytes,
            "float32",
            &raw_shape,
            &logits_of_raw,
        ),
    ];
    run_runtime(&dir, checks);
}

/// The `layers = [ … ]` list of a config file, as TOML text.
fn toml_layers(config: &str) -> String {
    let start = config.find("layers = [").expect("a model") + "layers = [".len();
    let end = config[start..].find("\n]").expect("the list ends") + start;
    config[start..end].to_string()
}

fn limit_epochs(config: &str, epochs: usize) -> String {
    config
        .lines()
        .map(|line| {
            if line.starts_with("epochs") {
                format!("epochs = {epochs}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
#[ignore = "needs NABLA_ONNX_PYTHON (a Python with onnx and onnxruntime); .ci/run runs it"]
fn pytorch_models_imported_and_exported_again_match_pytorch_in_onnx_runtime() {
    let dir = temp_dir("onnx-reexport");
    let reference_dir = Path::new(ROOT).join("tests/reference/onnx");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference_dir.join("onnx.json")).unwrap())
            .unwrap();
    let mut checks = Vec::new();
    for name in ["table", "mlp", "cnn", "residual"] {
        let source = reference_dir.join(format!("{name}.onnx"));
        let imported = nabla::onnx::import(&std::fs::read(&source).unwrap()).unwrap();
        let model = imported.model(&source).unwrap();
        let exported = nabla::onnx::export_network(
            &model,
            &imported.input_shape,
            nabla::onnx::InputKind::Features,
            17,
        )
        .unwrap();
        std::fs::write(dir.join(format!("{name}.onnx")), exported.encode()).unwrap();
        // PyTorch's input and outputs, as the runtime is to reproduce them
        let case = &reference["cases"][name];
        let input: Vec<f32> = serde_json::from_value(case["input"]["values"].clone()).unwrap();
        let input_shape: Vec<usize> =
            serde_json::from_value(case["input"]["shape"].clone()).unwrap();
        let output: Vec<f32> = serde_json::from_value(case["output"]["values"].clone()).unwrap();
        let output_shape: Vec<usize> =
            serde_json::from_value(case["output"]["shape"].clone()).unwrap();
        let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
        checks.push(check(
            &dir,
            &format!("{name}.onnx"),
            &bytes,
            "float32",
            &input_shape,
            &Tensor::from_vec(output, &output_shape),
        ));
    }
    run_runtime(&dir, checks);
}
