//! The optimizers' kernel: one update rule applied to every weight in place, with
//! the weight's own state values (momentum, moment estimates) beside it.

use super::{CHUNK, PARALLEL_MIN_ELEMENTS, SimdKernel, wide_simd};
use crate::element::Float;

/// `rule(&mut weight, &mut states, gradient)` for every weight, where `states` holds
/// that weight's `N` state values, one from each slice of `states`.
///
/// Large tensors are split into fixed chunks that run in parallel; each weight's
/// update depends on nothing but its own values, so the result never depends on the
/// thread count. Loops compile for AVX2 where the CPU has it (Adam's square roots and
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
    rule: impl Fn(&mut T, &mut [T; N], T) + Sync,
) {
    assert!(
        grad.len() == weights.len() && states.iter().all(|s| s.len() == weights.len()),
        "update: weights, gradient and every state must have the same length"
    );
    if weights.len() < PARALLEL_MIN_ELEMENTS {
        return run_chunk(weights, states, grad, &rule);
    }
    crate::threads::ensure_init();
    split_in_parallel(weights, states, grad, &rule);
}

/// Halves the work at a chunk boundary until one chunk is left, running the halves
/// with `rayon::join` (which, unlike collecting the chunks first, allocates nothing).
fn split_in_parallel<T: Float, const N: usize>(
    weights: &mut [T],
    states: [&mut [T]; N],
    grad: &[T],
    rule: &(impl Fn(&mut T, &mut [T; N], T) + Sync),
) {
    let chunks = weights.len().div_ceil(CHUNK);
    if chunks <= 1 {
        return run_chunk(weights, states, grad, rule);
    }
    let middle = chunks / 2 * CHUNK;
    let (left_weights, right_weights) = weights.split_at_mut(middle);
    let (left_grad, right_grad) = grad.split_at(middle);
    let mut left_states = states;
    let right_states: [&mut [T]; N] = left_states.each_mut().map(|state| {
        let (left, right) = std::mem::take(state).split_at_mut(middle);
        *state = left;
        right
    });
    rayon::join(
        || split_in_parallel(left_weights, left_states, left_grad, rule),
        || split_in_parallel(right_weights, right_states, right_grad, rule),
    );
}

fn run_chunk<T: Float, const N: usize>(
    weights: &mut [T],
    states: [&mut [T]; N],
    grad: &[T],
    rule: &impl Fn(&mut T, &mut [T; N], T),
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
    rule: &'a F,
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
        let len = weights.len().min(grad.len());
        for i in 0..len {
            // the state values travel through a local array, which the compiler keeps in registers
            let mut values: [T; N] = std::array::from_fn(|k| states[k][i]);
            rule(&mut weights[i], &mut values, grad[i]);
            for (state, value) in states.iter_mut().zip(values) {
                state[i] = value;
            }
        }
    }
}
