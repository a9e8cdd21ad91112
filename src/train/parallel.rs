//! One training step split across ranks (data parallelism).
//!
//! Every rank holds the whole model and sees its share of the batch
//! ([`crate::data::DataLoader::shard`]). The step is [`super::step`]'s, with two
//! additions: each rank scales its mean loss by its share of the batch, `n_r/B`, so
//! that the sum of the ranks' gradients is the gradient of the whole batch's mean
//! loss; and that sum is taken (in buckets, while backward runs) before anything
//! is checked or updated — so every rank applies the same update.

use crate::data::Batch;
use crate::distributed::{
    BUCKET_ELEMENTS, CommStats, GradientSync, Pending, World, parameter_hash, share_of,
};
use crate::error::{Error, Result};
use crate::metrics::correct_count;
use crate::nn::Module;
use crate::optim::Optimizer;
use crate::tensor::Tensor;

use super::{Divergence, LossFn};

/// What one step did, over the whole batch (all ranks).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchResult {
    /// The batch's mean loss, before the update.
    pub loss: f64,
    /// Labels predicted right (samples, or a sequence model's positions).
    pub correct: usize,
    /// Labels in the batch (samples, or a sequence model's positions).
    pub labels: usize,
}

/// How a training step runs: on one process, exactly [`super::step`]; over several
/// ranks, each on its share of the batch, with the gradient sync and the buffers
/// (batch norm's running statistics) averaged after every step so that all ranks
/// keep the same ones; or in fixed chunks ([`DataParallel::fixed_chunks`]).
pub struct DataParallel {
    world: World,
    sync: GradientSync,
    buffers: Vec<Tensor<f32>>,
    /// Fixed chunks per batch (see [`DataParallel::fixed_chunks`]).
    chunks: Option<usize>,
    /// Steps taken, for the chunks' dropout streams.
    steps: u64,
}

impl DataParallel {
    /// Gradient buckets for `optimizer`'s parameters; `model` for its buffers.
    pub fn new(world: &World, model: &dyn Module<f32>, optimizer: &dyn Optimizer<f32>) -> Self {
        DataParallel {
            world: world.clone(),
            sync: GradientSync::new(world, optimizer.params(), BUCKET_ELEMENTS),
            buffers: model.named_buffers().into_iter().map(|(_, b)| b).collect(),
            chunks: None,
            steps: 0,
        }
    }

    /// Bit-identical training whatever the rank count: every batch is cut into
    /// `chunks` fixed chunks (chunk j: samples ⌊j·B/K⌋ … ⌊(j+1)·B/K⌋ − 1), each chunk's
    /// gradient is computed on its own (its own batch statistics, its own dropout
    /// stream), and the K gradients are added in one fixed binary tree — the ranks
    /// each add up their subtree, and the subtrees are gathered and added in the
    /// same tree. `K` must be a power of two, and the rank count a power of two that
    /// divides it. It costs K smaller forward/backward passes per step and an
    /// all-gather instead of an all-reduce, and nothing travels during backward.
    pub fn fixed_chunks(mut self, chunks: usize) -> Result<Self> {
        let ranks = self.world.size();
        if !chunks.is_power_of_two() || !ranks.is_power_of_two() || !chunks.is_multiple_of(ranks) {
            return Err(Error::Config(format!(
                "fixed_chunks = {chunks} with {ranks} rank(s): the chunks must be a power of \
                 two and the ranks a power of two that divides it (1, 2, 4, … up to {chunks})"
            )));
        }
        self.chunks = Some(chunks);
        Ok(self)
    }

    /// One step on this rank's share `batch` of a batch of `samples` samples over all
    /// ranks (a share may be empty: the rank then only adds zeros). One process
    /// without fixed chunks takes exactly [`super::step`].
    pub fn step(
        &mut self,
        model: &dyn Module<f32>,
        optimizer: &mut dyn Optimizer<f32>,
        batch: &Batch,
        samples: usize,
        loss_fn: LossFn<'_>,
        max_norm: Option<f64>,
    ) -> std::result::Result<BatchResult, Divergence> {
        if !self.world.is_distributed() && self.chunks.is_none() {
            let loss_of = |logits: &Tensor<f32>| loss_fn(logits, &batch.labels);
            return super::step(model, optimizer, &batch.inputs, loss_of, max_norm).map(|taken| {
                BatchResult {
                    loss: taken.loss,
                    correct: correct_count(&taken.output, &batch.labels),
                    labels: batch.labels.len(),
                }
            });
        }
        let sums = match self.chunks {
            None => self.overlapped_gradients(model, optimizer, batch, samples, loss_fn),
            Some(chunks) => {
                self.chunked_gradients(model, optimizer, batch, samples, loss_fn, chunks)
            }
        };
        self.steps += 1;
        let sums = sums.wait();
        let ranks = self.world.size() as f64;
        let mut offset = 3;
        for buffer in &self.buffers {
            let mean: Vec<f32> = sums[offset..offset + buffer.numel()]
                .iter()
                .map(|&sum| (sum / ranks) as f32)
                .collect();
            buffer.copy_from_slice(&mean);
            offset += buffer.numel();
        }
        let loss = sums[0] / samples as f64;
        super::update(model, optimizer, loss, max_norm)?;
        Ok(BatchResult {
            loss,
            correct: sums[1] as usize,
            labels: sums[2] as usize,
        })
    }

    /// The summed gradients, sent in buckets while backward runs; returns the sum
    /// over the ranks of [Σ loss·n, correct, labels, the buffers' values…] (known
    /// after forward, so it too travels while backward runs).
    fn overlapped_gradients(
        &mut self,
        model: &dyn Module<f32>,
        optimizer: &mut dyn Optimizer<f32>,
        batch: &Batch,
        samples: usize,
        loss_fn: LossFn<'_>,
    ) -> Pending<Vec<f64>> {
        let share = batch.inputs.shape()[0];
        optimizer.zero_grad();
        let mut sums = vec![0.0f64; 3];
        let mut weighted_loss = None;
        if share > 0 {
            let (loss, counts) = forward(model, batch, loss_fn);
            sums.copy_from_slice(&counts);
            // d(mean over the batch)/dw = Σ_ranks (n_r/B) · d(mean over rank r's share)/dw
            weighted_loss = Some(&loss * (share as f64 / samples as f64) as f32);
        }
        sums.extend(self.buffer_values());
        let sums = self.world.start_sum_f64(sums);
        if let Some(weighted_loss) = weighted_loss {
            weighted_loss.backward_with_hook(&mut |leaf| self.sync.ready(leaf));
        }
        self.sync.finish();
        sums
    }

    /// The gradients of the fixed chunks of this rank's share, added in the fixed
    /// tree, gathered from all ranks and added in the same tree.
    fn chunked_gradients(
        &mut self,
        model: &dyn Module<f32>,
        optimizer: &mut dyn Optimizer<f32>,
        batch: &Batch,
        samples: usize,
        loss_fn: LossFn<'_>,
        chunks: usize,
    ) -> Pending<Vec<f64>> {
        let (rank, ranks) = (self.world.rank(), self.world.size());
        let per_rank = chunks / ranks;
        let share_start = share_of(rank, ranks, samples).start;
        let params: Vec<Tensor<f32>> = optimizer
            .params()
            .iter()
            .map(|(_, p)| p.clone())
            .filter(Tensor::tracks_grad)
            .collect();
        let mut tree = PairwiseSum::default();
        let mut sums = vec![0.0f64; 3];
        for chunk in rank * per_rank..(rank + 1) * per_rank {
            let rows = share_of(chunk, chunks, samples);
            optimizer.zero_grad();
            if !rows.is_empty() {
                let part = batch.rows(rows.start - share_start..rows.end - share_start);
                // a stream per (step, chunk): the same masks whichever rank runs the chunk
                model.set_random_stream(1 + self.steps * chunks as u64 + chunk as u64);
                let (loss, counts) = forward(model, &part, loss_fn);
                sums.iter_mut()
                    .zip(counts)
                    .for_each(|(sum, count)| *sum += count);
                (&loss * (rows.len() as f64 / samples as f64) as f32).backward();
            }
            tree.push(0, flatten_gradients(&params));
        }
        let level = per_rank.trailing_zeros();
        let mut across_ranks = PairwiseSum::default();
        for partial in self.world.gather_f32(tree.total()) {
            across_ranks.push(level, partial);
        }
        let total = across_ranks.total();
        let mut offset = 0;
        for param in &params {
            let values = &total[offset..offset + param.numel()];
            param.set_grad(Tensor::from_vec(values.to_vec(), param.shape()));
            offset += param.numel();
        }
        sums.extend(self.buffer_values());
        self.world.start_sum_f64(sums)
    }

    fn buffer_values(&self) -> Vec<f64> {
        self.buffers
            .iter()
            .flat_map(|buffer| buffer.to_vec())
            .map(f64::from)
            .collect()
    }

    /// Fails unless every rank holds the same parameters and buffers, bit for bit.
    pub fn check_replicas(&self, model: &dyn Module<f32>) -> Result<()> {
        if !self.world.is_distributed() {
            return Ok(());
        }
        let mut state = model.named_parameters();
        state.extend(model.named_buffers());
        self.world
            .check_same("the model's weights", parameter_hash(&state))
            .map_err(Error::Distributed)
    }

    /// The communication totals since the last [`DataParallel::reset_stats`].
    pub fn stats(&self) -> CommStats {
        self.sync.stats()
    }

    /// Starts the totals again.
    pub fn reset_stats(&mut self) {
        self.sync.reset_stats();
    }
}

/// Forward propagation and the loss on `batch`; also [Σ loss·n, correct, labels].
fn forward(model: &dyn Module<f32>, batch: &Batch, loss_fn: LossFn<'_>) -> (Tensor<f32>, [f64; 3]) {
    let output = model.forward(&batch.inputs);
    let loss = loss_fn(&output, &batch.labels);
    let counts = [
        loss.item() as f64 * batch.inputs.shape()[0] as f64,
        correct_count(&output, &batch.labels) as f64,
        batch.labels.len() as f64,
    ];
    (loss, counts)
}

/// Every parameter's gradient, one after the other (zeros where there is none).
fn flatten_gradients(params: &[Tensor<f32>]) -> Vec<f32> {
    let mut flat = Vec::with_capacity(params.iter().map(Tensor::numel).sum());
    for param in params {
        match param.grad() {
            Some(grad) => flat.extend_from_slice(&grad.data()),
            None => flat.resize(flat.len() + param.numel(), 0.0),
        }
    }
    flat
}

/// Adds vectors in a fixed binary tree, as a binary counter does: a vector enters at
/// a level (0 for one chunk, k for the sum of 2^k chunks), and two of the same level
/// are replaced by their sum one level up. Chunks 0‥7 give
/// ((c0+c1)+(c2+c3))+((c4+c5)+(c6+c7)), whether they come one by one or as the sums
/// of 2 or 4 — which is what makes the result independent of the rank count.
#[derive(Default)]
struct PairwiseSum {
    stack: Vec<(u32, Vec<f32>)>,
}

impl PairwiseSum {
    fn push(&mut self, level: u32, values: Vec<f32>) {
        let mut entry = (level, values);
        while self.stack.last().is_some_and(|(top, _)| *top == entry.0) {
            let (top_level, mut left) = self.stack.pop().expect("checked above");
            left.iter_mut().zip(&entry.1).for_each(|(l, r)| *l += r);
            entry = (top_level + 1, left);
        }
        self.stack.push(entry);
    }

    /// The sum (a power-of-two count of equal-level entries leaves one).
    fn total(mut self) -> Vec<f32> {
        assert_eq!(
            self.stack.len(),
            1,
            "a power of two of chunks adds up to one tree"
        );
        self.stack.pop().expect("checked above").1
    }
}
