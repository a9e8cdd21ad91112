//! The pieces of a GPT beyond attention: learned position embeddings (attention
//! itself cannot tell positions apart) and the pre-LayerNorm transformer block.

use rand::Rng;

use super::attention::{KvCache, MultiHeadAttention};
use super::init::Init;
use super::{LayerNorm, Linear, Module, prefixed};
use crate::element::Float;
use crate::onnx;
use crate::tensor::Tensor;

/// Adds a learned vector per position to a sequence `[batch, time, dim]`:
/// `y[b, t] = x[b, t] + weight[t]`, for up to `max_len` positions.
///
/// Its one parameter is `weight` `[max_len, dim]`, the weight of the
/// `nn.Embedding(max_len, dim)` that a PyTorch GPT looks up with `arange(time)`.
pub struct PositionalEmbedding<T: Float = f32> {
    /// `[max_len, dim]`: row t is the vector of position t.
    pub weight: Tensor<T>,
}

impl<T: Float> PositionalEmbedding<T> {
    /// Positions `0..max_len` of `dim` features, initialised N(0, 1) as `nn.Embedding`.
    pub fn new(max_len: usize, dim: usize, rng: &mut impl Rng) -> Self {
        Self::with_init(max_len, dim, Init::Normal(1.0), rng)
    }

    /// The same with a chosen initialisation (`Init::Normal(0.02)` for a GPT).
    pub fn with_init(max_len: usize, dim: usize, init: Init, rng: &mut impl Rng) -> Self {
        PositionalEmbedding {
            weight: init.tensor(&[max_len, dim], rng).requires_grad(true),
        }
    }

    /// The longest sequence it has positions for.
    pub fn max_len(&self) -> usize {
        self.weight.shape()[0]
    }

    /// Adds the vectors of positions `start..start + time`.
    fn add_positions(&self, input: &Tensor<T>, start: usize) -> Tensor<T> {
        let [.., time, dim] = *input.shape() else {
            panic!(
                "PositionalEmbedding: expected input [batch, time, dim], got {:?}",
                input.shape()
            )
        };
        assert!(
            start + time <= self.max_len() && dim == self.weight.shape()[1],
            "PositionalEmbedding({}, {}): positions {start}..{} of an input of shape {:?} are out of range",
            self.max_len(),
            self.weight.shape()[1],
            start + time,
            input.shape()
        );
        // the gradient of row t is the sum over the batch of dL/dy[·, t]
        input + &self.weight.narrow(0, start, time)
    }
}

impl<T: Float> Module<T> for PositionalEmbedding<T> {
    fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
        self.add_positions(input, 0)
    }

    fn forward_cached(&self, input: &Tensor<T>, cache: &mut KvCache<T>) -> Tensor<T> {
        self.add_positions(input, cache.position())
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match input {
            [time, dim] if *time <= self.max_len() && *dim == self.weight.shape()[1] => {
                Ok(input.to_vec())
            }
            _ => Err(format!(
                "expects a sequence [time ≤ {}, {}] per sample, but receives shape {input:?}",
                self.max_len(),
                self.weight.shape()[1]
            )),
        }
    }

    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        // y = x + weight[0..time], the time axis being the input's (free in the graph)
        let weight = onnx.parameter("weight", &self.weight);
        let time = onnx.runtime_dim(&input.name, 1);
        let start = onnx.int_list(&[0]);
        let rows = onnx.node("Slice", &[&weight, &start, &time, &start], &[]);
        Ok(onnx.node("Add", &[&input.name, &rows], &[]))
    }

    fn describe(&self) -> String {
        format!(
            "PositionalEmbedding(max_len={}, dim={})",
            self.max_len(),
            self.weight.shape()[1]
        )
    }

    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        vec![("weight".into(), self.weight.clone())]
    }
}

/// The pre-LayerNorm transformer block of GPT-2:
///
/// ```text
/// x = x + attention(ln1(x))
/// x = x + out(gelu(fc(ln2(x))))
/// ```
///
/// Parameter names are those of a PyTorch module with attributes `ln1`, `qkv`,
/// `proj`, `ln2`, `fc`, `out` (the attention's two linear layers sit directly in
/// the block): `ln1.weight`, `qkv.weight`, `proj.bias`, `fc.weight`, …
pub struct TransformerBlock<T: Float = f32> {
    /// Normalises the attention's input.
    pub ln1: LayerNorm<T>,
    /// Self-attention (its `qkv` and `proj`).
    pub attention: MultiHeadAttention<T>,
    /// Normalises the MLP's input.
    pub ln2: LayerNorm<T>,
    /// The MLP's expansion, `dim → mlp_ratio·dim`.
    pub fc: Linear<T>,
    /// The MLP's projection back, `mlp_ratio·dim → dim`.
    pub out: Linear<T>,
}

impl<T: Float> TransformerBlock<T> {
    /// A block of `dim` features, `heads` heads, an MLP `mlp_ratio` times wider,
    /// causal or not, with linear weights from `init` and zero biases for
    /// `Init::Normal` (GPT's recipe).
    pub fn new(
        dim: usize,
        heads: usize,
        mlp_ratio: usize,
        causal: bool,
        init: Init,
        rng: &mut impl Rng,
    ) -> Self {
        TransformerBlock {
            ln1: LayerNorm::new(&[dim]),
            attention: MultiHeadAttention::with_init(dim, heads, causal, init, rng),
            ln2: LayerNorm::new(&[dim]),
            fc: Linear::with_init(dim, mlp_ratio * dim, true, init, rng),
            out: Linear::with_init(mlp_ratio * dim, dim, true, init, rng),
        }
    }

    /// x + out(gelu(fc(ln2(x)))), the position-wise half.
    fn mlp(&self, x: &Tensor<T>) -> Tensor<T> {
        x + &self
            .out
            .forward(&self.fc.forward(&self.ln2.forward(x)).gelu())
    }
}

impl<T: Float> Module<T> for TransformerBlock<T> {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        let x = x + &self.attention.forward(&self.ln1.forward(x));
        self.mlp(&x)
    }

    fn forward_cached(&self, x: &Tensor<T>, cache: &mut KvCache<T>) -> Tensor<T> {
        let x = x + &self.attention.forward_cached(&self.ln1.forward(x), cache);
        self.mlp(&x)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        self.attention.output_shape(input)
    }

    fn to_onnx(&self, onnx: &mut onnx::Builder, x: &onnx::Value) -> Result<String, String> {
        // x = x + attention(ln1(x)); the attention's qkv and proj sit in this scope
        let normed = onnx.scoped("ln1", |onnx| onnx.apply(&self.ln1, x))?;
        let attended = self.attention.to_onnx(onnx, &normed)?;
        let x = onnx::Value {
            name: onnx.node("Add", &[&x.name, &attended], &[]),
            ..x.clone()
        };
        // x = x + out(gelu(fc(ln2(x))))
        let normed = onnx.scoped("ln2", |onnx| onnx.apply(&self.ln2, &x))?;
        let wide = onnx.scoped("fc", |onnx| onnx.apply(&self.fc, &normed))?;
        let activated = onnx.apply::<T>(&super::Gelu::default(), &wide)?;
        let narrow = onnx.scoped("out", |onnx| onnx.apply(&self.out, &activated))?;
        Ok(onnx.node("Add", &[&x.name, &narrow.name], &[]))
    }

    fn describe(&self) -> String {
        format!(
            "TransformerBlock(dim={}, heads={}, mlp={}{})",
            self.attention.dim(),
            self.attention.heads,
            self.fc.out_features(),
            if self.attention.causal {
                ", causal"
            } else {
                ""
            }
        )
    }

    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        let mut params = prefixed("ln1", self.ln1.named_parameters());
        params.extend(self.attention.named_parameters());
        params.extend(prefixed("ln2", self.ln2.named_parameters()));
        params.extend(prefixed("fc", self.fc.named_parameters()));
        params.extend(prefixed("out", self.out.named_parameters()));
        params
    }
}
