//! The optimizers' kernel: one update rule applied to every weight in place, with
//! the weight's own state values (momentum, moment estimates) beside it.

use super::parallel::{for_each_task, pieces, pieces_mut};
use super::{CHUNK, PARALLEL_MIN_ELEMENTS, SimdKernel, wide_simd};
use crate::element::Float;

/// `rule(&mut weight, &mut states, gradient)` for every weight, where `states` holds
/// that weight's `N` state values (at most three: Adam's two moments, RMSprop's
/// three buffers), one from each slice of `states`.
///
/// Large tensors are split into fixed chunks that run in parallel; each weight's
/// update depends on nothing but its own values, so the result never depends on the
/// thread count. Loops compile for AVX-512 or AVX2 where the CPU has them (Adam's square roots and
/// divisions gain most), with the same arithmetic everywhere.
///
/// ```
/// // momentum SGD: v ← μ·v + g, w ← w − lr·v
/// let (mut weights, mut velocity) = (vec![1.0f32, 2.0], vec![0.5f32, 0.0]);
/// nabla::cpu::update::apply(&mut weights, [&mut velocity[..]], &[1.0, 1.0], |w, [v], g| {
///     *v = 0.9 * *v + g;
///     *w -= 0.1 * *v;
/// });
/// assert_eq!(velocity, [1.45, 1.0]);
/// ```
pub fn apply<T: Float, const N: usize>(
    weights: &mut [T],
    states: [&mut [T]; N],
    grad: &[T],
    rule: impl Fn(&mut T, &mut [T; N], T) + Sync + Copy,
) {
    assert!(
        grad.len() == weights.len() && states.iter().all(|s| s.len() == weights.len()),
        "update: weights, gradient and every state must have the same length"
    );
    if weights.len() < PARALLEL_MIN_ELEMENTS {
        return run_chunk(weights, states, grad, rule);
    }
    // each chunk of the weights, with the same chunk of every state and the gradient
    let chunks = (
        pieces_mut(weights, CHUNK),
        states.map(|state| pieces_mut(state, CHUNK)),
        pieces(grad, CHUNK),
    );
    for_each_task(chunks, true, &|_, (weights, states, grad)| {
        run_chunk(weights, states, grad, rule)
    });
}

fn run_chunk<T: Float, const N: usize>(
    weights: &mut [T],
    states: [&mut [T]; N],
    grad: &[T],
    rule: impl Fn(&mut T, &mut [T; N], T) + Copy,
) {
    wide_simd(Chunk {
        weights,
        states,
        grad,
        rule,
    })
}

/// One chunk of [`apply`], as a [`SimdKernel`].
struct Chunk<'a, T, F, const N: usize> {
    weights: &'a mut [T],
    states: [&'a mut [T]; N],
    grad: &'a [T],
    rule: F,
}

impl<T: Float, F: Fn(&mut T, &mut [T; N], T), const N: usize> SimdKernel for Chunk<'_, T, F, N> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Chunk {
            weights,
            mut states,
            grad,
            rule,
        } = self;
        // One loop shape per state count, each in a function whose slices are
        // arguments (so the compiler knows they do not overlap, and vectorises);
        // the state values travel through a local array kept in registers. `N` is a
        // constant, so only one arm survives compilation.
        match &mut states[..] {
            [] => zip0(weights, grad, rule),
            [first] => zip1(weights, first, grad, rule),
            [first, second] => zip2(weights, first, second, grad, rule),
            [first, second, third] => zip3(weights, first, second, third, grad, rule),
            _ => unimplemented!("update rules keep at most three state values per weight"),
        }
    }
}

#[inline(always)]
fn zip0<T: Float, const N: usize>(w: &mut [T], g: &[T], rule: impl Fn(&mut T, &mut [T; N], T)) {
    let mut values = [T::zero(); N];
    for (w, &g) in w.iter_mut().zip(g) {
        rule(w, &mut values, g);
    }
}

#[inline(always)]
fn zip1<T: Float, const N: usize>(
    w: &mut [T],
    a: &mut [T],
    g: &[T],
    rule: impl Fn(&mut T, &mut [T; N], T),
) {
    let mut values = [T::zero(); N];
    for ((w, a), &g) in w.iter_mut().zip(a).zip(g) {
        values[0] = *a;
        rule(w, &mut values, g);
        *a = values[0];
    }
}

#[inline(always)]
fn zip2<T: Float, const N: usize>(
    w: &mut [T],
    a: &mut [T],
    b: &mut [T],
    g: &[T],
    rule: impl Fn(&mut T, &mut [T; N], T),
) {
    let mut values = [T::zero(); N];
    for ((w, (a, b)), &g) in w.iter_mut().zip(a.iter_mut().zip(b)).zip(g) {
        (values[0], values[1]) = (*a, *b);
        rule(w, &mut values, g);
        (*a, *b) = (values[0], values[1]);
    }
}

#[inline(always)]
fn zip3<T: Float, const N: usize>(
    w: &mut [T],
    a: &mut [T],
    b: &mut [T],
    c: &mut [T],
    g: &[T],
    rule: impl Fn(&mut T, &mut [T; N], T),
) {
    let mut values = [T::zero(); N];
    let states = a.iter_mut().zip(b.iter_mut().zip(c));
    for ((w, (a, (b, c))), &g) in w.iter_mut().zip(states).zip(g) {
        (values[0], values[1], values[2]) = (*a, *b, *c);
        rule(w, &mut values, g);
        (*a, *b, *c) = (values[0], values[1], values[2]);
    }
}
