//! The graph walk: reverse-mode automatic differentiation.
//!
//! Every op records a `Node`: its inputs and a closure that turns the gradient of
//! the loss with respect to the op's output into gradients with respect to its
//! inputs (a vector–Jacobian product). `backward` visits the nodes once, outputs
//! before inputs, and adds up the gradients of tensors used more than once. This
//! file knows nothing about any particular op.

use std::cell::Cell;

use crate::element::Float;
use crate::tensor::Tensor;
use crate::tensor::storage::{SharedStorage, Storage};

/// What a backward rule sees: the gradient flowing in from above, the op's output
/// and its inputs.
pub struct BackwardCtx<'a, T: Float> {
    /// dL/d(output), same shape as the output.
    pub grad_output: &'a Tensor<T>,
    /// The op's forward result (handy where the derivative is cheaper from it:
    /// sigmoid' = s·(1 − s), exp' = exp).
    pub output: &'a Tensor<T>,
    /// The op's inputs, in the order the op received them.
    pub inputs: &'a [Tensor<T>],
}

impl<T: Float> BackwardCtx<'_, T> {
    /// The `index`-th input.
    pub fn input(&self, index: usize) -> &Tensor<T> {
        &self.inputs[index]
    }

    /// Whether the `index`-th input wants a gradient: costly rules (matmul, conv)
    /// skip the ones nobody needs, such as the gradient with respect to the data.
    pub fn needs_grad(&self, index: usize) -> bool {
        self.inputs[index].tracks_grad()
    }
}

/// Gradients with respect to each input, in input order; `None` where none flows.
pub type InputGrads<T> = Vec<Option<Tensor<T>>>;

type BackwardFn<T> = Box<dyn Fn(&BackwardCtx<'_, T>) -> InputGrads<T>>;

/// How a tensor was made: the op's name, its inputs and its backward rule.
pub(crate) struct Node<T: Float> {
    pub(crate) name: &'static str,
    /// Inline for up to three inputs (every built-in op but concat).
    pub(crate) inputs: smallvec::SmallVec<[Tensor<T>; 3]>,
    backward: BackwardFn<T>,
}

impl<T: Float> Node<T> {
    fn new(
        name: &'static str,
        inputs: smallvec::SmallVec<[Tensor<T>; 3]>,
        backward: BackwardFn<T>,
    ) -> Self {
        LIVE_NODES.with(|count| count.set(count.get() + 1));
        Node {
            name,
            inputs,
            backward,
        }
    }
}

impl<T: Float> Drop for Node<T> {
    fn drop(&mut self) {
        LIVE_NODES.with(|count| count.set(count.get() - 1));
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    static LIVE_NODES: Cell<usize> = const { Cell::new(0) };
    static WALK_STAMP: Cell<u64> = const { Cell::new(0) };
}

/// The number of graph nodes alive on this thread: it returns to where it was after
/// each backward, which is how tests check that a training loop does not leak.
pub fn live_nodes() -> usize {
    LIVE_NODES.with(Cell::get)
}

/// Whether ops record the graph on this thread (true unless inside [`no_grad`]).
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Turns graph recording off until the returned guard is dropped — for evaluation
/// and for optimizer updates, which need no gradients.
///
/// ```
/// let w = nabla::Tensor::<f32>::ones(&[2]).requires_grad(true);
/// let y = {
///     let _guard = nabla::no_grad();
///     &w * 3.0
/// };
/// assert!(!y.tracks_grad());
/// ```
#[must_use = "recording resumes as soon as the guard is dropped"]
pub fn no_grad() -> NoGradGuard {
    let was_enabled = GRAD_ENABLED.with(|enabled| enabled.replace(false));
    NoGradGuard { was_enabled }
}

/// Restores graph recording when dropped; see [`no_grad`].
pub struct NoGradGuard {
    was_enabled: bool,
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|enabled| enabled.set(self.was_enabled));
    }
}

impl<T: Float> Tensor<T> {
    /// Makes the output of an op: its values, and — if any input tracks gradients and
    /// recording is on — the node that lets backward reach the inputs.
    ///
    /// This is how every op in nabla is written, and how you add your own:
    ///
    /// ```
    /// use nabla::Tensor;
    /// // cube(x) = x³;  d/dx x³ = 3x²
    /// fn cube(x: &Tensor<f64>) -> Tensor<f64> {
    ///     let values = x.data().iter().map(|v| v * v * v).collect();
    ///     Tensor::from_op(values, x.shape(), "cube", &[x], |ctx| {
    ///         let x = ctx.input(0);
    ///         vec![Some(ctx.grad_output * &(x * x * 3.0))]
    ///     })
    /// }
    /// let x = Tensor::from_vec(vec![2.0], &[1]).requires_grad(true);
    /// cube(&x).sum().backward();
    /// assert_eq!(x.grad().unwrap().to_vec(), vec![12.0]);
    /// ```
    pub fn from_op(
        values: Vec<T>,
        shape: &[usize],
        name: &'static str,
        inputs: &[&Tensor<T>],
        backward: impl Fn(&BackwardCtx<'_, T>) -> InputGrads<T> + 'static,
    ) -> Tensor<T> {
        assert_eq!(
            values.len(),
            crate::tensor::shape::numel(shape),
            "bug in op `{name}`: {} values for shape {shape:?}",
            values.len()
        );
        Tensor::view_op(Storage::shared(values), shape, name, inputs, backward)
    }

    /// Like [`Tensor::from_op`], but the output shares `storage` (a view such as
    /// reshape, which moves no data).
    pub(crate) fn view_op(
        storage: SharedStorage<T>,
        shape: &[usize],
        name: &'static str,
        inputs: &[&Tensor<T>],
        backward: impl Fn(&BackwardCtx<'_, T>) -> InputGrads<T> + 'static,
    ) -> Tensor<T> {
        let tracks = is_grad_enabled() && inputs.iter().any(|input| input.tracks_grad());
        let node = tracks.then(|| {
            let inputs = inputs.iter().map(|&input| input.clone()).collect();
            Node::new(name, inputs, Box::new(backward))
        });
        Tensor::build(storage, shape, tracks, node)
    }

    /// Backpropagates from this scalar (a loss): afterwards every leaf that requires
    /// grad holds dL/dleaf in [`Tensor::grad`].
    ///
    /// Gradients *accumulate* into leaves across calls, as in PyTorch: clear them
    /// with `zero_grad` (or the optimizer's) before the next step. The graph is freed
    /// as the walk passes, so a second `backward` through the same graph panics.
    pub fn backward(&self) {
        assert_eq!(
            self.numel(),
            1,
            "backward() starts from a scalar loss, but this tensor has shape {:?}; \
             use backward_with(grad) to give dL/d(this tensor)",
            self.shape()
        );
        self.backward_with(Tensor::ones(self.shape()));
    }

    /// Backpropagates from a non-scalar tensor, given dL/d(self) as `grad`.
    pub fn backward_with(&self, grad: Tensor<T>) {
        self.backward_from(grad, &mut |_| {});
    }

    /// [`Tensor::backward`], calling `on_leaf_done` with each leaf as soon as its
    /// gradient is final — while the walk goes on to earlier layers. This is how
    /// data-parallel training starts sending the last layers' gradients before
    /// backward has reached the first ones.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let w1 = Tensor::from_vec(vec![2.0f64], &[1]).requires_grad(true);
    /// let w2 = Tensor::from_vec(vec![3.0f64], &[1]).requires_grad(true);
    /// let loss = (&w1 * 5.0).exp().mul(&w2).sum(); // w2 is used last, so it is done first
    /// let mut done = Vec::new();
    /// loss.backward_with_hook(&mut |leaf| done.push(leaf.id()));
    /// assert_eq!(done, [w2.id(), w1.id()]);
    /// ```
    pub fn backward_with_hook(&self, on_leaf_done: &mut dyn FnMut(&Tensor<T>)) {
        assert_eq!(
            self.numel(),
            1,
            "backward() starts from a scalar loss, but this tensor has shape {:?}",
            self.shape()
        );
        self.backward_from(Tensor::ones(self.shape()), on_leaf_done);
    }

    fn backward_from(&self, grad: Tensor<T>, on_leaf_done: &mut dyn FnMut(&Tensor<T>)) {
        assert_eq!(
            grad.shape(),
            self.shape(),
            "backward_with: the gradient has shape {:?} but the tensor has shape {:?}",
            grad.shape(),
            self.shape()
        );
        assert!(
            self.tracks_grad(),
            "backward: this tensor does not require grad — no input of the computation \
             was created with requires_grad(true), or it ran under no_grad()"
        );
        let order = topological_order(self);
        let mut grads: Vec<Option<Tensor<T>>> = vec![None; order.len()];
        grads[order.len() - 1] = Some(grad);
        let _no_grad = no_grad(); // backward rules are not themselves recorded
        for (index, tensor) in order.iter().enumerate().rev() {
            let node = tensor.inner.node.borrow_mut().take();
            let Some(grad_output) = grads[index].take() else {
                continue;
            };
            if tensor.is_leaf() {
                // moved, not cloned: the hook finds the gradient's memory unshared
                // unless another gradient really aliases it
                accumulate_into_leaf(tensor, grad_output);
                // every use of a tensor comes after it in `order`, so its gradient is complete here
                on_leaf_done(tensor);
                continue;
            }
            if tensor.inner.retains_grad.get() {
                accumulate_into_leaf(tensor, grad_output.clone());
            }
            let Some(node) = node else {
                panic!(
                    "backward: the graph through this tensor (shape {:?}) was already \
                     freed by an earlier backward()",
                    tensor.shape()
                );
            };
            let ctx = BackwardCtx {
                grad_output: &grad_output,
                output: tensor,
                inputs: &node.inputs,
            };
            let input_grads = (node.backward)(&ctx);
            for (input, input_grad) in node.inputs.iter().zip(input_grads) {
                let Some(input_grad) = input_grad else {
                    continue;
                };
                if !input.tracks_grad() {
                    continue;
                }
                assert_eq!(
                    input_grad.shape(),
                    input.shape(),
                    "bug in the backward rule of `{}`: gradient shape {:?} for an input of shape {:?}",
                    node.name,
                    input_grad.shape(),
                    input.shape()
                );
                accumulate(&mut grads[input.inner.topo_index.get()], input_grad);
            }
        }
    }
}

/// Adds `contribution` into a gradient slot: the first contribution is moved in,
/// later ones are added — in place when nobody else holds the buffer.
fn accumulate<T: Float>(slot: &mut Option<Tensor<T>>, contribution: Tensor<T>) {
    *slot = Some(match slot.take() {
        None => contribution,
        Some(sum) if sum.is_unique() => {
            sum.update_data(|values| {
                for (value, &extra) in values.iter_mut().zip(contribution.data().iter()) {
                    *value += extra;
                }
            });
            sum
        }
        Some(sum) => &sum + &contribution,
    });
}

fn accumulate_into_leaf<T: Float>(leaf: &Tensor<T>, contribution: Tensor<T>) {
    // Detached, so the stored gradient never keeps a graph alive.
    let mut slot = leaf.inner.grad.borrow_mut();
    accumulate(&mut slot, contribution.detach());
}

/// The tensors that `root` depends on and that track gradients, each after all of
/// its inputs (so walking the list backwards visits outputs before inputs).
/// Iterative, so deep graphs cannot overflow the stack.
fn topological_order<T: Float>(root: &Tensor<T>) -> Vec<Tensor<T>> {
    let stamp = WALK_STAMP.with(|stamp| {
        stamp.set(stamp.get() + 1);
        stamp.get()
    });
    let mut order = Vec::new();
    // Each entry: a tensor and how many of its inputs have been pushed so far.
    let mut stack = vec![(root.clone(), 0usize)];
    root.inner.visit_stamp.set(stamp);
    while let Some((tensor, next_input)) = stack.last_mut() {
        let input = tensor
            .inner
            .node
            .borrow()
            .as_ref()
            .and_then(|node| node.inputs.get(*next_input).cloned());
        *next_input += 1;
        match input {
            Some(input) => {
                if input.tracks_grad() && input.inner.visit_stamp.get() != stamp {
                    input.inner.visit_stamp.set(stamp);
                    stack.push((input, 0));
                }
            }
            None => {
                let (done, _) = stack.pop().expect("stack is non-empty in this loop");
                done.inner.topo_index.set(order.len());
                order.push(done);
            }
        }
    }
    order
}

/// One tensor of a recorded graph, as [`graph_view`] lists it.
pub struct GraphNode<T: Float> {
    /// The tensor (values, shape, and its gradient once backward has run, for leaves
    /// and for tensors that `retain_grad`).
    pub tensor: Tensor<T>,
    /// The op that made it; `None` for leaves (inputs and parameters).
    pub op: Option<&'static str>,
    /// Its inputs, as positions in the view.
    pub inputs: Vec<usize>,
}

/// A read-only view of the graph that produced `root`: every tensor it depends on,
/// inputs before the ops that use them (root last), each with its op and inputs —
/// what `nabla explain` draws. Read it before `backward`, which frees the graph.
///
/// ```
/// use nabla::Tensor;
/// let x = Tensor::from_vec(vec![2.0f64], &[1]).requires_grad(true);
/// let y = (&x * &x).sum();
/// let view = nabla::autograd::graph_view(&y);
/// let ops: Vec<_> = view.iter().map(|node| node.op.unwrap_or("leaf")).collect();
/// assert_eq!(ops, ["leaf", "mul", "sum"]);
/// assert_eq!(view[1].inputs, [0, 0]); // x·x uses x twice
/// ```
pub fn graph_view<T: Float>(root: &Tensor<T>) -> Vec<GraphNode<T>> {
    let mut order: Vec<Tensor<T>> = Vec::new();
    // each tensor's position in `order`, once listed (a GPT window has thousands)
    let mut position = std::collections::HashMap::new();
    // iterative depth-first walk; a tensor is listed once all its inputs are
    let mut stack = vec![(root.clone(), false)];
    while let Some((tensor, inputs_done)) = stack.pop() {
        if position.contains_key(&tensor.id()) {
            continue;
        }
        if inputs_done {
            position.insert(tensor.id(), order.len());
            order.push(tensor);
            continue;
        }
        let inputs = tensor.graph_inputs();
        stack.push((tensor, true));
        stack.extend(inputs.into_iter().rev().map(|input| (input, false)));
    }
    order
        .iter()
        .map(|tensor| GraphNode {
            tensor: tensor.clone(),
            op: tensor.op_name(),
            inputs: tensor
                .graph_inputs()
                .iter()
                .filter_map(|input| position.get(&input.id()).copied())
                .collect(),
        })
        .collect()
}
