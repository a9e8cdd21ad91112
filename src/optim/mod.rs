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
mod state;

pub use adagrad::Adagrad;
pub use adam::{Adam, AdamW};
pub use rmsprop::RmsProp;
pub use schedule::{ReduceLrOnPlateau, Schedule};
pub use sgd::Sgd;
pub use state::ParamState;

use crate::element::Float;
use crate::tensor::Tensor;

/// A parameter update rule. An optimizer states its rule in [`Optimizer::step`];
/// everything else (parameters, learning rate, step counts, buffers, saving and
/// restoring) is the shared [`ParamState`] it lends out.
pub trait Optimizer<T: Float = f32> {
    /// Moves every parameter that has a gradient one step.
    fn step(&mut self);

    /// The parameters and the state kept for them.
    fn param_state(&self) -> &ParamState<T>;

    /// The same, to change.
    fn param_state_mut(&mut self) -> &mut ParamState<T>;

    /// The learning rate of the next step.
    fn lr(&self) -> f64 {
        self.param_state().lr()
    }

    /// Changes the learning rate (what schedules do).
    fn set_lr(&mut self, lr: f64) {
        self.param_state_mut().set_lr(lr);
    }

    /// The parameters, by name.
    fn params(&self) -> &[(String, Tensor<T>)] {
        self.param_state().params()
    }

    /// The optimizer's state (step counts, momentum buffers, moment estimates) as
    /// named tensors: `"<param>.<buffer>"`. Buffers not yet created are left out.
    fn state(&self) -> Vec<(String, Tensor<T>)> {
        self.param_state().export()
    }

    /// Restores state saved by [`Optimizer::state`]; names it does not know are errors.
    fn load_state(&mut self, state: &[(String, Tensor<T>)]) -> crate::Result<()> {
        self.param_state_mut().import(state)
    }

    /// The update rule in one line, with this optimizer's settings (`nabla explain`
    /// shows it beside the numbers of one step).
    fn rule(&self) -> String {
        "w ← w − η·dL/dw".into()
    }

    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        for (_, p) in self.params() {
            p.zero_grad();
        }
    }
}

/// A setting as a rule shows it: `0.1`, not `0.09999999999999998` (1 − 0.9), and
/// `1e-8` in scientific notation.
pub(crate) fn setting(value: f64) -> String {
    if value != 0.0 && value.abs() < 1e-3 {
        format!("{value:e}")
    } else {
        format!("{}", (value * 1e12).round() / 1e12)
    }
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
