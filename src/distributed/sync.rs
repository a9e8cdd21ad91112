//! Summing gradients across ranks while backward is still running.
//!
//! Backward reaches the last layer's parameters first. Their gradients are final as
//! soon as the graph walk passes them ([`Tensor::backward_with_hook`] says when), so
//! they can travel while the earlier layers are still being differentiated — what
//! PyTorch's DistributedDataParallel does. The parameters are grouped into buckets
//! (last layer first, about [`BUCKET_ELEMENTS`] values each); a bucket goes to the
//! communication thread as soon as all its gradients are final and every bucket
//! before it has gone, so every rank sends the same buckets in the same order.
//!
//! Small gradients are copied into their bucket's buffer and the sums copied back;
//! a parameter of half a bucket or more travels alone, in its gradient's
//! own memory, lent to the all-reduce — copying the MLP's 0.8 MB first-layer
//! gradient in and out cost more than a second all-reduce call does.

use std::collections::HashMap;
use std::time::Instant;

use super::{Pending, Summed, World};
use crate::tensor::Tensor;

/// The size of a bucket, in values: large enough that each all-reduce is worth its
/// latency, small enough that the first one leaves while backward has work left.
pub const BUCKET_ELEMENTS: usize = 1 << 18;

/// Communication totals, for `metrics.jsonl`.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommStats {
    /// Steps whose gradients were summed.
    pub steps: usize,
    /// Seconds the communication thread spent in all-reduce calls.
    pub all_reduce_seconds: f64,
    /// Seconds the training thread waited for gradients after its backward ended:
    /// the part of the communication that did not overlap with computation.
    pub wait_seconds: f64,
    /// Gradient bytes all-reduced per step (the payload; a ring all-reduce sends
    /// `2(N−1)/N` times this from each rank).
    pub gradient_bytes: usize,
}

struct Bucket {
    /// Positions in `GradientSync::params`.
    params: Vec<usize>,
    /// Gradients final so far in this backward.
    ready: usize,
    /// The flat gradients, summed in place; kept between steps. For a lent
    /// gradient, the memory swapped into the gradient while its own is away.
    buffer: Vec<f32>,
    /// One parameter large enough to lend its gradient's memory.
    lends: bool,
    /// Whether this step's gradient was lent (else copied).
    lent: bool,
}

impl Bucket {
    fn new(lends: bool) -> Self {
        Bucket {
            params: Vec::new(),
            ready: 0,
            buffer: Vec::new(),
            lends,
            lent: false,
        }
    }
}

/// Sums the gradients of `params` over all ranks, one bucket at a time as backward
/// makes them final. Use one per training run:
///
/// 1. [`GradientSync::ready`] from [`Tensor::backward_with_hook`] for every leaf;
/// 2. [`GradientSync::finish`] after backward: sends what is left, waits, and writes
///    the sums into the parameters' gradients.
pub struct GradientSync {
    world: World,
    params: Vec<Tensor<f32>>,
    buckets: Vec<Bucket>,
    /// Tensor id → its bucket.
    bucket_of: HashMap<usize, usize>,
    /// The buckets of this step on their way, in the order sent.
    in_flight: Vec<(usize, Pending<Summed>)>,
    stats: CommStats,
}

impl GradientSync {
    /// Buckets of at most `bucket_elements` values for the parameters that train
    /// (`requires_grad`), last first; a parameter of `bucket_elements / 2` values or
    /// more has a bucket to itself and is lent, not copied.
    pub fn new(world: &World, params: &[(String, Tensor<f32>)], bucket_elements: usize) -> Self {
        let params: Vec<Tensor<f32>> = params
            .iter()
            .map(|(_, p)| p.clone())
            .filter(Tensor::tracks_grad)
            .collect();
        let lend_elements = (bucket_elements / 2).max(1);
        let mut buckets: Vec<Bucket> = Vec::new();
        let mut filled = usize::MAX;
        for index in (0..params.len()).rev() {
            let numel = params[index].numel();
            let alone = numel >= lend_elements;
            if alone || (filled.saturating_add(numel) > bucket_elements && filled > 0) {
                buckets.push(Bucket::new(alone));
                filled = 0;
            }
            buckets.last_mut().expect("pushed above").params.push(index);
            // nothing joins a lent parameter
            filled = if alone { usize::MAX } else { filled + numel };
        }
        let bucket_of = buckets
            .iter()
            .enumerate()
            .flat_map(|(b, bucket)| bucket.params.iter().map(move |&p| (p, b)))
            .map(|(p, b)| (params[p].id(), b))
            .collect();
        let gradient_bytes = params.iter().map(|p| p.numel() * 4).sum();
        GradientSync {
            world: world.clone(),
            params,
            buckets,
            bucket_of,
            in_flight: Vec::new(),
            stats: CommStats {
                gradient_bytes,
                ..CommStats::default()
            },
        }
    }

    /// Marks `leaf`'s gradient final; sends every bucket that is now complete.
    pub fn ready(&mut self, leaf: &Tensor<f32>) {
        if let Some(&bucket) = self.bucket_of.get(&leaf.id()) {
            self.buckets[bucket].ready += 1;
            while self
                .buckets
                .get(self.sent())
                .is_some_and(|b| b.ready == b.params.len())
            {
                self.send_next();
            }
        }
    }

    /// Sends the buckets not yet sent (a parameter without a gradient counts as
    /// zeros), waits for all sums, and writes them into the gradients.
    pub fn finish(&mut self) {
        while self.sent() < self.buckets.len() {
            self.send_next();
        }
        let waiting = Instant::now();
        for (index, pending) in std::mem::take(&mut self.in_flight) {
            let Summed {
                values: mut summed,
                seconds,
            } = pending.wait();
            self.stats.all_reduce_seconds += seconds;
            let bucket = &mut self.buckets[index];
            if bucket.lent {
                let param = &self.params[bucket.params[0]];
                // the gradient takes its memory back, now holding the sums
                let grad = param.grad().expect("send_next gave it a gradient");
                grad.swap_data(&mut summed);
            } else {
                let mut offset = 0;
                for &param_index in &bucket.params {
                    let param = &self.params[param_index];
                    let values = &summed[offset..offset + param.numel()];
                    match param.grad() {
                        Some(grad) => grad.copy_from_slice(values),
                        None => param.set_grad(Tensor::from_vec(values.to_vec(), param.shape())),
                    }
                    offset += param.numel();
                }
            }
            bucket.buffer = summed;
            bucket.ready = 0;
        }
        self.stats.wait_seconds += waiting.elapsed().as_secs_f64();
        self.stats.steps += 1;
    }

    /// How many buckets the parameters form.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// How many buckets of this step have left for the other ranks so far.
    pub fn sent(&self) -> usize {
        self.in_flight.len()
    }

    /// The totals so far.
    pub fn stats(&self) -> CommStats {
        self.stats
    }

    /// Starts the totals again (at the start of an epoch).
    pub fn reset_stats(&mut self) {
        self.stats = CommStats {
            gradient_bytes: self.stats.gradient_bytes,
            ..CommStats::default()
        };
    }

    fn send_next(&mut self) {
        let index = self.sent();
        let bucket = &mut self.buckets[index];
        let mut values = std::mem::take(&mut bucket.buffer);
        // Lent only when no other tensor shares the gradient's memory (an `add` may
        // hand one gradient to two inputs): the walk may still read it.
        let grad = bucket
            .lends
            .then(|| self.params[bucket.params[0]].grad())
            .flatten();
        bucket.lent = grad.as_ref().is_some_and(Tensor::owns_storage);
        if bucket.lent {
            let grad = grad.expect("checked above");
            values.resize(grad.numel(), 0.0);
            // the gradient's values leave; until `finish` it holds the spare memory
            grad.swap_data(&mut values);
        } else {
            values.clear();
            for &param_index in &bucket.params {
                let param = &self.params[param_index];
                match param.grad() {
                    Some(grad) => values.extend_from_slice(&grad.data()),
                    None => values.resize(values.len() + param.numel(), 0.0),
                }
            }
        }
        self.in_flight
            .push((index, self.world.start_sum_f32(values)));
    }
}
