//! Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

use super::{Optimizer, ParamState};
use crate::element::Float;
use crate::tensor::Tensor;

/// SGD, PyTorch's form:
///
/// ```text
/// g ← g + weight_decay·w
/// v ← g                                  (first step)
/// v ← momentum·v + (1 − dampening)·g      (later steps)
/// g ← g + momentum·v  if nesterov, else  g ← v
/// w ← w − lr·g
/// ```
pub struct Sgd<T: Float = f32> {
    state: ParamState<T>,
    /// Momentum factor μ (0: plain SGD).
    pub momentum: f64,
    /// Dampening of the gradient in the momentum update.
    pub dampening: f64,
    /// Use Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
}

impl<T: Float> Sgd<T> {
    /// Plain SGD: `w ← w − lr·g`. Add momentum etc. with the builder methods.
    pub fn new(params: Vec<(String, Tensor<T>)>, lr: f64) -> Self {
        Sgd {
            state: ParamState::new(params, lr, &["momentum_buffer"]),
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// Sets the momentum.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets the dampening of the momentum update.
    pub fn dampening(mut self, dampening: f64) -> Self {
        self.dampening = dampening;
        self
    }

    /// Uses Nesterov momentum.
    pub fn nesterov(mut self, on: bool) -> Self {
        self.nesterov = on;
        self
    }

    /// Sets L2 weight decay (added to the gradient).
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn rule(&self) -> String {
        let gradient = match self.weight_decay {
            0.0 => "g = dL/dw".to_string(),
            decay => format!("g = dL/dw + {decay}·w"),
        };
        match (self.momentum, self.nesterov) {
            (0.0, _) => format!("{gradient}; w ← w − η·g (η = {})", self.state.lr()),
            (momentum, nesterov) => format!(
                "{gradient}; v ← {momentum}·v + {}·g; w ← w − η·{} (η = {})",
                super::setting(1.0 - self.dampening),
                if nesterov {
                    format!("(g + {momentum}·v)")
                } else {
                    "v".into()
                },
                self.state.lr()
            ),
        }
    }

    fn step(&mut self) {
        let lr = T::cast(self.state.lr());
        let (momentum, weight_decay) = (T::cast(self.momentum), T::cast(self.weight_decay));
        let one_minus_dampening = T::cast(1.0 - self.dampening);
        let nesterov = self.nesterov;
        // d = g + λ·w
        let decayed = move |w: T, g: T| g + weight_decay * w;
        if self.momentum == 0.0 {
            self.state.update([], T::zero(), |_, _| {
                move |w: &mut T, _: &mut [T; 0], g: T| *w -= lr * decayed(*w, g)
            });
            return;
        }
        self.state.update(["momentum_buffer"], T::zero(), |t, _| {
            move |w: &mut T, [v]: &mut [T; 1], g: T| {
                let d = decayed(*w, g);
                // v ← μ·v + (1 − dampening)·d, and v = d on the first step
                *v = if t == 1 {
                    d
                } else {
                    momentum * *v + one_minus_dampening * d
                };
                *w -= lr * if nesterov { d + momentum * *v } else { *v };
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
