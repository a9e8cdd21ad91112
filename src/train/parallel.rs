//! One training step split across ranks (data parallelism).
//!
//! Every rank holds the whole model and sees its share of the batch
//! ([`crate::data::DataLoader::shard`]). The step is [`super::step`]'s, with two
//! additions: each rank scales its mean loss by its share of the batch, `n_r/B`, so
//! that the sum of the ranks' gradients is the gradient of the whole batch's mean
//! loss; and that sum is taken (in buckets, while backward runs) before anything
//! is checked or updated — so every rank applies the same update.

use crate::data::Batch;
use crate::distributed::{BUCKET_ELEMENTS, CommStats, GradientSync, World, parameter_hash};
use crate::error::{Error, Result};
use crate::metrics::correct_count;
use crate::nn::Module;
use crate::optim::{Optimizer, clip_grad_norm};
use crate::tensor::Tensor;

use super::{Divergence, LossFn, first_non_finite_gradient};

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

/// The ranks' shared training state: the gradient sync and the buffers (batch norm's
/// running statistics) that are averaged after every step so that all ranks keep
/// the same ones.
pub struct DataParallel {
    world: World,
    sync: GradientSync,
    buffers: Vec<Tensor<f32>>,
}

impl DataParallel {
    /// Gradient buckets for `optimizer`'s parameters; `model` for its buffers.
    pub fn new(world: &World, model: &dyn Module<f32>, optimizer: &dyn Optimizer<f32>) -> Self {
        DataParallel {
            world: world.clone(),
            sync: GradientSync::new(world, optimizer.params(), BUCKET_ELEMENTS),
            buffers: model.named_buffers().into_iter().map(|(_, b)| b).collect(),
        }
    }

    /// One step on this rank's share `batch` of a batch of `samples` samples over all
    /// ranks (a share may be empty: the rank then only adds zeros).
    pub fn step(
        &mut self,
        model: &dyn Module<f32>,
        optimizer: &mut dyn Optimizer<f32>,
        batch: &Batch,
        samples: usize,
        loss_fn: LossFn<'_>,
        max_norm: Option<f64>,
    ) -> std::result::Result<BatchResult, Divergence> {
        let share = batch.inputs.shape()[0];
        optimizer.zero_grad();
        // [Σ loss·n, correct, labels, the buffers' values…]: known after forward, so
        // summed over the ranks while backward runs
        let mut sums = vec![0.0f64; 3];
        let mut weighted_loss = None;
        if share > 0 {
            let output = model.forward(&batch.inputs);
            let loss = loss_fn(&output, &batch.labels);
            sums[0] = loss.item() as f64 * share as f64;
            sums[1] = correct_count(&output, &batch.labels) as f64;
            sums[2] = batch.labels.len() as f64;
            // d(mean over the batch)/dw = Σ_ranks (n_r/B) · d(mean over rank r's share)/dw
            weighted_loss = Some(&loss * (share as f64 / samples as f64) as f32);
        }
        for buffer in &self.buffers {
            sums.extend(buffer.data().iter().map(|&v| v as f64));
        }
        let sums = self.world.start_sum_f64(sums);
        if let Some(weighted_loss) = weighted_loss {
            weighted_loss.backward_with_hook(&mut |leaf| self.sync.ready(leaf));
        }
        self.sync.finish();
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
        let bad_gradient = first_non_finite_gradient(optimizer.params());
        if !loss.is_finite() || bad_gradient.is_some() {
            return Err(Divergence {
                loss,
                parameter: bad_gradient,
            });
        }
        if let Some(max_norm) = max_norm {
            clip_grad_norm(&model.parameters(), max_norm);
        }
        optimizer.step();
        Ok(BatchResult {
            loss,
            correct: sums[1] as usize,
            labels: sums[2] as usize,
        })
    }

    /// Fails unless every rank holds the same parameters and buffers, bit for bit.
    pub fn check_replicas(&self, model: &dyn Module<f32>) -> Result<()> {
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
