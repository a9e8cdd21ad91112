//! Elementwise arithmetic and math: `a + b`, `a * b`, `exp`, `log`, … with NumPy
//! broadcasting. Each op states its function and, beside it, its derivative.
//!
//! Broadcasting copies one value to many outputs, so in backward the gradient of a
//! broadcast input is the *sum* of the gradients of those outputs: `sum_to`.

use crate::autograd::{BackwardCtx, InputGrads};
use crate::device;
use crate::element::Float;
use crate::tensor::{Tensor, shape};

/// The forward formula and backward rule of each op in this file, as `nabla explain`
/// shows them.
pub(crate) const RULES: &[super::Rule] = &[
    super::Rule {
        op: "add",
        forward: "y = a + b",
        backward: "dL/da = G; dL/db = G (summed over broadcast axes)",
    },
    super::Rule {
        op: "sub",
        forward: "y = a − b",
        backward: "dL/da = G; dL/db = −G",
    },
    super::Rule {
        op: "mul",
        forward: "y = a·b",
        backward: "dL/da = G·b; dL/db = G·a",
    },
    super::Rule {
        op: "div",
        forward: "y = a / b",
        backward: "dL/da = G / b; dL/db = −G·a / b²",
    },
    super::Rule {
        op: "add_scalar",
        forward: "y = x + c",
        backward: "dL/dx = G",
    },
    super::Rule {
        op: "mul_scalar",
        forward: "y = c·x",
        backward: "dL/dx = c·G",
    },
    super::Rule {
        op: "div_scalar",
        forward: "y = x / c",
        backward: "dL/dx = G / c",
    },
    super::Rule {
        op: "rsub_scalar",
        forward: "y = c − x",
        backward: "dL/dx = −G",
    },
    super::Rule {
        op: "rdiv_scalar",
        forward: "y = c / x",
        backward: "dL/dx = −G·c / x²",
    },
    super::Rule {
        op: "neg",
        forward: "y = −x",
        backward: "dL/dx = −G",
    },
    super::Rule {
        op: "exp",
        forward: "y = e^x",
        backward: "dL/dx = G·y",
    },
    super::Rule {
        op: "log",
        forward: "y = log x",
        backward: "dL/dx = G / x",
    },
    super::Rule {
        op: "sqrt",
        forward: "y = √x",
        backward: "dL/dx = G / (2y)",
    },
    super::Rule {
        op: "square",
        forward: "y = x²",
        backward: "dL/dx = G·2x",
    },
    super::Rule {
        op: "pow",
        forward: "y = x^p",
        backward: "dL/dx = G·p·x^(p−1)",
    },
    super::Rule {
        op: "abs",
        forward: "y = |x|",
        backward: "dL/dx = G·sign(x)",
    },
    super::Rule {
        op: "clamp",
        forward: "y = min(max(x, lo), hi)",
        backward: "dL/dx = G where lo < x < hi else 0",
    },
    super::Rule {
        op: "maximum",
        forward: "y = max(a, b)",
        backward: "dL/da = G where a wins (half each on a tie); dL/db the rest",
    },
    super::Rule {
        op: "minimum",
        forward: "y = min(a, b)",
        backward: "dL/da = G where a wins (half each on a tie); dL/db the rest",
    },
    super::Rule {
        op: "zip_with",
        forward: "y = f(a, b)",
        backward: "dL/da = G·∂f/∂a; dL/db = G·∂f/∂b",
    },
];

impl<T: Float> Tensor<T> {
    /// An elementwise op from its function `f(x)` and its derivative `df(x, y)`,
    /// where `y = f(x)` is passed so derivatives like σ' = σ(1 − σ) can reuse it.
    pub(crate) fn unary_op(
        &self,
        name: &'static str,
        f: impl Fn(T) -> T + Sync,
        df: impl Fn(T, T) -> T + Sync + 'static,
    ) -> Tensor<T> {
        let values = device::map(&self.data(), f);
        Tensor::from_op(values, self.shape(), name, &[self], move |ctx| {
            let (x, y) = (ctx.input(0).data(), ctx.output.data());
            // chain rule: dL/dx = dL/dy · dy/dx
            // inlined, so that `df` lands in the kernel's wide loop (see `device::zip3`)
            let grad = device::zip3(
                &ctx.grad_output.data(),
                &x,
                &y,
                #[inline(always)]
                |g, x, y| g * df(x, y),
            );
            vec![Some(Tensor::from_vec(grad, ctx.output.shape()))]
        })
    }

    /// A broadcasting binary op from its function and its backward rule.
    fn binary_op(
        &self,
        rhs: &Tensor<T>,
        name: &'static str,
        f: impl Fn(T, T) -> T + Sync,
        backward: impl Fn(&BackwardCtx<'_, T>) -> InputGrads<T> + 'static,
    ) -> Tensor<T> {
        let out_shape = broadcast_or_panic(name, self.shape(), rhs.shape());
        let values = device::zip_broadcast(
            &self.data(),
            self.shape(),
            &rhs.data(),
            rhs.shape(),
            &out_shape,
            f,
        );
        Tensor::from_op(values, &out_shape, name, &[self, rhs], backward)
    }

    /// `f(a, b)` elementwise with broadcasting, outside the graph (no gradient):
    /// for masks, comparisons and other non-differentiable helpers.
    pub fn zip_with(&self, rhs: &Tensor<T>, f: impl Fn(T, T) -> T + Sync) -> Tensor<T> {
        let out_shape = broadcast_or_panic("zip_with", self.shape(), rhs.shape());
        let values = device::zip_broadcast(
            &self.data(),
            self.shape(),
            &rhs.data(),
            rhs.shape(),
            &out_shape,
            f,
        );
        Tensor::from_vec(values, &out_shape)
    }

    /// `f(x)` elementwise, outside the graph (no gradient).
    pub fn map(&self, f: impl Fn(T) -> T + Sync) -> Tensor<T> {
        Tensor::from_vec(device::map(&self.data(), f), self.shape())
    }

    // ------------------------------------------------------ tensor ∘ tensor

    /// `a + b` with broadcasting (also the `+` operator).
    pub fn add(&self, rhs: &Tensor<T>) -> Tensor<T> {
        // d(a + b)/da = 1, d(a + b)/db = 1
        self.binary_op(
            rhs,
            "add",
            |a, b| a + b,
            |ctx| {
                let (a, b, g) = (ctx.input(0), ctx.input(1), ctx.grad_output);
                vec![Some(g.sum_to(a.shape())), Some(g.sum_to(b.shape()))]
            },
        )
    }

    /// `a − b` with broadcasting (also the `-` operator).
    pub fn sub(&self, rhs: &Tensor<T>) -> Tensor<T> {
        // d(a − b)/da = 1, d(a − b)/db = −1
        self.binary_op(
            rhs,
            "sub",
            |a, b| a - b,
            |ctx| {
                let (a, b, g) = (ctx.input(0), ctx.input(1), ctx.grad_output);
                vec![Some(g.sum_to(a.shape())), Some((-g).sum_to(b.shape()))]
            },
        )
    }

    /// `a · b` elementwise with broadcasting (also the `*` operator).
    pub fn mul(&self, rhs: &Tensor<T>) -> Tensor<T> {
        // d(a·b)/da = b, d(a·b)/db = a
        self.binary_op(
            rhs,
            "mul",
            |a, b| a * b,
            |ctx| {
                let (a, b, g) = (ctx.input(0), ctx.input(1), ctx.grad_output);
                vec![
                    ctx.needs_grad(0).then(|| (g * b).sum_to(a.shape())),
                    ctx.needs_grad(1).then(|| (g * a).sum_to(b.shape())),
                ]
            },
        )
    }

    /// `a / b` elementwise with broadcasting (also the `/` operator).
    pub fn div(&self, rhs: &Tensor<T>) -> Tensor<T> {
        // d(a/b)/da = 1/b, d(a/b)/db = −a/b² = −(a/b)/b
        self.binary_op(
            rhs,
            "div",
            |a, b| a / b,
            |ctx| {
                let (a, b, g, quotient) = (ctx.input(0), ctx.input(1), ctx.grad_output, ctx.output);
                vec![
                    ctx.needs_grad(0).then(|| (g / b).sum_to(a.shape())),
                    ctx.needs_grad(1)
                        .then(|| (-(g * quotient) / b).sum_to(b.shape())),
                ]
            },
        )
    }

    /// The larger of `a` and `b`, elementwise with broadcasting.
    pub fn maximum(&self, rhs: &Tensor<T>) -> Tensor<T> {
        // the gradient goes to the larger input; on a tie it is split in half (as PyTorch)
        self.binary_op(
            rhs,
            "maximum",
            |a, b| a.max(b),
            |ctx| {
                let (a, b) = (ctx.input(0), ctx.input(1));
                let a_share = a.zip_with(b, |x, y| share_of_first(x > y, x == y));
                split_by_share(ctx.grad_output, &a_share, a.shape(), b.shape())
            },
        )
    }

    /// The smaller of `a` and `b`, elementwise with broadcasting.
    pub fn minimum(&self, rhs: &Tensor<T>) -> Tensor<T> {
        // the gradient goes to the smaller input; on a tie it is split in half
        self.binary_op(
            rhs,
            "minimum",
            |a, b| a.min(b),
            |ctx| {
                let (a, b) = (ctx.input(0), ctx.input(1));
                let a_share = a.zip_with(b, |x, y| share_of_first(x < y, x == y));
                split_by_share(ctx.grad_output, &a_share, a.shape(), b.shape())
            },
        )
    }

    // ----------------------------------------------------------- tensor ∘ scalar

    /// `x + c` (also `x + c` with a scalar operand).
    pub fn add_scalar(&self, c: T) -> Tensor<T> {
        // d/dx (x + c) = 1
        self.unary_op("add_scalar", move |x| x + c, |_, _| T::one())
    }

    /// `x · c` (also `x * c` with a scalar operand).
    pub fn mul_scalar(&self, c: T) -> Tensor<T> {
        // d/dx (x·c) = c
        self.unary_op("mul_scalar", move |x| x * c, move |_, _| c)
    }

    /// `x / c` (also `x / c` with a scalar operand).
    pub fn div_scalar(&self, c: T) -> Tensor<T> {
        // d/dx (x/c) = 1/c
        self.unary_op("div_scalar", move |x| x / c, move |_, _| T::one() / c)
    }

    /// `c − x` (also `c - x` with a scalar on the left).
    pub fn rsub_scalar(&self, c: T) -> Tensor<T> {
        // d/dx (c − x) = −1
        self.unary_op("rsub_scalar", move |x| c - x, |_, _| -T::one())
    }

    /// `c / x` (also `c / x` with a scalar on the left).
    pub fn rdiv_scalar(&self, c: T) -> Tensor<T> {
        // d/dx (c/x) = −c/x² = −y/x
        self.unary_op("rdiv_scalar", move |x| c / x, |x, y| -y / x)
    }

    /// `xᵖ` for a scalar exponent.
    pub fn pow(&self, exponent: T) -> Tensor<T> {
        // d/dx xᵖ = p·xᵖ⁻¹
        self.unary_op(
            "pow",
            move |x| x.powf(exponent),
            move |x, _| exponent * x.powf(exponent - T::one()),
        )
    }

    /// `x²`.
    pub fn square(&self) -> Tensor<T> {
        // d/dx x² = 2x
        self.unary_op("square", |x| x * x, |x, _| x + x)
    }

    /// `−x` (also the unary `-` operator).
    pub fn neg(&self) -> Tensor<T> {
        // d/dx (−x) = −1
        self.unary_op("neg", |x| -x, |_, _| -T::one())
    }

    // ------------------------------------------------------------------ math

    /// `eˣ`.
    pub fn exp(&self) -> Tensor<T> {
        // d/dx eˣ = eˣ, which is the output
        self.unary_op("exp", T::exp, |_, y| y)
    }

    /// The natural logarithm.
    pub fn log(&self) -> Tensor<T> {
        // d/dx ln x = 1/x
        self.unary_op("log", T::ln, |x, _| T::one() / x)
    }

    /// The square root.
    pub fn sqrt(&self) -> Tensor<T> {
        // d/dx √x = 1/(2√x), from the output
        self.unary_op("sqrt", T::sqrt, |_, y| T::cast(0.5) / y)
    }

    /// The absolute value.
    pub fn abs(&self) -> Tensor<T> {
        // d/dx |x| = sign(x), taken as 0 at 0 (as PyTorch)
        self.unary_op("abs", T::abs, |x, _| sign(x))
    }

    /// Limits every element to `[min, max]`.
    pub fn clamp(&self, min: T, max: T) -> Tensor<T> {
        // d/dx clamp(x) = 1 inside [min, max] (bounds included), 0 outside
        self.unary_op(
            "clamp",
            move |x| x.max(min).min(max),
            move |x, _| {
                if x >= min && x <= max {
                    T::one()
                } else {
                    T::zero()
                }
            },
        )
    }

    // ----------------------------------------------- comparisons (no gradient)

    /// `1` where `a == b`, else `0` (broadcasting; no gradient).
    pub fn eq(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_with(rhs, |a, b| indicator(a == b))
    }

    /// `1` where `a != b`, else `0`.
    pub fn ne(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_with(rhs, |a, b| indicator(a != b))
    }

    /// `1` where `a < b`, else `0`.
    pub fn lt(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_with(rhs, |a, b| indicator(a < b))
    }

    /// `1` where `a <= b`, else `0`.
    pub fn le(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_with(rhs, |a, b| indicator(a <= b))
    }

    /// `1` where `a > b`, else `0`.
    pub fn gt(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_with(rhs, |a, b| indicator(a > b))
    }

    /// `1` where `a >= b`, else `0`.
    pub fn ge(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_with(rhs, |a, b| indicator(a >= b))
    }
}

fn broadcast_or_panic(op: &str, a: &[usize], b: &[usize]) -> Vec<usize> {
    shape::broadcast_shapes(a, b)
        .unwrap_or_else(|| panic!("{op}: shapes {a:?} and {b:?} cannot be broadcast together"))
}

fn indicator<T: Float>(condition: bool) -> T {
    if condition { T::one() } else { T::zero() }
}

fn sign<T: Float>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        T::zero()
    }
}

/// How much of a max/min's gradient goes to its first input: all if it won,
/// half on a tie, none if it lost.
fn share_of_first<T: Float>(first_wins: bool, tie: bool) -> T {
    if first_wins {
        T::one()
    } else if tie {
        T::cast(0.5)
    } else {
        T::zero()
    }
}

fn split_by_share<T: Float>(
    grad_output: &Tensor<T>,
    a_share: &Tensor<T>,
    a_shape: &[usize],
    b_shape: &[usize],
) -> InputGrads<T> {
    let to_a = grad_output * a_share;
    let to_b = grad_output - &to_a;
    vec![Some(to_a.sum_to(a_shape)), Some(to_b.sum_to(b_shape))]
}

// ------------------------------------------------------------------- operators
// So math reads like math: `&a * &b + 1.0`.

macro_rules! tensor_operator {
    ($trait:ident, $method:ident, $tensor_op:ident, $scalar_op:ident) => {
        impl<T: Float> std::ops::$trait<&Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                Tensor::$tensor_op(self, rhs)
            }
        }
        impl<T: Float> std::ops::$trait<Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            fn $method(self, rhs: Tensor<T>) -> Tensor<T> {
                Tensor::$tensor_op(&self, &rhs)
            }
        }
        impl<T: Float> std::ops::$trait<&Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                Tensor::$tensor_op(&self, rhs)
            }
        }
        impl<T: Float> std::ops::$trait<Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            fn $method(self, rhs: Tensor<T>) -> Tensor<T> {
                Tensor::$tensor_op(self, &rhs)
            }
        }
        impl<T: Float> std::ops::$trait<T> for &Tensor<T> {
            type Output = Tensor<T>;
            fn $method(self, rhs: T) -> Tensor<T> {
                Tensor::$scalar_op(self, rhs)
            }
        }
        impl<T: Float> std::ops::$trait<T> for Tensor<T> {
            type Output = Tensor<T>;
            fn $method(self, rhs: T) -> Tensor<T> {
                Tensor::$scalar_op(&self, rhs)
            }
        }
    };
}

/// Subtracting a scalar is adding its negation.
impl<T: Float> Tensor<T> {
    fn sub_scalar(&self, c: T) -> Tensor<T> {
        self.add_scalar(-c)
    }
}

tensor_operator!(Add, add, add, add_scalar);
tensor_operator!(Sub, sub, sub, sub_scalar);
tensor_operator!(Mul, mul, mul, mul_scalar);
tensor_operator!(Div, div, div, div_scalar);

impl<T: Float> std::ops::Neg for &Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        Tensor::neg(self)
    }
}

impl<T: Float> std::ops::Neg for Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        Tensor::neg(&self)
    }
}

/// Scalars on the left: `2.0 * &x`, `1.0 - &x`, `1.0 / &x`.
macro_rules! scalar_on_left {
    ($($t:ty),*) => {$(
        impl std::ops::Add<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn add(self, rhs: &Tensor<$t>) -> Tensor<$t> { rhs.add_scalar(self) }
        }
        impl std::ops::Sub<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn sub(self, rhs: &Tensor<$t>) -> Tensor<$t> { rhs.rsub_scalar(self) }
        }
        impl std::ops::Mul<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn mul(self, rhs: &Tensor<$t>) -> Tensor<$t> { rhs.mul_scalar(self) }
        }
        impl std::ops::Div<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn div(self, rhs: &Tensor<$t>) -> Tensor<$t> { rhs.rdiv_scalar(self) }
        }
        impl std::ops::Add<Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn add(self, rhs: Tensor<$t>) -> Tensor<$t> { rhs.add_scalar(self) }
        }
        impl std::ops::Sub<Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn sub(self, rhs: Tensor<$t>) -> Tensor<$t> { rhs.rsub_scalar(self) }
        }
        impl std::ops::Mul<Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn mul(self, rhs: Tensor<$t>) -> Tensor<$t> { rhs.mul_scalar(self) }
        }
        impl std::ops::Div<Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn div(self, rhs: Tensor<$t>) -> Tensor<$t> { rhs.rdiv_scalar(self) }
        }
    )*};
}

scalar_on_left!(f32, f64);
