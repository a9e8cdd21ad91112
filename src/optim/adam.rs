//! Adam and AdamW: per-weight step sizes from running estimates of the gradient's
//! first and second moments, with bias correction for the early steps.

use super::{Buffers, Optimizer, export_steps, for_each_with_grad, import_step, unknown_state};
use crate::cpu;
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
    params: Vec<(String, Tensor<T>)>,
    /// The learning rate.
    pub lr: f64,
    /// (β₁, β₂): decay rates of the first and second moment estimates.
    pub betas: (f64, f64),
    /// Added to the denominator for stability.
    pub eps: f64,
    /// L2 penalty (Adam) or decoupled decay (AdamW).
    pub weight_decay: f64,
    /// AdamW: decoupled weight decay, `w ← w·(1 − lr·weight_decay)` before the step.
    decoupled: bool,
    steps: Vec<u64>,
    first_moment: Buffers<T>,
    second_moment: Buffers<T>,
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
        let count = params.len();
        Adam {
            params,
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            steps: vec![0; count],
            first_moment: Buffers::new("exp_avg", count),
            second_moment: Buffers::new("exp_avg_sq", count),
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
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn step(&mut self) {
        let (beta1, beta2) = self.betas;
        let (lr, eps, weight_decay, decoupled) =
            (self.lr, self.eps, self.weight_decay, self.decoupled);
        let (steps, m_all, v_all) = (
            &mut self.steps,
            &mut self.first_moment.values,
            &mut self.second_moment.values,
        );
        for_each_with_grad(&self.params, |index, weights, grad| {
            steps[index] += 1;
            let t = steps[index] as i32;
            // scalars in f64, as PyTorch computes them in Python
            let step_size = T::cast(lr / (1.0 - beta1.powi(t)));
            let bias_correction2_sqrt = T::cast((1.0 - beta2.powi(t)).sqrt());
            let (one_minus_beta1, beta2_t, one_minus_beta2) =
                (T::cast(1.0 - beta1), T::cast(beta2), T::cast(1.0 - beta2));
            let (eps, decay) = (T::cast(eps), T::cast(weight_decay));
            let decay_factor = T::cast(1.0 - lr * weight_decay);
            let m = m_all[index].get_or_insert_with(|| vec![T::zero(); weights.len()]);
            let v = v_all[index].get_or_insert_with(|| vec![T::zero(); weights.len()]);
            cpu::update_with_states(weights, m, v, grad, |w, m, v, mut g| {
                if weight_decay != 0.0 {
                    if decoupled {
                        *w *= decay_factor;
                    } else {
                        g += decay * *w;
                    }
                }
                *m = *m + one_minus_beta1 * (g - *m);
                *v = *v * beta2_t + one_minus_beta2 * g * g;
                let denom = v.sqrt() / bias_correction2_sqrt + eps;
                *w -= step_size * (*m / denom);
            });
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
        export_steps(&self.params, &self.steps, &mut out);
        self.first_moment.export(&self.params, &mut out);
        self.second_moment.export(&self.params, &mut out);
        out
    }

    fn load_state(&mut self, state: &[(String, Tensor<T>)]) -> crate::Result<()> {
        for (key, value) in state {
            let taken = import_step(&self.params, &mut self.steps, key, value)
                || self.first_moment.import(&self.params, key, value)?
                || self.second_moment.import(&self.params, key, value)?;
            if !taken {
                return Err(unknown_state(key));
            }
        }
        Ok(())
    }
}
