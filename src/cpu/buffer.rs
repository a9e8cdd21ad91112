//! Recycled buffers for tensor data.
//!
//! A training step makes the same tensors, of the same sizes, every time. Rather
//! than asking the allocator for each one and giving it back moments later, a
//! tensor's buffer goes into a per-thread pool when the tensor is dropped, and the
//! kernels take their output buffers from there: after the first step or two a step
//! allocates no tensor memory at all (and skips the page faults and zeroing that a
//! fresh allocation brings).
//!
//! Buffers are matched by exact length. A recycled buffer still holds its old
//! values: [`take`] is for kernels that write every element, [`zeroed`] for ones
//! that accumulate.

use std::cell::RefCell;
use std::thread::LocalKey;

/// Most bytes one thread keeps pooled per element type; buffers given back beyond
/// this are freed (so a one-off large tensor doesn't stay resident for ever).
const MAX_POOLED_BYTES: usize = 256 << 20;

/// Most buffers of one length kept pooled.
const MAX_PER_LENGTH: usize = 64;

/// Every this many buffers given back, the pool frees what nobody needed since the
/// last trim: lengths that stopped being used (the last, smaller batch of an epoch;
/// an evaluation batch size), and surplus buffers of lengths that are used — the
/// buffers that sat in the pool the whole time (its low-water mark), such as
/// buffers a tensor gave back that never came from the pool (an op that builds its
/// output with `vec!`). Much longer than a training step, so a step's buffers always
/// survive it.
const TRIM_PERIOD: u32 = 1024;

/// Most [`Scratch`] buffers one thread keeps per element type.
const MAX_SCRATCH_BUFFERS: usize = 8;

/// Element types whose buffers are pooled (each has its own pool per thread).
pub trait Recycle: Copy + Default + 'static {
    /// This type's pool on the current thread.
    #[doc(hidden)]
    fn pool() -> &'static LocalKey<RefCell<Pool<Self>>>;
}

macro_rules! recycle {
    ($($t:ty),*) => {$(
        impl Recycle for $t {
            fn pool() -> &'static LocalKey<RefCell<Pool<Self>>> {
                thread_local! {
                    static POOL: RefCell<Pool<$t>> = RefCell::new(Pool::default());
                }
                &POOL
            }
        }
    )*};
}
recycle!(f32, f64, usize);

/// Free buffers of one element type, grouped by length.
#[doc(hidden)]
pub struct Pool<T> {
    /// A step uses few distinct lengths, so a short list searched in order beats hashing.
    buckets: Vec<Bucket<T>>,
    bytes: usize,
    gives_since_trim: u32,
    stats: BufferStats,
    /// The thread's [`Scratch`] buffers while nobody holds them, the last one given
    /// back on top.
    scratch: Vec<Vec<T>>,
}

/// The free buffers of one length.
struct Bucket<T> {
    len: usize,
    free: Vec<Vec<T>>,
    /// The fewest free buffers there were at any moment since the last trim: that
    /// many were never needed.
    low_water: usize,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool {
            buckets: Vec::new(),
            bytes: 0,
            gives_since_trim: 0,
            stats: BufferStats::default(),
            scratch: Vec::new(),
        }
    }
}

impl<T> Pool<T> {
    /// Frees, for each length, the buffers that were never needed since the last
    /// trim (the bucket's low-water mark), and starts the next period.
    fn trim(&mut self) {
        for bucket in &mut self.buckets {
            let surplus = bucket.low_water.min(bucket.free.len());
            bucket.free.truncate(bucket.free.len() - surplus);
            self.bytes -= surplus * bucket.len * size_of::<T>();
            bucket.low_water = bucket.free.len();
        }
        self.buckets.retain(|bucket| !bucket.free.is_empty());
        self.gives_since_trim = 0;
    }
}

/// How the calling thread's buffer pool has been used (all element types together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Buffers handed out from the pool.
    pub reused: u64,
    /// Buffers that had to be allocated because none of that length was free.
    pub allocated: u64,
    /// Bytes allocated for those.
    pub allocated_bytes: u64,
    /// Buffers given back (by dropped tensors), pooled or not. In a steady state
    /// this equals `reused`: every buffer that goes back came from the pool.
    pub returned: u64,
    /// Bytes held in the pool now, ready for reuse.
    pub pooled_bytes: u64,
}

/// A buffer of `len` elements whose values are unspecified (old data or defaults):
/// for kernels that overwrite every element.
pub fn take<T: Recycle>(len: usize) -> Vec<T> {
    let recycled = T::pool()
        .try_with(|pool| {
            let mut pool = pool.try_borrow_mut().ok()?;
            let pool = &mut *pool;
            let bucket = pool.buckets.iter_mut().find(|bucket| bucket.len == len);
            let found = bucket.and_then(|bucket| {
                let buffer = bucket.free.pop();
                bucket.low_water = bucket.low_water.min(bucket.free.len());
                buffer
            });
            match found {
                Some(buffer) => {
                    pool.bytes -= len * size_of::<T>();
                    pool.stats.reused += 1;
                    Some(buffer)
                }
                None => {
                    pool.stats.allocated += 1;
                    pool.stats.allocated_bytes += (len * size_of::<T>()) as u64;
                    None
                }
            }
        })
        .ok()
        .flatten();
    recycled.unwrap_or_else(|| vec![T::default(); len])
}

/// A buffer of `len` zeros (defaults).
pub fn zeroed<T: Recycle>(len: usize) -> Vec<T> {
    let mut buffer = take(len);
    buffer.fill(T::default());
    buffer
}

/// A buffer of `len` copies of `value`.
pub fn filled<T: Recycle>(len: usize, value: T) -> Vec<T> {
    let mut buffer = take(len);
    buffer.fill(value);
    buffer
}

/// A buffer holding a copy of `values`.
pub fn copied<T: Recycle>(values: &[T]) -> Vec<T> {
    let mut buffer = take(values.len());
    buffer.copy_from_slice(values);
    buffer
}

/// Gives `buffer` back for reuse (or frees it if the pool is full).
pub fn give<T: Recycle>(buffer: Vec<T>) {
    let len = buffer.len();
    if len == 0 {
        return;
    }
    let _ = T::pool().try_with(|pool| {
        let Ok(mut pool) = pool.try_borrow_mut() else {
            return;
        };
        pool.stats.returned += 1;
        let bytes = len * size_of::<T>();
        // Only exactly sized buffers: `take` hands them out by length.
        if buffer.capacity() != len || pool.bytes + bytes > MAX_POOLED_BYTES {
            return;
        }
        let at = match pool.buckets.iter().position(|bucket| bucket.len == len) {
            Some(at) => at,
            None => {
                pool.buckets.push(Bucket {
                    len,
                    free: Vec::new(),
                    low_water: 0,
                });
                pool.buckets.len() - 1
            }
        };
        let free = &mut pool.buckets[at].free;
        if free.len() < MAX_PER_LENGTH {
            free.push(buffer);
            pool.bytes += bytes;
        }
        pool.gives_since_trim += 1;
        if pool.gives_since_trim >= TRIM_PERIOD {
            pool.trim();
        }
    });
}

/// A buffer that goes back to the pool when dropped: for scratch data kept outside
/// a tensor, such as the positions of the maxima that max pooling keeps for backward.
pub struct Recycled<T: Recycle>(Vec<T>);

impl<T: Recycle> Recycled<T> {
    /// Wraps `buffer`.
    pub fn new(buffer: Vec<T>) -> Self {
        Recycled(buffer)
    }
}

impl<T: Recycle> std::ops::Deref for Recycled<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: Recycle> Drop for Recycled<T> {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

/// Work space for the inside of one kernel call (an image's im2col columns),
/// `len` elements of unspecified values. Each thread keeps a few scratch buffers
/// per element type, outside the pool's books and trims: a kernel that runs per
/// image asks for them thousands of times a step, and must never find them trimmed
/// away. Buffers are handed out last-given-first and grow to the largest size
/// asked of them, so a kernel that holds several at once, in the same order every
/// time, allocates only while it warms up. Given back when dropped.
pub struct Scratch<T: Recycle> {
    buffer: Vec<T>,
    len: usize,
}

impl<T: Recycle> Scratch<T> {
    /// One of the calling thread's scratch buffers, grown to at least `len` elements.
    pub fn new(len: usize) -> Self {
        let mut buffer = T::pool()
            .try_with(|pool| pool.try_borrow_mut().ok()?.scratch.pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        if buffer.len() < len {
            buffer.resize(len, T::default());
        }
        Scratch { buffer, len }
    }
}

impl<T: Recycle> std::ops::Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buffer[..self.len]
    }
}

impl<T: Recycle> std::ops::DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buffer[..self.len]
    }
}

impl<T: Recycle> Drop for Scratch<T> {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        let _ = T::pool().try_with(|pool| {
            if let Ok(mut pool) = pool.try_borrow_mut()
                && pool.scratch.len() < MAX_SCRATCH_BUFFERS
            {
                pool.scratch.push(buffer);
            }
        });
    }
}

/// How this thread's pool has been used so far.
pub fn stats() -> BufferStats {
    fn of<T: Recycle>() -> BufferStats {
        T::pool()
            .try_with(|pool| {
                let pool = pool.borrow();
                BufferStats {
                    pooled_bytes: pool.bytes as u64,
                    ..pool.stats
                }
            })
            .unwrap_or_default()
    }
    [of::<f32>(), of::<f64>(), of::<usize>()].into_iter().fold(
        BufferStats::default(),
        |total, s| BufferStats {
            reused: total.reused + s.reused,
            allocated: total.allocated + s.allocated,
            allocated_bytes: total.allocated_bytes + s.allocated_bytes,
            returned: total.returned + s.returned,
            pooled_bytes: total.pooled_bytes + s.pooled_bytes,
        },
    )
}

/// Frees every pooled buffer of this thread (for example after evaluating with a
/// batch size that training will not use again).
pub fn release() {
    fn of<T: Recycle>() {
        let _ = T::pool().try_with(|pool| {
            if let Ok(mut pool) = pool.try_borrow_mut() {
                pool.buckets.clear();
                pool.bytes = 0;
                pool.scratch.clear();
            }
        });
    }
    of::<f32>();
    of::<f64>();
    of::<usize>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_again_by_length() {
        release();
        let before = stats();
        let buffer: Vec<f64> = zeroed(1000);
        let address = buffer.as_ptr();
        give(buffer);
        assert_eq!(stats().pooled_bytes, 8000);
        let again: Vec<f64> = take(1000);
        assert_eq!(again.as_ptr(), address, "the same allocation comes back");
        let after = stats();
        assert_eq!(after.allocated - before.allocated, 1);
        assert_eq!(after.reused - before.reused, 1);
        let other: Vec<f64> = take(999);
        assert_eq!(other.len(), 999);
        assert_eq!(
            stats().allocated - before.allocated,
            2,
            "no buffer of length 999"
        );
    }

    #[test]
    fn scratch_is_kept_at_the_largest_size() {
        release();
        let address = {
            let mut scratch = Scratch::<f32>::new(100);
            scratch[99] = 1.0;
            scratch.as_ptr()
        };
        let smaller = Scratch::<f32>::new(10);
        assert_eq!((smaller.as_ptr(), smaller.len()), (address, 10));
        // held at the same time: a second buffer
        let other = Scratch::<f32>::new(10);
        assert_ne!(other.as_ptr(), address);
    }

    #[test]
    fn buffers_the_pool_never_handed_out_are_freed_at_the_next_trims() {
        release();
        // a steady "step": 10 buffers of each of 10 lengths taken, then given back
        const PER_LENGTH: usize = 10;
        let lengths = || (1..=10).map(|i| i * 64);
        let step = || {
            let held: Vec<Vec<f32>> = lengths()
                .flat_map(|len| (0..PER_LENGTH).map(move |_| take(len)))
                .collect();
            held.into_iter().for_each(give);
        };
        step();
        // an op that builds its output outside the pool: one extra buffer per step
        for _ in 0..300 {
            step();
            give(vec![0.0f32; 64]);
        }
        // a trim period sees about TRIM_PERIOD / 100 strays arrive; each is freed by
        // the second trim after it came, so at most two periods' worth stay (without
        // the trim they would pile up to MAX_PER_LENGTH − 10 = 54)
        let step_bytes: usize = lengths().map(|len| len * 4 * PER_LENGTH).sum();
        let strays = (stats().pooled_bytes as usize - step_bytes) / (64 * 4);
        assert!(
            strays <= 2 * (TRIM_PERIOD as usize / 100 + 1),
            "{strays} strays pooled"
        );
        // and the step's own buffers survive every trim: no new allocation
        let before = stats().allocated;
        step();
        assert_eq!(stats().allocated, before);
    }

    #[test]
    fn zeroed_clears_old_values() {
        give(vec![7.0f32; 64]);
        assert!(zeroed::<f32>(64).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn over_allocated_buffers_are_not_pooled() {
        release();
        let mut buffer = Vec::<f32>::with_capacity(100);
        buffer.extend([1.0; 10]);
        give(buffer);
        assert_eq!(stats().pooled_bytes, 0);
    }
}
