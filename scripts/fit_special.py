#!/usr/bin/env python3
"""Fits the polynomial coefficients of nabla's f32 error function (src/special.rs).

    python3 scripts/fit_special.py        (needs numpy)

erf is split at |x| = 0.875:
  small |x|:  erf(x) = x + x·q(x²),  q(s) = (2/√π − 1) + s·P(s),  P of degree 5,
              fitted to (erf(x)/x − 2/√π) / x²;
  large |x|:  erf(x) = 1 − e^(−x²)·R(1/x − 0.6),  R of degree 8,
              fitted to erfc(x)·e^(x²) (a smooth, slowly varying function);
  |x| ≥ 3.92 gives 1 in f32 either way.
Each is a least-squares fit on 600 Chebyshev nodes of the interval (close to the
minimax polynomial); the script then evaluates the polynomials in f32, as the Rust code
does, on a dense grid and prints the worst error in ulps. The exponential needs no fit:
its polynomial is the Taylor series of e^r to degree 7 on |r| ≤ ln2/2.
"""
import math

import numpy as np

F32 = np.float32
SPLIT, UPPER, CENTRE = 0.875, 3.95, 0.6


def chebyshev_nodes(lo, hi, count):
    k = np.arange(count)
    return (lo + hi) / 2 + (hi - lo) / 2 * np.cos((2 * k + 1) * np.pi / (2 * count))


def fit(function, lo, hi, degree, variable):
    x = chebyshev_nodes(lo, hi, 600)
    powers = np.vander(variable(x), degree + 1, increasing=True)
    coefficients, *_ = np.linalg.lstsq(powers, np.array([function(v) for v in x]), rcond=None)
    return coefficients


def horner_f32(coefficients, u):
    result = F32(coefficients[-1]) * np.ones_like(u)
    for c in coefficients[-2::-1]:
        result = (result * u + F32(c)).astype(F32)
    return result


def worst_ulps(got, exact):
    ulp = np.spacing(np.abs(exact).astype(F32)).astype(np.float64)
    return (np.abs(got.astype(np.float64) - exact) / ulp).max()


two_over_sqrt_pi = 2 / math.sqrt(math.pi)
small = fit(lambda x: (math.erf(x) / x - two_over_sqrt_pi) / (x * x), 1e-4, SPLIT, 5, lambda x: x * x)
large = fit(lambda x: math.erfc(x) * math.exp(x * x), SPLIT, UPPER, 8, lambda x: 1 / x - CENTRE)

x = np.linspace(1e-6, SPLIT, 400_001).astype(F32)
s = (x * x).astype(F32)
q = ((horner_f32(small, s) * s).astype(F32) + F32(two_over_sqrt_pi - 1)).astype(F32)
small_error = worst_ulps((x + (x * q).astype(F32)).astype(F32), np.array([math.erf(v) for v in x.astype(float)]))

x = np.linspace(SPLIT, UPPER, 400_001).astype(F32)
r = horner_f32(large, ((F32(1) / x).astype(F32) - F32(CENTRE)).astype(F32))
e = np.exp(-(x * x).astype(F32).astype(np.float64)).astype(F32)
large_error = worst_ulps((F32(1) - (e * r).astype(F32)).astype(F32), np.array([math.erf(v) for v in x.astype(float)]))

for name, coefficients in [("ERF_SMALL", small), ("ERF_LARGE", large)]:
    print(f"const {name}: [f32; {len(coefficients)}] = [")
    for c in coefficients:
        print(f"    {float(F32(c))!r},")
    print("];")
print(f"// worst error in f32 (with a correctly rounded exp): small {small_error:.2f} ulp, large {large_error:.2f} ulp")
