//! 2-D convolution (cross-correlation, as in every deep-learning library) on NCHW
//! tensors. Forward: `out[n, o] = b[o] + Σ_c W[o, c] ⋆ x[n, c]`. Backward follows
//! from writing it as a matrix product `out = W · cols` (cols: every receptive
//! field as a column): `dW = G · colsᵀ`, `dcols = Wᵀ · G` added back onto the
//! pixels each column came from, `db = Σ G` over images and pixels. The kernels
//! (direct or im2col + GEMM) are planned in [`crate::device::ConvPlan`].

pub use crate::device::Conv2dOptions;
use crate::device::ConvPlan;
use crate::element::Float;
use crate::tensor::Tensor;

/// The forward formula and backward rule of each op in this file, as `nabla explain`
/// shows them.
pub(crate) const RULES: &[super::Rule] = &[super::Rule {
    op: "conv2d",
    forward: "y[n,o] = b[o] + Σ_c W[o,c] ⋆ x[n,c]",
    backward: "dL/dW = G·colsᵀ; dL/dx = Wᵀ·G folded back onto the pixels; dL/db = Σ G over images and pixels",
}];

impl<T: Float> Tensor<T> {
    /// Convolves an `[N, C, H, W]` input with an `[O, C/groups, kh, kw]` weight,
    /// adding `bias` (`[O]`) to each output channel. Output: `[N, O, OH, OW]`.
    pub fn conv2d(
        &self,
        weight: &Tensor<T>,
        bias: Option<&Tensor<T>>,
        options: Conv2dOptions,
    ) -> Tensor<T> {
        let plan = ConvPlan::new(self.shape(), weight.shape(), options);
        let out_channels = plan.output_shape()[1];
        if let Some(bias) = bias {
            assert_eq!(
                bias.shape(),
                &[out_channels],
                "conv2d: bias of shape {:?} for {out_channels} output channels",
                bias.shape(),
            );
        }
        let bias_data = bias.map(|b| b.data());
        let values = plan.forward(&self.data(), &weight.data(), bias_data.as_deref());
        drop(bias_data);
        let inputs: Vec<&Tensor<T>> = match bias {
            Some(b) => vec![self, weight, b],
            None => vec![self, weight],
        };
        Tensor::from_op(
            values,
            &plan.output_shape(),
            "conv2d",
            &inputs,
            move |ctx| {
                let (x, w) = (ctx.input(0), ctx.input(1));
                let has_bias = ctx.inputs.len() == 3;
                let wanted = [
                    ctx.needs_grad(0),
                    ctx.needs_grad(1),
                    has_bias && ctx.needs_grad(2),
                ];
                let [grad_x, grad_w, grad_b] =
                    plan.backward(&ctx.grad_output.data(), &x.data(), &w.data(), wanted);
                let mut grads = vec![
                    grad_x.map(|g| Tensor::from_vec(g, x.shape())),
                    grad_w.map(|g| Tensor::from_vec(g, w.shape())),
                ];
                if has_bias {
                    grads.push(grad_b.map(|g| Tensor::from_vec(g, &[out_channels])));
                }
                grads
            },
        )
    }
}
