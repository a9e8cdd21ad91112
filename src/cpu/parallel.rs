//! Sharing work out to the thread pool: the one place where kernels meet rayon.
//!
//! A kernel cuts its work into numbered tasks — `pieces_mut(out, n)`: the `n`-long
//! pieces of `out`, paired with whatever else each task reads or writes — and hands
//! them to [`for_each_task`] with the body that does one task. Which task computes
//! what is fixed by that cut, not by the threads, so results do not depend on the
//! thread count.
//!
//! Only [`run_indices`] touches the pool, with a `dyn` body: rayon's machinery is
//! compiled once for the whole crate rather than once per kernel and element type
//! (it had been a tenth of the crate's generated code, and of its build time). The
//! tasks reach it by number, which is what [`Tasks`] is for; nothing is allocated.

use std::marker::PhantomData;
use std::ops::Range;

use rayon::prelude::*;

/// Work cut into `count()` numbered tasks that can be taken in any order, from any
/// thread, each number once: the pieces of a slice, several slices' pieces side by
/// side (tuples and arrays of `Tasks`), or plain numbers (a `Range`).
pub trait Tasks: Sync {
    /// What one task is given (a piece of each slice).
    type Task;
    /// How many tasks there are.
    fn count(&self) -> usize;
    /// Task number `index`.
    ///
    /// # Safety
    /// Each index may be taken at most once while `self` lives: the pieces of a
    /// mutable slice are handed out as `&mut`, and taking one twice would alias it.
    unsafe fn task(&self, index: usize) -> Self::Task;
}

/// Calls `body(index, task)` for every task: on the thread pool when `parallel`,
/// otherwise in order on this thread.
///
/// ```
/// use nabla::cpu::parallel::{for_each_task, pieces_mut};
/// let mut rows = vec![0.0f32; 6];
/// // each task fills one row of 3 with its row number
/// for_each_task(pieces_mut(&mut rows, 3), true, &|row, values| values.fill(row as f32));
/// assert_eq!(rows, [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
/// ```
pub fn for_each_task<P: Tasks>(tasks: P, parallel: bool, body: &(dyn Fn(usize, P::Task) + Sync)) {
    let count = tasks.count();
    // SAFETY (both arms): every index in 0..count is taken exactly once — by the loop,
    // or by `run_indices`, which calls its body once per index.
    if parallel && count > 1 {
        run_indices(count, &|index| body(index, unsafe { tasks.task(index) }));
    } else {
        (0..count).for_each(|index| body(index, unsafe { tasks.task(index) }));
    }
}

/// `[body(0, task₀), body(1, task₁), …]`: on the thread pool when `parallel`,
/// otherwise in order on this thread. The results come back in task order, so that
/// partial sums can be added up in an order that does not depend on the threads.
///
/// ```
/// use nabla::cpu::parallel::{map_tasks, pieces};
/// let values: Vec<f64> = (1..=10).map(f64::from).collect();
/// let partials = map_tasks(pieces(&values, 4), true, &|_, chunk| chunk.iter().sum::<f64>());
/// assert_eq!(partials, [10.0, 26.0, 19.0]);
/// ```
pub fn map_tasks<P: Tasks, R: Send>(
    tasks: P,
    parallel: bool,
    body: &(dyn Fn(usize, P::Task) -> R + Sync),
) -> Vec<R> {
    let mut results: Vec<Option<R>> = (0..tasks.count()).map(|_| None).collect();
    for_each_task((tasks, pieces_mut(&mut results, 1)), parallel, &|index,
                                                                    (
        task,
        slot,
    )| {
        slot[0] = Some(body(index, task))
    });
    results
        .into_iter()
        .map(|r| r.expect("every task ran"))
        .collect()
}

/// Calls `body(0)`, …, `body(count − 1)` on the thread pool (rayon's, sized as
/// [`crate::threads`] says), each exactly once, returning when all are done.
pub fn run_indices(count: usize, body: &(dyn Fn(usize) + Sync)) {
    crate::threads::ensure_init();
    (0..count).into_par_iter().for_each(body);
}

/// The `piece_len`-long pieces of `slice` as tasks (the last piece may be shorter).
pub fn pieces<T: Sync>(slice: &[T], piece_len: usize) -> Pieces<'_, T> {
    Pieces { slice, piece_len }
}

/// The `piece_len`-long pieces of `slice` as tasks that each write their own piece
/// (the last may be shorter).
pub fn pieces_mut<T: Send>(slice: &mut [T], piece_len: usize) -> PiecesMut<'_, T> {
    PiecesMut {
        start: slice.as_mut_ptr(),
        len: slice.len(),
        piece_len,
        _slice: PhantomData,
    }
}

/// Where piece `index` of a slice of `len` elements lies: empty past the end, so
/// that slices cut into different numbers of pieces can stand side by side.
fn piece_range(index: usize, piece_len: usize, len: usize) -> Range<usize> {
    let start = index.saturating_mul(piece_len).min(len);
    start..start.saturating_add(piece_len).min(len)
}

/// How many pieces of `piece_len` a slice of `len` elements has.
fn piece_count(piece_len: usize, len: usize) -> usize {
    if piece_len == 0 {
        0
    } else {
        len.div_ceil(piece_len)
    }
}

/// See [`pieces`].
pub struct Pieces<'a, T> {
    slice: &'a [T],
    piece_len: usize,
}

impl<'a, T: Sync> Tasks for Pieces<'a, T> {
    type Task = &'a [T];
    fn count(&self) -> usize {
        piece_count(self.piece_len, self.slice.len())
    }
    unsafe fn task(&self, index: usize) -> &'a [T] {
        &self.slice[piece_range(index, self.piece_len, self.slice.len())]
    }
}

/// See [`pieces_mut`]: the slice's start and length, holding its `&mut` borrow.
pub struct PiecesMut<'a, T> {
    start: *mut T,
    len: usize,
    piece_len: usize,
    _slice: PhantomData<&'a mut [T]>,
}

// SAFETY: a `PiecesMut` only hands out pieces as `&mut [T]`, each at most once (the
// contract of `Tasks::task`), and those may move to other threads when `T: Send`.
unsafe impl<T: Send> Sync for PiecesMut<'_, T> {}

impl<'a, T: Send> Tasks for PiecesMut<'a, T> {
    type Task = &'a mut [T];
    fn count(&self) -> usize {
        piece_count(self.piece_len, self.len)
    }
    unsafe fn task(&self, index: usize) -> &'a mut [T] {
        let range = piece_range(index, self.piece_len, self.len);
        // SAFETY: `range` lies inside the slice this was made from, which stays
        // borrowed mutably for 'a; pieces of different indices do not overlap, and
        // the caller takes each index once, so no two live `&mut` share an element.
        unsafe { std::slice::from_raw_parts_mut(self.start.add(range.start), range.len()) }
    }
}

/// Plain task numbers.
impl Tasks for Range<usize> {
    type Task = usize;
    fn count(&self) -> usize {
        self.len()
    }
    unsafe fn task(&self, index: usize) -> usize {
        self.start + index
    }
}

/// Two cuts side by side: task `i` gets piece `i` of each (as many tasks as the
/// longer has; the shorter's pieces past its end are empty).
impl<A: Tasks, B: Tasks> Tasks for (A, B) {
    type Task = (A::Task, B::Task);
    fn count(&self) -> usize {
        self.0.count().max(self.1.count())
    }
    unsafe fn task(&self, index: usize) -> Self::Task {
        // SAFETY: the caller takes `index` once, so each part's `index` is taken once.
        unsafe { (self.0.task(index), self.1.task(index)) }
    }
}

/// Three cuts side by side, as for two.
impl<A: Tasks, B: Tasks, C: Tasks> Tasks for (A, B, C) {
    type Task = (A::Task, B::Task, C::Task);
    fn count(&self) -> usize {
        self.0.count().max(self.1.count()).max(self.2.count())
    }
    unsafe fn task(&self, index: usize) -> Self::Task {
        // SAFETY: as for two.
        unsafe { (self.0.task(index), self.1.task(index), self.2.task(index)) }
    }
}

/// `N` cuts side by side (an optimizer's state buffers), as for two.
impl<P: Tasks, const N: usize> Tasks for [P; N] {
    type Task = [P::Task; N];
    fn count(&self) -> usize {
        self.iter().map(P::count).max().unwrap_or(0)
    }
    unsafe fn task(&self, index: usize) -> Self::Task {
        // SAFETY: as for two.
        self.each_ref().map(|part| unsafe { part.task(index) })
    }
}

/// Any number of cuts side by side (a task gets a `Vec` of pieces), as for two.
impl<P: Tasks> Tasks for Vec<P> {
    type Task = Vec<P::Task>;
    fn count(&self) -> usize {
        self.iter().map(P::count).max().unwrap_or(0)
    }
    unsafe fn task(&self, index: usize) -> Self::Task {
        // SAFETY: as for two.
        self.iter()
            .map(|part| unsafe { part.task(index) })
            .collect()
    }
}

/// Calls `body(index, chunk)` for each `chunk`-long piece of `data`, in parallel
/// when asked (each piece is written by one task).
pub(crate) fn for_each_chunk<T: Send>(
    data: &mut [T],
    chunk: usize,
    parallel: bool,
    body: impl Fn(usize, &mut [T]) + Sync,
) {
    if chunk == 0 {
        return;
    }
    for_each_task(pieces_mut(data, chunk), parallel, &body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_with_its_own_index_in_parallel_or_not() {
        for parallel in [false, true] {
            let mut out = vec![0usize; 1000];
            for_each_task(pieces_mut(&mut out, 7), parallel, &|index, piece| {
                piece.iter_mut().for_each(|slot| *slot += index + 1)
            });
            let expected: Vec<usize> = (0..1000).map(|i| i / 7 + 1).collect();
            assert_eq!(out, expected, "parallel = {parallel}");
        }
    }

    #[test]
    fn side_by_side_cuts_give_task_i_piece_i_of_each_and_empty_past_an_end() {
        let (mut long, mut short) = (vec![0u32; 10], vec![0u32; 4]);
        let read: Vec<u32> = (0..5).collect();
        let tasks = (
            pieces_mut(&mut long, 2),
            pieces_mut(&mut short, 2),
            pieces(&read, 1),
        );
        for_each_task(tasks, true, &|index, (long, short, read)| {
            long.fill(read[0] * 10);
            short.fill(index as u32 + 1);
            assert_eq!(short.len(), if index < 2 { 2 } else { 0 });
        });
        assert_eq!(long, [0, 0, 10, 10, 20, 20, 30, 30, 40, 40]);
        assert_eq!(short, [1, 1, 2, 2]);
    }

    #[test]
    fn mapped_results_come_back_in_task_order() {
        let values: Vec<u64> = (0..10_000).collect();
        let sum = |index: usize, chunk: &[u64]| (index, chunk.iter().sum::<u64>());
        let serial = map_tasks(pieces(&values, 97), false, &sum);
        let parallel = map_tasks(pieces(&values, 97), true, &sum);
        assert_eq!(serial, parallel);
        assert!(serial.iter().enumerate().all(|(i, &(index, _))| i == index));
        assert_eq!(
            serial.iter().map(|&(_, sum)| sum).sum::<u64>(),
            9_999 * 10_000 / 2
        );
    }

    #[test]
    fn a_zero_piece_length_or_an_empty_slice_makes_no_tasks() {
        let mut empty: Vec<f32> = Vec::new();
        let mut some = vec![1.0f32; 3];
        assert_eq!(pieces_mut(&mut empty, 4).count(), 0);
        assert_eq!(pieces_mut(&mut some, 0).count(), 0);
        for_each_task(pieces_mut(&mut some, 0), true, &|_, _| panic!("no task"));
    }
}
