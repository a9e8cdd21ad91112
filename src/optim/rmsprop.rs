//! RMSprop: divide each gradient by a running root-mean-square of its recent values.

use super::{Buffers, Optimizer, for_each_with_grad, unknown_state};
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
    params: Vec<(String, Tensor<T>)>,
    /// The learning rate.
    pub lr: f64,
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
    square_avg: Buffers<T>,
    grad_avg: Buffers<T>,
    momentum_buffer: Buffers<T>,
}

impl<T: Float> RmsProp<T> {
    /// RMSprop with α = 0.99, ε = 1e-8, no momentum, not centered.
    pub fn new(params: Vec<(String, Tensor<T>)>, lr: f64) -> Self {
        let count = params.len();
        RmsProp {
            params,
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            square_avg: Buffers::new("square_avg", count),
            grad_avg: Buffers::new("grad_avg", count),
            momentum_buffer: Buffers::new("momentum_buffer", count),
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
    fn step(&mut self) {
        let (lr, alpha, one_minus_alpha) = (
            T::cast(self.lr),
            T::cast(self.alpha),
            T::cast(1.0 - self.alpha),
        );
        let (eps, decay, momentum) = (
            T::cast(self.eps),
            T::cast(self.weight_decay),
            T::cast(self.momentum),
        );
        let (centered, use_momentum, use_decay) =
            (self.centered, self.momentum > 0.0, self.weight_decay != 0.0);
        let (squares, averages, buffers) = (
            &mut self.square_avg.values,
            &mut self.grad_avg.values,
            &mut self.momentum_buffer.values,
        );
        for_each_with_grad(&self.params, |index, weights, grad| {
            let n = weights.len();
            let square = squares[index].get_or_insert_with(|| vec![T::zero(); n]);
            let mut average =
                centered.then(|| averages[index].get_or_insert_with(|| vec![T::zero(); n]));
            let mut buffer =
                use_momentum.then(|| buffers[index].get_or_insert_with(|| vec![T::zero(); n]));
            for i in 0..n {
                let g = if use_decay {
                    grad[i] + decay * weights[i]
                } else {
                    grad[i]
                };
                square[i] = square[i] * alpha + one_minus_alpha * g * g;
                let denominator = match average.as_deref_mut() {
                    Some(average) => {
                        average[i] = average[i] + one_minus_alpha * (g - average[i]);
                        (square[i] - average[i] * average[i]).sqrt() + eps
                    }
                    None => square[i].sqrt() + eps,
                };
                match buffer.as_deref_mut() {
                    Some(buffer) => {
                        buffer[i] = buffer[i] * momentum + g / denominator;
                        weights[i] -= lr * buffer[i];
                    }
                    None => weights[i] -= lr * (g / denominator),
                }
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
        self.square_avg.export(&self.params, &mut out);
        self.grad_avg.export(&self.params, &mut out);
        self.momentum_buffer.export(&self.params, &mut out);
        out
    }

    fn load_state(&mut self, state: &[(String, Tensor<T>)]) -> crate::Result<()> {
        for (key, value) in state {
            let taken = self.square_avg.import(&self.params, key, value)?
                || self.grad_avg.import(&self.params, key, value)?
                || self.momentum_buffer.import(&self.params, key, value)?;
            if !taken {
                return Err(unknown_state(key));
            }
        }
        Ok(())
    }
}
