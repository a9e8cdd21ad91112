//! The exponential and the error function in `f32`, as branch-free polynomials.
//!
//! libm's `expf` and `erff` are calls, one element at a time; in the character GPT
//! (softmax in attention, the exact GELU and its derivative) they took 13% of a
//! training step. Written as straight-line arithmetic with selects instead of
//! branches, a loop over these functions compiles to SIMD — 8 or 16 elements at
//! once. Both stay close to the correctly rounded result (tested on dense grids in
//! this file: ≤ 1.5 ulp for `exp`, ≤ 2 ulp for `erf`), use only `+ − × ÷` (no fused
//! multiply-adds), and so give the same bits on every x86-64 CPU.
//!
//! `f64` keeps libm's functions: it is the type of the gradient checks.

/// `log₂ e`.
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split in two, so that `x − n·ln 2` is exact for the `n` that occur
/// (Cody and Waite): the high part has trailing zero bits, so `n · LN2_HIGH` is exact.
const LN2_HIGH: f32 = 0.693_145_75;
const LN2_LOW: f32 = 1.428_606_8e-6;
/// Adding `1.5·2²³` rounds an `f32` of magnitude below 2²² to the nearest integer
/// (ties to even), and leaves that integer in the low bits of the sum.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `eˣ` in `f32`.
///
/// With `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`: `eˣ = 2ⁿ · eʳ`, and `eʳ` is its Taylor
/// series to degree 7 (the first omitted term is below 6·10⁻⁹). `2ⁿ` is built from
/// its exponent bits, as two factors so that results near overflow and in the
/// subnormal range come out right. NaN stays NaN; `+∞ → +∞`, `−∞ → 0`.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    // beyond these e^x is +inf or 0 in f32; comparisons let NaN through unchanged
    let x = if x > 89.0 { 89.0 } else { x };
    let x = if x < -104.0 { -104.0 } else { x };
    let shifted = x * LOG2_E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    // the integer n sits in the mantissa bits of `shifted`
    let n_int = shifted.to_bits() as i32 - ROUND_MAGIC.to_bits() as i32;
    let r = (x - n * LN2_HIGH) - n * LN2_LOW;
    let mut e_r = 1.0 / 5040.0;
    for coefficient in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        e_r = e_r * r + coefficient;
    }
    // 2ⁿ = 2^(n/2) · 2^(n − n/2): each factor is a normal f32 for n in [−150, 129]
    let half = n_int >> 1;
    e_r * power_of_two(half) * power_of_two(n_int - half)
}

/// `2ᵏ` for `−126 ≤ k ≤ 127`, from its exponent bits.
#[inline(always)]
fn power_of_two(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// Where `erf` switches from its odd series to `1 − erfc`.
const ERF_SPLIT: f32 = 0.875;
/// `P` in `erf(x) = x + x·((2/√π − 1) + x²·P(x²))` for `|x| < 0.875`, lowest power first.
/// Fitted by `scripts/fit_special.py` (least squares on Chebyshev nodes).
const ERF_SMALL: [f32; 6] = [
    -0.376_126_38,
    0.112_837_836,
    -0.026_864_734,
    0.005_215_364,
    -0.000_831_756_86,
    9.162_004e-5,
];
/// `2/√π − 1`.
const TWO_OVER_SQRT_PI_MINUS_ONE: f32 = 0.128_379_17;
/// `R` in `erfc(x) = e^(−x²)·R(1/x − 0.6)` for `|x| ≥ 0.875`, lowest power first
/// (`R` is `erfc(x)·e^(x²)`, smooth and slowly varying). Fitted by
/// `scripts/fit_special.py`.
const ERF_LARGE: [f32; 9] = [
    0.296_287_5,
    0.390_983_8,
    -0.175_589_56,
    0.041_147_157,
    0.029_860_694,
    -0.054_457_754,
    0.045_641_247,
    -0.018_763_658,
    0.000_663_516,
];
const ERF_LARGE_CENTRE: f32 = 0.6;

/// The error function `erf(x) = 2/√π ∫₀ˣ e^(−t²) dt` in `f32`.
///
/// Both branches are computed and one is selected, so the function has no branches
/// (and vectorises); `erf(−x) = −erf(x)`.
#[inline(always)]
pub(crate) fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    let s = a * a;
    let small = a + a * (TWO_OVER_SQRT_PI_MINUS_ONE + s * horner(&ERF_SMALL, s));
    let large = 1.0 - exp_f32(-s) * horner(&ERF_LARGE, 1.0 / a - ERF_LARGE_CENTRE);
    let magnitude = if a < ERF_SPLIT { small } else { large };
    magnitude.copysign(x)
}

/// `c₀ + c₁u + c₂u² + …` by Horner's rule.
#[inline(always)]
fn horner<const N: usize>(coefficients: &[f32; N], u: f32) -> f32 {
    coefficients
        .iter()
        .rev()
        .fold(0.0, |sum, &coefficient| sum * u + coefficient)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many units in the last place of `exact` (rounded to f32) `got` is off.
    fn ulps(got: f32, exact: f64) -> f64 {
        let rounded = exact as f32;
        let ulp = if rounded == 0.0 {
            f64::from(f32::from_bits(1)) // the smallest subnormal
        } else {
            let next = f32::from_bits(rounded.abs().to_bits() + 1);
            f64::from(next) - f64::from(rounded.abs())
        };
        (f64::from(got) - exact).abs() / ulp
    }

    /// `count` evenly spaced f32 values from `lo` to `hi`.
    fn grid(lo: f32, hi: f32, count: usize) -> impl Iterator<Item = f32> {
        let step = (f64::from(hi) - f64::from(lo)) / (count - 1) as f64;
        (0..count).map(move |i| (f64::from(lo) + i as f64 * step) as f32)
    }

    #[test]
    fn exp_is_within_one_and_a_half_ulp_of_the_exact_value() {
        // every result that is a normal f32: e^x for x in [−87.3, 88.7]
        let worst = grid(-87.3, 88.72, 2_000_001)
            .chain(grid(-1.0, 1.0, 200_001))
            .map(|x| ulps(exp_f32(x), f64::from(x).exp()))
            .fold(0.0, f64::max);
        assert!(worst <= 1.5, "worst error {worst} ulp");
    }

    #[test]
    fn exp_at_the_edges() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(89.0), f32::INFINITY); // e^89 > f32::MAX
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        // the largest finite result, and subnormal results to within one subnormal step
        let near_max = 88.722_83_f32;
        assert!(ulps(exp_f32(near_max), f64::from(near_max).exp()) <= 1.5);
        for x in grid(-103.9, -87.4, 10_001) {
            let error = (f64::from(exp_f32(x)) - f64::from(x).exp()).abs();
            assert!(
                error <= f64::from(f32::from_bits(1)),
                "e^{x}: off by {error}"
            );
        }
    }

    #[test]
    fn erf_is_within_two_ulp_of_the_exact_value() {
        // erf(x) rounds to 1 in f32 beyond |x| ≈ 3.92; test a little past that
        let worst = grid(0.0, 4.5, 2_000_001)
            .chain(grid(0.86, 0.89, 100_001))
            .map(|x| ulps(erf_f32(x), libm::erf(f64::from(x))))
            .fold(0.0, f64::max);
        assert!(worst <= 2.0, "worst error {worst} ulp");
        // tiny arguments: erf(x) ≈ 2x/√π, relative accuracy kept
        for x in [1e-30_f32, 1e-20, 1e-10, 1e-5] {
            assert!(ulps(erf_f32(x), libm::erf(f64::from(x))) <= 1.0);
        }
    }

    #[test]
    fn erf_is_odd_and_saturates() {
        for x in grid(0.0, 6.0, 10_001) {
            assert_eq!(erf_f32(-x), -erf_f32(x));
        }
        assert_eq!(erf_f32(f32::INFINITY), 1.0);
        assert_eq!(erf_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(erf_f32(10.0), 1.0);
        assert!(erf_f32(f32::NAN).is_nan());
        assert_eq!(erf_f32(0.0), 0.0);
    }
}
