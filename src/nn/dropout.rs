//! Dropout: during training, zero each input with probability p and scale the
//! survivors by 1/(1 − p), so the expected value is unchanged; identity in eval.

use std::cell::{Cell, RefCell};

use rand::RngExt;
use rand::rngs::StdRng;

use super::Module;
use crate::element::Float;
use crate::onnx;
use crate::tensor::Tensor;

/// Randomly zeroes inputs in training mode (seeded, so runs repeat exactly).
pub struct Dropout {
    /// The probability of zeroing each input.
    pub p: f64,
    training: Cell<bool>,
    seed: u64,
    rng: RefCell<StdRng>,
}

impl Dropout {
    /// Drops with probability `p` (in `[0, 1)`), drawing masks from `seed`.
    pub fn new(p: f64, seed: u64) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "Dropout: p must be in [0, 1), got {p}"
        );
        Dropout {
            p,
            training: Cell::new(true),
            seed,
            rng: RefCell::new(crate::rng(seed)),
        }
    }
}

impl<T: Float> Module<T> for Dropout {
    fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
        if !self.training.get() || self.p == 0.0 {
            return input.clone();
        }
        let keep_scale = T::cast(1.0 / (1.0 - self.p));
        let mut rng = self.rng.borrow_mut();
        let mask: Vec<T> = (0..input.numel())
            .map(|_| {
                if rng.random::<f64>() >= self.p {
                    keep_scale
                } else {
                    T::zero()
                }
            })
            .collect();
        // y = x ⊙ mask, so dL/dx = dL/dy ⊙ mask: dropped inputs get no gradient
        input * &Tensor::from_vec(mask, input.shape())
    }

    fn describe(&self) -> String {
        format!("Dropout(p={})", self.p)
    }

    fn to_onnx(&self, _: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        // an exported model is used for inference, where dropout is the identity
        Ok(input.name.clone())
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }

    fn set_random_stream(&self, stream: u64) {
        // a different odd multiplier per stream would do; the golden ratio spreads them well
        let seed = self.seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        *self.rng.borrow_mut() = crate::rng(seed);
    }
}
