//! The `Tensor` handle: storage, shape, and (when it takes part in a graph) the op
//! that made it. Creation, queries and in-place updates live here; the ops live in
//! `crate::ops`, the graph walk in `crate::autograd`.

mod display;
/// Shape arithmetic (sizes, strides, broadcasting), shared with the kernels.
pub use crate::cpu::shape;
pub mod storage;

use std::cell::{Cell, Ref, RefCell};
use std::rc::Rc;

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

use crate::autograd::Node;
use storage::{SharedStorage, Storage};

/// A tensor's axis sizes, stored inline up to four axes.
pub(crate) type Shape = smallvec::SmallVec<[usize; 4]>;
use crate::element::Float;

/// An n-dimensional, row-major array of `f32` (the default) or `f64` that records the
/// operations applied to it, so gradients can flow back through them.
///
/// `Tensor` is a cheap handle: `clone()` copies a pointer, not the data. Like PyTorch
/// the graph is built as the forward pass runs (define-by-run) and freed by
/// [`Tensor::backward`].
///
/// ```
/// use nabla::Tensor;
/// let w = Tensor::from_vec(vec![2.0, -1.0], &[2]).requires_grad(true);
/// let x = Tensor::from_vec(vec![3.0, 4.0], &[2]);
/// let y = (&w * &x).sum(); // y = 2·3 − 1·4 = 2
/// y.backward();
/// assert_eq!(y.item(), 2.0);
/// assert_eq!(w.grad().unwrap().to_vec(), vec![3.0, 4.0]); // dy/dw = x
/// ```
///
/// A `Tensor` lives on the thread that made it (its handle is reference-counted
/// without atomics, which keeps recording an op cheap); kernels use every thread.
pub struct Tensor<T: Float = f32> {
    pub(crate) inner: Rc<TensorInner<T>>,
}

pub(crate) struct TensorInner<T: Float> {
    /// Shared by views that only change the shape (`reshape`, `detach`).
    pub(crate) storage: SharedStorage<T>,
    /// Inline for up to 4 axes: most tensors' shapes cost no allocation.
    pub(crate) shape: Shape,
    /// Whether gradients flow to or through this tensor.
    pub(crate) requires_grad: Cell<bool>,
    /// `None` for leaves, and for op outputs once backward has freed the graph.
    pub(crate) node: RefCell<Option<Node<T>>>,
    pub(crate) is_leaf: bool,
    pub(crate) retains_grad: Cell<bool>,
    pub(crate) grad: RefCell<Option<Tensor<T>>>,
    /// Bookkeeping for the graph walk: the walk that last visited this tensor, and
    /// its position in that walk's order (no hash map needed).
    pub(crate) visit_stamp: Cell<u64>,
    pub(crate) topo_index: Cell<usize>,
}

impl<T: Float> Drop for TensorInner<T> {
    /// The last tensor using a buffer gives it back to the pool for the next step's
    /// tensors of the same size (see [`crate::cpu::buffer`]).
    fn drop(&mut self) {
        if let Some(storage) = Rc::get_mut(&mut self.storage) {
            storage.get_mut().release();
        }
    }
}

impl<T: Float> Clone for Tensor<T> {
    fn clone(&self) -> Self {
        Tensor {
            inner: Rc::clone(&self.inner),
        }
    }
}

impl<T: Float> Tensor<T> {
    pub(crate) fn build(
        storage: SharedStorage<T>,
        shape: &[usize],
        requires_grad: bool,
        node: Option<Node<T>>,
    ) -> Self {
        Tensor {
            inner: Rc::new(TensorInner {
                storage,
                shape: Shape::from_slice(shape),
                requires_grad: Cell::new(requires_grad),
                is_leaf: node.is_none(),
                node: RefCell::new(node),
                retains_grad: Cell::new(false),
                grad: RefCell::new(None),
                visit_stamp: Cell::new(0),
                topo_index: Cell::new(0),
            }),
        }
    }

    // ---------------------------------------------------------------- creation

    /// A tensor holding `data` in row-major order with the given shape.
    ///
    /// Panics if `data.len()` is not the product of `shape`; [`Tensor::try_from_vec`]
    /// returns an error instead.
    pub fn from_vec(data: Vec<T>, shape: &[usize]) -> Self {
        Self::try_from_vec(data, shape).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Like [`Tensor::from_vec`], but returns an error when the sizes disagree.
    pub fn try_from_vec(data: Vec<T>, shape: &[usize]) -> crate::Result<Self> {
        let expected = shape::numel(shape);
        if data.len() != expected {
            return Err(crate::Error::Shape(format!(
                "from_vec: shape {shape:?} needs {expected} elements, but the data has {}",
                data.len()
            )));
        }
        Ok(Self::build(Storage::shared(data), shape, false, None))
    }

    /// A 0-dimensional tensor (shape `[]`) holding one value.
    pub fn scalar(value: T) -> Self {
        Self::from_vec(crate::cpu::buffer::filled(1, value), &[])
    }

    /// A tensor of the given shape with every element equal to `value`.
    pub fn full(shape: &[usize], value: T) -> Self {
        Self::from_vec(
            crate::cpu::buffer::filled(shape::numel(shape), value),
            shape,
        )
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, T::zero())
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize]) -> Self {
        Self::full(shape, T::one())
    }

    /// Zeros with this tensor's shape.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.shape())
    }

    /// Ones with this tensor's shape.
    pub fn ones_like(&self) -> Self {
        Self::ones(self.shape())
    }

    /// The 1-D tensor `[start, start + step, …]` up to but excluding `end`.
    ///
    /// ```
    /// let t = nabla::Tensor::<f32>::arange(0.0, 1.0, 0.25);
    /// assert_eq!(t.to_vec(), vec![0.0, 0.25, 0.5, 0.75]);
    /// ```
    pub fn arange(start: f64, end: f64, step: f64) -> Self {
        assert!(
            step != 0.0 && step.is_finite(),
            "arange: step must be finite and non-zero, got {step}"
        );
        let count = ((end - start) / step).ceil().max(0.0) as usize;
        let data = (0..count)
            .map(|i| T::cast(start + i as f64 * step))
            .collect::<Vec<_>>();
        Self::from_vec(data, &[count])
    }

    /// Uniform random values in `[low, high)` from a seeded generator
    /// (see [`crate::rng`]).
    pub fn rand_uniform(shape: &[usize], low: f64, high: f64, rng: &mut impl Rng) -> Self {
        let data = (0..shape::numel(shape))
            .map(|_| T::cast(low + (high - low) * rng.random::<f64>()))
            .collect();
        Self::from_vec(data, shape)
    }

    /// Normally distributed random values with the given mean and standard deviation
    /// from a seeded generator (see [`crate::rng`]).
    pub fn randn(shape: &[usize], mean: f64, std: f64, rng: &mut impl Rng) -> Self {
        let data = (0..shape::numel(shape))
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                T::cast(mean + std * z)
            })
            .collect();
        Self::from_vec(data, shape)
    }

    /// One-hot rows: `labels[i]` becomes row `i` with a 1 in column `labels[i]`.
    /// Panics if a label is not below `classes`.
    pub fn one_hot(labels: &[usize], classes: usize) -> Self {
        let mut data = vec![T::zero(); labels.len() * classes];
        for (row, &label) in labels.iter().enumerate() {
            assert!(
                label < classes,
                "one_hot: label {label} at position {row} is not below the class count {classes}"
            );
            data[row * classes + label] = T::one();
        }
        Self::from_vec(data, &[labels.len(), classes])
    }

    // ----------------------------------------------------------------- queries

    /// The size of each axis.
    pub fn shape(&self) -> &[usize] {
        &self.inner.shape
    }

    /// The number of axes (0 for a scalar).
    pub fn ndim(&self) -> usize {
        self.inner.shape.len()
    }

    /// The total number of elements.
    pub fn numel(&self) -> usize {
        shape::numel(&self.inner.shape)
    }

    /// The size of one axis; negative axes count from the end.
    pub fn dim(&self, axis: isize) -> usize {
        self.inner.shape[shape::normalize_axis(axis, self.ndim(), "dim")]
    }

    /// The device the values live on.
    pub fn device(&self) -> storage::Device {
        self.inner.storage.borrow().device()
    }

    /// The tensor on `device`: itself when it is already there (the only device
    /// today is the CPU; a GPU backend copies across here).
    pub fn to(&self, device: storage::Device) -> Tensor<T> {
        match device {
            storage::Device::Cpu => self.clone(),
        }
    }

    /// Borrows the elements in row-major order.
    pub fn data(&self) -> Ref<'_, [T]> {
        Ref::map(self.inner.storage.borrow(), Storage::as_slice)
    }

    /// Copies the elements out in row-major order.
    pub fn to_vec(&self) -> Vec<T> {
        self.data().to_vec()
    }

    /// The value of a one-element tensor. Panics for any other size.
    pub fn item(&self) -> T {
        assert_eq!(
            self.numel(),
            1,
            "item: the tensor has shape {:?}, not a single element",
            self.shape()
        );
        self.data()[0]
    }

    /// Whether gradients flow to or through this tensor.
    pub fn tracks_grad(&self) -> bool {
        self.inner.requires_grad.get()
    }

    /// Whether this tensor was created by the user rather than by an op.
    pub fn is_leaf(&self) -> bool {
        self.inner.is_leaf
    }

    /// Asks backward to store a gradient in this tensor (a leaf: a parameter).
    /// Panics for tensors made by an op: gradients of those are intermediate values
    /// (use [`Tensor::retain_grad`] to keep them).
    pub fn requires_grad(self, on: bool) -> Self {
        self.set_requires_grad(on);
        self
    }

    /// In-place form of [`Tensor::requires_grad`]: freezes or unfreezes a parameter.
    pub fn set_requires_grad(&self, on: bool) {
        assert!(
            self.is_leaf(),
            "requires_grad can only be set on leaf tensors (ones created by the user); \
             this tensor of shape {:?} was made by an op — detach() it first",
            self.shape()
        );
        self.inner.requires_grad.set(on);
    }

    /// The gradient accumulated by backward, if any.
    pub fn grad(&self) -> Option<Tensor<T>> {
        self.inner.grad.borrow().clone()
    }

    /// Forgets the accumulated gradient (PyTorch's `zero_grad(set_to_none=True)`):
    /// the next backward moves its gradient in instead of adding to zeros.
    pub fn zero_grad(&self) {
        self.inner.grad.borrow_mut().take();
    }

    /// Replaces the accumulated gradient (data-parallel training writes the sum over
    /// all ranks here). Panics if `grad`'s shape is not this tensor's.
    pub fn set_grad(&self, grad: Tensor<T>) {
        assert_eq!(
            grad.shape(),
            self.shape(),
            "set_grad: a gradient of shape {:?} for a tensor of shape {:?}",
            grad.shape(),
            self.shape()
        );
        *self.inner.grad.borrow_mut() = Some(grad.detach());
    }

    /// Keeps the gradient of this intermediate tensor after backward, readable
    /// with [`Tensor::grad`] (for inspection, as in `nabla explain`).
    pub fn retain_grad(&self) {
        self.inner.retains_grad.set(true);
    }

    /// The same values, cut off from the graph: no gradient flows through.
    /// Shares storage with `self`.
    pub fn detach(&self) -> Tensor<T> {
        Self::build(
            Rc::clone(&self.inner.storage),
            &self.inner.shape,
            false,
            None,
        )
    }

    /// The inputs of the op that made this tensor (empty for leaves and after
    /// backward) — for walking and drawing the graph.
    pub fn graph_inputs(&self) -> Vec<Tensor<T>> {
        self.inner
            .node
            .borrow()
            .as_ref()
            .map(|node| node.inputs.to_vec())
            .unwrap_or_default()
    }

    /// A number identifying this tensor while it lives (for graph drawings).
    pub fn id(&self) -> usize {
        Rc::as_ptr(&self.inner) as usize
    }

    /// The name of the op that made this tensor (`None` for leaves and after backward).
    pub fn op_name(&self) -> Option<&'static str> {
        self.inner.node.borrow().as_ref().map(|node| node.name)
    }

    // --------------------------------------------------------- in-place updates

    /// Changes the values in place, outside the graph — how optimizers update
    /// parameters. Views sharing the storage see the change.
    ///
    /// Panics if the data is currently borrowed (for instance by a live `data()` guard).
    pub fn update_data(&self, update: impl FnOnce(&mut [T])) {
        let mut storage = self.inner.storage.borrow_mut();
        update(storage.as_mut_slice());
    }

    /// Replaces the values with `values` (same length), outside the graph.
    pub fn copy_from_slice(&self, values: &[T]) {
        assert_eq!(
            values.len(),
            self.numel(),
            "copy_from_slice: {} values given for a tensor of shape {:?}",
            values.len(),
            self.shape()
        );
        self.update_data(|data| data.copy_from_slice(values));
    }

    /// Exchanges the values with `values` (the same length), outside the graph: how
    /// data-parallel training lends a gradient's memory to the all-reduce and takes
    /// the sums back without copying either. Views sharing the storage see the change.
    ///
    /// Panics if the lengths differ or the data is currently borrowed.
    pub(crate) fn swap_data(&self, values: &mut Vec<T>) {
        assert_eq!(
            values.len(),
            self.numel(),
            "swap_data: {} values for a tensor of shape {:?}",
            values.len(),
            self.shape()
        );
        match &mut *self.inner.storage.borrow_mut() {
            Storage::Cpu(own) => std::mem::swap(own, values),
        }
    }

    /// Whether no other tensor shares these values (views and detached copies
    /// count; more handles to this same tensor do not).
    pub(crate) fn owns_storage(&self) -> bool {
        Rc::strong_count(&self.inner.storage) == 1
    }

    /// Whether this handle is the only owner of its values, so they may be
    /// changed in place without anyone noticing.
    pub(crate) fn is_unique(&self) -> bool {
        Rc::strong_count(&self.inner) == 1 && Rc::strong_count(&self.inner.storage) == 1
    }

    /// Converts to another element type (no gradient flows across).
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        let data = self.data().iter().map(|&v| U::cast(v.as_f64())).collect();
        Tensor::from_vec(data, self.shape())
    }
}

/// A seeded random generator for reproducible initialisation and shuffling.
///
/// ```
/// use nabla::Tensor;
/// let a = Tensor::<f32>::randn(&[3], 0.0, 1.0, &mut nabla::rng(7));
/// let b = Tensor::<f32>::randn(&[3], 0.0, 1.0, &mut nabla::rng(7));
/// assert_eq!(a.to_vec(), b.to_vec());
/// ```
pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(seed)
}
