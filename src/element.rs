//! The element types a tensor can hold: `f32` for training, `f64` for gradient checks.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A floating-point element type: `f32` or `f64`.
///
/// Everything numeric in nabla is generic over this trait, so the same network code
/// trains in `f32` and is checked against finite differences in `f64`.
pub trait Float:
    num_traits::Float
    + Copy
    + Send
    + Sync
    + Debug
    + Display
    + Default
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    // what the CPU kernels need of an element type (a GEMM, a buffer pool);
    // a second backend adds its own bound here
    + crate::cpu::CpuElement
    + 'static
{
    /// The name PyTorch and safetensors use for this type (`"F32"`, `"F64"`).
    const DTYPE: &'static str;

    /// Converts an `f64` constant to this type (rounding for `f32`).
    fn cast(value: f64) -> Self;

    /// Widens this value to `f64`.
    fn as_f64(self) -> f64;

    /// The error function, for the exact GELU. In `f32` a branch-free polynomial
    /// that vectorises (`special::erf_f32`, within 2 ulp); in `f64` libm's `erf`.
    fn erf(self) -> Self;

    /// `eˣ` as the kernels compute it: in `f32` a branch-free polynomial that
    /// vectorises (`special::exp_f32`, within 1.5 ulp of the exact value), in `f64`
    /// the correctly rounded libm `exp` the gradient checks rely on.
    fn fast_exp(self) -> Self;
}

macro_rules! impl_float {
    ($t:ty, $name:literal, $erf:path, $exp:path) => {
        impl Float for $t {
            const DTYPE: &'static str = $name;
            #[inline]
            fn cast(value: f64) -> Self {
                value as $t
            }
            #[inline]
            fn as_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline(always)]
            fn fast_exp(self) -> Self {
                $exp(self)
            }
        }
    };
}

impl_float!(f32, "F32", crate::special::erf_f32, crate::special::exp_f32);
impl_float!(f64, "F64", libm::erf, f64::exp);
