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
    + crate::cpu::buffer::Recycle
    + 'static
{
    /// The name PyTorch and safetensors use for this type (`"F32"`, `"F64"`).
    const DTYPE: &'static str;

    /// Converts an `f64` constant to this type (rounding for `f32`).
    fn cast(value: f64) -> Self;

    /// Widens this value to `f64`.
    fn as_f64(self) -> f64;

    /// The error function, for the exact GELU.
    fn erf(self) -> Self;

    /// `C = A·B (+ C if accumulate)`, with every matrix given by its row and column
    /// strides, so transposes cost nothing. Dispatches to the GEMM crate's kernel.
    ///
    /// # Safety
    /// Every index `i*rs + j*cs` the shapes reach must lie inside the slices
    /// (checked by the caller, `cpu::gemm`).
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        a_strides: (isize, isize),
        b: *const Self,
        b_strides: (isize, isize),
        accumulate: bool,
        c: *mut Self,
        c_strides: (isize, isize),
    );
}

macro_rules! impl_float {
    ($t:ty, $name:literal, $erf:path, $gemm:path) => {
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
            #[inline]
            fn erf(self) -> Self {
                $erf(self)
            }
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                a: *const Self,
                a_strides: (isize, isize),
                b: *const Self,
                b_strides: (isize, isize),
                accumulate: bool,
                c: *mut Self,
                c_strides: (isize, isize),
            ) {
                let beta = if accumulate { 1.0 } else { 0.0 };
                // SAFETY: forwarded from this function's contract: the caller has checked
                // that all strided indices stay inside the buffers.
                unsafe {
                    $gemm(
                        m,
                        k,
                        n,
                        1.0,
                        a,
                        a_strides.0,
                        a_strides.1,
                        b,
                        b_strides.0,
                        b_strides.1,
                        beta,
                        c,
                        c_strides.0,
                        c_strides.1,
                    )
                }
            }
        }
    };
}

impl_float!(f32, "F32", libm::erff, matrixmultiply::sgemm);
impl_float!(f64, "F64", libm::erf, matrixmultiply::dgemm);
