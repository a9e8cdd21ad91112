//! Reductions: sum, mean, max, min, var over axes or over everything.
//!
//! Two primitives carry gradients — sum along an axis and max along an axis; the
//! others are built from them, so their gradients follow from the chain rule alone.

use crate::device::reduce;
use crate::element::Float;
use crate::tensor::{Tensor, shape};

/// The forward formula and backward rule of each op in this file, as `nabla explain`
/// shows them.
pub(crate) const RULES: &[super::Rule] = &[
    super::Rule {
        op: "sum",
        forward: "y = Σ x",
        backward: "dL/dx = G at every element",
    },
    super::Rule {
        op: "sum_axis",
        forward: "y = Σ x along an axis",
        backward: "dL/dx = G copied along the axis",
    },
    super::Rule {
        op: "max_axis",
        forward: "y = max x along an axis",
        backward: "dL/dx = G at the maximum, 0 elsewhere",
    },
];

impl<T: Float> Tensor<T> {
    /// The sum of all elements, as a scalar (shape `[]`).
    pub fn sum(&self) -> Tensor<T> {
        let total = reduce::sum_slice(&self.data());
        // d/dxᵢ Σ x = 1: every element receives the output's gradient
        Tensor::from_op(
            crate::device::buffer::filled(1, total),
            &[],
            "sum",
            &[self],
            |ctx| vec![Some(ctx.grad_output.broadcast_to(ctx.input(0).shape()))],
        )
    }

    /// Sum along one axis, keeping it with size 1.
    fn sum_axis_keepdim(&self, axis: usize) -> Tensor<T> {
        let (outer, len, inner) = shape::split_at_axis(self.shape(), axis);
        let values = reduce::sum_axis(&self.data(), outer, len, inner);
        let mut out_shape = self.shape().to_vec();
        out_shape[axis] = 1;
        // d/dxₖ Σₖ x = 1: the gradient is copied back along the summed axis
        Tensor::from_op(values, &out_shape, "sum_axis", &[self], |ctx| {
            vec![Some(ctx.grad_output.broadcast_to(ctx.input(0).shape()))]
        })
    }

    /// The sum over the given axes (negative axes count from the end); with
    /// `keepdim` the reduced axes stay with size 1.
    ///
    /// ```
    /// let x = nabla::Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    /// assert_eq!(x.sum_axes(&[1], false).to_vec(), vec![6.0, 15.0]);
    /// assert_eq!(x.sum_axes(&[0], true).shape(), &[1, 3]);
    /// ```
    pub fn sum_axes(&self, axes: &[isize], keepdim: bool) -> Tensor<T> {
        let axes = self.normalize_axes(axes, "sum_axes");
        let mut out = self.clone();
        for &axis in &axes {
            out = out.sum_axis_keepdim(axis);
        }
        if keepdim {
            out
        } else {
            out.reshape(&drop_axes(self.shape(), &axes))
        }
    }

    /// The mean of all elements, as a scalar.
    pub fn mean(&self) -> Tensor<T> {
        self.sum() / T::cast(self.numel() as f64)
    }

    /// The mean over the given axes.
    pub fn mean_axes(&self, axes: &[isize], keepdim: bool) -> Tensor<T> {
        let count: usize = self
            .normalize_axes(axes, "mean_axes")
            .iter()
            .map(|&axis| self.shape()[axis])
            .product();
        self.sum_axes(axes, keepdim) / T::cast(count as f64)
    }

    /// The maximum along one axis, keeping it with size 1.
    fn max_axis_keepdim(&self, axis: usize) -> Tensor<T> {
        let (outer, len, inner) = shape::split_at_axis(self.shape(), axis);
        assert!(
            len > 0,
            "max: cannot reduce an empty axis of shape {:?}",
            self.shape()
        );
        let (values, arg_max) = reduce::max_axis(&self.data(), outer, len, inner);
        let arg_max = crate::device::buffer::Recycled::new(arg_max);
        let mut out_shape = self.shape().to_vec();
        out_shape[axis] = 1;
        // d max/dxₖ = 1 for the (first) arg-max k, 0 for the others
        Tensor::from_op(values, &out_shape, "max_axis", &[self], move |ctx| {
            let input_shape = ctx.input(0).shape();
            let grad = reduce::max_axis_backward(&ctx.grad_output.data(), &arg_max, len, inner);
            vec![Some(Tensor::from_vec(grad, input_shape))]
        })
    }

    /// The largest element, as a scalar; its gradient goes to the (first) arg-max.
    pub fn max(&self) -> Tensor<T> {
        self.reshape(&[self.numel()])
            .max_axis_keepdim(0)
            .reshape(&[])
    }

    /// The maximum over the given axes.
    pub fn max_axes(&self, axes: &[isize], keepdim: bool) -> Tensor<T> {
        let axes = self.normalize_axes(axes, "max_axes");
        let kept: Vec<usize> = (0..self.ndim()).filter(|a| !axes.contains(a)).collect();
        let reduced = if let [axis] = axes[..] {
            self.max_axis_keepdim(axis)
        } else {
            // Move the reduced axes to the end and flatten them into one.
            let order: Vec<usize> = kept.iter().chain(&axes).copied().collect();
            let mut flat_shape: Vec<usize> = kept.iter().map(|&a| self.shape()[a]).collect();
            flat_shape.push(axes.iter().map(|&a| self.shape()[a]).product());
            self.permute(&order)
                .reshape(&flat_shape)
                .max_axis_keepdim(kept.len())
        };
        let out_shape = if keepdim {
            let mut shape = self.shape().to_vec();
            axes.iter().for_each(|&a| shape[a] = 1);
            shape
        } else {
            drop_axes(self.shape(), &axes)
        };
        reduced.reshape(&out_shape)
    }

    /// The smallest element, as a scalar.
    pub fn min(&self) -> Tensor<T> {
        // min(x) = −max(−x)
        -(-self).max()
    }

    /// The minimum over the given axes.
    pub fn min_axes(&self, axes: &[isize], keepdim: bool) -> Tensor<T> {
        -(-self).max_axes(axes, keepdim)
    }

    /// The variance of all elements with Bessel's `correction` (1 for the unbiased
    /// estimate, as PyTorch's default; 0 for the population variance).
    pub fn var(&self, correction: usize) -> Tensor<T> {
        let all: Vec<isize> = (0..self.ndim() as isize).collect();
        self.var_axes(&all, correction, false)
    }

    /// The variance over the given axes: `Σ (x − mean)² / (n − correction)`.
    pub fn var_axes(&self, axes: &[isize], correction: usize, keepdim: bool) -> Tensor<T> {
        let count: usize = self
            .normalize_axes(axes, "var_axes")
            .iter()
            .map(|&axis| self.shape()[axis])
            .product();
        let centered = self - &self.mean_axes(axes, true);
        let squares = centered.square().sum_axes(axes, keepdim);
        squares / T::cast(count.saturating_sub(correction) as f64)
    }

    /// `log Σ exp(x)` along an axis, computed as `m + log Σ exp(x − m)` with `m` the
    /// maximum so it cannot overflow.
    pub fn logsumexp(&self, axis: isize, keepdim: bool) -> Tensor<T> {
        let shift = self.max_axes(&[axis], true).detach();
        let out = (self - &shift).exp().sum_axes(&[axis], true).log() + shift;
        if keepdim {
            out
        } else {
            let axis = shape::normalize_axis(axis, self.ndim(), "logsumexp");
            out.reshape(&drop_axes(self.shape(), &[axis]))
        }
    }

    /// The index of the largest element along `axis` for every position of the
    /// other axes (no gradient) — the predicted class of each row of logits.
    pub fn argmax(&self, axis: isize) -> Vec<usize> {
        let axis = shape::normalize_axis(axis, self.ndim(), "argmax");
        let (outer, len, inner) = shape::split_at_axis(self.shape(), axis);
        reduce::max_axis(&self.data(), outer, len, inner).1
    }

    /// Sums a broadcast result back down to `target` (a shape this tensor's shape is
    /// a broadcast of) — the backward of broadcasting.
    pub fn sum_to(&self, target: &[usize]) -> Tensor<T> {
        if self.shape() == target {
            return self.clone();
        }
        let extra = self.ndim().checked_sub(target.len()).filter(|_| {
            shape::broadcast_shapes(self.shape(), target).as_deref() == Some(self.shape())
        });
        let Some(extra) = extra else {
            panic!(
                "sum_to: shape {:?} is not a broadcast of shape {target:?}",
                self.shape()
            );
        };
        let axes: Vec<isize> = (0..self.ndim())
            .filter(|&axis| axis < extra || (target[axis - extra] == 1 && self.shape()[axis] != 1))
            .map(|axis| axis as isize)
            .collect();
        self.sum_axes(&axes, true).reshape(target)
    }

    /// Sorted, de-duplicated, non-negative axes; panics naming `op` if one is out of range.
    pub(crate) fn normalize_axes(&self, axes: &[isize], op: &str) -> Vec<usize> {
        let mut out: Vec<usize> = axes
            .iter()
            .map(|&axis| shape::normalize_axis(axis, self.ndim(), op))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// `shape` without the given axes.
fn drop_axes(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .filter(|(axis, _)| !axes.contains(axis))
        .map(|(_, &size)| size)
        .collect()
}
