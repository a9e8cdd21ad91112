//! A run of a config, prepared in one call: what `nabla train` does between reading
//! the config and reporting to its listeners, for any Rust program.

use std::path::Path;

use super::dir::{ResumePoint, RunDir, resume};
use super::preprocessing::Preprocessing;
use crate::data::{DataLoader, Dataset};
use crate::distributed::{World, bytes_hash};
use crate::error::{Error, Result};
use crate::experiment::{self, Config, Data};
use crate::nn::{Module, Sequential};
use crate::optim::Optimizer;
use crate::tensor::Tensor;
use crate::train::{EarlyStopping, FitOptions, Fitted, Listener, fit_with};

/// A loss from logits and labels, owned.
type Loss = dyn Fn(&Tensor, &[usize]) -> Tensor;

/// The run of a config, ready to train on one rank of a [`World`]: its data, network
/// (with `init` weights loaded), optimizer, loss and options.
///
/// ```no_run
/// use nabla::run::Training;
/// # fn main() -> nabla::Result<()> {
/// let config = nabla::experiment::Config::load("examples/spirals.toml".as_ref())?;
/// let mut training = Training::prepare(config, &nabla::distributed::World::single())?;
/// let mut run_dir = training.run_dir("runs/spirals".as_ref())?;
/// run_dir.start_fresh()?;
/// let fitted = training.fit(&mut [&mut run_dir])?;
/// println!("{:?}", fitted.history.last());
/// # Ok(())
/// # }
/// ```
pub struct Training {
    /// The resolved config.
    pub config: Config,
    /// The data, loaded and split.
    pub data: Data,
    /// The network.
    pub model: Sequential,
    /// The optimizer over its parameters.
    pub optimizer: Box<dyn Optimizer<f32>>,
    /// How to train: epochs, schedule, clipping, early stopping, the ranks.
    pub options: FitOptions,
    loss: Box<Loss>,
    world: World,
}

impl Training {
    /// Loads the config's data, builds its network (seeded), loads `init` weights,
    /// builds the optimizer, loss and options, and makes this process rank
    /// `world.rank()` of a data-parallel run (its own dropout stream, batch
    /// statistics across ranks with `sync_batch_norm`). Every rank must be given the
    /// same config: a difference is an error.
    pub fn prepare(config: Config, world: &World) -> Result<Training> {
        check_ranks(world, &config)?;
        let data = experiment::load_data(&config)?;
        let mut rng = crate::rng(config.train.seed);
        let (model, _) = experiment::build_model(
            &config.model.layers,
            data.train.feature_shape(),
            data.train.num_classes(),
            &mut rng,
        )?;
        if let Some(init) = &config.train.init {
            crate::checkpoint::load_model(init, &model)?;
        }
        let optimizer = experiment::build_optimizer(&config.train.optimizer, &model);
        let mut training = Training {
            options: FitOptions::default(),
            loss: Box::new(experiment::build_loss(&config.train)),
            config,
            data,
            model,
            optimizer,
            world: world.clone(),
        };
        let train_loader = training.train_loader()?;
        let batches = train_loader.num_batches();
        let last_batch = train_loader.batch_len(batches.saturating_sub(1));
        drop(train_loader);
        training.options = fit_options(&training.config, batches, world);
        join_ranks(world, &training.config, &training.model, last_batch)?;
        Ok(training)
    }

    /// The training batches: shuffled, by steps or by epochs, augmented as the
    /// config says.
    pub fn train_loader(&self) -> Result<DataLoader<'_, dyn Dataset>> {
        train_loader(&self.config, &self.data)
    }

    /// The test batches (text windows are large: a training batch at a time).
    pub fn test_loader(&self) -> DataLoader<'_, dyn Dataset> {
        test_loader(&self.config, &self.data)
    }

    /// What the run does to its inputs (saved in its directory).
    pub fn preprocessing(&self) -> Preprocessing {
        Preprocessing::of(&self.config, &self.data)
    }

    /// The run directory at `path` (rank 0's to write): the config, the
    /// preprocessing and vocabulary written, checkpoints every `checkpoint_every`
    /// steps. Call [`RunDir::start_fresh`] or [`Training::resume_in`] next.
    pub fn run_dir(&self, path: &Path) -> Result<RunDir> {
        let run_dir = RunDir::create(path, &self.config)?;
        run_dir.write_preprocessing(&self.preprocessing(), self.data.vocabulary.as_ref())?;
        Ok(run_dir)
    }

    /// Continues from the checkpoint in `run_dir` exactly (and cuts its logs back).
    pub fn resume_in(&mut self, run_dir: &mut RunDir) -> Result<ResumePoint> {
        let batches = self.train_loader()?.num_batches();
        run_dir.resume_into(
            &self.model,
            self.optimizer.as_mut(),
            &mut self.options,
            batches,
        )
    }

    /// Continues from the checkpoint of the run in `dir` without writing to it
    /// (every rank but the first of a data-parallel run).
    pub fn resume_from(&mut self, dir: &Path) -> Result<ResumePoint> {
        let point = resume(dir, &self.model, self.optimizer.as_mut())?;
        point.apply(&mut self.options);
        Ok(point)
    }

    /// The ranks training together.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// Trains, reporting to `listeners` (see [`fit_with`]).
    pub fn fit(&mut self, listeners: &mut [&mut dyn Listener]) -> Result<Fitted> {
        let train = train_loader(&self.config, &self.data)?;
        let test = test_loader(&self.config, &self.data);
        fit_with(
            &self.model,
            self.optimizer.as_mut(),
            &train,
            Some(&test),
            self.loss.as_ref(),
            &self.options,
            listeners,
        )
    }
}

fn train_loader<'a>(config: &Config, data: &'a Data) -> Result<DataLoader<'a, dyn Dataset>> {
    let seed = config.train.seed;
    let batch_size = config.data.batch_size;
    let mut loader = DataLoader::new(data.train.as_ref(), batch_size);
    if config.data.shuffle {
        loader = loader.shuffle(seed);
    }
    if let Some(steps) = config.train.steps_per_period() {
        loader = loader.shuffle(seed).samples_per_epoch(steps * batch_size);
    }
    if let Some(augmentation) = config.data.augment.clone() {
        loader = loader
            .augment(augmentation, seed, data.black_pixel())
            .map_err(|why| Error::Config(format!("[data] augment: {why}")))?;
    }
    Ok(loader)
}

fn test_loader<'a>(config: &Config, data: &'a Data) -> DataLoader<'a, dyn Dataset> {
    let batch = if data.vocabulary.is_some() {
        config.data.batch_size
    } else {
        1000
    };
    DataLoader::new(data.test.as_ref(), batch)
}

/// The options a config asks for, on the ranks of `world`.
fn fit_options(config: &Config, steps_per_epoch: usize, world: &World) -> FitOptions {
    let (schedule, schedule_per_step) = experiment::build_schedule(
        config.train.schedule.as_ref(),
        config.train.periods(),
        steps_per_epoch,
    );
    FitOptions {
        epochs: config.train.periods(),
        schedule,
        schedule_per_step,
        base_lr: Some(config.train.optimizer.lr()),
        clip_grad_norm: config.train.clip_grad_norm,
        early_stopping: config.train.early_stopping.map(|e| EarlyStopping {
            patience: e.patience,
            min_delta: e.min_delta,
        }),
        world: world.clone(),
        fixed_chunks: config.train.fixed_chunks,
        health: world.is_root(),
        by_steps: config.train.steps_per_period().is_some(),
        ..Default::default()
    }
}

/// Refuses a data-parallel run whose ranks read different configs, or that has
/// more ranks than samples in a batch.
fn check_ranks(world: &World, config: &Config) -> Result<()> {
    if !world.is_distributed() {
        return Ok(());
    }
    let text = config.to_toml();
    world
        .check_same("the resolved config", bytes_hash(text.as_bytes()))
        .map_err(|why| {
            Error::Distributed(format!(
                "{why}: every rank must train the same experiment (same config file, \
                 same --epochs/--seed)"
            ))
        })?;
    if config.train.sync_batch_norm && config.train.fixed_chunks.is_some() {
        return Err(Error::Config(
            "[train] sync_batch_norm and fixed_chunks do not go together: with fixed chunks \
             every chunk has its own batch statistics, on any number of ranks"
                .into(),
        ));
    }
    if world.size() > config.data.batch_size {
        return Err(Error::Distributed(format!(
            "{} ranks but batch_size = {}: every rank needs at least one sample of each \
             batch; use at most {} ranks or a larger [data] batch_size",
            world.size(),
            config.data.batch_size,
            config.data.batch_size
        )));
    }
    Ok(())
}

/// Makes `model` one rank's replica: its own dropout stream, and batch statistics
/// over all ranks with `sync_batch_norm` (which every rank must join in every
/// batch, so the last batch may not leave one without samples).
fn join_ranks(world: &World, config: &Config, model: &Sequential, last_batch: usize) -> Result<()> {
    model.set_random_stream(world.rank() as u64);
    if !(config.train.sync_batch_norm && world.is_distributed()) {
        return Ok(());
    }
    if last_batch < world.size() {
        return Err(Error::Distributed(format!(
            "sync_batch_norm: the last batch of an epoch has {last_batch} samples, fewer \
             than the {} ranks, so some would have none; pick a batch_size that leaves at \
             least {} samples for the last batch (or none left over)",
            world.size(),
            world.size()
        )));
    }
    let world = world.clone();
    let across: crate::ops::norm::SumAcross =
        std::rc::Rc::new(move |sums: &mut [f64]| world.sum_f64(sums));
    model.share_batch_statistics(&across);
    Ok(())
}
