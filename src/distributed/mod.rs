//! Data-parallel training: N processes ("ranks") each hold the whole model, each
//! runs forward and backward propagation on its share of every batch, and the
//! gradients are summed across ranks before every rank applies the same update —
//! so all ranks keep identical weights, and together they train the model one
//! process would.
//!
//! Why the sum is the right gradient: the loss of a batch of `B` samples is the mean
//! `L = (1/B) Σᵢ lᵢ`, so `dL/dw = Σ_ranks (n_r/B) · d(mean of rank r's lᵢ)/dw`. Each
//! rank scales its own mean loss by `n_r/B` before backward, and an all-reduce adds
//! the scaled gradients.
//!
//! The processes talk through a [`Communicator`]: [`World::single`] for one process
//! (every collective is a no-op), and with the feature `mpi`, `World::mpi` on any
//! MPI implementation (`mpirun -np N nabla train …`). [`GradientSync`] sends the
//! gradients in buckets while backward is still running.

#[cfg(feature = "mpi")]
pub mod mpi;
mod sync;

use std::hash::Hasher;
use std::ops::Range;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use crate::data::share_of;
use crate::data::{DataLoader, Dataset};
use crate::tensor::Tensor;

pub use sync::{BUCKET_ELEMENTS, CommStats, GradientSync};

/// The collective operations data-parallel training needs. Every rank must make
/// the same calls in the same order (that is what makes them collective).
pub trait Communicator: Send + Sync {
    /// This process's number, `0..size()`.
    fn rank(&self) -> usize;
    /// How many processes take part.
    fn size(&self) -> usize;
    /// Replaces `values` (the same length on all ranks) with their element-wise sum
    /// over all ranks; every rank gets bit-for-bit the same sums. In place, so that
    /// a gradient can be summed in its own memory without a copy.
    fn sum_f32(&self, values: &mut [f32]);
    /// [`Communicator::sum_f32`] for f64 (losses, counts).
    fn sum_f64(&self, values: &mut [f64]);
    /// Every rank's `value`, in rank order.
    fn gather_u64(&self, value: u64) -> Vec<u64>;
    /// Every rank's `values` (the same length on all), one after the other in rank
    /// order.
    fn gather_f32(&self, values: &[f32]) -> Vec<f32>;
    /// Ends every process of the job at once (after an error on one rank, so the
    /// others do not wait forever in a collective).
    fn abort(&self, code: i32) -> !;
}

/// One process alone: the sums are the values themselves.
struct Single;

impl Communicator for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f32(&self, _: &mut [f32]) {}
    fn sum_f64(&self, _: &mut [f64]) {}
    fn gather_u64(&self, value: u64) -> Vec<u64> {
        vec![value]
    }
    fn gather_f32(&self, values: &[f32]) -> Vec<f32> {
        values.to_vec()
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The processes training together: a cheap handle, cloned wherever it is needed.
///
/// With more than one rank, every collective runs on one communication thread, in
/// the order the calls were made: the gradient buckets that [`GradientSync`] sends
/// while backward runs, and the blocking sums (losses, synchronised batch-norm
/// statistics) made in between, so every rank issues them in the same order.
///
/// ```
/// let world = nabla::distributed::World::single();
/// assert_eq!((world.rank(), world.size()), (0, 1));
/// assert_eq!(world.share(10), 0..10); // one process takes the whole batch
/// ```
#[derive(Clone)]
pub struct World {
    // Declared first, so dropped first: the thread ends and lets go of its copy of
    // `comm` before ours goes, and MPI is finalised on the thread that started it.
    /// The communication thread (none for one process).
    channel: Option<Arc<Channel>>,
    comm: Arc<dyn Communicator>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "World(rank {} of {})", self.rank(), self.size())
    }
}

impl Default for World {
    fn default() -> Self {
        World::single()
    }
}

type Job = Box<dyn FnOnce(&dyn Communicator) + Send>;

/// The queue of the communication thread, and the thread.
struct Channel {
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Channel {
    fn drop(&mut self) {
        // closing the queue ends the thread's loop once the queued jobs are done
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// Values summed over all ranks, and how long the all-reduce took.
pub struct Summed {
    /// The sums, in the buffer that was sent.
    pub values: Vec<f32>,
    /// Seconds in the all-reduce call (waiting for the other ranks included).
    pub seconds: f64,
}

/// The result of a collective started with [`World::start_sum_f32`].
pub struct Pending<R> {
    result: Receiver<R>,
}

impl<R> Pending<R> {
    /// Waits for the result.
    pub fn wait(self) -> R {
        self.result
            .recv()
            .expect("the communication thread finishes every job it is given")
    }
}

impl World {
    /// One process, no communication.
    pub fn single() -> World {
        World::new(Arc::new(Single))
    }

    /// A world over any communicator.
    pub fn new(comm: Arc<dyn Communicator>) -> World {
        let channel = (comm.size() > 1).then(|| {
            let (jobs, inbox) = channel::<Job>();
            let worker = Arc::clone(&comm);
            let thread = std::thread::Builder::new()
                .name("nabla-communication".into())
                .spawn(move || {
                    while let Ok(job) = inbox.recv() {
                        job(worker.as_ref());
                    }
                })
                .expect("the operating system starts a thread");
            Arc::new(Channel {
                jobs: Mutex::new(Some(jobs)),
                thread: Mutex::new(Some(thread)),
            })
        });
        World { channel, comm }
    }

    /// Runs `job` on the communication thread, after every job queued before it
    /// (at once, on this thread, for one process).
    fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce(&dyn Communicator) -> R + Send + 'static,
    ) -> Pending<R> {
        let (reply, result) = channel();
        match &self.channel {
            None => {
                let _ = reply.send(job(self.comm.as_ref()));
            }
            Some(channel) => {
                let queued: Job = Box::new(move |comm| {
                    let _ = reply.send(job(comm));
                });
                channel
                    .jobs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .expect("the queue closes only when the world is dropped")
                    .send(queued)
                    .expect("the communication thread lives as long as the world");
            }
        }
        Pending { result }
    }

    /// Starts summing `values` over all ranks; the sums come back from
    /// [`Pending::wait`], in the same buffer.
    pub fn start_sum_f32(&self, mut values: Vec<f32>) -> Pending<Summed> {
        self.run(move |comm| {
            let started = std::time::Instant::now();
            comm.sum_f32(&mut values);
            Summed {
                values,
                seconds: started.elapsed().as_secs_f64(),
            }
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.comm.size()
    }

    /// Rank 0: the one that prints and writes the run directory.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// More than one rank.
    pub fn is_distributed(&self) -> bool {
        self.size() > 1
    }

    /// This rank's rows of a batch of `len` samples: rank `r` of `N` takes
    /// `[⌊r·len/N⌋, ⌊(r+1)·len/N⌋)`, a fixed split whose shares differ by at most one.
    ///
    /// ```
    /// # use nabla::distributed::share_of;
    /// assert_eq!((0..3).map(|r| share_of(r, 3, 10)).collect::<Vec<_>>(), [0..3, 3..6, 6..10]);
    /// ```
    pub fn share(&self, len: usize) -> Range<usize> {
        share_of(self.rank(), self.size(), len)
    }

    /// Starts summing `values` over all ranks (f64: losses, counts, statistics).
    pub fn start_sum_f64(&self, mut values: Vec<f64>) -> Pending<Vec<f64>> {
        if !self.is_distributed() {
            return self.run(move |_| values);
        }
        self.run(move |comm| {
            comm.sum_f64(&mut values);
            values
        })
    }

    /// Sums `values` element-wise over all ranks (in place, on every rank).
    pub fn sum_f64(&self, values: &mut [f64]) {
        if self.is_distributed() {
            let summed = self.start_sum_f64(values.to_vec()).wait();
            values.copy_from_slice(&summed);
        }
    }

    /// Every rank's `value`, in rank order.
    pub fn gather_u64(&self, value: u64) -> Vec<u64> {
        self.run(move |comm| comm.gather_u64(value)).wait()
    }

    /// Every rank's `values` (the same length on all ranks), in rank order.
    pub fn gather_f32(&self, values: Vec<f32>) -> Vec<Vec<f32>> {
        let len = values.len();
        let all = self.run(move |comm| comm.gather_f32(&values)).wait();
        all.chunks(len.max(1)).map(<[f32]>::to_vec).collect()
    }

    /// Fails unless every rank has the same `value` (a hash of the config, of the
    /// weights); `what` names it in the message.
    pub fn check_same(&self, what: &str, value: u64) -> Result<(), String> {
        if !self.is_distributed() {
            return Ok(());
        }
        let values = self.gather_u64(value);
        let differing: Vec<String> = (0..values.len())
            .filter(|&rank| values[rank] != values[0])
            .map(|rank| rank.to_string())
            .collect();
        if differing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the ranks disagree on {what}: rank 0 has {:016x}, rank(s) {} differ ({})",
                values[0],
                differing.join(", "),
                values
                    .iter()
                    .map(|v| format!("{v:016x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
        }
    }

    /// A copy of `loader` that yields only this rank's share of every batch.
    pub fn shard_loader<'a, D: Dataset + ?Sized>(
        &self,
        loader: &DataLoader<'a, D>,
    ) -> DataLoader<'a, D> {
        loader.clone().shard(self.rank(), self.size())
    }

    /// Ends the whole job (see [`Communicator::abort`]).
    pub fn abort(&self, code: i32) -> ! {
        self.comm.abort(code)
    }
}

/// A hash of the parameters' names, shapes and exact bits: equal on two ranks
/// exactly when they hold the same weights.
pub fn parameter_hash(params: &[(String, Tensor<f32>)]) -> u64 {
    // `DefaultHasher::new()` has fixed keys: the same input hashes the same in every process
    let mut hasher = std::hash::DefaultHasher::new();
    for (name, tensor) in params {
        hasher.write(name.as_bytes());
        tensor.shape().iter().for_each(|&d| hasher.write_usize(d));
        tensor
            .data()
            .iter()
            .for_each(|v| hasher.write_u32(v.to_bits()));
    }
    hasher.finish()
}

/// A hash of some bytes (a config's text), equal across processes.
pub fn bytes_hash(bytes: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}
