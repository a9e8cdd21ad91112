//! Weight initialisation, seeded. The defaults are PyTorch's: Kaiming-uniform with
//! a = √5 for weights (which works out to U(−1/√fan_in, 1/√fan_in)) and
//! U(−1/√fan_in, 1/√fan_in) for biases.
//!
//! Every parameter whose size a config chooses is made here, so this is also where
//! an absurd size is refused (see [`within_limit`]).

use std::cell::{Cell, RefCell};
use std::fmt;

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
        if let Some(stand_in) = refuse_oversized(shape) {
            return stand_in;
        }
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
    if let Some(stand_in) = refuse_oversized(&[out]) {
        return stand_in;
    }
    uniform_bound(&[out], 1.0 / (fan_in.max(1) as f64).sqrt(), rng)
}

/// The most values one parameter may hold: 2³⁰, 4 GiB of f32.
pub const MAX_PARAMETER_VALUES: u128 = 1 << 30;

/// A layer asked for a parameter of more than [`MAX_PARAMETER_VALUES`] values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TooLarge {
    /// The parameter's shape.
    pub shape: Vec<usize>,
}

impl TooLarge {
    /// How many values the parameter would hold (exact: no overflow in u128).
    pub fn values(&self) -> u128 {
        self.shape.iter().map(|&size| size as u128).product()
    }
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a parameter of shape {:?} would have {} values; the limit is {MAX_PARAMETER_VALUES}",
            self.shape,
            self.values()
        )
    }
}

thread_local! {
    /// Whether a [`within_limit`] is running on this thread.
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    /// The first oversized parameter it met.
    static REFUSED: RefCell<Option<TooLarge>> = const { RefCell::new(None) };
}

/// Runs a layer constructor, turning a parameter over the size limit into an error.
///
/// Constructors such as `Linear::new` cannot fail, but a config can ask for any size,
/// and an allocation of terabytes aborts the process. Inside this call an oversized
/// parameter is not allocated: it is noted, the constructor gets an empty stand-in of
/// the same rank and finishes, and the half-made module is dropped here in exchange
/// for the error. So no layer has to count its parameters ahead of building them.
///
/// ```
/// use nabla::nn::{Linear, init};
/// let huge = init::within_limit(|| Linear::<f32>::new(784, 1 << 40, &mut nabla::rng(0)));
/// assert_eq!(huge.err().unwrap().shape, [1 << 40, 784]);
/// ```
pub fn within_limit<R>(construct: impl FnOnce() -> R) -> Result<R, TooLarge> {
    let outer_watching = WATCHING.replace(true);
    let outer_refused = REFUSED.take();
    let built = construct();
    let refused = REFUSED.replace(outer_refused);
    WATCHING.set(outer_watching);
    match refused {
        Some(too_large) => Err(too_large),
        None => Ok(built),
    }
}

/// `None` for a parameter of allowed size. An oversized one inside [`within_limit`]
/// is noted and gets an empty stand-in, as does every parameter after it; elsewhere it is a panic that says what was
/// asked for (a program's own constructor call, not a config: a bug to fix).
fn refuse_oversized<T: Float>(shape: &[usize]) -> Option<Tensor<T>> {
    let asked = TooLarge {
        shape: shape.to_vec(),
    };
    let oversized = asked.values() > MAX_PARAMETER_VALUES;
    assert!(!oversized || WATCHING.get(), "{asked}");
    // after a refusal nothing more is allocated: the module will be dropped
    let refused_before = REFUSED.with_borrow(Option::is_some);
    if oversized && !refused_before {
        REFUSED.set(Some(asked));
    }
    (oversized || refused_before).then(|| Tensor::zeros(&vec![0; shape.len()]))
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

    #[test]
    fn an_oversized_parameter_is_an_answer_inside_within_limit() {
        // 2³⁰ values is allowed, one more is not; neither is allocated here
        let shape = [1 << 20, (1 << 10) + 1];
        let refused = within_limit(|| Init::Zeros.tensor::<f32>(&shape, &mut crate::rng(0)));
        assert_eq!(
            refused.err().map(|too_large| too_large.values()),
            Some((1 << 30) + (1 << 20))
        );
        // nested: the inner call catches, the outer goes on normally
        let outer = within_limit(|| {
            within_limit(|| default_bias::<f32>(usize::MAX, 1, &mut crate::rng(0))).is_err()
        });
        assert_eq!(outer, Ok(true));
        // a small parameter passes through untouched
        assert_eq!(
            within_limit(|| Init::Zeros
                .tensor::<f32>(&[2, 3], &mut crate::rng(0))
                .shape()
                .to_vec()),
            Ok(vec![2, 3])
        );
    }

    #[test]
    #[should_panic(expected = "would have 1099511627776 values; the limit is 1073741824")]
    fn an_oversized_parameter_elsewhere_panics_with_the_size() {
        let _ = Init::Zeros.tensor::<f32>(&[1 << 20, 1 << 20], &mut crate::rng(0));
    }

    #[test]
    fn within_limit_names_the_first_oversized_parameter() {
        let refused = within_limit(|| {
            let ok = Init::Zeros.tensor::<f32>(&[4], &mut crate::rng(0));
            let first = Init::Zeros.tensor::<f32>(&[1 << 31], &mut crate::rng(0));
            let second = Init::Zeros.tensor::<f32>(&[1 << 32], &mut crate::rng(0));
            (ok, first, second)
        });
        assert_eq!(
            refused.err().map(|too_large| too_large.shape),
            Some(vec![1 << 31])
        );
        // and forgets it afterwards
        assert!(within_limit(|| Init::Zeros.tensor::<f32>(&[4], &mut crate::rng(0))).is_ok());
    }
}
