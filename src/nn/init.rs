//! Weight initialisation, seeded. The defaults are PyTorch's: Kaiming-uniform with
//! a = √5 for weights (which works out to U(−1/√fan_in, 1/√fan_in)) and
//! U(−1/√fan_in, 1/√fan_in) for biases.

use rand::Rng;

use crate::element::Float;
use crate::tensor::Tensor;

/// How to fill a weight tensor. `fan_in` and `fan_out` are computed from the
/// shape as PyTorch does: for `[out, in, k…]`, fan_in = in·Πk and fan_out = out·Πk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// PyTorch's default for Linear and Conv weights: Kaiming-uniform, a = √5.
    PyTorchDefault,
    /// He/Kaiming uniform for ReLU: U(−b, b), b = √(6 / fan_in).
    KaimingUniform,
    /// He/Kaiming normal for ReLU: N(0, 2 / fan_in).
    KaimingNormal,
    /// Glorot/Xavier uniform: U(−b, b), b = √(6 / (fan_in + fan_out)).
    XavierUniform,
    /// Glorot/Xavier normal: N(0, 2 / (fan_in + fan_out)).
    XavierNormal,
    /// N(0, std²) whatever the shape: GPT-2's N(0, 0.02²) for linear and embedding weights.
    Normal(f64),
    /// All zeros.
    Zeros,
    /// Every element the same value.
    Constant(f64),
}

/// (fan_in, fan_out) of a weight of this shape.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [out, input, kernel @ ..] => {
            let receptive: usize = kernel.iter().product();
            (input * receptive, out * receptive)
        }
    }
}

impl Init {
    /// A tensor of `shape` filled by this scheme.
    pub fn tensor<T: Float>(self, shape: &[usize], rng: &mut impl Rng) -> Tensor<T> {
        let (fan_in, fan_out) = fans(shape);
        let (fan_in, fan_out) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        match self {
            // gain √(2/(1 + 5)) and bound √3·gain/√fan_in = 1/√fan_in
            Init::PyTorchDefault => uniform_bound(shape, 1.0 / fan_in.sqrt(), rng),
            Init::KaimingUniform => uniform_bound(shape, (6.0 / fan_in).sqrt(), rng),
            Init::KaimingNormal => Tensor::randn(shape, 0.0, (2.0 / fan_in).sqrt(), rng),
            Init::XavierUniform => uniform_bound(shape, (6.0 / (fan_in + fan_out)).sqrt(), rng),
            Init::XavierNormal => Tensor::randn(shape, 0.0, (2.0 / (fan_in + fan_out)).sqrt(), rng),
            Init::Normal(std) => Tensor::randn(shape, 0.0, std, rng),
            Init::Zeros => Tensor::zeros(shape),
            Init::Constant(value) => Tensor::full(shape, T::cast(value)),
        }
    }
}

/// U(−bound, bound).
pub fn uniform_bound<T: Float>(shape: &[usize], bound: f64, rng: &mut impl Rng) -> Tensor<T> {
    Tensor::rand_uniform(shape, -bound, bound, rng)
}

/// PyTorch's default bias: U(−1/√fan_in, 1/√fan_in) with the weight's fan_in.
pub fn default_bias<T: Float>(out: usize, fan_in: usize, rng: &mut impl Rng) -> Tensor<T> {
    uniform_bound(&[out], 1.0 / (fan_in.max(1) as f64).sqrt(), rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_follow_pytorch() {
        assert_eq!(fans(&[256, 784]), (784, 256));
        assert_eq!(fans(&[6, 1, 5, 5]), (25, 150));
    }

    #[test]
    fn default_init_stays_within_its_bound() {
        let w: Tensor<f64> = Init::PyTorchDefault.tensor(&[64, 100], &mut crate::rng(1));
        let bound = 0.1; // 1/√100
        let values = w.to_vec();
        assert!(values.iter().all(|v| v.abs() <= bound));
        // uniform on ±b has variance b²/3
        let variance = values.iter().map(|v| v * v).sum::<f64>() / values.len() as f64;
        assert!((variance - bound * bound / 3.0).abs() < 0.1 * bound * bound / 3.0);
    }

    #[test]
    fn kaiming_normal_has_the_right_spread() {
        let w: Tensor<f64> = Init::KaimingNormal.tensor(&[200, 50], &mut crate::rng(2));
        let variance = w.to_vec().iter().map(|v| v * v).sum::<f64>() / 10_000.0;
        assert!((variance - 2.0 / 50.0).abs() < 0.004, "{variance}");
    }
}
