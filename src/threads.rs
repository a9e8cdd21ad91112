//! How many threads the kernels use.
//!
//! Every kernel — elementwise, reduction, im2col, pooling and matrix products —
//! runs on rayon's global pool, sized by `NABLA_THREADS` (default: all cores) or by
//! [`set_num_threads`] before the first parallel kernel runs; the `nabla` command
//! sets it from `--threads`. One pool, so no two sets of threads compete for the cores.

use std::sync::Once;

static INIT: Once = Once::new();

/// `NABLA_THREADS`, if it is set to a positive number.
fn threads_from_env() -> Option<usize> {
    std::env::var("NABLA_THREADS")
        .ok()
        .and_then(|value| value.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
}

/// Builds the thread pool from `NABLA_THREADS` the first time a parallel kernel runs.
pub(crate) fn ensure_init() {
    INIT.call_once(|| {
        if let Some(threads) = threads_from_env() {
            // Err only if someone else built the global pool first; theirs stands.
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build_global();
        }
    });
}

/// Sets the number of threads the kernels use. Call it once, before any tensor
/// work; returns an error if the pool was already started.
///
/// ```no_run
/// // first thing in a program's main(), before any tensor work:
/// nabla::set_num_threads(2).unwrap();
/// ```
pub fn set_num_threads(threads: usize) -> crate::Result<()> {
    build_pool(threads, false, "set_num_threads")
}

/// Like [`set_num_threads`], but the calling thread becomes one of the pool's
/// `threads` workers (`None`: `NABLA_THREADS`, else one per core). The thread that
/// runs the training loop then does its share of every parallel kernel itself,
/// instead of handing the kernel to the pool and sleeping until it is done — a
/// hand-off per kernel that cost the MNIST MLP a tenth of its step time.
///
/// Call it once, early, from a thread that lives as long as the program (`main`):
/// the `nabla` command does. A pool that other threads also use keeps working if
/// that thread ends, with one worker fewer.
pub fn set_num_threads_using_this_thread(threads: Option<usize>) -> crate::Result<()> {
    let threads = threads.or_else(threads_from_env).unwrap_or_else(cores);
    build_pool(threads, true, "set_num_threads_using_this_thread")
}

/// Builds the global pool with `threads` workers, the calling thread one of them if
/// `include_caller`; `caller` names the public function in errors.
fn build_pool(threads: usize, include_caller: bool, caller: &str) -> crate::Result<()> {
    if threads == 0 {
        return Err(crate::Error::Config(
            "the thread count must be at least 1".into(),
        ));
    }
    let mut result = Err(crate::Error::Config(format!(
        "{caller} must be called before the first parallel kernel runs"
    )));
    INIT.call_once(|| {
        let builder = rayon::ThreadPoolBuilder::new().num_threads(threads);
        let builder = if include_caller {
            builder.use_current_thread()
        } else {
            builder
        };
        result = builder
            .build_global()
            .map_err(|err| crate::Error::Config(format!("cannot size the thread pool: {err}")));
    });
    result
}

/// The number of threads the kernels use.
pub fn num_threads() -> usize {
    ensure_init();
    rayon::current_num_threads()
}

/// The cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
