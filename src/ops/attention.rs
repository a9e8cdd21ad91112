//! Attention: hiding positions (`masked_fill`) and scaled dot-product attention,
//! `softmax(Q·Kᵀ/√d + mask)·V`, both as the composition of ops a textbook writes
//! ([`composed_attention`]) and as one fused op ([`Tensor::scaled_dot_product_attention`])
//! that keeps only the attention probabilities for backward.
//!
//! Masks mark what a query must *not* see (`true` = hidden), as PyTorch's
//! `masked_fill` and the GPT recipe `scores.masked_fill(triu(ones, 1), −∞)` do.

use crate::cpu::attention::{self as kernels, AttentionShape};
use crate::cpu::buffer::Recycled;
use crate::element::Float;
use crate::tensor::{Tensor, shape};

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
        let mut out_shape = self.shape().to_vec();
        *out_shape.last_mut().expect("checked: at least two axes") = shape.value_dim;
        let scale = T::cast(1.0 / (shape.dim as f64).sqrt());
        let (queries, keys) = (shape.queries, shape.keys);
        let (out, probabilities) = {
            let (q, k, v) = (self.data(), key.data(), value.data());
            match mask {
                AttentionMask::None => kernels::forward(&q, &k, &v, shape, scale, |_, _, _| false),
                AttentionMask::Causal => kernels::forward(&q, &k, &v, shape, scale, |_, i, j| {
                    is_after(i, j, queries, keys)
                }),
                AttentionMask::Hide(mask) => {
                    let mut scores_shape = out_shape.clone();
                    *scores_shape.last_mut().expect("at least two axes") = keys;
                    let hidden = mask.broadcast_to(&scores_shape, "scaled_dot_product_attention");
                    let matrix = queries * keys;
                    kernels::forward(&q, &k, &v, shape, scale, |m, i, j| {
                        hidden[m * matrix + i * keys + j]
                    })
                }
            }
        };
        let probabilities = Recycled::new(probabilities);
        Tensor::from_op(
            out,
            &out_shape,
            "scaled_dot_product_attention",
            &[self, key, value],
            move |ctx| {
                let inputs = (
                    ctx.input(0).data(),
                    ctx.input(1).data(),
                    ctx.input(2).data(),
                );
                let grad_output = ctx.grad_output.data();
                let (dq, dk, dv) = kernels::backward(
                    &grad_output,
                    (&inputs.0, &inputs.1, &inputs.2),
                    &probabilities,
                    shape,
                    scale,
                );
                [dq, dk, dv]
                    .into_iter()
                    .enumerate()
                    .map(|(i, grad)| {
                        let input = ctx.input(i);
                        ctx.needs_grad(i)
                            .then(|| Tensor::from_vec(grad, input.shape()))
                    })
                    .collect()
            },
        )
    }
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
        matrices: q.shape()[..q.ndim() - 2].iter().product(),
        queries: q.dim(-2),
        keys: k.dim(-2),
        dim: q.dim(-1),
        value_dim: v.dim(-1),
    }
}
