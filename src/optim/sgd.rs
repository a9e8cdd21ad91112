//! Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

use super::{Buffers, Optimizer, for_each_with_grad, unknown_state};
use crate::cpu;
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
    params: Vec<(String, Tensor<T>)>,
    /// The learning rate.
    pub lr: f64,
    /// Momentum factor μ (0: plain SGD).
    pub momentum: f64,
    /// Dampening of the gradient in the momentum update.
    pub dampening: f64,
    /// Use Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    velocity: Buffers<T>,
}

impl<T: Float> Sgd<T> {
    /// Plain SGD: `w ← w − lr·g`. Add momentum etc. with the builder methods.
    pub fn new(params: Vec<(String, Tensor<T>)>, lr: f64) -> Self {
        let count = params.len();
        Sgd {
            params,
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            velocity: Buffers::new("momentum_buffer", count),
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
    fn step(&mut self) {
        let (lr, momentum, weight_decay) = (
            T::cast(self.lr),
            T::cast(self.momentum),
            T::cast(self.weight_decay),
        );
        let one_minus_dampening = T::cast(1.0 - self.dampening);
        let (use_momentum, nesterov) = (self.momentum != 0.0, self.nesterov);
        let velocity = &mut self.velocity.values;
        for_each_with_grad(&self.params, |index, weights, grad| {
            let buffer = velocity[index].get_or_insert_with(Vec::new);
            let first_step = buffer.is_empty();
            if first_step && use_momentum {
                buffer.resize(weights.len(), T::zero());
            }
            // d = g + λ·w;  v ← μ·v + (1 − dampening)·d (v = d on the first step);
            // w ← w − lr · (Nesterov ? d + μ·v : v)
            let decayed = |w: T, g: T| {
                if weight_decay != T::zero() {
                    g + weight_decay * w
                } else {
                    g
                }
            };
            if use_momentum {
                cpu::update_with_state(weights, buffer, grad, |w, v, g| {
                    let g = decayed(*w, g);
                    *v = if first_step {
                        g
                    } else {
                        momentum * *v + one_minus_dampening * g
                    };
                    *w -= lr * if nesterov { g + momentum * *v } else { *v };
                });
            } else {
                cpu::update(weights, grad, |w, g| *w -= lr * decayed(*w, g));
            }
            if !use_momentum {
                velocity[index] = None;
            }
        });
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn params(&self) -> &[(String, Tensor<T>)] {
        &self.params
    }

    fn state(&self) -> Vec<(String, Tensor<T>)> {
        let mut out = Vec::new();
        self.velocity.export(&self.params, &mut out);
        out
    }

    fn load_state(&mut self, state: &[(String, Tensor<T>)]) -> crate::Result<()> {
        for (key, value) in state {
            if !self.velocity.import(&self.params, key, value)? {
                return Err(unknown_state(key));
            }
        }
        Ok(())
    }
}
