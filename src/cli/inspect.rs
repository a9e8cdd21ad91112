//! `nabla eval`, `nabla predict` and `nabla gradcheck`: look at a trained model, or
//! check a config's gradients.

use std::path::{Path, PathBuf};

use crate::autograd::no_grad;
use crate::data::DataLoader;
use crate::data::text::Unknown;
use crate::error::{Error, Result};
use crate::experiment;
use crate::experiment::Config;
use crate::loss::{CrossEntropyOptions, cross_entropy};
use crate::metrics::ConfusionMatrix;
use crate::nn::Module;
use crate::run::{SavedRun, files};
use crate::tensor::Tensor;
use crate::train::evaluate_with;

/// Opens `RUN_DIR`, or `MODEL` with `--config`, and says what opening noticed.
pub fn open(target: &Path, config: Option<&Path>) -> Result<SavedRun> {
    let run = if target.is_dir() {
        SavedRun::open(target)?
    } else {
        let Some(config) = config else {
            return Err(Error::Config(format!(
                "{} is a model file: also give --config CONFIG.toml to describe its network and data",
                target.display()
            )));
        };
        SavedRun::open_model(target, config)?
    };
    for note in &run.notes {
        eprintln!("note: {note}");
    }
    Ok(run)
}

/// `nabla eval`: loss, accuracy, per-class precision/recall/F1 and the confusion
/// matrix on `data` — every sample of it, prepared and labelled as in training — or
/// on the run's own test split (printed, and written as confusion.png). A language
/// model reports its loss per token and perplexity.
/// `unknown` says what to do with characters outside a text model's vocabulary.
pub fn eval(run: &SavedRun, data: Option<&Path>, unknown: Unknown) -> Result<()> {
    let (test, source) = match data {
        Some(path) => {
            let (data, skipped) = run.labelled_data_with(path, unknown)?;
            if skipped.count() > 0 {
                outln!("skipped {skipped}");
            }
            (data, path.display().to_string())
        }
        None => (
            run.test_data()?,
            format!("{} (test split)", run.config.data.path.display()),
        ),
    };
    if run.is_language_model() {
        return super::generate::report_text_eval(run, test.as_ref(), &source);
    }
    let classes = run.preprocessing.num_classes();
    let mut matrix = ConfusionMatrix::new(classes);
    let loss = |logits: &Tensor, labels: &[usize]| {
        cross_entropy(logits, labels, &CrossEntropyOptions::default())
    };
    let loader = DataLoader::new(test.as_ref(), 1000);
    let result = evaluate_with(&run.model, &loader, &loss, |logits, labels| {
        matrix.add_batch(logits, labels)
    });
    outln!("{source}");
    outln!(
        "test samples {}  loss {:.4}  accuracy {:.2}%",
        result.samples,
        result.loss,
        100.0 * result.accuracy
    );
    outln!("\nclass  precision  recall     f1");
    for c in 0..classes {
        outln!(
            "{:>5}  {:>9.4}  {:>6.4}  {:>6.4}",
            run.preprocessing.class_name(c),
            matrix.precision(c),
            matrix.recall(c),
            matrix.f1(c)
        );
    }
    outln!("\nconfusion matrix (rows: actual, columns: predicted)\n{matrix}");
    let png = run.dir.join(files::CONFUSION);
    super::plot::confusion(&png, &matrix, &run.preprocessing.class_names)?;
    outln!("wrote {}", png.display());
    Ok(())
}

/// `nabla predict`: the top classes, with probabilities, for each input (CSV rows,
/// an IDX image file, or PNG/JPEG images).
pub fn predict(run: &SavedRun, inputs: &[PathBuf], top: usize, invert: bool) -> Result<()> {
    let _guard = no_grad();
    for path in inputs {
        let (names, batch) = run.inputs(path, invert)?;
        let probabilities = run.model.forward(&batch).softmax(-1);
        let classes = probabilities.dim(-1);
        let values = probabilities.data();
        for (name, row) in names.iter().zip(values.chunks(classes)) {
            let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            let shown: Vec<String> = ranked
                .iter()
                .take(top)
                .map(|(c, p)| format!("{} {:.2}%", run.preprocessing.class_name(*c), 100.0 * p))
                .collect();
            outln!("{name}: {}", shown.join(", "));
        }
    }
    Ok(())
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
