//! `nabla explain CONFIG --sample N`: one step of backpropagation through any model
//! a config describes (conv nets included), told by the engine itself. The network
//! is built by the library in f64, the forward pass runs layer by layer with every
//! activation kept (`retain_grad`), the real graph is walked backward once, and each
//! parameter's gradient is checked against central differences of the loss. Big
//! tensors are summarised: shape, norm, extremes, the first few entries.

use std::fmt::Write;
use std::path::Path;

use crate::autograd::no_grad;
use crate::data::make_batch;
use crate::error::{Error, Result};
use crate::experiment::{self, Config};
use crate::gradcheck::{DEFAULT_EPS as EPS, central_difference_at};
use crate::loss::{CrossEntropyOptions, cross_entropy};
use crate::nn::{Module, Sequential};
use crate::tensor::Tensor;

/// Entries shown of each tensor.
const SHOWN: usize = 4;
/// Elements of each parameter checked against finite differences.
const CHECKED: usize = 6;

/// Runs the explanation for training sample `sample` of the config's data and
/// returns it as text.
pub fn explain_config(path: &Path, sample: usize, lr: f64) -> Result<String> {
    let config = Config::load(path)?;
    let data = experiment::load_data(&config)?;
    let train = data.train.as_ref();
    if sample >= train.len() {
        return Err(Error::Config(format!(
            "--sample {sample}: the training data has {} samples (0 to {})",
            train.len(),
            train.len().saturating_sub(1)
        )));
    }
    let (model, _) = experiment::build_model::<f64>(
        &config.model.layers,
        train.feature_shape(),
        train.num_classes(),
        &mut crate::rng(config.train.seed),
    )?;
    // evaluation mode: dropout off and batch norm on its running statistics, so the
    // loss is a plain function of the weights and the finite differences mean something
    model.eval();
    let batch = make_batch(train, &[sample]);
    let input: Tensor<f64> = batch.inputs.cast();
    let label = batch.labels[0];
    let class_name = data
        .class_names
        .get(label)
        .cloned()
        .unwrap_or_else(|| label.to_string());

    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "Sample {sample} of {} (class {class_name}), through {} layers; loss L = cross-entropy of softmax(logits); η = {lr}",
        path.display(),
        model.len()
    );
    let _ = writeln!(
        w,
        "\nFORWARD PROPAGATION: each layer's output for this sample"
    );
    let _ = writeln!(w, "  input  {}", summary(&input));
    let mut activations = Vec::new();
    let mut x = input.clone();
    for (index, layer) in model.layers().iter().enumerate() {
        x = layer.forward(&x);
        x.retain_grad();
        let _ = writeln!(w, "  {index}: {}", layer.describe());
        let _ = writeln!(w, "       out {}", summary(&x));
        activations.push(x.clone());
    }
    // a sequence model predicts a label at every position: one row of logits each
    let labels = batch.labels.clone();
    let loss_of = |logits: &Tensor<f64>| {
        let rows = if logits.ndim() > 2 {
            logits.flatten(0, -2)
        } else {
            logits.clone()
        };
        cross_entropy(&rows, &labels, &CrossEntropyOptions::default())
    };
    let loss = loss_of(&x);
    if labels.len() == 1 {
        let probabilities = x.softmax(-1).to_vec();
        let _ = writeln!(
            w,
            "\n  p(class {class_name}) = {:.6}, L = −log p = {:.6}",
            probabilities[label],
            loss.item()
        );
    } else {
        let _ = writeln!(
            w,
            "\n  L = mean over {} positions of −log p(the next token) = {:.6}",
            labels.len(),
            loss.item()
        );
    }

    loss.backward();
    let _ = writeln!(
        w,
        "\nBACKWARD PROPAGATION: δ = ∂L/∂(layer output), last layer first (the chain rule, one op at a time)"
    );
    let _ = writeln!(
        w,
        "  at the logits δ = softmax − onehot(y): the fused cross-entropy's rule"
    );
    for (index, (layer, activation)) in model.layers().iter().zip(&activations).enumerate().rev() {
        let delta = activation
            .grad()
            .unwrap_or_else(|| Tensor::zeros(activation.shape()));
        let _ = writeln!(w, "  δ{index} ({})  {}", layer.describe(), summary(&delta));
    }

    let _ = writeln!(
        w,
        "\nGRADIENTS: ∂L/∂θ for every parameter, checked against (L(θ+ε) − L(θ−ε)) / 2ε, ε = {EPS:e}"
    );
    let objective = |model: &Sequential<f64>| {
        let _guard = no_grad();
        loss_of(&model.forward(&input)).item()
    };
    let mut worst = 0.0f64;
    for (name, parameter) in model.named_parameters() {
        let grad = parameter
            .grad()
            .unwrap_or_else(|| Tensor::zeros(parameter.shape()));
        let error = finite_difference_error(&model, &parameter, &grad, &objective);
        worst = worst.max(error);
        let _ = writeln!(w, "  {name:<12} {}", summary(&grad));
        let _ = writeln!(
            w,
            "  {:<12} numerical check of {} entries: worst relative error {error:.1e}",
            "",
            CHECKED.min(parameter.numel())
        );
    }

    let before = loss.item();
    for (_, parameter) in model.named_parameters() {
        if let Some(grad) = parameter.grad() {
            let grad = grad.to_vec();
            parameter
                .update_data(|values| values.iter_mut().zip(&grad).for_each(|(v, g)| *v -= lr * g));
        }
    }
    let after = objective(&model);
    let _ = writeln!(
        w,
        "\nUPDATE: θ ← θ − η·∂L/∂θ for every parameter\n  L: {before:.6} → {after:.6} ({})",
        if after < before {
            "lower"
        } else {
            "not lower: η is too large for this step"
        }
    );
    let _ = writeln!(
        w,
        "\nevery analytic gradient agrees with its numerical estimate to {worst:.1e} (relative)"
    );
    Ok(out)
}

/// The worst relative error between `grad` and central differences of `objective`
/// over a few entries spread across `parameter`.
fn finite_difference_error(
    model: &Sequential<f64>,
    parameter: &Tensor<f64>,
    grad: &Tensor<f64>,
    objective: &impl Fn(&Sequential<f64>) -> f64,
) -> f64 {
    let count = parameter.numel();
    let analytic = grad.to_vec();
    let step = (count / CHECKED.min(count).max(1)).max(1);
    let mut worst = 0.0f64;
    for index in (0..count).step_by(step).take(CHECKED) {
        let numerical = central_difference_at(parameter, index, EPS, || objective(model));
        let scale = analytic[index].abs().max(numerical.abs()).max(1.0);
        worst = worst.max((analytic[index] - numerical).abs() / scale);
    }
    worst
}

/// `[1, 6, 24, 24]  ‖·‖ 12.3  min −0.41  max 1.2  [0.01, 0.2, …]`.
fn summary(tensor: &Tensor<f64>) -> String {
    let values = tensor.data();
    let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let shown: Vec<String> = values
        .iter()
        .take(SHOWN)
        .map(|v| format!("{v:.4}"))
        .collect();
    let more = if values.len() > SHOWN { ", …" } else { "" };
    format!(
        "{:?}  ‖·‖ {norm:.4}  min {min:.4}  max {max:.4}  [{}{more}]",
        tensor.shape(),
        shown.join(", ")
    )
}
