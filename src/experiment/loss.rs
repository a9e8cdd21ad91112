//! The loss a config names, for any model output: a classifier's logits
//! `[batch, classes]`, or a sequence model's `[batch, time, classes]` with one
//! label per position (the mean is then over every position of every sample).

use super::config::TrainConfig;
use crate::loss::{CrossEntropyOptions, cross_entropy};
use crate::tensor::Tensor;

/// Cross-entropy from logits with the config's label smoothing; leading axes of a
/// sequence output are flattened so each position is one row.
///
/// ```
/// use nabla::Tensor;
/// let config = nabla::experiment::Config::parse(
///     "[data]\nkind = \"mnist\"\npath = \"data/mnist\"\n[model]\nlayers = [{ type = \"flatten\" }]\n[train]\nepochs = 1\noptimizer = { kind = \"sgd\", lr = 0.1 }",
///     "x.toml".as_ref(),
/// ).unwrap();
/// let loss = nabla::experiment::build_loss(&config.train);
/// // two sequences of three positions, four classes: six rows of logits
/// let logits = Tensor::<f32>::zeros(&[2, 3, 4]);
/// let value = loss(&logits, &[0, 1, 2, 3, 0, 1]).item();
/// assert!((value - 4f32.ln()).abs() < 1e-6);
/// ```
pub fn build_loss(config: &TrainConfig) -> impl Fn(&Tensor, &[usize]) -> Tensor + use<> {
    let options = CrossEntropyOptions {
        label_smoothing: config.label_smoothing,
        ..Default::default()
    };
    move |logits: &Tensor, labels: &[usize]| {
        let rows = if logits.ndim() > 2 {
            logits.flatten(0, -2)
        } else {
            logits.clone()
        };
        cross_entropy(&rows, labels, &options)
    }
}
