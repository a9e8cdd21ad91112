//! Multi-head self-attention: every position looks at every (earlier, if causal)
//! position of the same sequence and takes a weighted mix of their values, the
//! weights coming from how well its query matches their keys. `heads` such mixes
//! run side by side on slices of the model dimension.
//!
//! Generation reuses the keys and values of earlier positions through a
//! [`KvCache`], so each new token costs one position, not the whole window.

use rand::Rng;

use super::init::Init;
use super::{Linear, Module, prefixed};
use crate::element::Float;
use crate::onnx::{self, Attribute, ElemType, TensorData, Values};
use crate::ops::attention::AttentionMask;
use crate::tensor::Tensor;

/// Self-attention over `[batch, time, dim]`:
///
/// ```text
/// q, k, v = split(x·W_qkvᵀ + b_qkv)            each [batch, heads, time, dim/heads]
/// a       = softmax(q·kᵀ/√(dim/heads), causal)·v
/// y       = concat_heads(a)·W_projᵀ + b_proj
/// ```
///
/// Parameters: `qkv.weight` `[3·dim, dim]` (rows: all heads' queries, then keys,
/// then values), `qkv.bias`, `proj.weight` `[dim, dim]`, `proj.bias` — the layout
/// of the usual PyTorch GPT (`nn.Linear(dim, 3·dim)` split into q, k, v).
///
/// ```
/// use nabla::nn::{Module, MultiHeadAttention};
/// let attention = MultiHeadAttention::<f32>::new(16, 4, true, &mut nabla::rng(0));
/// let y = attention.forward(&nabla::Tensor::zeros(&[2, 5, 16]));
/// assert_eq!(y.shape(), &[2, 5, 16]);
/// ```
pub struct MultiHeadAttention<T: Float = f32> {
    /// The input to queries, keys and values, in one product.
    pub qkv: Linear<T>,
    /// The output projection, mixing the heads.
    pub proj: Linear<T>,
    /// The number of heads; `dim` must divide by it.
    pub heads: usize,
    /// Whether a position sees only itself and earlier positions.
    pub causal: bool,
}

impl<T: Float> MultiHeadAttention<T> {
    /// Attention over `dim` features in `heads` heads, PyTorch's default Linear init.
    pub fn new(dim: usize, heads: usize, causal: bool, rng: &mut impl Rng) -> Self {
        Self::with_init(dim, heads, causal, Init::PyTorchDefault, rng)
    }

    /// The same with a chosen weight initialisation (`Init::Normal(0.02)` for a GPT).
    /// Panics if `heads` does not divide `dim`.
    pub fn with_init(
        dim: usize,
        heads: usize,
        causal: bool,
        init: Init,
        rng: &mut impl Rng,
    ) -> Self {
        assert!(
            heads > 0 && dim.is_multiple_of(heads),
            "MultiHeadAttention: {heads} heads do not divide the dimension {dim}"
        );
        MultiHeadAttention {
            qkv: Linear::with_init(dim, 3 * dim, true, init, rng),
            proj: Linear::with_init(dim, dim, true, init, rng),
            heads,
            causal,
        }
    }

    /// The model dimension.
    pub fn dim(&self) -> usize {
        self.proj.out_features()
    }

    /// Attention of the new positions `input` `[batch, new, dim]` over the cached
    /// earlier positions and themselves; appends their keys and values to the cache.
    pub fn forward_cached(&self, input: &Tensor<T>, cache: &mut KvCache<T>) -> Tensor<T> {
        let (q, mut k, mut v) = self.split_heads(input);
        let slot = cache.next_slot();
        if let Some((past_k, past_v)) = slot.take() {
            k = Tensor::concat(&[&past_k, &k], 2);
            v = Tensor::concat(&[&past_v, &v], 2);
        }
        *slot = Some((k.clone(), v.clone()));
        self.attend(input, &q, &k, &v)
    }

    /// `[batch, time, dim]` → q, k, v, each `[batch, heads, time, dim/heads]`.
    fn split_heads(&self, input: &Tensor<T>) -> (Tensor<T>, Tensor<T>, Tensor<T>) {
        let &[batch, time, dim] = input.shape() else {
            panic!(
                "MultiHeadAttention: expected input [batch, time, {}], got {:?}",
                self.dim(),
                input.shape()
            );
        };
        assert_eq!(
            dim,
            self.dim(),
            "MultiHeadAttention: input of shape {:?} does not end in {}",
            input.shape(),
            self.dim()
        );
        let head_dim = dim / self.heads;
        // [batch, time, 3·dim] → [3, batch, heads, time, head_dim]
        let qkv = self
            .qkv
            .forward(input)
            .reshape(&[batch, time, 3, self.heads, head_dim])
            .permute(&[2, 0, 3, 1, 4]);
        let part = |i: usize| qkv.narrow(0, i, 1).squeeze(0);
        (part(0), part(1), part(2))
    }

    fn mask(&self) -> AttentionMask<'static> {
        if self.causal {
            AttentionMask::Causal
        } else {
            AttentionMask::None
        }
    }

    /// Attention of `q` over `k`, `v`, heads merged and projected.
    fn attend(&self, input: &Tensor<T>, q: &Tensor<T>, k: &Tensor<T>, v: &Tensor<T>) -> Tensor<T> {
        let heads = q.scaled_dot_product_attention(k, v, self.mask());
        // [batch, heads, time, head_dim] → [batch, time, dim]
        let merged = heads.permute(&[0, 2, 1, 3]).reshape(input.shape());
        self.proj.forward(&merged)
    }
}

impl<T: Float> Module<T> for MultiHeadAttention<T> {
    fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
        // the packed op reads each head's q, k, v columns in place: no split, no
        // permute, forward or backward (the same math as `forward_cached` spells out)
        let qkv = self.qkv.forward(input);
        assert!(
            qkv.ndim() == 3,
            "MultiHeadAttention: expected input [batch, time, {}], got {:?}",
            self.dim(),
            input.shape()
        );
        self.proj
            .forward(&qkv.multi_head_attention(self.heads, self.mask()))
    }

    fn forward_cached(&self, input: &Tensor<T>, cache: &mut KvCache<T>) -> Tensor<T> {
        MultiHeadAttention::forward_cached(self, input, cache)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match input {
            [_, dim] if *dim == self.dim() => Ok(input.to_vec()),
            _ => Err(format!(
                "expects a sequence [time, {}] per sample, but receives shape {input:?}",
                self.dim()
            )),
        }
    }

    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        let (dim, heads) = (self.dim() as i64, self.heads as i64);
        let head_dim = dim / heads;
        let qkv = onnx.scoped("qkv", |onnx| onnx.apply(&self.qkv, input))?;
        // [batch, time, 3·dim] → [batch, time, 3, heads, head_dim] → [3, batch, heads, time, head_dim]
        let split_shape = onnx.int_list(&[0, 0, 3, heads, head_dim]);
        let split = onnx.node("Reshape", &[&qkv.name, &split_shape], &[]);
        let perm = |axes: &[i64]| [("perm", Attribute::Ints(axes.to_vec()))];
        let parts = onnx.node("Transpose", &[&split], &perm(&[2, 0, 3, 1, 4]));
        let mut part = |index: i64| {
            let index = onnx.ints(&[index], &[]);
            onnx.node("Gather", &[&parts, &index], &[])
        };
        let (q, k, v) = (part(0), part(1), part(2));
        // scores = q·kᵀ/√head_dim, [batch, heads, time, time]
        let k_t = onnx.node("Transpose", &[&k], &perm(&[0, 1, 3, 2]));
        let products = onnx.node("MatMul", &[&q, &k_t], &[]);
        let scale = onnx.floats(&[1.0 / (head_dim as f32).sqrt()], &[]);
        let mut scores = onnx.node("Mul", &[&products, &scale], &[]);
        if self.causal {
            // position t sees positions ≤ t: −∞ above the diagonal of a time × time grid
            let time = onnx.runtime_dim(&input.name, 1);
            let grid_shape = onnx.node("Concat", &[&time, &time], &[("axis", Attribute::Int(0))]);
            let one = TensorData {
                name: String::new(),
                dims: vec![1],
                values: Values::Float(vec![1.0]),
            };
            let ones = onnx.node(
                "ConstantOfShape",
                &[&grid_shape],
                &[("value", Attribute::Tensor(one))],
            );
            let lower = onnx.node("Trilu", &[&ones], &[("upper", Attribute::Int(0))]);
            let zero = onnx.floats(&[0.0], &[]);
            let hidden = onnx.node("Equal", &[&lower, &zero], &[]);
            let minus_infinity = onnx.floats(&[f32::NEG_INFINITY], &[]);
            scores = onnx.node("Where", &[&hidden, &minus_infinity, &scores], &[]);
        }
        let weights = onnx.node("Softmax", &[&scores], &[("axis", Attribute::Int(-1))]);
        let mixed = onnx.node("MatMul", &[&weights, &v], &[]);
        // [batch, heads, time, head_dim] → [batch, time, dim]
        let merged = onnx.node("Transpose", &[&mixed], &perm(&[0, 2, 1, 3]));
        let merged_shape = onnx.int_list(&[0, 0, dim]);
        let merged = onnx::Value {
            name: onnx.node("Reshape", &[&merged, &merged_shape], &[]),
            elem: ElemType::Float,
            ..input.clone()
        };
        let projected = onnx.scoped("proj", |onnx| onnx.apply(&self.proj, &merged))?;
        Ok(projected.name)
    }

    fn describe(&self) -> String {
        format!(
            "MultiHeadAttention(dim={}, heads={}{})",
            self.dim(),
            self.heads,
            if self.causal { ", causal" } else { "" }
        )
    }

    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        let mut params = prefixed("qkv", self.qkv.named_parameters());
        params.extend(prefixed("proj", self.proj.named_parameters()));
        params
    }
}

/// What generation keeps between steps: every attention layer's keys and values
/// of the positions seen so far, and how many positions that is.
///
/// Each call of a model's `forward_cached` passes the cache through the layers in
/// order; each attention layer takes the next slot. Call [`KvCache::advance`]
/// after each call.
pub struct KvCache<T: Float = f32> {
    slots: Vec<Option<(Tensor<T>, Tensor<T>)>>,
    next: usize,
    position: usize,
}

impl<T: Float> Default for KvCache<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> KvCache<T> {
    /// An empty cache: the next tokens are at position 0.
    pub fn new() -> Self {
        KvCache {
            slots: Vec::new(),
            next: 0,
            position: 0,
        }
    }

    /// The position of the first token of the next call (tokens cached so far).
    pub fn position(&self) -> usize {
        self.position
    }

    /// Ends a call that processed `tokens` new positions.
    pub fn advance(&mut self, tokens: usize) {
        self.position += tokens;
        self.next = 0;
    }

    /// The next attention layer's keys and values.
    fn next_slot(&mut self) -> &mut Option<(Tensor<T>, Tensor<T>)> {
        if self.next == self.slots.len() {
            self.slots.push(None);
        }
        self.next += 1;
        &mut self.slots[self.next - 1]
    }
}
