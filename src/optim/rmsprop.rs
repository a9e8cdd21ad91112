//! RMSprop: divide each gradient by a running root-mean-square of its recent values.

use super::{Optimizer, ParamState};
use crate::element::Float;
use crate::tensor::Tensor;

/// RMSprop, PyTorch's form (defaults lr 0.01, α 0.99, ε 1e-8):
///
/// ```text
/// g ← g + weight_decay·w
/// s ← α·s + (1 − α)·g²
/// a ← √s + ε                           (centered: a ← √(s − ḡ²) + ε, ḡ ← ḡ + (1 − α)(g − ḡ))
/// w ← w − lr·g/a                        (momentum μ: b ← μ·b + g/a, w ← w − lr·b)
/// ```
pub struct RmsProp<T: Float = f32> {
    state: ParamState<T>,
    /// Smoothing constant of the squared-gradient average.
    pub alpha: f64,
    /// Added to the denominator for stability.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Momentum of the update (0: none).
    pub momentum: f64,
    /// Normalise by the estimated variance instead of the raw second moment.
    pub centered: bool,
}

impl<T: Float> RmsProp<T> {
    /// RMSprop with α = 0.99, ε = 1e-8, no momentum, not centered.
    pub fn new(params: Vec<(String, Tensor<T>)>, lr: f64) -> Self {
        RmsProp {
            state: ParamState::new(params, lr, &["square_avg", "grad_avg", "momentum_buffer"]),
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }

    /// Sets the smoothing constant α.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Sets the momentum.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Normalises by the variance rather than the raw second moment.
    pub fn centered(mut self, on: bool) -> Self {
        self.centered = on;
        self
    }

    /// Sets L2 weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }
}

impl<T: Float> Optimizer<T> for RmsProp<T> {
    fn rule(&self) -> String {
        format!(
            "s ← {alpha}·s + {}·g²; w ← w − η·g/(√s + {eps}) (g = dL/dw; η = {lr}{momentum}{centered})",
            super::setting(1.0 - self.alpha),
            alpha = self.alpha,
            eps = super::setting(self.eps),
            lr = self.state.lr(),
            momentum = if self.momentum == 0.0 {
                String::new()
            } else {
                format!(", momentum {}", self.momentum)
            },
            centered = if self.centered { ", centered" } else { "" },
        )
    }

    fn step(&mut self) {
        let lr = T::cast(self.state.lr());
        let (alpha, one_minus_alpha) = (T::cast(self.alpha), T::cast(1.0 - self.alpha));
        let (eps, decay, momentum) = (
            T::cast(self.eps),
            T::cast(self.weight_decay),
            T::cast(self.momentum),
        );
        // s ← α·s + (1 − α)·g², with g ← g + weight_decay·w
        let decay_and_square = move |w: T, g: T, s: &mut T| {
            let g = g + decay * w;
            *s = *s * alpha + one_minus_alpha * g * g;
            g
        };
        // ḡ ← ḡ + (1 − α)(g − ḡ), a = √(s − ḡ²) + ε
        let centered = move |g: T, s: T, mean: &mut T| {
            *mean = *mean + one_minus_alpha * (g - *mean);
            (s - *mean * *mean).sqrt() + eps
        };
        let zero = T::zero();
        match (self.centered, self.momentum > 0.0) {
            (false, false) => self.state.update(["square_avg"], zero, |_, _| {
                move |w: &mut T, [s]: &mut [T; 1], g: T| {
                    let g = decay_and_square(*w, g, s);
                    *w -= lr * (g / (s.sqrt() + eps));
                }
            }),
            (true, false) => self.state.update(["square_avg", "grad_avg"], zero, |_, _| {
                move |w: &mut T, [s, mean]: &mut [T; 2], g: T| {
                    let g = decay_and_square(*w, g, s);
                    *w -= lr * (g / centered(g, *s, mean));
                }
            }),
            (false, true) => self
                .state
                .update(["square_avg", "momentum_buffer"], zero, |_, _| {
                    move |w: &mut T, [s, b]: &mut [T; 2], g: T| {
                        let g = decay_and_square(*w, g, s);
                        *b = *b * momentum + g / (s.sqrt() + eps);
                        *w -= lr * *b;
                    }
                }),
            (true, true) => {
                let buffers = ["square_avg", "grad_avg", "momentum_buffer"];
                self.state.update(buffers, zero, |_, _| {
                    move |w: &mut T, [s, mean, b]: &mut [T; 3], g: T| {
                        let g = decay_and_square(*w, g, s);
                        *b = *b * momentum + g / centered(g, *s, mean);
                        *w -= lr * *b;
                    }
                })
            }
        }
    }

    fn param_state(&self) -> &ParamState<T> {
        &self.state
    }

    fn param_state_mut(&mut self) -> &mut ParamState<T> {
        &mut self.state
    }
}
