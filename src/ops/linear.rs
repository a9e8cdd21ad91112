//! The fully connected layer's op, fused: `y = x·Wᵀ + b` in one matrix product
//! whose output starts as the bias (so no separate broadcast add and no extra
//! buffer). Its gradients are those of matmul plus the bias's row sum:
//! dL/dx = G·W, dL/dW = Gᵀ·x, dL/db = Σ_rows G.

use crate::device::reduce;
use crate::device::{MatRef, product};
use crate::element::Float;
use crate::tensor::Tensor;

/// The forward formula and backward rule of each op in this file, as `nabla explain`
/// shows them.
pub(crate) const RULES: &[super::Rule] = &[super::Rule {
    op: "linear",
    forward: "z_j = Σ_i W[j][i]·x_i + b_j",
    backward: "dL/dx = G·W; dL/dW = Gᵀ·x; dL/db = Σ_rows G",
}];

impl<T: Float> Tensor<T> {
    /// `self · weightᵀ + bias` for a `[batch, in]` input, an `[out, in]` weight and an
    /// optional `[out]` bias. Equal to `x.matmul_t(w) + b`, computed in one pass.
    pub fn linear(&self, weight: &Tensor<T>, bias: Option<&Tensor<T>>) -> Tensor<T> {
        let (&[batch, features], &[out, weight_in]) = (self.shape(), weight.shape()) else {
            panic!(
                "linear: expects a [batch, in] input and an [out, in] weight, got {:?} and {:?}",
                self.shape(),
                weight.shape()
            );
        };
        assert_eq!(
            features,
            weight_in,
            "linear: input {:?} does not match weight {:?}",
            self.shape(),
            weight.shape()
        );
        if let Some(b) = bias {
            assert_eq!(
                b.shape(),
                &[out],
                "linear: bias of shape {:?} for {out} outputs",
                b.shape()
            );
        }
        // y = x·Wᵀ, starting from b on every row when there is a bias
        let bias_row = bias.map(|b| b.data());
        let values = product(
            MatRef::row_major(&self.data(), batch, features),
            MatRef::row_major(&weight.data(), out, features).t(),
            bias_row.as_deref(),
        );
        drop(bias_row);
        let inputs: Vec<&Tensor<T>> = match bias {
            Some(b) => vec![self, weight, b],
            None => vec![self, weight],
        };
        Tensor::from_op(values, &[batch, out], "linear", &inputs, move |ctx| {
            let (x, w, g) = (ctx.input(0), ctx.input(1), ctx.grad_output.data());
            let grad_rows = MatRef::row_major(&g, batch, out);
            // dL/dx = G·W
            let grad_x = ctx.needs_grad(0).then(|| {
                let w = w.data();
                let w = MatRef::row_major(&w, out, features);
                Tensor::from_vec(product(grad_rows, w, None), &[batch, features])
            });
            // dL/dW = Gᵀ·x
            let grad_w = ctx.needs_grad(1).then(|| {
                let x = x.data();
                let x = MatRef::row_major(&x, batch, features);
                Tensor::from_vec(product(grad_rows.t(), x, None), &[out, features])
            });
            let mut grads = vec![grad_x, grad_w];
            if ctx.inputs.len() == 3 {
                // dL/db = Σ over the batch of G
                grads.push(
                    ctx.needs_grad(2)
                        .then(|| Tensor::from_vec(reduce::sum_axis(&g, 1, batch, out), &[out])),
                );
            }
            grads
        })
    }
}
