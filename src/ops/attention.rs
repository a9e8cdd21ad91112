//! Attention: hiding positions (`masked_fill`) and scaled dot-product attention,
//! `softmax(Q·Kᵀ/√d + mask)·V`, both as the composition of ops a textbook writes
//! ([`composed_attention`]) and as one fused op ([`Tensor::scaled_dot_product_attention`])
//! that keeps only the attention probabilities for backward.
//!
//! Masks mark what a query must *not* see (`true` = hidden), as PyTorch's
//! `masked_fill` and the GPT recipe `scores.masked_fill(triu(ones, 1), −∞)` do.

use crate::device::attention::{self as kernels};
use crate::device::buffer::{self, Recycled};
use crate::device::{AttentionShape, Hidden, Placement};
use crate::element::Float;
use crate::tensor::{Tensor, shape};

/// The forward formula and backward rule of each op in this file, as `nabla explain`
/// shows them.
pub(crate) const RULES: &[super::Rule] = &[
    super::Rule {
        op: "attention",
        forward: "y = softmax(Q·Kᵀ/√d + mask)·V",
        backward: "dL/dV = Pᵀ·G; dL/dP = G·Vᵀ; dL/dS = P ⊙ (dL/dP − rowsum(dL/dP ⊙ P)); dL/dQ = dL/dS·K/√d; dL/dK = dL/dSᵀ·Q/√d",
    },
    super::Rule {
        op: "masked_fill",
        forward: "y = value where mask else x",
        backward: "dL/dx = G where not mask else 0",
    },
];

/// A boolean mask of a shape that broadcasts to the tensor it is applied to;
/// `true` marks a hidden position.
///
/// ```
/// use nabla::ops::attention::Mask;
/// // query i may see keys 0..=i: everything above the diagonal is hidden
/// assert_eq!(Mask::causal(2, 2).hidden(), &[false, true, false, false]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Mask {
    hidden: Vec<bool>,
    shape: Vec<usize>,
}

impl Mask {
    /// A mask with the given values (`true` = hidden) and shape. Panics if the
    /// number of values is not the shape's size.
    pub fn new(hidden: Vec<bool>, shape: &[usize]) -> Self {
        assert_eq!(
            hidden.len(),
            shape::numel(shape),
            "Mask: {} values for shape {shape:?}",
            hidden.len()
        );
        Mask {
            hidden,
            shape: shape.to_vec(),
        }
    }

    /// The causal mask `[queries, keys]` of a decoder: query i (the last query
    /// aligned with the last key) sees keys `0..=i + keys − queries`, never a later one.
    pub fn causal(queries: usize, keys: usize) -> Self {
        let hidden = (0..queries)
            .flat_map(|i| (0..keys).map(move |j| is_after(i, j, queries, keys)))
            .collect();
        Mask::new(hidden, &[queries, keys])
    }

    /// The values, row-major.
    pub fn hidden(&self) -> &[bool] {
        &self.hidden
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The mask read as shape `target` (which it must broadcast to), one value per
    /// element of `target`.
    fn broadcast_to(&self, target: &[usize], op: &str) -> Vec<bool> {
        let fits = shape::broadcast_shapes(&self.shape, target).as_deref() == Some(target);
        assert!(
            fits,
            "{op}: a mask of shape {:?} does not broadcast to shape {target:?}",
            self.shape
        );
        let strides = shape::broadcast_strides(&self.shape, target);
        (0..shape::numel(target))
            .map(|flat| self.hidden[offset(flat, target, &strides)])
            .collect()
    }
}

/// Whether key `j` comes after query `i` when the last of `queries` queries is
/// aligned with the last of `keys` keys (so a query at the end of a cache sees it all).
fn is_after(i: usize, j: usize, queries: usize, keys: usize) -> bool {
    j + queries > i + keys
}

/// The position in a strided source of element `flat` of a row-major `shape`.
fn offset(flat: usize, shape: &[usize], strides: &[usize]) -> usize {
    let mut rest = flat;
    let mut at = 0;
    for (&size, &stride) in shape.iter().zip(strides).rev() {
        at += (rest % size) * stride;
        rest /= size;
    }
    at
}

/// Which scores attention hides.
#[derive(Clone, Copy, Debug)]
pub enum AttentionMask<'a> {
    /// Every query sees every key.
    None,
    /// Query i sees keys up to its own position ([`Mask::causal`]), computed on the
    /// fly rather than stored.
    Causal,
    /// A mask that broadcasts to the scores `[batch…, queries, keys]`.
    Hide(&'a Mask),
}

impl<T: Float> Tensor<T> {
    /// `value` where `mask` is `true`, the input elsewhere. The mask broadcasts to
    /// the input's shape. Filling with −∞ before a softmax hides those positions.
    ///
    /// ```
    /// use nabla::{Tensor, ops::attention::Mask};
    /// let scores = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// let hidden = scores.masked_fill(&Mask::causal(2, 2), f32::NEG_INFINITY);
    /// assert_eq!(hidden.to_vec(), vec![1.0, f32::NEG_INFINITY, 3.0, 4.0]);
    /// ```
    pub fn masked_fill(&self, mask: &Mask, value: T) -> Tensor<T> {
        let hidden = mask.broadcast_to(self.shape(), "masked_fill");
        let values = self
            .data()
            .iter()
            .zip(&hidden)
            .map(|(&x, &h)| if h { value } else { x })
            .collect();
        // d/dx = 1 where the input was kept, 0 where it was replaced
        Tensor::from_op(values, self.shape(), "masked_fill", &[self], move |ctx| {
            let grad_output = ctx.grad_output.data();
            let grad = grad_output
                .iter()
                .zip(&hidden)
                .map(|(&g, &h)| if h { T::zero() } else { g })
                .collect();
            vec![Some(Tensor::from_vec(grad, ctx.grad_output.shape()))]
        })
    }

    /// Scaled dot-product attention as one op: for queries `self` `[batch…, Tq, d]`,
    /// keys `[batch…, Tk, d]` and values `[batch…, Tk, dv]` (the same leading axes,
    /// e.g. `[batch, heads]`), `softmax(Q·Kᵀ/√d, hiding `mask`)·V`, shape
    /// `[batch…, Tq, dv]`. Equal to [`composed_attention`] but faster and lighter:
    /// backward recomputes nothing and keeps only the probabilities `[batch…, Tq, Tk]`.
    ///
    /// A query whose every key is hidden attends to nothing and gets a zero output
    /// (the composed form gives NaN there, as PyTorch's does).
    pub fn scaled_dot_product_attention(
        &self,
        key: &Tensor<T>,
        value: &Tensor<T>,
        mask: AttentionMask<'_>,
    ) -> Tensor<T> {
        let shape = attention_shape(self, key, value);
        let AttentionShape {
            queries,
            keys,
            dim,
            value_dim,
            ..
        } = shape;
        let mut out_shape = self.shape().to_vec();
        *out_shape.last_mut().expect("checked: at least two axes") = value_dim;
        let places = [
            Placement::contiguous(queries, dim),
            Placement::contiguous(keys, dim),
            Placement::contiguous(keys, value_dim),
        ];
        let out = Placement::contiguous(queries, value_dim);
        let mut scores_shape = out_shape.clone();
        *scores_shape.last_mut().expect("at least two axes") = keys;
        let shapes = (out_shape.as_slice(), scores_shape.as_slice());
        attention_op(&[self, key, value], places, out, shapes, shape, mask)
    }

    /// Multi-head attention over packed projections, as one op: `self` is
    /// `[batch, time, 3·dim]`, each row the concatenated query, key and value of
    /// one position (a transformer's `x·W_qkvᵀ`); each of `heads` heads attends
    /// with its `dim/heads` columns of each, and the heads' outputs come back side by
    /// side, `[batch, time, dim]`. The same as splitting, permuting to
    /// `[batch, heads, time, dim/heads]`, [`Tensor::scaled_dot_product_attention`]
    /// and merging back — without the copies, forward or backward.
    pub fn multi_head_attention(&self, heads: usize, mask: AttentionMask<'_>) -> Tensor<T> {
        let &[batch, time, packed] = self.shape() else {
            panic!(
                "multi_head_attention: expected packed projections [batch, time, 3·dim], got {:?}",
                self.shape()
            );
        };
        let dim = packed / 3;
        assert!(
            packed % 3 == 0 && heads > 0 && dim % heads == 0,
            "multi_head_attention: {packed} features are not 3·dim with dim divisible by {heads} heads"
        );
        let head_dim = dim / heads;
        let shape = AttentionShape {
            groups: batch,
            heads,
            queries: time,
            keys: time,
            dim: head_dim,
            value_dim: head_dim,
        };
        // query, key and value of head h: columns h·head_dim.. of the first, second and third dim
        let part = |which: usize| Placement {
            offset: which * dim,
            group_len: time * packed,
            head_stride: head_dim,
            row_stride: packed,
        };
        let places = [part(0), part(1), part(2)];
        let out = Placement {
            offset: 0,
            group_len: time * dim,
            head_stride: head_dim,
            row_stride: dim,
        };
        let shapes = (&[batch, time, dim][..], &[batch, heads, time, time][..]);
        // one input read three times: dQ, dK, dV all go back into its gradient
        attention_op(&[self], places, out, shapes, shape, mask)
    }
}

/// The attention forward, recorded with its backward. `sources` holds the query,
/// key and value tensors, or one tensor of packed projections that all three are
/// read from; `places` says where each operand lies in its source, and each
/// source gets one gradient, laid out as the source is.
fn attention_op<T: Float>(
    sources: &[&Tensor<T>],
    places: [Placement; 3],
    out: Placement,
    (out_shape, scores_shape): (&[usize], &[usize]),
    shape: AttentionShape,
    mask: AttentionMask<'_>,
) -> Tensor<T> {
    let scale = T::cast(1.0 / (shape.dim as f64).sqrt());
    let (output, probabilities) = {
        let source = |i: usize| sources[i.min(sources.len() - 1)].data();
        let (q, k, v) = (source(0), source(1), source(2));
        let given = match mask {
            AttentionMask::Hide(mask) => mask.broadcast_to(scores_shape, "attention"),
            _ => Vec::new(),
        };
        let hidden = match mask {
            AttentionMask::None => Hidden::Nothing,
            AttentionMask::Causal => Hidden::Later,
            AttentionMask::Hide(_) => Hidden::Given(&given),
        };
        kernels::forward((&q, &k, &v), places, out, shape, scale, hidden)
    };
    let probabilities = Recycled::new(probabilities);
    Tensor::from_op(output, out_shape, "attention", sources, move |ctx| {
        let last = ctx.inputs.len() - 1;
        let source = |i: usize| ctx.input(i.min(last)).data();
        let (q, k, v) = (source(0), source(1), source(2));
        // operand i's gradient goes into its source's gradient buffer
        let grad_places = [0, 1, 2].map(|i| (i.min(last), places[i]));
        let mut grads: Vec<Vec<T>> = (ctx.inputs.iter())
            .map(|input| buffer::take(input.numel()))
            .collect();
        kernels::backward(
            &ctx.grad_output.data(),
            (&q, &k, &v),
            &probabilities,
            (places, out),
            grad_places,
            &mut grads,
            (shape, scale),
        );
        grads
            .into_iter()
            .zip(ctx.inputs)
            .enumerate()
            .map(|(i, (grad, input))| {
                ctx.needs_grad(i)
                    .then(|| Tensor::from_vec(grad, input.shape()))
            })
            .collect()
    })
}

/// Scaled dot-product attention written as the math reads, one op per step:
/// `S = Q·Kᵀ/√d`, hidden scores set to −∞, `P = softmax(S)` along the keys,
/// `O = P·V`. The definition [`Tensor::scaled_dot_product_attention`] is tested
/// against; it keeps every intermediate for backward.
pub fn composed_attention<T: Float>(
    query: &Tensor<T>,
    key: &Tensor<T>,
    value: &Tensor<T>,
    mask: AttentionMask<'_>,
) -> Tensor<T> {
    let shape = attention_shape(query, key, value);
    let scores = query
        .matmul_t(key)
        .mul_scalar(T::cast(1.0 / (shape.dim as f64).sqrt()));
    let scores = match mask {
        AttentionMask::None => scores,
        AttentionMask::Causal => {
            scores.masked_fill(&Mask::causal(shape.queries, shape.keys), T::neg_infinity())
        }
        AttentionMask::Hide(mask) => scores.masked_fill(mask, T::neg_infinity()),
    };
    scores.softmax(-1).matmul(value)
}

/// The sizes of an attention call, or a panic naming the three shapes.
fn attention_shape<T: Float>(q: &Tensor<T>, k: &Tensor<T>, v: &Tensor<T>) -> AttentionShape {
    let fits = q.ndim() >= 2
        && k.ndim() == q.ndim()
        && v.ndim() == q.ndim()
        && q.shape()[..q.ndim() - 2] == k.shape()[..k.ndim() - 2]
        && k.shape()[..k.ndim() - 1] == v.shape()[..v.ndim() - 1]
        && q.dim(-1) == k.dim(-1);
    assert!(
        fits,
        "attention: expected query [batch…, Tq, d], key [batch…, Tk, d] and value [batch…, Tk, dv], got {:?}, {:?} and {:?}",
        q.shape(),
        k.shape(),
        v.shape()
    );
    AttentionShape {
        groups: q.shape()[..q.ndim() - 2].iter().product(),
        heads: 1,
        queries: q.dim(-2),
        keys: k.dim(-2),
        dim: q.dim(-1),
        value_dim: v.dim(-1),
    }
}
