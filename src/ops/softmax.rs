//! Softmax and log-softmax along an axis, each with its own (fused) backward rule:
//! composing them from exp/sum/div would work too, but costs three passes and
//! loses the stable log-sum-exp form.

use crate::cpu::reduce;
use crate::element::Float;
use crate::tensor::{Tensor, shape};

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
}
