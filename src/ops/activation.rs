//! Activation functions: the nonlinearity each neuron applies to its weighted sum.
//! Each is written as `f(x)` and, beside it, `f'(x)` (from the output where cheaper).
//!
//! The ones that call `exp` or `erf` are `#[inline(always)]`, down to their helpers:
//! they must be inlined into the kernel's wide-vector loop (the CPU's `wide_simd`) to
//! vectorise, and whether LLVM inlines a closure from another codegen unit shifts
//! with unrelated edits elsewhere in the crate — once it left GELU's derivative a call
//! per element and the GPT step 40% slower.

use crate::element::Float;
use crate::tensor::Tensor;

/// The forward formula and backward rule of each op in this file, as `nabla explain`
/// shows them.
pub(crate) const RULES: &[super::Rule] = &[
    super::Rule {
        op: "relu",
        forward: "y = max(0, x)",
        backward: "dL/dx = G·(1 if x > 0 else 0)",
    },
    super::Rule {
        op: "leaky_relu",
        forward: "y = x if x > 0 else s·x",
        backward: "dL/dx = G·(1 if x > 0 else s)",
    },
    super::Rule {
        op: "sigmoid",
        forward: "y = σ(x) = 1 / (1 + e^−x)",
        backward: "dL/dx = G·y·(1 − y)",
    },
    super::Rule {
        op: "tanh",
        forward: "y = tanh(x)",
        backward: "dL/dx = G·(1 − y²)",
    },
    super::Rule {
        op: "softsign",
        forward: "y = x / (1 + |x|)",
        backward: "dL/dx = G / (1 + |x|)²",
    },
    super::Rule {
        op: "gelu",
        forward: "y = x·Φ(x)",
        backward: "dL/dx = G·(Φ(x) + x·φ(x))",
    },
    super::Rule {
        op: "gelu_tanh",
        forward: "y = ½x·(1 + tanh(√(2/π)·(x + 0.044715x³)))",
        backward: "dL/dx = G·d/dx[½x·(1 + tanh(u))], u = √(2/π)·(x + 0.044715x³)",
    },
    super::Rule {
        op: "silu",
        forward: "y = x·σ(x)",
        backward: "dL/dx = G·σ(x)·(1 + x·(1 − σ(x)))",
    },
    super::Rule {
        op: "softplus",
        forward: "y = log(1 + e^x)",
        backward: "dL/dx = G·σ(x)",
    },
];

/// √(2/π), the constant of the tanh approximation of GELU.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// `1/√(2π)`, the standard normal density at 0.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
/// The cubic coefficient of the tanh approximation of GELU.
const GELU_CUBIC: f64 = 0.044_715;

impl<T: Float> Tensor<T> {
    /// ReLU: `max(0, x)`.
    pub fn relu(&self) -> Tensor<T> {
        // relu'(x) = 1 if x > 0 else 0
        self.unary_op(
            "relu",
            |x| x.max(T::zero()),
            |x, _| {
                if x > T::zero() { T::one() } else { T::zero() }
            },
        )
    }

    /// Leaky ReLU: `x` for positive `x`, `slope · x` otherwise.
    pub fn leaky_relu(&self, slope: T) -> Tensor<T> {
        // leaky_relu'(x) = 1 if x > 0 else slope
        self.unary_op(
            "leaky_relu",
            move |x| if x > T::zero() { x } else { slope * x },
            move |x, _| if x > T::zero() { T::one() } else { slope },
        )
    }

    /// The logistic sigmoid `σ(x) = 1 / (1 + e⁻ˣ)`, computed without overflow for
    /// large |x|.
    pub fn sigmoid(&self) -> Tensor<T> {
        // σ'(x) = σ(x)·(1 − σ(x)), from the output
        self.unary_op("sigmoid", stable_sigmoid, |_, s| s * (T::one() - s))
    }

    /// The hyperbolic tangent.
    pub fn tanh(&self) -> Tensor<T> {
        // tanh'(x) = 1 − tanh(x)², from the output
        self.unary_op("tanh", T::tanh, |_, t| T::one() - t * t)
    }

    /// Softsign: `x / (1 + |x|)`, a tanh-like curve that approaches ±1 polynomially.
    pub fn softsign(&self) -> Tensor<T> {
        // softsign'(x) = 1 / (1 + |x|)²
        self.unary_op(
            "softsign",
            |x| x / (T::one() + x.abs()),
            |x, _| {
                let denominator = T::one() + x.abs();
                T::one() / (denominator * denominator)
            },
        )
    }

    /// GELU, exact: `x · Φ(x)` with Φ the standard normal CDF.
    pub fn gelu(&self) -> Tensor<T> {
        // gelu'(x) = Φ(x) + x·φ(x), φ the standard normal density. Φ is recomputed in
        // backward rather than kept: the error function vectorises (`special.rs`), and
        // a kept Φ was a fifth of a transformer block's saved activations.
        self.unary_op(
            "gelu",
            #[inline(always)]
            |x| x * normal_cdf(x),
            #[inline(always)]
            |x, _| {
                let density = (-(x * x) * T::cast(0.5)).fast_exp() * T::cast(FRAC_1_SQRT_2PI);
                normal_cdf(x) + x * density
            },
        )
    }

    /// GELU, tanh approximation: `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`
    /// (PyTorch's `approximate='tanh'`).
    pub fn gelu_tanh(&self) -> Tensor<T> {
        // with u = √(2/π)(x + 0.044715x³), t = tanh(u):
        // gelu'(x) = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²)
        let (k, c) = (T::cast(SQRT_2_OVER_PI), T::cast(GELU_CUBIC));
        let half = T::cast(0.5);
        self.unary_op(
            "gelu_tanh",
            move |x| half * x * (T::one() + (k * (x + c * x * x * x)).tanh()),
            move |x, _| {
                let t = (k * (x + c * x * x * x)).tanh();
                let du_dx = k * (T::one() + T::cast(3.0) * c * x * x);
                half * (T::one() + t) + half * x * (T::one() - t * t) * du_dx
            },
        )
    }

    /// Softplus: `ln(1 + eˣ)`, a smooth ReLU, computed as `max(x, 0) + ln(1 + e^−|x|)`
    /// so it neither overflows nor loses precision.
    pub fn softplus(&self) -> Tensor<T> {
        // softplus'(x) = σ(x)
        self.unary_op(
            "softplus",
            |x| x.max(T::zero()) + (-x.abs()).exp().ln_1p(),
            |x, _| stable_sigmoid(x),
        )
    }

    /// SiLU (swish): `x · σ(x)`.
    pub fn silu(&self) -> Tensor<T> {
        // silu'(x) = σ(x) + x·σ(x)(1 − σ(x)) = σ(x)(1 + x(1 − σ(x)))
        self.unary_op(
            "silu",
            #[inline(always)]
            |x| x * stable_sigmoid(x),
            #[inline(always)]
            |x, _| {
                let s = stable_sigmoid(x);
                s * (T::one() + x * (T::one() - s))
            },
        )
    }
}

/// `1 / (1 + e⁻ˣ)` without overflow: for negative x use the equal form `eˣ / (1 + eˣ)`,
/// so the exponent is never positive. One exponential and a select, no branch.
#[inline(always)]
pub(crate) fn stable_sigmoid<T: Float>(x: T) -> T {
    let e = (-x.abs()).fast_exp();
    let numerator = if x >= T::zero() { T::one() } else { e };
    numerator / (T::one() + e)
}

/// The standard normal CDF: `Φ(x) = ½(1 + erf(x/√2))`.
#[inline(always)]
fn normal_cdf<T: Float>(x: T) -> T {
    T::cast(0.5) * (T::one() + (x * T::cast(std::f64::consts::FRAC_1_SQRT_2)).erf())
}
