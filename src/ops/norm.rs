//! Batch normalisation with batch statistics, as one op. Per channel c over its
//! m = N·L values: μ = mean(x), σ² = mean((x − μ)²), s = 1/√(σ² + ε),
//! x̂ = (x − μ)·s, y = γ·x̂ + β. Backward, with g = dL/dy:
//! dL/dβ = Σ g, dL/dγ = Σ g·x̂, and — because every x also moves μ and σ² —
//! dL/dx = γ·s/m · (m·g − Σ g − x̂·Σ g·x̂).
//! (Composed of elementwise ops this takes a dozen tensors; fused it takes one.)

use crate::cpu::norm::{self as kernels, ChannelLayout};
use crate::element::Float;
use crate::tensor::Tensor;

/// What a batch-norm step measured: each channel's batch mean and biased variance
/// (for the running averages a layer keeps).
#[derive(Clone, Debug)]
pub struct BatchStatistics<T> {
    /// μ per channel.
    pub mean: Vec<T>,
    /// σ² per channel, divided by m (not m − 1).
    pub var: Vec<T>,
}

impl<T: Float> Tensor<T> {
    /// Normalises an `[N, C, ...]` input per channel with the batch's own mean and
    /// variance, then scales by `weight` (γ, `[C]`) and shifts by `bias` (β, `[C]`).
    /// Returns the output and the statistics used.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![1.0, 3.0, 10.0, 30.0], &[2, 2]);
    /// let (y, stats) = x.batch_norm(&Tensor::ones(&[2]), &Tensor::zeros(&[2]), 0.0);
    /// assert_eq!(stats.mean, vec![5.5, 16.5]);
    /// assert_eq!(y.to_vec(), vec![-1.0, -1.0, 1.0, 1.0]);
    /// ```
    pub fn batch_norm(
        &self,
        weight: &Tensor<T>,
        bias: &Tensor<T>,
        eps: f64,
    ) -> (Tensor<T>, BatchStatistics<T>) {
        let shape = self.shape();
        assert!(
            shape.len() >= 2 && weight.shape() == [shape[1]] && bias.shape() == [shape[1]],
            "batch_norm: input of shape {shape:?} needs [N, C, ...] with weight and bias of shape [C], got {:?} and {:?}",
            weight.shape(),
            bias.shape()
        );
        let layout = ChannelLayout {
            batch: shape[0],
            channels: shape[1],
            inner: shape[2..].iter().product(),
        };
        let x = self.data();
        let (mean, var, inv_std) = kernels::statistics(&x, layout, T::cast(eps));
        let y = kernels::normalize(&x, layout, &mean, &inv_std, &weight.data(), &bias.data());
        drop(x);
        let stats = BatchStatistics {
            mean: mean.clone(),
            var,
        };
        let output = Tensor::from_op(y, shape, "batch_norm", &[self, weight, bias], move |ctx| {
            let (x, weight) = (ctx.input(0).data(), ctx.input(1).data());
            let grad_output = ctx.grad_output.data();
            // dL/dβ = Σ g,  dL/dγ = Σ g·x̂
            let sums = kernels::grad_sums(&grad_output, &x, layout, &mean, &inv_std);
            let grad_x = ctx.needs_grad(0).then(|| {
                let dx = kernels::grad_input(
                    &grad_output,
                    &x,
                    layout,
                    (&mean, &inv_std, &weight),
                    (&sums.0, &sums.1),
                );
                Tensor::from_vec(dx, ctx.input(0).shape())
            });
            let channels = [layout.channels];
            let (grad_bias, grad_weight) = sums;
            vec![
                grad_x,
                ctx.needs_grad(1)
                    .then(|| Tensor::from_vec(grad_weight, &channels)),
                ctx.needs_grad(2)
                    .then(|| Tensor::from_vec(grad_bias, &channels)),
            ]
        });
        (output, stats)
    }
}
