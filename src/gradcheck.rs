//! Checking analytic gradients against finite differences.
//!
//! For a function `f` of some tensors, backward gives ∂f/∂xᵢ exactly (up to
//! rounding) if every backward rule is right. The central difference
//! `(f(x + ε) − f(x − ε)) / 2ε` approximates the same number with error O(ε²), and
//! knows nothing about backward rules — so agreement in `f64` to ~1e-8 means the
//! rules are right.

use std::fmt;

use crate::autograd::no_grad;
use crate::nn::Module;
use crate::tensor::{Tensor, rng};

/// The worst disagreement found for one input of a [`gradcheck`].
#[derive(Clone, Debug, PartialEq)]
pub struct InputReport {
    /// What was checked: `input 0`, or a parameter's name such as `0.weight`.
    pub name: String,
    /// The largest |analytic − numerical| over the input's elements.
    pub max_abs_error: f64,
    /// The largest |analytic − numerical| / max(1, |analytic|, |numerical|): relative
    /// for gradients above 1, absolute below (where relative error is noise).
    pub max_rel_error: f64,
    /// The flat index of the element with the largest relative error.
    pub worst_element: usize,
    /// Analytic and numerical gradient at that element.
    pub analytic: f64,
    /// The central-difference gradient at that element.
    pub numerical: f64,
    /// How many elements were checked.
    pub checked: usize,
}

/// The result of a [`gradcheck`]: one [`InputReport`] per input.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckReport {
    /// One report per checked input, in order.
    pub inputs: Vec<InputReport>,
}

impl GradcheckReport {
    /// The largest relative error over all inputs.
    pub fn max_rel_error(&self) -> f64 {
        self.inputs
            .iter()
            .map(|r| r.max_rel_error)
            .fold(0.0, f64::max)
    }

    /// The largest absolute error over all inputs.
    pub fn max_abs_error(&self) -> f64 {
        self.inputs
            .iter()
            .map(|r| r.max_abs_error)
            .fold(0.0, f64::max)
    }

    /// Whether every input's relative error is at most `tolerance`.
    pub fn passed(&self, tolerance: f64) -> bool {
        self.max_rel_error() <= tolerance
    }
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .inputs
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "{:<width$}  max abs error  max rel error  worst element: analytic vs numerical",
            "input"
        )?;
        for r in &self.inputs {
            writeln!(
                f,
                "{:<width$}  {:>13.3e}  {:>13.3e}  [{}] {:.10} vs {:.10}",
                r.name, r.max_abs_error, r.max_rel_error, r.worst_element, r.analytic, r.numerical
            )?;
        }
        Ok(())
    }
}

/// The default finite-difference step: small enough that the O(ε²) truncation
/// error is ~1e-12, large enough that rounding (~1e-16·|f|/ε) stays ~1e-10.
pub const DEFAULT_EPS: f64 = 1e-6;

/// `(f(x + ε) − f(x − ε)) / 2ε`: the numerical derivative of `f` at `x`, with an
/// error of O(ε²) — every numerical check in nabla goes through this one formula.
///
/// ```
/// let slope = nabla::gradcheck::central_difference(3.0, 1e-6, |x| x * x);
/// assert!((slope - 6.0).abs() < 1e-8);
/// ```
pub fn central_difference(x: f64, eps: f64, f: impl Fn(f64) -> f64) -> f64 {
    (f(x + eps) - f(x - eps)) / (2.0 * eps)
}

/// The [`central_difference`] of `objective` in element `index` of `tensor`: the
/// element is moved in place for each evaluation and put back after.
pub fn central_difference_at(
    tensor: &Tensor<f64>,
    index: usize,
    eps: f64,
    objective: impl Fn() -> f64,
) -> f64 {
    let original = tensor.data()[index];
    let derivative = central_difference(original, eps, |value| {
        tensor.update_data(|v| v[index] = value);
        objective()
    });
    tensor.update_data(|v| v[index] = original);
    derivative
}

/// Compares the gradients backward computes for `f` at `inputs` with central
/// differences, in `f64`. A non-scalar output is reduced to a scalar by a fixed
/// random weighting, which checks every output's backward path at once.
///
/// ```
/// use nabla::{Tensor, gradcheck};
/// let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], &[3]);
/// let report = gradcheck(|t| t[0].tanh() * &t[0], &[x]);
/// assert!(report.max_rel_error() < 1e-6, "{report}");
/// ```
pub fn gradcheck(
    f: impl Fn(&[Tensor<f64>]) -> Tensor<f64>,
    inputs: &[Tensor<f64>],
) -> GradcheckReport {
    gradcheck_with_eps(f, inputs, DEFAULT_EPS)
}

/// [`gradcheck`] with a chosen finite-difference step.
pub fn gradcheck_with_eps(
    f: impl Fn(&[Tensor<f64>]) -> Tensor<f64>,
    inputs: &[Tensor<f64>],
    eps: f64,
) -> GradcheckReport {
    // Fresh leaves, so the caller's tensors are never changed.
    let leaves: Vec<(String, Tensor<f64>)> = inputs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            (
                format!("input {i}"),
                Tensor::from_vec(x.to_vec(), x.shape()).requires_grad(true),
            )
        })
        .collect();
    let tensors: Vec<Tensor<f64>> = leaves.iter().map(|(_, t)| t.clone()).collect();
    check(&leaves, || f(&tensors), eps, usize::MAX)
}

/// Gradcheck of a whole module at `input`: the gradient with respect to the input
/// and to every parameter (reported by its `state_dict` name). The module must be
/// deterministic (no dropout in training mode).
pub fn gradcheck_module(module: &dyn Module<f64>, input: &Tensor<f64>) -> GradcheckReport {
    let input = Tensor::from_vec(input.to_vec(), input.shape()).requires_grad(true);
    let mut checked = vec![("input".to_string(), input.clone())];
    checked.extend(module.named_parameters());
    for (_, p) in &checked {
        p.zero_grad();
    }
    check(&checked, || module.forward(&input), DEFAULT_EPS, usize::MAX)
}

/// Gradcheck of a module's parameters only (not its input), checking at most
/// `max_elements` elements of each (spread evenly over it) — for real models, whose
/// inputs may sit on kinks (equal pixels tie in max-pooling) and whose parameters are
/// too many to check one by one.
pub fn gradcheck_parameters(
    module: &dyn Module<f64>,
    input: &Tensor<f64>,
    max_elements: usize,
) -> GradcheckReport {
    let checked = module.named_parameters();
    for (_, p) in &checked {
        p.zero_grad();
    }
    check(
        &checked,
        || module.forward(input),
        DEFAULT_EPS,
        max_elements,
    )
}

/// The shared procedure: `forward` reads the tensors in `checked` (leaves requiring
/// grad); backward gives the analytic gradients, then each element is moved by ±ε
/// in place to get the numerical ones.
fn check(
    checked: &[(String, Tensor<f64>)],
    forward: impl Fn() -> Tensor<f64>,
    eps: f64,
    max_elements: usize,
) -> GradcheckReport {
    // The scalar we differentiate: Σ forward() ⊙ r with fixed random weights r.
    let output = forward();
    let weights = Tensor::<f64>::randn(output.shape(), 0.0, 1.0, &mut rng(0x6e61626c61));
    let objective = (&output * &weights).sum();
    if objective.tracks_grad() {
        objective.backward();
    }
    let analytic: Vec<Vec<f64>> = checked
        .iter()
        .map(|(_, t)| {
            t.grad()
                .map_or_else(|| vec![0.0; t.numel()], |g| g.to_vec())
        })
        .collect();

    let _guard = no_grad();
    let evaluate = || (&forward() * &weights).sum().item();
    let mut reports = Vec::with_capacity(checked.len());
    for ((name, tensor), analytic) in checked.iter().zip(analytic) {
        let mut report = InputReport {
            name: name.clone(),
            max_abs_error: 0.0,
            max_rel_error: 0.0,
            worst_element: 0,
            analytic: analytic.first().copied().unwrap_or(0.0),
            numerical: 0.0,
            checked: 0,
        };
        let stride = analytic.len().div_ceil(max_elements.max(1)).max(1);
        report.checked = analytic.len().div_ceil(stride);
        for (element, &analytic) in analytic.iter().enumerate().step_by(stride) {
            let numerical = central_difference_at(tensor, element, eps, evaluate);
            let abs_error = (analytic - numerical).abs();
            let rel_error = abs_error / 1f64.max(analytic.abs()).max(numerical.abs());
            report.max_abs_error = report.max_abs_error.max(abs_error);
            if rel_error > report.max_rel_error || element == 0 {
                report.max_rel_error = rel_error.max(report.max_rel_error);
                report.worst_element = element;
                report.analytic = analytic;
                report.numerical = numerical;
            }
        }
        reports.push(report);
    }
    GradcheckReport { inputs: reports }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deliberately wrong backward rule must be caught.
    #[test]
    fn catches_a_wrong_gradient() {
        // wrong_square(x) = x², but claims d/dx = x instead of 2x
        let wrong_square = |x: &Tensor<f64>| {
            let values = x.data().iter().map(|v| v * v).collect();
            Tensor::from_op(values, x.shape(), "wrong_square", &[x], |ctx| {
                vec![Some(ctx.grad_output * ctx.input(0))]
            })
        };
        let x = Tensor::from_vec(vec![1.0, 2.0, -3.0], &[3]);
        let report = gradcheck(|t| wrong_square(&t[0]), std::slice::from_ref(&x));
        assert!(!report.passed(1e-3), "{report}");
        // ... and the right rule passes.
        let report = gradcheck(|t| t[0].square(), &[x]);
        assert!(report.passed(1e-8), "{report}");
    }
}
