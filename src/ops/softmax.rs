//! Softmax and log-softmax along an axis, each with its own (fused) backward rule:
//! composing them from exp/sum/div would work too, but costs three passes and
//! loses the stable log-sum-exp form. And softmax fused with cross-entropy, the
//! classifier's loss, whose gradient is the famous `softmax(z) − onehot(y)`.

use crate::device::buffer::{self, Recycled};
use crate::device::reduce;
use crate::element::Float;
use crate::tensor::{Tensor, shape};

/// The forward formula and backward rule of each op in this file, as `nabla explain`
/// shows them.
pub(crate) const RULES: &[super::Rule] = &[
    super::Rule {
        op: "softmax",
        forward: "y_i = e^x_i / Σ_j e^x_j",
        backward: "dL/dx = y ⊙ (G − Σ G ⊙ y)",
    },
    super::Rule {
        op: "log_softmax",
        forward: "y_i = x_i − log Σ_j e^x_j",
        backward: "dL/dx = G − softmax(x)·Σ G",
    },
    super::Rule {
        op: "cross_entropy",
        forward: "L = −log softmax(z)_y, averaged over the batch",
        backward: "dL/dz = (softmax(z) − onehot(y)) / batch",
    },
];

/// How per-element losses become one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    /// The mean over elements (PyTorch's default).
    #[default]
    Mean,
    /// The sum over elements.
    Sum,
}

impl<T: Float> Tensor<T> {
    /// `softmax(x)ₖ = exp(xₖ) / Σⱼ exp(xⱼ)` along `axis`: each slice becomes a
    /// probability distribution.
    pub fn softmax(&self, axis: isize) -> Tensor<T> {
        self.softmax_family(axis, false)
    }

    /// `log softmax(x)ₖ = xₖ − log Σⱼ exp(xⱼ)` along `axis`, without overflow.
    pub fn log_softmax(&self, axis: isize) -> Tensor<T> {
        self.softmax_family(axis, true)
    }

    fn softmax_family(&self, axis: isize, log: bool) -> Tensor<T> {
        let name = if log { "log_softmax" } else { "softmax" };
        let axis = shape::normalize_axis(axis, self.ndim(), name);
        let (outer, len, inner) = shape::split_at_axis(self.shape(), axis);
        let values = reduce::softmax_axis(&self.data(), outer, len, inner, log);
        // softmax:     dL/dx = y ⊙ (g − Σₖ gₖyₖ)
        // log-softmax: dL/dx = g − softmax(x) ⊙ Σₖ gₖ
        Tensor::from_op(values, self.shape(), name, &[self], move |ctx| {
            let grad = reduce::softmax_axis_backward(
                &ctx.grad_output.data(),
                &ctx.output.data(),
                len,
                inner,
                log,
            );
            vec![Some(Tensor::from_vec(grad, ctx.output.shape()))]
        })
    }

    /// Softmax and cross-entropy fused into one op, for logits `[batch, classes]`
    /// and one target class per row: per row `log Σⱼ e^{zⱼ} − z_y`, reduced by
    /// `reduction`. One stable log-softmax pass forward, one pass backward.
    /// (`loss::cross_entropy` is the public door, with weights and smoothing.)
    pub fn softmax_cross_entropy(&self, targets: &[usize], reduction: Reduction) -> Tensor<T> {
        let (&[batch, classes], true) =
            (self.shape(), self.shape().first() == Some(&targets.len()))
        else {
            panic!(
                "cross_entropy: expected logits [batch, classes] for {} targets, got shape {:?}",
                targets.len(),
                self.shape()
            );
        };
        if let Some((i, &bad)) = targets.iter().enumerate().find(|&(_, &t)| t >= classes) {
            panic!(
                "cross_entropy: target {bad} at position {i} is not below the class count {classes}"
            );
        }
        // the backward rule needs only the log-probabilities' exponential
        let log_probabilities =
            Recycled::new(reduce::softmax_axis(&self.data(), batch, classes, 1, true));
        let scale = match reduction {
            Reduction::Mean => T::one() / T::cast(batch.max(1) as f64),
            Reduction::Sum => T::one(),
        };
        // L = scale · Σ_rows −log p(y)
        let loss = reduce::negative_log_likelihood(&log_probabilities, targets) * scale;
        let targets = targets.to_vec();
        // dL/dz = (softmax(z) − onehot(y)) · scale · dL/dloss
        Tensor::from_op(
            buffer::filled(1, loss),
            &[],
            "cross_entropy",
            &[self],
            move |ctx| {
                let factor = ctx.grad_output.item() * scale;
                let grad = reduce::softmax_minus_onehot(&log_probabilities, &targets, factor);
                vec![Some(Tensor::from_vec(grad, &[batch, classes]))]
            },
        )
    }
}
