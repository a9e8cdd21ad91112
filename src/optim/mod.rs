//! Optimizers: how each weight moves against its gradient. Update rules are
//! PyTorch's, step for step, so the same gradients give the same weights.
//!
//! An optimizer holds the parameters by name (the model's `named_parameters`) and
//! keeps its per-parameter state under those names, so it can be checkpointed and
//! training resumed exactly.

mod adagrad;
mod adam;
mod rmsprop;
pub mod schedule;
mod sgd;

pub use adagrad::Adagrad;
pub use adam::{Adam, AdamW};
pub use rmsprop::RmsProp;
pub use schedule::{ReduceLrOnPlateau, Schedule};
pub use sgd::Sgd;

use crate::element::Float;
use crate::tensor::Tensor;

/// A parameter update rule.
pub trait Optimizer<T: Float = f32> {
    /// Moves every parameter that has a gradient one step.
    fn step(&mut self);

    /// The learning rate of the next step.
    fn lr(&self) -> f64;

    /// Changes the learning rate (what schedules do).
    fn set_lr(&mut self, lr: f64);

    /// The parameters, by name.
    fn params(&self) -> &[(String, Tensor<T>)];

    /// The optimizer's state (momentum buffers, moment estimates, step counts) as
    /// named tensors: `"<param>.<buffer>"`. Empty buffers (not yet created) are left out.
    fn state(&self) -> Vec<(String, Tensor<T>)>;

    /// Restores state saved by [`Optimizer::state`]; names it does not know are errors.
    fn load_state(&mut self, state: &[(String, Tensor<T>)]) -> crate::Result<()>;

    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        for (_, p) in self.params() {
            p.zero_grad();
        }
    }
}

/// Per-parameter buffers (one optional vector per parameter, created on first use),
/// saved and restored under `"<param>.<name>"`.
#[derive(Clone, Debug)]
pub(crate) struct Buffers<T> {
    pub name: &'static str,
    pub values: Vec<Option<Vec<T>>>,
}

impl<T: Float> Buffers<T> {
    pub fn new(name: &'static str, count: usize) -> Self {
        Buffers {
            name,
            values: vec![None; count],
        }
    }

    pub fn export(&self, params: &[(String, Tensor<T>)], out: &mut Vec<(String, Tensor<T>)>) {
        for ((param_name, param), values) in params.iter().zip(&self.values) {
            if let Some(values) = values {
                out.push((
                    format!("{param_name}.{}", self.name),
                    Tensor::from_vec(values.clone(), param.shape()),
                ));
            }
        }
    }

    /// Takes the entry named `"<param>.<self.name>"` if there is one; `Ok(true)` if taken.
    pub fn import(
        &mut self,
        params: &[(String, Tensor<T>)],
        key: &str,
        value: &Tensor<T>,
    ) -> crate::Result<bool> {
        for (index, (param_name, param)) in params.iter().enumerate() {
            if key
                .strip_prefix(param_name.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
                == Some(self.name)
            {
                if value.shape() != param.shape() {
                    return Err(crate::Error::Shape(format!(
                        "optimizer state `{key}` has shape {:?}, but parameter `{param_name}` has shape {:?}",
                        value.shape(),
                        param.shape()
                    )));
                }
                self.values[index] = Some(value.to_vec());
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Per-parameter step counts, saved as `"<param>.step"` (a scalar).
pub(crate) fn export_steps<T: Float>(
    params: &[(String, Tensor<T>)],
    steps: &[u64],
    out: &mut Vec<(String, Tensor<T>)>,
) {
    for ((name, _), &step) in params.iter().zip(steps) {
        if step > 0 {
            out.push((format!("{name}.step"), Tensor::scalar(T::cast(step as f64))));
        }
    }
}

pub(crate) fn import_step<T: Float>(
    params: &[(String, Tensor<T>)],
    steps: &mut [u64],
    key: &str,
    value: &Tensor<T>,
) -> bool {
    for (index, (name, _)) in params.iter().enumerate() {
        if key.strip_prefix(name.as_str()) == Some(".step") {
            steps[index] = value.item().as_f64() as u64;
            return true;
        }
    }
    false
}

pub(crate) fn unknown_state(key: &str) -> crate::Error {
    crate::Error::Shape(format!(
        "optimizer state `{key}` does not belong to any parameter of this optimizer"
    ))
}

/// Rescales all gradients together so their global L2 norm is at most `max_norm`
/// (PyTorch's `clip_grad_norm_`); returns the norm before clipping.
pub fn clip_grad_norm<T: Float>(params: &[Tensor<T>], max_norm: f64) -> f64 {
    let grads: Vec<Tensor<T>> = params.iter().filter_map(Tensor::grad).collect();
    let total = grads
        .iter()
        .map(|g| {
            g.data()
                .iter()
                .map(|v| v.as_f64() * v.as_f64())
                .sum::<f64>()
        })
        .sum::<f64>()
        .sqrt();
    let scale = (max_norm / (total + 1e-6)).min(1.0);
    if scale < 1.0 {
        for g in &grads {
            let factor = T::cast(scale);
            g.update_data(|values| values.iter_mut().for_each(|v| *v *= factor));
        }
    }
    total
}

/// Clamps every gradient element to `[−clip, clip]` (PyTorch's `clip_grad_value_`).
pub fn clip_grad_value<T: Float>(params: &[Tensor<T>], clip: f64) {
    let clip = T::cast(clip);
    for g in params.iter().filter_map(Tensor::grad) {
        g.update_data(|values| values.iter_mut().for_each(|v| *v = v.max(-clip).min(clip)));
    }
}

/// Calls `update(index, weights, grad)` for every parameter that has a gradient.
pub(crate) fn for_each_with_grad<T: Float>(
    params: &[(String, Tensor<T>)],
    mut update: impl FnMut(usize, &mut [T], &[T]),
) {
    for (index, (_, param)) in params.iter().enumerate() {
        let Some(grad) = param.grad() else { continue };
        let grad = grad.data();
        param.update_data(|weights| update(index, weights, &grad));
    }
}
