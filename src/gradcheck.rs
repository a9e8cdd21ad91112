//! Checking analytic gradients against finite differences.
//!
//! For a function `f` of some tensors, backward gives ∂f/∂xᵢ exactly (up to
//! rounding) if every backward rule is right. The central difference
//! `(f(x + ε) − f(x − ε)) / 2ε` approximates the same number with error O(ε²), and
//! knows nothing about backward rules — so agreement in `f64` to ~1e-8 means the
//! rules are right.

use std::fmt;

use crate::autograd::no_grad;
use crate::tensor::{Tensor, rng};

/// The worst disagreement found for one input of a [`gradcheck`].
#[derive(Clone, Debug, PartialEq)]
pub struct InputReport {
    /// The largest |analytic − numerical| over the input's elements.
    pub max_abs_error: f64,
    /// The largest |analytic − numerical| / max(1, |analytic|, |numerical|): relative
    /// for gradients above 1, absolute below (where relative error is noise).
    pub max_rel_error: f64,
    /// The flat index of the element with the largest relative error.
    pub worst_element: usize,
    /// Analytic and numerical gradient at that element.
    pub analytic: f64,
    pub numerical: f64,
}

/// The result of a [`gradcheck`]: one [`InputReport`] per input.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckReport {
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
        writeln!(
            f,
            "input  max abs error  max rel error  worst element (analytic vs numerical)"
        )?;
        for (i, r) in self.inputs.iter().enumerate() {
            writeln!(
                f,
                "{i:>5}  {:>13.3e}  {:>13.3e}  [{}] {:.10} vs {:.10}",
                r.max_abs_error, r.max_rel_error, r.worst_element, r.analytic, r.numerical
            )?;
        }
        Ok(())
    }
}

/// The default finite-difference step: small enough that the O(ε²) truncation
/// error is ~1e-12, large enough that rounding (~1e-16·|f|/ε) stays ~1e-10.
pub const DEFAULT_EPS: f64 = 1e-6;

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
    let fresh = |values: Vec<f64>, shape: &[usize]| Tensor::from_vec(values, shape);
    // The scalar we differentiate: Σ f(x) ⊙ r with fixed random weights r.
    let weights = {
        let _guard = no_grad();
        let probe = f(inputs);
        Tensor::<f64>::randn(probe.shape(), 0.0, 1.0, &mut rng(0x6e61626c61))
    };
    let scalar = |xs: &[Tensor<f64>]| (&f(xs) * &weights).sum();

    let leaves: Vec<Tensor<f64>> = inputs
        .iter()
        .map(|x| fresh(x.to_vec(), x.shape()).requires_grad(true))
        .collect();
    let output = scalar(&leaves);
    if output.tracks_grad() {
        output.backward();
    }

    let _guard = no_grad();
    let mut reports = Vec::with_capacity(inputs.len());
    for (which, leaf) in leaves.iter().enumerate() {
        let analytic = leaf
            .grad()
            .map_or_else(|| vec![0.0; leaf.numel()], |g| g.to_vec());
        let base = inputs[which].to_vec();
        let mut report = InputReport {
            max_abs_error: 0.0,
            max_rel_error: 0.0,
            worst_element: 0,
            analytic: 0.0,
            numerical: 0.0,
        };
        for element in 0..base.len() {
            let evaluate = |shift: f64| {
                let mut moved = base.clone();
                moved[element] += shift;
                let mut xs: Vec<Tensor<f64>> = inputs.to_vec();
                xs[which] = fresh(moved, inputs[which].shape());
                scalar(&xs).item()
            };
            let numerical = (evaluate(eps) - evaluate(-eps)) / (2.0 * eps);
            let abs_error = (analytic[element] - numerical).abs();
            let rel_error = abs_error / 1f64.max(analytic[element].abs()).max(numerical.abs());
            report.max_abs_error = report.max_abs_error.max(abs_error);
            if rel_error > report.max_rel_error || element == 0 {
                report.max_rel_error = rel_error.max(report.max_rel_error);
                report.worst_element = element;
                report.analytic = analytic[element];
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
