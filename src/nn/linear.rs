//! The fully connected layer: every output neuron takes a weighted sum of all
//! inputs plus a bias, `y = x·Wᵀ + b`.

use rand::Rng;

use super::Module;
use super::init::{Init, default_bias};
use crate::element::Float;
use crate::onnx::{self, Attribute};
use crate::tensor::Tensor;

/// `y = x·Wᵀ + b` with `W` of shape `[out, in]` (PyTorch's layout) and `b` of `[out]`.
/// Accepts `[batch, in]` or any `[…, in]` input.
///
/// ```
/// use nabla::nn::{Linear, Module};
/// let layer = Linear::<f32>::new(784, 10, &mut nabla::rng(0));
/// let y = layer.forward(&nabla::Tensor::zeros(&[32, 784]));
/// assert_eq!(y.shape(), &[32, 10]);
/// assert_eq!(layer.num_parameters(), 784 * 10 + 10);
/// ```
pub struct Linear<T: Float = f32> {
    /// `[out_features, in_features]`, PyTorch's layout.
    pub weight: Tensor<T>,
    /// `[out_features]`, if any.
    pub bias: Option<Tensor<T>>,
}

impl<T: Float> Linear<T> {
    /// A layer with PyTorch's default initialisation and a bias.
    pub fn new(in_features: usize, out_features: usize, rng: &mut impl Rng) -> Self {
        Self::with_init(in_features, out_features, true, Init::PyTorchDefault, rng)
    }

    /// A layer with a chosen weight initialisation; the bias (if any) gets
    /// PyTorch's default, or zeros for `Init::Zeros`/`Init::Constant`/`Init::Normal`
    /// (GPT's recipe: N(0, σ²) weights, zero biases).
    pub fn with_init(
        in_features: usize,
        out_features: usize,
        bias: bool,
        init: Init,
        rng: &mut impl Rng,
    ) -> Self {
        let weight = init
            .tensor(&[out_features, in_features], rng)
            .requires_grad(true);
        let bias = bias.then(|| {
            let b = match init {
                Init::Zeros | Init::Constant(_) | Init::Normal(_) => {
                    Init::Zeros.tensor(&[out_features], rng)
                }
                _ => default_bias(out_features, in_features, rng),
            };
            b.requires_grad(true)
        });
        Linear { weight, bias }
    }

    /// Input size.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Output size.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl<T: Float> Module<T> for Linear<T> {
    fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
        assert!(
            input.ndim() >= 1 && input.dim(-1) == self.in_features(),
            "Linear({} → {}): input of shape {:?} does not end in {}",
            self.in_features(),
            self.out_features(),
            input.shape(),
            self.in_features()
        );
        // z = x·Wᵀ + b, one fused op for the usual [batch, in] input; other ranks are
        // flattened to rows first
        let rows = input.numel() / self.in_features();
        let flat = input.reshape(&[rows, self.in_features()]);
        let z = flat.linear(&self.weight, self.bias.as_ref());
        let mut out_shape = input.shape().to_vec();
        *out_shape.last_mut().expect("at least one axis") = self.out_features();
        z.reshape(&out_shape)
    }

    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        let weight = onnx.parameter("weight", &self.weight);
        let bias = self.bias.as_ref().map(|bias| onnx.parameter("bias", bias));
        if input.shape.len() == 1 {
            // [batch, in]: z = x·Wᵀ + b is exactly ONNX's Gemm with transB
            let mut inputs = vec![input.name.as_str(), &weight];
            inputs.extend(bias.as_deref());
            return Ok(onnx.node("Gemm", &inputs, &[("transB", Attribute::Int(1))]));
        }
        // [batch, …, in]: a matrix product over the last axis
        let transposed = onnx.node("Transpose", &[&weight], &[]);
        let z = onnx.node("MatMul", &[&input.name, &transposed], &[]);
        Ok(match bias {
            Some(bias) => onnx.node("Add", &[&z, &bias], &[]),
            None => z,
        })
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match input.split_last() {
            Some((&features, rest)) if features == self.in_features() => {
                Ok([rest, &[self.out_features()]].concat())
            }
            _ => Err(format!(
                "expects inputs whose last axis has {} features, but receives shape {input:?}",
                self.in_features()
            )),
        }
    }

    fn describe(&self) -> String {
        format!(
            "Linear(in={}, out={}{})",
            self.in_features(),
            self.out_features(),
            if self.bias.is_some() {
                ""
            } else {
                ", bias=false"
            }
        )
    }

    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        let mut params = vec![("weight".to_string(), self.weight.clone())];
        if let Some(bias) = &self.bias {
            params.push(("bias".to_string(), bias.clone()));
        }
        params
    }
}
