//! Gradient health: is every layer still learning? Gradient norms per parameter,
//! the fraction of ReLUs that never fire, and plain-words warnings when gradients
//! vanish or explode or most ReLUs die.

use std::collections::BTreeMap;

use crate::autograd::no_grad;
use crate::nn::{Module, layers_of};
use crate::tensor::Tensor;

/// The L2 norm of each parameter's current gradient.
pub fn gradient_norms(model: &dyn Module<f32>) -> BTreeMap<String, f64> {
    model
        .named_parameters()
        .into_iter()
        .filter_map(|(name, p)| {
            let grad = p.grad()?;
            let norm = grad
                .data()
                .iter()
                .map(|v| (*v as f64) * (*v as f64))
                .sum::<f64>()
                .sqrt();
            Some((name, norm))
        })
        .collect()
}

/// Per-layer gradient norms and dead-ReLU fractions, with plain-words warnings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GradientHealth {
    /// The L2 norm of each parameter's gradient (at the epoch's last step).
    pub grad_norms: BTreeMap<String, f64>,
    /// Per ReLU layer (by index): the fraction of its units that output zero for
    /// every sample of the probe batch.
    pub dead_relu: BTreeMap<String, f64>,
    /// What looks wrong, in plain words.
    pub warnings: Vec<String>,
}

/// Runs the probe batch through the layers one by one (evaluation mode, no graph)
/// and measures, after each ReLU, the fraction of units that are zero for every
/// probe sample.
pub fn gradient_health(
    model: &dyn Module<f32>,
    probe: &Tensor,
    grad_norms: &BTreeMap<String, f64>,
) -> GradientHealth {
    let _guard = no_grad();
    model.eval();
    let mut dead_relu = BTreeMap::new();
    let mut x = probe.clone();
    for (index, layer) in layers_of(model).into_iter().enumerate() {
        x = layer.forward(&x);
        if layer.describe().starts_with("ReLU") {
            let batch = x.shape()[0].max(1);
            let units = x.numel() / batch;
            let values = x.data();
            let dead = (0..units)
                .filter(|&u| (0..batch).all(|b| values[b * units + u] <= 0.0))
                .count();
            dead_relu.insert(index.to_string(), dead as f64 / units.max(1) as f64);
        }
    }
    model.train();
    let mut warnings = Vec::new();
    for (name, &norm) in grad_norms {
        if name.ends_with("weight") && norm < 1e-7 {
            warnings.push(format!("the gradient of {name} has almost vanished (norm {norm:.1e}): this layer has stopped learning"));
        } else if norm > 1e3 {
            warnings.push(format!("the gradient of {name} is exploding (norm {norm:.1e}): lower the learning rate or set clip_grad_norm"));
        }
    }
    for (layer, &fraction) in &dead_relu {
        if fraction > 0.5 {
            warnings.push(format!(
                "{:.0}% of the ReLUs after layer {layer} never fire on a probe batch: they no longer learn (try a lower learning rate or leaky_relu)",
                100.0 * fraction
            ));
        }
    }
    GradientHealth {
        grad_norms: grad_norms.clone(),
        dead_relu,
        warnings,
    }
}
