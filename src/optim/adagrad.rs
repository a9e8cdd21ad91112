//! Adagrad: each weight's step shrinks with the sum of its squared gradients.

use super::{Optimizer, ParamState};
use crate::element::Float;
use crate::tensor::Tensor;

/// Adagrad, PyTorch's form (defaults lr 0.01, ε 1e-10):
///
/// ```text
/// g ← g + weight_decay·w
/// lrₜ = lr / (1 + (t − 1)·lr_decay)
/// s ← s + g²
/// w ← w − lrₜ · g / (√s + ε)
/// ```
pub struct Adagrad<T: Float = f32> {
    state: ParamState<T>,
    /// lrₜ = lr / (1 + (t − 1)·lr_decay).
    pub lr_decay: f64,
    /// Added to √s for stability.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// The starting value of the sum of squares.
    pub initial_accumulator_value: f64,
}

impl<T: Float> Adagrad<T> {
    /// Adagrad with no learning-rate decay and a zero initial accumulator.
    pub fn new(params: Vec<(String, Tensor<T>)>, lr: f64) -> Self {
        Adagrad {
            state: ParamState::new(params, lr, &["sum"]),
            lr_decay: 0.0,
            eps: 1e-10,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
        }
    }

    /// Sets the learning-rate decay.
    pub fn lr_decay(mut self, lr_decay: f64) -> Self {
        self.lr_decay = lr_decay;
        self
    }

    /// Sets L2 weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Sets the accumulator's starting value.
    pub fn initial_accumulator_value(mut self, value: f64) -> Self {
        self.initial_accumulator_value = value;
        self
    }
}

impl<T: Float> Optimizer<T> for Adagrad<T> {
    fn rule(&self) -> String {
        format!(
            "s ← s + g²; w ← w − η·g/(√s + {}) (g = dL/dw; η = {})",
            super::setting(self.eps),
            self.state.lr()
        )
    }

    fn step(&mut self) {
        let (lr, lr_decay) = (self.state.lr(), self.lr_decay);
        let (eps, decay) = (T::cast(self.eps), T::cast(self.weight_decay));
        let initial = T::cast(self.initial_accumulator_value);
        self.state.update(["sum"], initial, |t, _| {
            // scalars in f64, as PyTorch computes them in Python
            let step_lr = T::cast(lr / (1.0 + (t - 1) as f64 * lr_decay));
            move |w: &mut T, [sum]: &mut [T; 1], g: T| {
                let g = g + decay * *w;
                *sum += g * g;
                *w -= step_lr * (g / (sum.sqrt() + eps));
            }
        });
    }

    fn param_state(&self) -> &ParamState<T> {
        &self.state
    }

    fn param_state_mut(&mut self) -> &mut ParamState<T> {
        &mut self.state
    }
}
