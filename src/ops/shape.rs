//! Ops that move values around without arithmetic: reshape, permute, broadcast,
//! concatenate, slice, pad, select. Their backward rules move the gradient back
//! to where each value came from.

use crate::device;
use crate::element::Float;
use crate::tensor::{Tensor, shape};

/// The forward formula and backward rule of each op in this file, as `nabla explain`
/// shows them.
pub(crate) const RULES: &[super::Rule] = &[
    super::Rule {
        op: "reshape",
        forward: "y = x, reshaped",
        backward: "dL/dx = G, reshaped back",
    },
    super::Rule {
        op: "permute",
        forward: "y = x with axes permuted",
        backward: "dL/dx = G with the axes permuted back",
    },
    super::Rule {
        op: "broadcast_to",
        forward: "y = x repeated along new axes",
        backward: "dL/dx = G summed over the repeated axes",
    },
    super::Rule {
        op: "narrow",
        forward: "y = a slice of x",
        backward: "dL/dx = G in the slice, 0 elsewhere",
    },
    super::Rule {
        op: "pad",
        forward: "y = x with zeros around",
        backward: "dL/dx = G without the padding",
    },
    super::Rule {
        op: "concat",
        forward: "y = [a, b, …] along an axis",
        backward: "dL/da, dL/db, … = the slices of G",
    },
    super::Rule {
        op: "gather",
        forward: "y[i] = x[index[i]]",
        backward: "dL/dx[k] = Σ_{i: index[i] = k} G[i]",
    },
    super::Rule {
        op: "index_select",
        forward: "y[i] = x[index[i]] (an embedding's row lookup)",
        backward: "dL/dx[k] = Σ_{i: index[i] = k} G[i]",
    },
];

impl<T: Float> Tensor<T> {
    /// The same values with a new shape of the same size. Shares storage (no copy).
    pub fn reshape(&self, new_shape: &[usize]) -> Tensor<T> {
        assert_eq!(
            shape::numel(new_shape),
            self.numel(),
            "reshape: cannot view shape {:?} ({} elements) as {new_shape:?} ({} elements)",
            self.shape(),
            self.numel(),
            shape::numel(new_shape)
        );
        if self.shape() == new_shape {
            return self.clone();
        }
        // backward: reshape the gradient back
        Tensor::view_op(
            self.inner.storage.clone(),
            new_shape,
            "reshape",
            &[self],
            |ctx| vec![Some(ctx.grad_output.reshape(ctx.input(0).shape()))],
        )
    }

    /// Collapses axes `start..=end` into one (negative axes count from the end).
    pub fn flatten(&self, start: isize, end: isize) -> Tensor<T> {
        if self.ndim() == 0 {
            return self.reshape(&[1]);
        }
        let start = shape::normalize_axis(start, self.ndim(), "flatten");
        let end = shape::normalize_axis(end, self.ndim(), "flatten");
        assert!(
            start <= end,
            "flatten: start axis {start} is after end axis {end}"
        );
        let mut new_shape = self.shape()[..start].to_vec();
        new_shape.push(self.shape()[start..=end].iter().product());
        new_shape.extend_from_slice(&self.shape()[end + 1..]);
        self.reshape(&new_shape)
    }

    /// Inserts an axis of size 1 at `axis` (which may equal `ndim`).
    pub fn unsqueeze(&self, axis: isize) -> Tensor<T> {
        let axis = shape::normalize_axis(axis, self.ndim() + 1, "unsqueeze");
        let mut new_shape = self.shape().to_vec();
        new_shape.insert(axis, 1);
        self.reshape(&new_shape)
    }

    /// Removes `axis`, which must have size 1.
    pub fn squeeze(&self, axis: isize) -> Tensor<T> {
        let axis = shape::normalize_axis(axis, self.ndim(), "squeeze");
        assert_eq!(
            self.shape()[axis],
            1,
            "squeeze: axis {axis} of shape {:?} does not have size 1",
            self.shape()
        );
        let mut new_shape = self.shape().to_vec();
        new_shape.remove(axis);
        self.reshape(&new_shape)
    }

    /// Reorders the axes: output axis `i` is input axis `order[i]`.
    pub fn permute(&self, order: &[usize]) -> Tensor<T> {
        let mut seen = vec![false; self.ndim()];
        let valid = order.len() == self.ndim()
            && order
                .iter()
                .all(|&a| a < seen.len() && !std::mem::replace(&mut seen[a], true));
        assert!(
            valid,
            "permute: {order:?} is not a permutation of the axes of shape {:?}",
            self.shape()
        );
        let in_strides = shape::strides(self.shape());
        let strides: Vec<usize> = order.iter().map(|&a| in_strides[a]).collect();
        let out_shape: Vec<usize> = order.iter().map(|&a| self.shape()[a]).collect();
        let values = device::gather_strided(&self.data(), &strides, &out_shape);
        let mut inverse = vec![0; order.len()];
        for (i, &a) in order.iter().enumerate() {
            inverse[a] = i;
        }
        // backward: permute the gradient back with the inverse order
        Tensor::from_op(values, &out_shape, "permute", &[self], move |ctx| {
            vec![Some(ctx.grad_output.permute(&inverse))]
        })
    }

    /// Swaps two axes.
    pub fn transpose(&self, axis_a: isize, axis_b: isize) -> Tensor<T> {
        let a = shape::normalize_axis(axis_a, self.ndim(), "transpose");
        let b = shape::normalize_axis(axis_b, self.ndim(), "transpose");
        let mut order: Vec<usize> = (0..self.ndim()).collect();
        order.swap(a, b);
        self.permute(&order)
    }

    /// The matrix transpose of a 2-D tensor.
    pub fn t(&self) -> Tensor<T> {
        assert_eq!(
            self.ndim(),
            2,
            "t: expects a 2-D tensor, got shape {:?}",
            self.shape()
        );
        self.transpose(0, 1)
    }

    /// Repeats values along size-1 (or missing leading) axes to reach `target`.
    pub fn broadcast_to(&self, target: &[usize]) -> Tensor<T> {
        if self.shape() == target {
            return self.clone();
        }
        assert!(
            shape::broadcast_shapes(self.shape(), target).as_deref() == Some(target),
            "broadcast_to: shape {:?} cannot be broadcast to {target:?}",
            self.shape()
        );
        let strides = shape::broadcast_strides(self.shape(), target);
        let values = device::gather_strided(&self.data(), &strides, target);
        // backward: each input value was copied to many outputs, so sum their gradients
        Tensor::from_op(values, target, "broadcast_to", &[self], |ctx| {
            vec![Some(ctx.grad_output.sum_to(ctx.input(0).shape()))]
        })
    }

    /// Joins tensors along an existing axis; all other axes must agree.
    pub fn concat(tensors: &[&Tensor<T>], axis: isize) -> Tensor<T> {
        let first = tensors.first().expect("concat: needs at least one tensor");
        let axis = shape::normalize_axis(axis, first.ndim(), "concat");
        for t in tensors {
            let agree = t.ndim() == first.ndim()
                && (0..t.ndim()).all(|a| a == axis || t.shape()[a] == first.shape()[a]);
            assert!(
                agree,
                "concat along axis {axis}: shapes {:?} and {:?} differ on another axis",
                first.shape(),
                t.shape()
            );
        }
        let mut out_shape = first.shape().to_vec();
        out_shape[axis] = tensors.iter().map(|t| t.shape()[axis]).sum();
        let mut values = vec![T::zero(); shape::numel(&out_shape)];
        let mut offset = vec![0; out_shape.len()];
        let mut starts = Vec::with_capacity(tensors.len());
        for t in tensors {
            starts.push(offset[axis]);
            device::copy_into_box(&t.data(), t.shape(), &mut values, &out_shape, &offset);
            offset[axis] += t.shape()[axis];
        }
        // backward: each input gets back its own slice of the gradient
        Tensor::from_op(values, &out_shape, "concat", tensors, move |ctx| {
            ctx.inputs
                .iter()
                .zip(&starts)
                .map(|(input, &start)| {
                    Some(
                        ctx.grad_output
                            .narrow(axis as isize, start, input.shape()[axis]),
                    )
                })
                .collect()
        })
    }

    /// Joins tensors of equal shape along a new axis.
    pub fn stack(tensors: &[&Tensor<T>], axis: isize) -> Tensor<T> {
        let first = tensors.first().expect("stack: needs at least one tensor");
        let axis = shape::normalize_axis(axis, first.ndim() + 1, "stack") as isize;
        let lifted: Vec<Tensor<T>> = tensors.iter().map(|t| t.unsqueeze(axis)).collect();
        Tensor::concat(&lifted.iter().collect::<Vec<_>>(), axis)
    }

    /// The slice `start..start + len` along `axis`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Tensor<T> {
        let axis = shape::normalize_axis(axis, self.ndim(), "narrow");
        assert!(
            start + len <= self.shape()[axis],
            "narrow: range {start}..{} is outside axis {axis} of shape {:?}",
            start + len,
            self.shape()
        );
        let mut offset = vec![0; self.ndim()];
        offset[axis] = start;
        let mut out_shape = self.shape().to_vec();
        out_shape[axis] = len;
        let values = device::extract_box(&self.data(), self.shape(), &offset, &out_shape);
        // backward: the gradient goes back into the slice it came from; zeros elsewhere
        Tensor::from_op(values, &out_shape, "narrow", &[self], move |ctx| {
            let input_shape = ctx.input(0).shape();
            let mut grad = device::buffer::zeroed(shape::numel(input_shape));
            let grad_output = ctx.grad_output;
            device::copy_into_box(
                &grad_output.data(),
                grad_output.shape(),
                &mut grad,
                input_shape,
                &offset,
            );
            vec![Some(Tensor::from_vec(grad, input_shape))]
        })
    }

    /// Pads with `value`: `padding[i] = (before, after)` for axis `i`; missing
    /// trailing entries mean no padding.
    pub fn pad(&self, padding: &[(usize, usize)], value: T) -> Tensor<T> {
        assert!(
            padding.len() <= self.ndim(),
            "pad: {} (before, after) pairs for a tensor of shape {:?}",
            padding.len(),
            self.shape()
        );
        let before: Vec<usize> = (0..self.ndim())
            .map(|a| padding.get(a).map_or(0, |p| p.0))
            .collect();
        let out_shape: Vec<usize> = (0..self.ndim())
            .map(|a| self.shape()[a] + padding.get(a).map_or(0, |p| p.0 + p.1))
            .collect();
        let mut values = device::buffer::filled(shape::numel(&out_shape), value);
        device::copy_into_box(&self.data(), self.shape(), &mut values, &out_shape, &before);
        // backward: cut the input's region out of the gradient; padding gets none
        Tensor::from_op(values, &out_shape, "pad", &[self], move |ctx| {
            let input_shape = ctx.input(0).shape();
            let g = ctx.grad_output;
            let grad = device::extract_box(&g.data(), g.shape(), &before, input_shape);
            vec![Some(Tensor::from_vec(grad, input_shape))]
        })
    }

    /// Picks the slices `indices` along `axis`, in that order (repeats allowed).
    pub fn index_select(&self, axis: isize, indices: &[usize]) -> Tensor<T> {
        let axis = shape::normalize_axis(axis, self.ndim(), "index_select");
        let (outer, len, inner) = shape::split_at_axis(self.shape(), axis);
        if let Some(bad) = indices.iter().find(|&&i| i >= len) {
            panic!(
                "index_select: index {bad} is out of range for axis {axis} of shape {:?}",
                self.shape()
            );
        }
        let data = self.data();
        // from the buffer pool, like every kernel's output: a step's embedding lookups
        // then allocate nothing (and grow no pool with buffers it never handed out)
        let mut values = device::buffer::take(outer * indices.len() * inner);
        for (row, (o, &i)) in values
            .chunks_exact_mut(inner.max(1))
            .zip((0..outer).flat_map(|o| indices.iter().map(move |i| (o, i))))
        {
            row.copy_from_slice(&data[(o * len + i) * inner..][..inner]);
        }
        let mut out_shape = self.shape().to_vec();
        out_shape[axis] = indices.len();
        let indices = indices.to_vec();
        // backward: each picked slice's gradient is added back where it came from
        // (a slice picked twice collects both)
        Tensor::from_op(values, &out_shape, "index_select", &[self], move |ctx| {
            let mut grad = device::buffer::zeroed(outer * len * inner);
            let g = ctx.grad_output.data();
            for o in 0..outer {
                for (position, &i) in indices.iter().enumerate() {
                    let src = &g[(o * indices.len() + position) * inner..][..inner];
                    for (acc, &v) in grad[(o * len + i) * inner..][..inner].iter_mut().zip(src) {
                        *acc += v;
                    }
                }
            }
            vec![Some(Tensor::from_vec(grad, ctx.input(0).shape()))]
        })
    }

    /// `out[…, j, …] = self[…, index[…, j, …], …]` along `axis`, as PyTorch's
    /// `gather`: `index` has shape `index_shape` (same rank; no larger than `self`
    /// on the other axes). Picks each row's target logit for cross-entropy.
    pub fn gather(&self, axis: isize, index: &[usize], index_shape: &[usize]) -> Tensor<T> {
        let axis = shape::normalize_axis(axis, self.ndim(), "gather");
        let fits = index_shape.len() == self.ndim()
            && shape::numel(index_shape) == index.len()
            && (0..self.ndim()).all(|a| a == axis || index_shape[a] <= self.shape()[a]);
        assert!(
            fits,
            "gather: index of shape {index_shape:?} ({} values) does not fit input of shape {:?} along axis {axis}",
            index.len(),
            self.shape()
        );
        let len = self.shape()[axis];
        if let Some(bad) = index.iter().find(|&&i| i >= len) {
            panic!(
                "gather: index {bad} is out of range for axis {axis} of shape {:?}",
                self.shape()
            );
        }
        // Where each output element reads from, as a flat index into `self`.
        let in_strides = shape::strides(self.shape());
        let sources: Vec<usize> = (0..index.len())
            .map(|flat| {
                let mut rest = flat;
                let mut source = 0;
                for a in (0..index_shape.len()).rev() {
                    let coordinate = rest % index_shape[a];
                    rest /= index_shape[a];
                    source += if a == axis { index[flat] } else { coordinate } * in_strides[a];
                }
                source
            })
            .collect();
        let data = self.data();
        let values = sources.iter().map(|&s| data[s]).collect();
        // backward: scatter-add each output's gradient to the element it read
        Tensor::from_op(values, index_shape, "gather", &[self], move |ctx| {
            let input = ctx.input(0);
            let mut grad = vec![T::zero(); input.numel()];
            for (&g, &s) in ctx.grad_output.data().iter().zip(&sources) {
                grad[s] += g;
            }
            vec![Some(Tensor::from_vec(grad, input.shape()))]
        })
    }
}
