//! `nabla eval`, `nabla predict` and `nabla gradcheck`: look at a trained model, or
//! check a config's gradients.

use std::path::{Path, PathBuf};

use crate::autograd::no_grad;
use crate::checkpoint::load_model;
use crate::data::{DataLoader, read_idx};
use crate::error::{Error, Result};
use crate::experiment;
use crate::experiment::Config;
use crate::loss::{CrossEntropyOptions, cross_entropy};
use crate::metrics::ConfusionMatrix;
use crate::nn::{Module, Sequential};
use crate::tensor::Tensor;
use crate::train::evaluate_with;

/// A trained model with the config that describes it.
pub struct Trained {
    /// The run's config.
    pub config: Config,
    /// The network, with the trained weights, in evaluation mode.
    pub model: Sequential,
    /// The config's data (or the data given with `--data`).
    pub data: experiment::Data,
    /// Where to write outputs such as confusion.png.
    pub dir: PathBuf,
}

/// Opens `RUN_DIR` (config.toml + model.safetensors) or `MODEL` + `--config`.
pub fn open(target: &Path, config: Option<&Path>, data_path: Option<&Path>) -> Result<Trained> {
    let (config_path, model_path, dir) = if target.is_dir() {
        (
            target.join("config.toml"),
            target.join("model.safetensors"),
            target.to_path_buf(),
        )
    } else {
        let Some(config) = config else {
            return Err(Error::Config(format!(
                "{} is a model file: also give --config CONFIG.toml to describe its network and data",
                target.display()
            )));
        };
        (
            config.to_path_buf(),
            target.to_path_buf(),
            target
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        )
    };
    let mut config = Config::load(&config_path)?;
    if let Some(path) = data_path {
        config.data.path = path.to_path_buf();
    }
    let data = experiment::load_data(&config)?;
    let (model, _) = experiment::build_model(
        &config.model.layers,
        data.train.feature_shape(),
        data.train.num_classes(),
        &mut crate::rng(0),
    )?;
    load_model(&model_path, &model)?;
    model.eval();
    Ok(Trained {
        config,
        model,
        data,
        dir,
    })
}

/// `nabla eval`: loss, accuracy, per-class precision/recall/F1 and the confusion
/// matrix on the test split (printed, and written as confusion.png).
pub fn eval(trained: &Trained) -> Result<()> {
    let test = trained.data.test.as_ref();
    let classes = test.num_classes();
    let mut matrix = ConfusionMatrix::new(classes);
    let loss = |logits: &Tensor, labels: &[usize]| {
        cross_entropy(logits, labels, &CrossEntropyOptions::default())
    };
    let loader = DataLoader::new(test, 1000);
    let result = evaluate_with(&trained.model, &loader, &loss, |logits, labels| {
        matrix.add_batch(logits, labels)
    });
    outln!(
        "test samples {}  loss {:.4}  accuracy {:.2}%",
        result.samples,
        result.loss,
        100.0 * result.accuracy
    );
    outln!("\nclass  precision  recall     f1");
    for c in 0..classes {
        let name = trained
            .data
            .class_names
            .get(c)
            .cloned()
            .unwrap_or_else(|| c.to_string());
        outln!(
            "{name:>5}  {:>9.4}  {:>6.4}  {:>6.4}",
            matrix.precision(c),
            matrix.recall(c),
            matrix.f1(c)
        );
    }
    outln!("\nconfusion matrix (rows: actual, columns: predicted)\n{matrix}");
    let png = trained.dir.join("confusion.png");
    super::plot::confusion(&png, &matrix, &trained.data.class_names)?;
    outln!("wrote {}", png.display());
    Ok(())
}

/// `nabla predict`: the top classes, with probabilities, for each input (CSV rows,
/// an IDX image file, or PNG/JPEG images).
pub fn predict(trained: &Trained, inputs: &[PathBuf], top: usize, invert: bool) -> Result<()> {
    let _guard = no_grad();
    let shape = trained.data.train.feature_shape().to_vec();
    for path in inputs {
        let (names, batch) = read_inputs(path, &shape, trained, invert)?;
        let probabilities = trained.model.forward(&batch).softmax(-1);
        let classes = probabilities.dim(-1);
        let values = probabilities.data();
        for (row, name) in names.iter().enumerate() {
            let mut ranked: Vec<(usize, f32)> = values[row * classes..(row + 1) * classes]
                .iter()
                .copied()
                .enumerate()
                .collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            let shown: Vec<String> = ranked
                .iter()
                .take(top)
                .map(|(c, p)| {
                    format!(
                        "{} {:.2}%",
                        trained
                            .data
                            .class_names
                            .get(*c)
                            .cloned()
                            .unwrap_or_else(|| c.to_string()),
                        100.0 * p
                    )
                })
                .collect();
            outln!("{name}: {}", shown.join(", "));
        }
    }
    Ok(())
}

/// Reads one input file into a batch shaped like the training data.
fn read_inputs(
    path: &Path,
    shape: &[usize],
    trained: &Trained,
    invert: bool,
) -> Result<(Vec<String>, Tensor)> {
    let display = path.display().to_string();
    let lower = display.to_lowercase();
    let width: usize = shape.iter().product();
    let mut batch_shape = vec![0];
    batch_shape.extend_from_slice(shape);
    // the training data's normalisation, per channel (MNIST's, an image folder's)
    let (mean, std) = trained
        .data
        .image_normalization
        .clone()
        .unwrap_or((vec![0.0], vec![1.0]));
    let normalize = |pixel: f32, channel: usize| {
        let p = if invert { 1.0 - pixel } else { pixel };
        let channel = channel.min(mean.len() - 1);
        (p - mean[channel]) / std[channel]
    };
    if lower.ends_with(".csv") {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .collect();
        let label = trained.config.data.label_column.as_deref().unwrap_or("");
        let mut values = Vec::new();
        let mut names = Vec::new();
        for (row, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let features: Vec<&str> = fields
                .iter()
                .zip(&header)
                .filter(|(_, h)| **h != label)
                .map(|(f, _)| *f)
                .collect();
            if features.len() != width {
                return Err(Error::format(
                    path,
                    format!(
                        "line {}: expected {width} feature values, found {}",
                        row + 2,
                        features.len()
                    ),
                ));
            }
            for f in features {
                values.push(f.parse::<f32>().map_err(|_| {
                    Error::format(
                        path,
                        format!("line {}: expected a number, found `{f}`", row + 2),
                    )
                })?);
            }
            names.push(format!("{display} row {}", row + 1));
        }
        if let Some(standardizer) = &trained.data.standardizer {
            standardizer.apply(&mut values);
        }
        batch_shape[0] = names.len();
        return Ok((names, Tensor::from_vec(values, &batch_shape)));
    }
    if lower.ends_with(".png") || lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
        let [channels, height, width_px] = match shape {
            [c, h, w] => [*c, *h, *w],
            [n] => {
                let side = (*n as f64).sqrt() as usize;
                [1, side, side]
            }
            _ => {
                return Err(Error::Config(format!(
                    "cannot feed an image to a model whose input has shape {shape:?}"
                )));
            }
        };
        let image = image::open(path)
            .map_err(|e| Error::format(path, format!("not a readable PNG/JPEG image: {e}")))?;
        // planar [C, H, W] bytes, as the training images were made
        let mut bytes = Vec::new();
        crate::data::image_folder::planar_bytes(&image, [channels, height, width_px], &mut bytes);
        let plane = height * width_px;
        let values: Vec<f32> = bytes
            .iter()
            .enumerate()
            .map(|(i, &p)| normalize(p as f32 / 255.0, i / plane))
            .collect();
        batch_shape[0] = 1;
        return Ok((vec![display], Tensor::from_vec(values, &batch_shape)));
    }
    // anything else: an IDX file of images [n, rows, cols]
    let idx = read_idx(path)?;
    let (count, size) = match idx.dims[..] {
        [n, rows, cols] => (n, rows * cols),
        [rows, cols] => (1, rows * cols),
        _ => {
            return Err(Error::format(
                path,
                format!(
                    "expected images [count, rows, columns], found dimensions {:?}",
                    idx.dims
                ),
            ));
        }
    };
    if size != width {
        return Err(Error::format(
            path,
            format!("images have {size} pixels, but the model expects {width}"),
        ));
    }
    let values: Vec<f32> = idx
        .data
        .iter()
        .map(|&p| normalize(p as f32 / 255.0, 0))
        .collect();
    batch_shape[0] = count;
    let names = (0..count).map(|i| format!("{display} image {i}")).collect();
    Ok((names, Tensor::from_vec(values, &batch_shape)))
}

/// `nabla gradcheck`: builds the config's model in f64 and compares analytic and
/// numerical gradients for every parameter on a small batch. Returns whether all passed.
pub fn gradcheck(config_path: &Path, tolerance: f64, max_elements: usize) -> Result<bool> {
    let config = Config::load(config_path)?;
    let data = experiment::load_data(&config)?;
    let (model, _) = experiment::build_model::<f64>(
        &config.model.layers,
        data.train.feature_shape(),
        data.train.num_classes(),
        &mut crate::rng(config.train.seed),
    )?;
    // evaluation mode: dropout off and batch norm deterministic, so f is a function
    model.eval();
    let batch = crate::data::make_batch(
        data.train.as_ref(),
        &(0..data.train.len().min(4)).collect::<Vec<_>>(),
    );
    let input: Tensor<f64> = batch.inputs.cast();
    let report = crate::gradcheck::gradcheck_parameters(&model, &input, max_elements);
    let shapes: std::collections::HashMap<String, Vec<usize>> = model
        .named_parameters()
        .into_iter()
        .map(|(n, p)| (n, p.shape().to_vec()))
        .collect();
    outln!(
        "{:<14} {:<16} {:>8} {:>13} {:>13}  result",
        "tensor",
        "shape",
        "checked",
        "max abs err",
        "max rel err"
    );
    let mut all_passed = true;
    for r in &report.inputs {
        let shape = shapes
            .get(&r.name)
            .map_or_else(|| format!("{:?}", input.shape()), |s| format!("{s:?}"));
        let passed = r.max_rel_error <= tolerance;
        all_passed &= passed;
        outln!(
            "{:<14} {:<16} {:>8} {:>13.3e} {:>13.3e}  {}",
            r.name,
            shape,
            r.checked,
            r.max_abs_error,
            r.max_rel_error,
            if passed { "pass" } else { "FAIL" }
        );
    }
    outln!(
        "\n{}: analytic vs central differences (ε = 1e-6) in f64, tolerance {tolerance:e} (relative, absolute below 1)",
        if all_passed {
            "all gradients pass"
        } else {
            "some gradients FAIL"
        }
    );
    Ok(all_passed)
}
