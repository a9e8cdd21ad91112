//! Adam and AdamW: per-weight step sizes from running estimates of the gradient's
//! first and second moments, with bias correction for the early steps.

use super::{Optimizer, ParamState};
use crate::element::Float;
use crate::tensor::Tensor;

/// Adam (Kingma & Ba), PyTorch's form. With t the step number:
///
/// ```text
/// g ← g + weight_decay·w                       (Adam only; AdamW decays w instead)
/// m ← m + (1 − β₁)·(g − m)                      (= β₁·m + (1 − β₁)·g)
/// v ← β₂·v + (1 − β₂)·g²
/// w ← w − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
/// ```
pub struct Adam<T: Float = f32> {
    state: ParamState<T>,
    /// (β₁, β₂): decay rates of the first and second moment estimates.
    pub betas: (f64, f64),
    /// Added to the denominator for stability.
    pub eps: f64,
    /// L2 penalty (Adam) or decoupled decay (AdamW).
    pub weight_decay: f64,
    /// AdamW: decoupled weight decay, `w ← w·(1 − lr·weight_decay)` before the step.
    decoupled: bool,
    /// Decay only parameters with two or more axes (see [`Adam::decay_matrices_only`]).
    matrices_only: bool,
}

/// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay (default 0.01).
pub struct AdamW;

impl AdamW {
    /// AdamW with PyTorch's defaults: betas (0.9, 0.999), ε = 1e-8, weight decay 0.01.
    #[allow(clippy::new_ret_no_self)]
    pub fn new<T: Float>(params: Vec<(String, Tensor<T>)>, lr: f64) -> Adam<T> {
        let mut adam = Adam::new(params, lr).weight_decay(0.01);
        adam.decoupled = true;
        adam
    }
}

impl<T: Float> Adam<T> {
    /// Adam with PyTorch's defaults: betas (0.9, 0.999), ε = 1e-8, no weight decay.
    pub fn new(params: Vec<(String, Tensor<T>)>, lr: f64) -> Self {
        Adam {
            state: ParamState::new(params, lr, &["exp_avg", "exp_avg_sq"]),
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            matrices_only: false,
        }
    }

    /// Sets (β₁, β₂).
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.betas = (beta1, beta2);
        self
    }

    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets the weight decay (L2 for Adam, decoupled for AdamW).
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Applies the weight decay only to parameters with two or more axes (weight
    /// matrices, convolution kernels, embeddings), not to biases and norm scales:
    /// the GPT recipe, which PyTorch writes as two parameter groups.
    pub fn decay_matrices_only(mut self) -> Self {
        self.matrices_only = true;
        self
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn rule(&self) -> String {
        let (beta1, beta2) = self.betas;
        let (decay, lr, eps) = (self.weight_decay, self.state.lr(), super::setting(self.eps));
        let (gradient, decoupled) = match (decay, self.decoupled) {
            (0.0, _) => ("g = dL/dw".to_string(), String::new()),
            (_, false) => (format!("g = dL/dw + {decay}·w"), String::new()),
            (_, true) => ("g = dL/dw".to_string(), format!("w ← w − η·{decay}·w; ")),
        };
        format!(
            "{gradient}; m ← {beta1}·m + {}·g; v ← {beta2}·v + {}·g²; {decoupled}w ← w − η·m̂/(√v̂ + {eps}), m̂ = m/(1 − {beta1}^t), v̂ = v/(1 − {beta2}^t) (η = {lr})",
            super::setting(1.0 - beta1),
            super::setting(1.0 - beta2)
        )
    }

    fn step(&mut self) {
        let (beta1, beta2) = self.betas;
        let (lr, decoupled, matrices_only) = (self.state.lr(), self.decoupled, self.matrices_only);
        let (one_minus_beta1, beta2_t, one_minus_beta2) =
            (T::cast(1.0 - beta1), T::cast(beta2), T::cast(1.0 - beta2));
        let eps = T::cast(self.eps);
        let weight_decay_of = |shape: &[usize]| {
            let decays = !matrices_only || shape.len() >= 2;
            if decays { self.weight_decay } else { 0.0 }
        };
        self.state
            .update(["exp_avg", "exp_avg_sq"], T::zero(), |t, shape| {
                let weight_decay = weight_decay_of(shape);
                // AdamW shrinks the weight, Adam adds the decay to the gradient
                let (shrink, gradient_decay) = match (decoupled, weight_decay != 0.0) {
                    (true, true) => (T::cast(1.0 - lr * weight_decay), T::zero()),
                    _ => (T::one(), T::cast(weight_decay)),
                };
                // scalars in f64, as PyTorch computes them in Python
                let step_size = T::cast(lr / (1.0 - beta1.powi(t as i32)));
                let bias_correction2_sqrt = T::cast((1.0 - beta2.powi(t as i32)).sqrt());
                move |w: &mut T, [m, v]: &mut [T; 2], g: T| {
                    *w *= shrink;
                    let g = g + gradient_decay * *w;
                    *m = *m + one_minus_beta1 * (g - *m);
                    *v = *v * beta2_t + one_minus_beta2 * g * g;
                    let denom = v.sqrt() / bias_correction2_sqrt + eps;
                    *w -= step_size * (*m / denom);
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
