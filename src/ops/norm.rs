//! Batch normalisation with batch statistics, as one op. Per channel c over its
//! m = N·L values: μ = mean(x), σ² = mean((x − μ)²), s = 1/√(σ² + ε),
//! x̂ = (x − μ)·s, y = γ·x̂ + β. Backward, with g = dL/dy:
//! dL/dβ = Σ g, dL/dγ = Σ g·x̂, and — because every x also moves μ and σ² —
//! dL/dx = γ·s/m · (m·g − Σ g − x̂·Σ g·x̂).
//! (Composed of elementwise ops this takes a dozen tensors; fused it takes one.)

use crate::device::ChannelLayout;
use crate::device::buffer::{self, Recycled};
use crate::device::norm::{self as kernels};
use crate::element::Float;
use crate::tensor::Tensor;

/// The forward formula and backward rule of each op in this file, as `nabla explain`
/// shows them.
pub(crate) const RULES: &[super::Rule] = &[
    super::Rule {
        op: "batch_norm",
        forward: "y = γ·(x − μ_B)/√(σ²_B + ε) + β, per channel",
        backward: "dL/dβ = Σ G; dL/dγ = Σ G·x̂; dL/dx = γ/√(σ² + ε)·(G − mean(G) − x̂·mean(G·x̂))",
    },
    super::Rule {
        op: "layer_norm",
        forward: "y = γ·(x − μ)/√(σ² + ε) + β, per sample",
        backward: "dL/dβ = Σ G; dL/dγ = Σ G·x̂; dL/dx = γ/√(σ² + ε)·(G − mean(G) − x̂·mean(G·x̂))",
    },
];

/// Sums per-channel statistics, in place, over every process that holds a share of
/// the batch (the ranks of data-parallel training): synchronised batch norm.
pub type SumAcross = std::rc::Rc<dyn Fn(&mut [f64])>;

/// The running averages a batch-norm layer keeps for evaluation, updated by
/// [`Tensor::batch_norm`] as PyTorch does: `running ← (1 − momentum)·running +
/// momentum·batch`, with the unbiased batch variance (divided by m − 1).
pub struct RunningStatistics<'a, T: Float> {
    /// Per-channel mean, `[C]`.
    pub mean: &'a Tensor<T>,
    /// Per-channel variance, `[C]`.
    pub var: &'a Tensor<T>,
    /// Weight of the new batch in the average.
    pub momentum: f64,
}

impl<T: Float> Tensor<T> {
    /// Normalises an `[N, C, ...]` input per channel with the batch's own mean and
    /// (biased) variance, then scales by `weight` (γ, `[C]`) and shifts by `bias`
    /// (β, `[C]`); updates `running`, if given, with the batch's statistics.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![1.0, 3.0, 10.0, 30.0], &[2, 2]);
    /// let y = x.batch_norm(&Tensor::ones(&[2]), &Tensor::zeros(&[2]), 0.0, None);
    /// assert_eq!(y.to_vec(), vec![-1.0, -1.0, 1.0, 1.0]);
    /// ```
    pub fn batch_norm(
        &self,
        weight: &Tensor<T>,
        bias: &Tensor<T>,
        eps: f64,
        running: Option<RunningStatistics<'_, T>>,
    ) -> Tensor<T> {
        self.batch_norm_across(weight, bias, eps, running, None)
    }

    /// [`Tensor::batch_norm`] whose batch is split across processes: with `across`,
    /// μ and σ² are those of all the processes' samples together (m = Σ mᵣ), and so
    /// are the sums Σ g and Σ g·x̂ in dL/dx — what one process with the whole batch
    /// computes. dL/dγ and dL/dβ stay this process's own sums: data-parallel
    /// training adds them up with the other gradients.
    pub fn batch_norm_across(
        &self,
        weight: &Tensor<T>,
        bias: &Tensor<T>,
        eps: f64,
        running: Option<RunningStatistics<'_, T>>,
        across: Option<SumAcross>,
    ) -> Tensor<T> {
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
        let (mut mean, mut var) = kernels::statistics(&x, layout);
        let mut count = layout.count();
        if let Some(across) = &across {
            count = combine_statistics(across, &mut mean, &mut var, count);
        }
        let mut inv_std = buffer::take(layout.channels);
        for (s, &v) in inv_std.iter_mut().zip(&var) {
            *s = T::one() / (v + T::cast(eps)).sqrt();
        }
        let y = kernels::normalize(&x, layout, &mean, &inv_std, &weight.data(), &bias.data());
        drop(x);
        if let Some(running) = running {
            update_running(running, &mean, &var, count);
        }
        buffer::give(var);
        let (mean, inv_std) = (Recycled::new(mean), Recycled::new(inv_std));
        Tensor::from_op(y, shape, "batch_norm", &[self, weight, bias], move |ctx| {
            let (x, weight) = (ctx.input(0).data(), ctx.input(1).data());
            let grad_output = ctx.grad_output.data();
            // dL/dβ = Σ g,  dL/dγ = Σ g·x̂
            let (sum_g, sum_g_xhat) = kernels::grad_sums(&grad_output, &x, layout, &mean, &inv_std);
            // dL/dx needs the sums over the whole batch, on every process's share
            let total_sums = across.as_ref().map(|across| {
                let mut sums: Vec<f64> = sum_g
                    .iter()
                    .chain(&sum_g_xhat)
                    .map(|v| v.as_f64())
                    .collect();
                across(&mut sums);
                let (g, g_xhat) = sums.split_at(layout.channels);
                let to_t = |values: &[f64]| values.iter().map(|&v| T::cast(v)).collect::<Vec<T>>();
                (to_t(g), to_t(g_xhat))
            });
            let grad_x = ctx.needs_grad(0).then(|| {
                let (all_g, all_g_xhat) = total_sums
                    .as_ref()
                    .map_or((&sum_g, &sum_g_xhat), |(g, g_xhat)| (g, g_xhat));
                let dx = kernels::grad_input(
                    &grad_output,
                    &x,
                    layout,
                    (&mean, &inv_std, &weight),
                    (all_g, all_g_xhat, count),
                );
                Tensor::from_vec(dx, ctx.input(0).shape())
            });
            let channels = [layout.channels];
            vec![
                grad_x,
                Some(Tensor::from_vec(sum_g_xhat, &channels)).filter(|_| ctx.needs_grad(1)),
                Some(Tensor::from_vec(sum_g, &channels)).filter(|_| ctx.needs_grad(2)),
            ]
        })
    }
}

impl<T: Float> Tensor<T> {
    /// Layer norm as one op: each sample's last axes (the shape of `weight`, γ,
    /// and `bias`, β) normalised by their own mean and (biased) variance, then
    /// scaled and shifted: `y = γ·(x − μ)/√(σ² + ε) + β`. Backward, per row of n
    /// values with x̂ the normalised input and ĝ = γ·g:
    /// `dx = s·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`, `dγ = Σ g·x̂`, `dβ = Σ g`.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![1.0, 3.0, 10.0, 30.0], &[2, 2]);
    /// let y = x.layer_norm(&Tensor::ones(&[2]), &Tensor::zeros(&[2]), 0.0);
    /// assert_eq!(y.to_vec(), vec![-1.0, 1.0, -1.0, 1.0]);
    /// ```
    pub fn layer_norm(&self, weight: &Tensor<T>, bias: &Tensor<T>, eps: f64) -> Tensor<T> {
        let normalized = weight.shape();
        assert!(
            self.shape().ends_with(normalized) && bias.shape() == normalized,
            "layer_norm: input of shape {:?} must end in the weight's shape {normalized:?}, and the bias {:?} must equal it",
            self.shape(),
            bias.shape()
        );
        let features = weight.numel();
        let (y, mean, inv_std) = kernels::layer_norm(
            &self.data(),
            features,
            &weight.data(),
            &bias.data(),
            T::cast(eps),
        );
        let (mean, inv_std) = (Recycled::new(mean), Recycled::new(inv_std));
        Tensor::from_op(
            y,
            self.shape(),
            "layer_norm",
            &[self, weight, bias],
            move |ctx| {
                let (x, weight) = (ctx.input(0), ctx.input(1));
                let (dx, dweight, dbias) = kernels::layer_norm_backward(
                    &ctx.grad_output.data(),
                    &x.data(),
                    features,
                    &weight.data(),
                    (&mean, &inv_std),
                );
                vec![
                    ctx.needs_grad(0).then(|| Tensor::from_vec(dx, x.shape())),
                    ctx.needs_grad(1)
                        .then(|| Tensor::from_vec(dweight, weight.shape())),
                    ctx.needs_grad(2)
                        .then(|| Tensor::from_vec(dbias, weight.shape())),
                ]
            },
        )
    }
}

/// running ← (1 − momentum)·running + momentum·batch, with the unbiased variance.
/// Turns this process's per-channel mean and (biased) variance over `count` values
/// into those over every process's values (returning their number). Each process
/// gives n, n·μᵣ, n·σᵣ² and n·μᵣ²; then μ = Σ n·μᵣ / m and
/// σ² = (Σ n·σᵣ² + Σ n·μᵣ² − m·μ²) / m — in f64, where the difference of the last
/// two loses nothing that matters.
fn combine_statistics<T: Float>(
    across: &SumAcross,
    mean: &mut [T],
    var: &mut [T],
    count: usize,
) -> usize {
    let channels = mean.len();
    let n = count as f64;
    let mut sums = vec![n];
    sums.extend(mean.iter().map(|m| n * m.as_f64()));
    sums.extend(var.iter().map(|v| n * v.as_f64()));
    sums.extend(mean.iter().map(|m| n * m.as_f64() * m.as_f64()));
    across(&mut sums);
    let total = sums[0];
    for c in 0..channels {
        let global_mean = sums[1 + c] / total;
        let spread = sums[1 + channels + c] + sums[1 + 2 * channels + c];
        mean[c] = T::cast(global_mean);
        var[c] = T::cast((spread / total - global_mean * global_mean).max(0.0));
    }
    total as usize
}

fn update_running<T: Float>(
    running: RunningStatistics<'_, T>,
    mean: &[T],
    var: &[T],
    count: usize,
) {
    let momentum = T::cast(running.momentum);
    let keep = T::one() - momentum;
    let unbiased = T::cast(count as f64 / (count.max(2) - 1) as f64);
    running.mean.update_data(|r| {
        r.iter_mut()
            .zip(mean)
            .for_each(|(r, &m)| *r = keep * *r + momentum * m)
    });
    running.var.update_data(|r| {
        r.iter_mut()
            .zip(var)
            .for_each(|(r, &v)| *r = keep * *r + momentum * v * unbiased)
    });
}
