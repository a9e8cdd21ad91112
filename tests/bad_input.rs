//! The catalogue of broken inputs: every reader (IDX, CSV, safetensors, config, model
//! stacks) given malformed data must answer with an error naming the file, the place,
//! what was expected and what was found — never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod common;

use common::{gzip, idx_bytes};
use nabla::Tensor;
use nabla::checkpoint::{load_model, load_tensors, save_tensors};
use nabla::data::{CsvOptions, ImageDataset, read_csv, read_idx};
#[cfg(feature = "experiment")]
use nabla::experiment::Config;
use nabla::nn::{Linear, Module, Relu, Sequential};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Asserts the error names the file and contains every expected fragment.
fn expect_error<T>(case: &str, path: &Path, result: nabla::Result<T>, fragments: &[&str]) {
    let Err(err) = result else {
        panic!("{case}: accepted a broken input")
    };
    let message = err.to_string();
    let file = path.file_name().unwrap().to_string_lossy();
    assert!(
        message.contains(file.as_ref()),
        "{case}: the error does not name the file: {message}"
    );
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "{case}: expected `{fragment}` in: {message}"
        );
    }
}

#[test]
fn idx_files() {
    let dir = common::temp_dir("bad-input-idx_files");
    let cut_gzip = gzip(&idx_bytes(&[50], &[1; 50]));
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "wrong magic",
            vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 5],
            vec!["byte 0", "00 00 08 xx", "00 00 0d 01"],
        ),
        (
            "nonzero leading bytes",
            vec![1, 0, 8, 1, 0, 0, 0, 1, 5],
            vec!["byte 0", "found 01 00 08 01"],
        ),
        (
            "too few header bytes",
            vec![0, 0],
            vec!["4-byte IDX header", "2 bytes"],
        ),
        ("empty file", vec![], vec!["4-byte IDX header", "0 bytes"]),
        (
            "zero dimensions",
            vec![0, 0, 8, 0],
            vec!["byte 3", "1 to 4 dimensions, found 0"],
        ),
        (
            "too many dimensions",
            vec![0, 0, 8, 9],
            vec!["byte 3", "found 9"],
        ),
        (
            "cut inside the dimensions",
            vec![0, 0, 8, 3, 0, 0, 0, 2],
            vec!["byte 4", "3 dimension sizes"],
        ),
        (
            "truncated data",
            idx_bytes(&[3, 2], &[1, 2, 3]),
            vec!["promise 6 values", "holds 3"],
        ),
        (
            "extra data",
            idx_bytes(&[2], &[1, 2, 3]),
            vec!["promise 2 values", "holds 3"],
        ),
        (
            "dimensions overflow",
            idx_bytes(&[u32::MAX, u32::MAX, u32::MAX, u32::MAX], &[]),
            vec!["more than usize::MAX"],
        ),
        (
            "huge count, tiny file",
            idx_bytes(&[4_000_000_000], &[7]),
            vec!["promise 4000000000 values", "holds 1"],
        ),
        (
            "not gzip",
            vec![0x1f, 0x8b, 0, 0, 1, 2],
            vec!["not a valid gzip stream"],
        ),
        (
            "gzip cut short",
            cut_gzip[..cut_gzip.len() / 2].to_vec(),
            vec!["not a valid gzip stream"],
        ),
    ];
    for (i, (case, bytes, fragments)) in cases.iter().enumerate() {
        let path = write(&dir, &format!("idx-{i}.idx"), bytes);
        expect_error(case, &path, read_idx(&path), fragments);
    }
    // images and labels that do not belong together
    let images = write(&dir, "pair-images.idx", &idx_bytes(&[3, 2, 2], &[0; 12]));
    let labels = write(&dir, "pair-labels.idx", &idx_bytes(&[4], &[0; 4]));
    expect_error(
        "count mismatch",
        &labels,
        ImageDataset::from_idx(&images, &labels),
        &["holds 4 labels", "3 images"],
    );
    let flat = write(&dir, "flat-images.idx", &idx_bytes(&[12], &[0; 12]));
    expect_error(
        "images not 3-D",
        &flat,
        ImageDataset::from_idx(&flat, &labels),
        &["expected 3 dimensions", "[12]"],
    );
    let grid = write(&dir, "grid-labels.idx", &idx_bytes(&[3, 1], &[0; 3]));
    expect_error(
        "labels not 1-D",
        &grid,
        ImageDataset::from_idx(&images, &grid),
        &["expected 1 dimension", "[3, 1]"],
    );
}

#[test]
fn csv_files() {
    let dir = common::temp_dir("bad-input-csv_files");
    let options = CsvOptions {
        label_column: "y".into(),
    };
    let cases: Vec<(&str, &[u8], Vec<&str>)> = vec![
        (
            "ragged row",
            b"a,b,y\n1,2,0\n3,1\n",
            vec!["line 3", "expected 3 fields", "found 2"],
        ),
        (
            "long row",
            b"a,y\n1,0\n3,1,7\n",
            vec!["line 3", "expected 2 fields", "found 3"],
        ),
        (
            "non-numeric feature",
            b"a,y\n1,0\nhello,1\n",
            vec!["line 3", "column `a`", "expected a number, found `hello`"],
        ),
        (
            "empty feature",
            b"a,b,y\n1,,0\n2,3,1\n",
            vec!["line 2", "column `b`", "found ``"],
        ),
        ("empty file", b"", vec!["expected a header row"]),
        (
            "missing label column",
            b"a,b\n1,2\n",
            vec!["label column named `y`", "[\"a\", \"b\"]"],
        ),
        (
            "NaN feature",
            b"a,y\nNaN,0\n1,1\n",
            vec!["line 2", "finite number, found `NaN`"],
        ),
        (
            "infinite feature",
            b"a,y\n1,0\n-inf,1\n",
            vec!["line 3", "finite number, found `-inf`"],
        ),
        (
            "single class",
            b"a,y\n1,cat\n2,cat\n",
            vec!["at least two classes", "`cat`"],
        ),
        ("header only", b"a,y\n", vec!["at least one data row"]),
        ("not text", b"a,y\n\xff\xfe,1\n2,0\n", vec!["line 2"]),
    ];
    for (i, (case, bytes, fragments)) in cases.iter().enumerate() {
        let path = write(&dir, &format!("table-{i}.csv"), bytes);
        expect_error(case, &path, read_csv(&path, &options), fragments);
    }
}

fn model() -> Sequential {
    let mut rng = nabla::rng(0);
    Sequential::new()
        .layer(Linear::new(3, 2, &mut rng))
        .layer(Relu)
        .layer(Linear::new(2, 2, &mut rng))
}

/// A safetensors file from its JSON header and data bytes.
fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

#[test]
fn safetensors_files() {
    let dir = common::temp_dir("bad-input-safetensors_files");
    let good = write(&dir, "good.safetensors", &[]);
    save_tensors(&good, &model().state_dict(), &BTreeMap::new()).unwrap();
    let good_bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "truncated header",
            good_bytes[..20].to_vec(),
            vec!["not a valid safetensors file"],
        ),
        (
            "header longer than the file",
            {
                let mut b = good_bytes.clone();
                b[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
                b
            },
            vec!["not a valid safetensors file"],
        ),
        (
            "truncated data",
            good_bytes[..good_bytes.len() - 4].to_vec(),
            vec!["not a valid safetensors file"],
        ),
        ("empty file", vec![], vec!["not a valid safetensors file"]),
        (
            "header not JSON",
            safetensors("{not json", &[]),
            vec!["not a valid safetensors file"],
        ),
        (
            "unsupported dtype",
            safetensors(
                r#"{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            vec!["tensor `w`", "found BF16"],
        ),
        (
            "shape disagrees with data",
            safetensors(
                r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            vec!["not a valid safetensors file"],
        ),
        (
            "offsets past the end",
            safetensors(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &[0; 4],
            ),
            vec!["not a valid safetensors file"],
        ),
    ];
    for (i, (case, bytes, fragments)) in cases.iter().enumerate() {
        let path = write(&dir, &format!("broken-{i}.safetensors"), bytes);
        expect_error(case, &path, load_tensors::<f32>(&path), fragments);
    }
    // well-formed files that do not fit the model
    let x = Tensor::<f32>::zeros(&[3, 2]);
    let mut missing = model().state_dict();
    missing.pop();
    let path = write(&dir, "missing.safetensors", &[]);
    save_tensors(&path, &missing, &BTreeMap::new()).unwrap();
    expect_error(
        "tensor missing for the model",
        &path,
        load_model(&path, &model()),
        &["`2.bias`", "missing"],
    );
    let mut extra = model().state_dict();
    extra.push(("9.weight".into(), x.clone()));
    let path = write(&dir, "extra.safetensors", &[]);
    save_tensors(&path, &extra, &BTreeMap::new()).unwrap();
    expect_error(
        "extra tensor",
        &path,
        load_model(&path, &model()),
        &["`9.weight`", "does not have"],
    );
    let mut wrong = model().state_dict();
    wrong[0].1 = x;
    let path = write(&dir, "wrong-shape.safetensors", &[]);
    save_tensors(&path, &wrong, &BTreeMap::new()).unwrap();
    expect_error(
        "wrong shape",
        &path,
        load_model(&path, &model()),
        &["`0.weight`", "expects shape [2, 3]", "holds shape [3, 2]"],
    );
    let path = dir.join("absent.safetensors");
    expect_error(
        "no such file",
        &path,
        load_tensors::<f32>(&path),
        &["No such file"],
    );
}

#[cfg(feature = "experiment")]
const CONFIG: &str = r#"
[data]
kind = "mnist"
path = "data/mnist"
batch_size = 64

[model]
layers = [{ type = "linear", out = 32 }, { type = "relu" }, { type = "linear", out = 10 }]

[train]
epochs = 2
optimizer = { kind = "sgd", lr = 0.1 }
"#;

#[cfg(feature = "experiment")]
#[test]
fn configs() {
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown key",
            CONFIG.replace("lr = 0.1", "lr_rate = 0.1"),
            vec!["line 12", "unknown field `lr_rate`", "did you mean `lr`?"],
        ),
        (
            "unknown top-level section",
            format!("{CONFIG}\n[extra]\nx = 1\n"),
            vec!["unknown field `extra`"],
        ),
        (
            "wrong type",
            CONFIG.replace("epochs = 2", "epochs = 2.5"),
            vec!["line 11", "invalid type"],
        ),
        (
            "string for a number",
            CONFIG.replace("batch_size = 64", "batch_size = \"64\""),
            vec!["line 5", "invalid type"],
        ),
        (
            "negative learning rate",
            CONFIG.replace("lr = 0.1", "lr = -0.1"),
            vec!["line 12", "`lr`", "positive", "-0.1"],
        ),
        (
            "zero batch size",
            CONFIG.replace("batch_size = 64", "batch_size = 0"),
            vec!["line 5", "`batch_size`", "found 0"],
        ),
        (
            "negative epochs",
            CONFIG.replace("epochs = 2", "epochs = -1"),
            vec!["line 11"],
        ),
        (
            "unknown data kind",
            CONFIG.replace("kind = \"mnist\"", "kind = \"cifar\""),
            vec!["unknown variant `cifar`"],
        ),
        (
            "missing optimizer",
            CONFIG.replace("optimizer = { kind = \"sgd\", lr = 0.1 }", ""),
            vec!["missing field `optimizer`"],
        ),
        (
            "missing layers",
            CONFIG.replace("layers = [", "stack = ["),
            vec!["unknown field `stack`"],
        ),
        (
            "bad test fraction",
            CONFIG.replace("batch_size = 64", "batch_size = 64\ntest_fraction = 1.5"),
            vec!["`test_fraction`", "1.5"],
        ),
        (
            "label smoothing out of range",
            CONFIG.replace("epochs = 2", "epochs = 2\nlabel_smoothing = 2.0"),
            vec!["`label_smoothing`"],
        ),
        (
            "zero clip norm",
            CONFIG.replace("epochs = 2", "epochs = 2\nclip_grad_norm = 0.0"),
            vec!["`clip_grad_norm`"],
        ),
        ("not TOML", "[data\nkind".to_string(), vec!["line 1"]),
    ];
    for (case, text, fragments) in &cases {
        let path = Path::new("bad-config.toml");
        expect_error(case, path, Config::parse(text, path), fragments);
    }
}

#[cfg(feature = "experiment")]
#[test]
fn layer_stacks_that_cannot_connect() {
    use nabla::experiment::LayerConfig as L;
    type Case<'a> = (&'a str, Vec<L>, &'a [usize], Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "linear on an image",
            vec![
                L::Conv2d {
                    out_channels: 4,
                    kernel: 3,
                    stride: 1,
                    padding: 0,
                    dilation: 1,
                    groups: 1,
                    bias: true,
                },
                L::Linear {
                    out: 10.into(),
                    bias: true,
                    init: None,
                },
            ],
            &[1, 28, 28],
            vec!["layer 1 (`linear`)", "[4, 26, 26]", "flatten"],
        ),
        (
            "conv on a vector",
            vec![L::Conv2d {
                out_channels: 4,
                kernel: 3,
                stride: 1,
                padding: 0,
                dilation: 1,
                groups: 1,
                bias: true,
            }],
            &[784],
            vec!["layer 0 (`conv2d`)", "[784]"],
        ),
        (
            "kernel too large",
            vec![L::MaxPool2d {
                kernel: 30,
                stride: None,
                padding: 0,
            }],
            &[1, 28, 28],
            vec!["layer 0 (`max_pool2d`)", "does not fit", "[1, 28, 28]"],
        ),
        (
            "groups do not divide",
            vec![L::Conv2d {
                out_channels: 4,
                kernel: 3,
                stride: 1,
                padding: 0,
                dilation: 1,
                groups: 2,
                bias: true,
            }],
            &[3, 8, 8],
            vec!["layer 0 (`conv2d`)", "3 input", "2 groups"],
        ),
        (
            // 10¹¹ positions × 16 features would be 6.4 TB: refused before allocating
            "huge positional embedding",
            vec![
                L::Embedding {
                    dim: 16,
                    init: None,
                },
                L::PositionalEmbedding {
                    max_len: Some(100_000_000_000),
                    init: None,
                },
            ],
            &[8],
            vec![
                "layer 1 (`positional_embedding`)",
                "a parameter of shape [100000000000, 16] would have 1600000000000 values",
                "the limit is",
            ],
        ),
        (
            "huge linear layer",
            vec![L::Linear {
                out: 1_000_000_000.into(),
                bias: true,
                init: None,
            }],
            &[784],
            vec!["layer 0 (`linear`)", "784000000000 values", "the limit is"],
        ),
        (
            // 65536 × 3 × 99 × 99 weights: the check is in the constructor's
            // allocation, so it covers every layer kind without a count of its own
            "huge convolution",
            vec![L::Conv2d {
                out_channels: 65_536,
                kernel: 99,
                stride: 1,
                padding: 49,
                dilation: 1,
                groups: 1,
                bias: true,
            }],
            &[3, 8, 8],
            vec![
                "layer 0 (`conv2d`)",
                "for input shape [3, 8, 8]",
                "[65536, 3, 99, 99]",
                "1926955008 values",
            ],
        ),
        (
            "wrong class count",
            vec![
                L::Flatten,
                L::Linear {
                    out: 5.into(),
                    bias: true,
                    init: None,
                },
            ],
            &[1, 2, 2],
            vec!["outputs shape [5]", "10 classes"],
        ),
    ];
    for (case, layers, input, fragments) in cases {
        let err = nabla::experiment::build_model::<f32>(&layers, input, 10, &mut nabla::rng(0))
            .err()
            .unwrap_or_else(|| panic!("{case}: accepted"));
        let message = err.to_string();
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "{case}: expected `{fragment}` in: {message}"
            );
        }
    }
}
