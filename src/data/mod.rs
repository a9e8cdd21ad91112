//! Data: datasets, a batching and shuffling loader, and readers for MNIST-style IDX
//! files, CIFAR-10's binary batches, CSV tables and (feature `images`) folders of
//! PNG/JPEG images.
//!
//! Images stay as bytes in memory and become `f32` one batch at a time, so the
//! MNIST training set costs 47 MB, not 188 MB.

pub mod augment;
pub mod cifar;
pub mod csv;
pub mod idx;
#[cfg(feature = "images")]
pub mod image_folder;
pub mod image_set;
pub mod npy;
pub mod text;

use rand::RngExt;
use rand::seq::SliceRandom;

use crate::tensor::Tensor;

pub use self::csv::{
    CsvOptions, TableDataset, TableSchema, parse_csv, read_csv, read_csv_as, read_features_as,
};
pub use idx::{ImageDataset, load_mnist, parse_idx_bytes, read_idx};

/// A few samples held in memory as features of any shape, with their labels: the
/// first samples of a dataset kept aside (the dashboard saves those it draws).
#[derive(Clone, Debug, PartialEq)]
pub struct Samples {
    /// Every sample's features, one after another.
    pub features: Vec<f32>,
    /// One sample's shape.
    pub shape: Vec<usize>,
    /// Each sample's class.
    pub labels: Vec<usize>,
    /// The number of classes.
    pub classes: usize,
}

impl Samples {
    /// The first `count` samples of `dataset` (all, if it has fewer).
    pub fn first(dataset: &dyn Dataset, count: usize) -> Samples {
        let indices: Vec<usize> = (0..dataset.len().min(count)).collect();
        let batch = make_batch(dataset, &indices);
        Samples {
            features: batch.inputs.to_vec(),
            shape: dataset.feature_shape().to_vec(),
            labels: batch.labels,
            classes: dataset.num_classes(),
        }
    }
}

impl Dataset for Samples {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn feature_shape(&self) -> &[usize] {
        &self.shape
    }
    fn num_classes(&self) -> usize {
        self.classes
    }
    fn write_features(&self, index: usize, out: &mut [f32]) {
        let width = out.len();
        out.copy_from_slice(&self.features[index * width..(index + 1) * width]);
    }
    fn label(&self, index: usize) -> usize {
        self.labels[index]
    }
}

/// Rank `rank`'s rows of a batch of `len` split over `ranks`: consecutive, as even as
/// can be (the one place a batch is cut into shares, for data-parallel training).
///
/// ```
/// # use nabla::data::share_of;
/// assert_eq!((0..3).map(|r| share_of(r, 3, 10)).collect::<Vec<_>>(), [0..3, 3..6, 6..10]);
/// ```
pub fn share_of(rank: usize, ranks: usize, len: usize) -> std::ops::Range<usize> {
    (rank * len / ranks)..((rank + 1) * len / ranks)
}

/// A labelled classification dataset that writes one sample's features at a time.
pub trait Dataset {
    /// The number of samples.
    fn len(&self) -> usize;

    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one sample's features (`[1, 28, 28]` for MNIST, `[width]` for a table).
    fn feature_shape(&self) -> &[usize];

    /// The number of classes.
    fn num_classes(&self) -> usize;

    /// Writes sample `index`'s (normalised) features into `out`, every element of it.
    fn write_features(&self, index: usize, out: &mut [f32]);

    /// Sample `index`'s class (for a sequence, the class of its last position).
    fn label(&self, index: usize) -> usize;

    /// Labels per sample: 1 for a classifier, `block_size` for text windows (one
    /// next token per position).
    fn labels_per_sample(&self) -> usize {
        1
    }

    /// Appends sample `index`'s [`Dataset::labels_per_sample`] labels to `out`.
    fn write_labels(&self, index: usize, out: &mut Vec<usize>) {
        out.push(self.label(index));
    }

    /// The number of features per sample.
    fn feature_len(&self) -> usize {
        self.feature_shape().iter().product()
    }

    /// Writes the features of `indices`, one row each, into `out`. The default
    /// calls [`Dataset::write_features`] per sample; a dataset can do better.
    fn write_batch(&self, indices: &[usize], out: &mut [f32]) {
        let width = self.feature_len();
        for (row, &index) in out.chunks_mut(width.max(1)).zip(indices) {
            self.write_features(index, row);
        }
    }
}

/// One batch: inputs `[batch, feature_shape…]` and their class labels.
pub struct Batch {
    /// The features, `[batch, feature_shape…]`.
    pub inputs: Tensor<f32>,
    /// Each sample's class (or, for sequences, each position's), sample by sample.
    pub labels: Vec<usize>,
}

impl Batch {
    /// The samples in `rows` (their inputs and labels), as a batch of their own.
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Batch {
        let samples = self.inputs.shape()[0];
        assert!(
            rows.end <= samples,
            "Batch::rows: {rows:?} of {samples} samples"
        );
        // an empty batch has nothing per sample
        let width = self.inputs.numel().checked_div(samples).unwrap_or(0);
        let labels_per_sample = self.labels.len().checked_div(samples).unwrap_or(0);
        let mut shape = self.inputs.shape().to_vec();
        shape[0] = rows.len();
        Batch {
            inputs: Tensor::from_vec(
                self.inputs.data()[rows.start * width..rows.end * width].to_vec(),
                &shape,
            ),
            labels: self.labels[rows.start * labels_per_sample..rows.end * labels_per_sample]
                .to_vec(),
        }
    }
}

/// Batches a dataset (or a subset of its indices), reshuffling every epoch from a
/// seed so that epoch `e` always sees the same order — which makes runs repeatable
/// and resumable.
///
/// ```no_run
/// use nabla::data::{DataLoader, load_mnist};
/// let (train, _) = load_mnist("data/mnist").unwrap();
/// let loader = DataLoader::new(&train, 128).shuffle(0);
/// for batch in loader.epoch(0) {
///     assert_eq!(batch.inputs.shape()[1..], [1, 28, 28]);
/// }
/// ```
pub struct DataLoader<'a, D: Dataset + ?Sized> {
    dataset: &'a D,
    indices: Vec<usize>,
    batch_size: usize,
    shuffle_seed: Option<u64>,
    drop_last: bool,
    augmentation: Option<Augmenting>,
    samples_per_epoch: Option<usize>,
    /// (rank, ranks): yield only this rank's rows of every batch.
    shard: Option<(usize, usize)>,
}

impl<D: Dataset + ?Sized> Clone for DataLoader<'_, D> {
    fn clone(&self) -> Self {
        DataLoader {
            dataset: self.dataset,
            indices: self.indices.clone(),
            batch_size: self.batch_size,
            shuffle_seed: self.shuffle_seed,
            drop_last: self.drop_last,
            augmentation: self.augmentation.clone(),
            samples_per_epoch: self.samples_per_epoch,
            shard: self.shard,
        }
    }
}

/// Augmentation as a loader applies it: what, from which seed, and the value of a
/// black pixel per channel.
#[derive(Clone)]
struct Augmenting {
    augmentation: augment::Augmentation,
    seed: u64,
    fill: Vec<f32>,
}

impl<'a, D: Dataset + ?Sized> DataLoader<'a, D> {
    /// Samples per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The dataset it batches.
    pub fn dataset(&self) -> &'a D {
        self.dataset
    }

    /// All samples in order, in batches of `batch_size` (the last one may be smaller).
    pub fn new(dataset: &'a D, batch_size: usize) -> Self {
        assert!(batch_size > 0, "DataLoader: batch size must be at least 1");
        DataLoader {
            dataset,
            indices: (0..dataset.len()).collect(),
            batch_size,
            shuffle_seed: None,
            drop_last: false,
            augmentation: None,
            samples_per_epoch: None,
            shard: None,
        }
    }

    /// Augments every sample of every batch, with draws seeded by (`seed`, epoch,
    /// sample index); `fill` is each channel's value for a black pixel (after
    /// normalisation). Fails, saying why, if the samples are not images it fits.
    pub fn augment(
        mut self,
        augmentation: augment::Augmentation,
        seed: u64,
        fill: Vec<f32>,
    ) -> Result<Self, String> {
        augmentation.check(self.dataset.feature_shape())?;
        if !augmentation.is_identity() {
            self.augmentation = Some(Augmenting {
                augmentation,
                seed,
                fill,
            });
        }
        Ok(self)
    }

    /// Reshuffles every epoch, from `seed`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.shuffle_seed = Some(seed);
        self
    }

    /// Makes each epoch `count` samples drawn at random, with replacement, from the
    /// seed given to [`DataLoader::shuffle`] and the epoch: how a language model
    /// picks its windows, where an "epoch" is a stretch of steps between evaluations.
    pub fn samples_per_epoch(mut self, count: usize) -> Self {
        self.samples_per_epoch = Some(count);
        self
    }

    /// Makes every batch only rank `rank`'s share of it (of `ranks`; see
    /// [`share_of`]): the batches, their order and each sample's
    /// augmentation stay those of one process, split across the ranks.
    pub fn shard(mut self, rank: usize, ranks: usize) -> Self {
        assert!(rank < ranks, "DataLoader::shard: rank {rank} of {ranks}");
        self.shard = (ranks > 1).then_some((rank, ranks));
        self
    }

    /// The number of samples in batch `batch` (from 0) of an epoch, over all ranks.
    pub fn batch_len(&self, batch: usize) -> usize {
        let start = batch * self.batch_size;
        self.num_samples()
            .saturating_sub(start)
            .min(self.batch_size)
    }

    /// Drops a last batch smaller than `batch_size`.
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = on;
        self
    }

    /// Uses only these samples (a train or validation split).
    pub fn subset(mut self, indices: Vec<usize>) -> Self {
        self.indices = indices;
        self
    }

    /// The number of samples an epoch visits.
    pub fn num_samples(&self) -> usize {
        if let Some(count) = self.samples_per_epoch {
            return count;
        }
        if self.drop_last {
            self.indices.len() / self.batch_size * self.batch_size
        } else {
            self.indices.len()
        }
    }

    /// The number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        self.num_samples().div_ceil(self.batch_size)
    }

    /// The sample order of epoch `epoch`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        // one generator per epoch, so any epoch's order can be rebuilt on resume
        let epoch_rng =
            |seed: u64| crate::rng(seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        if let Some(count) = self.samples_per_epoch.filter(|_| !self.indices.is_empty()) {
            let mut rng = epoch_rng(self.shuffle_seed.unwrap_or(0));
            let pick = |_| self.indices[rng.random_range(0..self.indices.len())];
            return (0..count).map(pick).collect();
        }
        let mut order = self.indices.clone();
        if let Some(seed) = self.shuffle_seed {
            order.shuffle(&mut epoch_rng(seed));
        }
        order.truncate(self.num_samples());
        order
    }

    /// The batches of epoch `epoch`, made one at a time.
    pub fn epoch(&self, epoch: usize) -> impl Iterator<Item = Batch> + '_ {
        let order = self.order(epoch);
        let batch_size = self.batch_size;
        (0..order.len().div_ceil(batch_size)).map(move |b| {
            let mut picked = &order[b * batch_size..((b + 1) * batch_size).min(order.len())];
            if let Some((rank, ranks)) = self.shard {
                picked = &picked[share_of(rank, ranks, picked.len())];
            }
            let batch = make_batch(self.dataset, picked);
            if let Some(augmenting) = &self.augmentation {
                let &[c, h, w] = self.dataset.feature_shape() else {
                    unreachable!("checked by augment()")
                };
                batch.inputs.update_data(|values| {
                    let draw = (augmenting.seed, epoch);
                    let augmentation = &augmenting.augmentation;
                    augmentation.apply(values, [c, h, w], picked, draw, &augmenting.fill)
                });
            }
            batch
        })
    }
}

/// Gathers the given samples into one batch.
pub fn make_batch<D: Dataset + ?Sized>(dataset: &D, indices: &[usize]) -> Batch {
    let width = dataset.feature_len();
    let mut values = crate::cpu::buffer::take(indices.len() * width);
    dataset.write_batch(indices, &mut values);
    let mut shape = vec![indices.len()];
    shape.extend_from_slice(dataset.feature_shape());
    Batch {
        inputs: Tensor::from_vec(values, &shape),
        labels: {
            let mut labels = Vec::with_capacity(indices.len() * dataset.labels_per_sample());
            indices
                .iter()
                .for_each(|&i| dataset.write_labels(i, &mut labels));
            labels
        },
    }
}

/// Splits `0..len` into (train, validation) index lists, shuffled from `seed`, with
/// `validation_fraction` of the samples in the second.
pub fn train_validation_split(
    len: usize,
    validation_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    assert!(
        (0.0..1.0).contains(&validation_fraction),
        "validation fraction {validation_fraction} is not in [0, 1)"
    );
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut crate::rng(seed));
    let validation = ((len as f64) * validation_fraction).round() as usize;
    let train = order.split_off(validation);
    (train, order)
}
