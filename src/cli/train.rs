//! `nabla train`: the main job. Reads a config, trains with a progress display, and
//! keeps the run directory ([`RunDir`]) up to date. Ctrl-C checkpoints and exits
//! cleanly; `--resume DIR` continues exactly where the run stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::progress::Progress;
use crate::checkpoint::load_model;
use crate::dashboard::{Dashboard, Probes, Recorder, SharedRun, Status, disk};
use crate::data::{DataLoader, Dataset, make_batch};
use crate::distributed::{World, bytes_hash};
use crate::error::{Error, Result};
use crate::experiment::{self, Config};
use crate::nn::{Module, Sequential};
use crate::run::{Preprocessing, RunDir, files};
use crate::tensor::Tensor;
use crate::tensorboard::EventWriter;
use crate::train::health::{gradient_health, gradient_norms};
use crate::train::{Control, EarlyStopping, Event, FitOptions, StepPoint, StepTracker, fit};

/// Settings from the command line that override or locate the config.
pub struct TrainArgs {
    /// The config file (not needed with `resume`).
    pub config: Option<PathBuf>,
    /// The run directory.
    pub out: Option<PathBuf>,
    /// Overrides the config's epochs.
    pub epochs: Option<usize>,
    /// Overrides the config's seed.
    pub seed: Option<u64>,
    /// A run directory to continue.
    pub resume: Option<PathBuf>,
    /// Serve the live dashboard at this address (`host:port`).
    pub dashboard: Option<String>,
    /// Write TensorBoard event files: `Some(Some(dir))` into `dir`, `Some(None)`
    /// into the run directory's `tensorboard/`.
    pub tensorboard: Option<Option<PathBuf>>,
}

/// How a run ended.
pub enum Outcome {
    /// Every epoch ran (or early stopping ended the run).
    Finished,
    /// Ctrl-C: a checkpoint was saved.
    Interrupted,
}

/// Runs `nabla train` as one rank of `world` (one process alone: [`World::single`]).
/// With several ranks, each trains on its share of every batch; rank 0 alone prints
/// and writes the run directory.
pub fn run(args: TrainArgs, world: &World) -> Result<Outcome> {
    let (config, out) = resolve(&args)?;
    check_ranks(world, &config)?;
    let mut run_dir = if world.is_root() {
        Some(RunDir::create(&out, &config)?)
    } else {
        None
    };
    let live = match (&args.dashboard, &run_dir) {
        (Some(address), Some(_)) => Some(super::dashboard::for_training(
            address,
            &out,
            &config.to_toml(),
        )?),
        _ => None,
    };
    let data = experiment::load_data(&config)?;
    if let Some(run_dir) = &run_dir {
        for note in &data.notes {
            eprintln!("note: {note}");
        }
        run_dir
            .write_preprocessing(&Preprocessing::of(&config, &data), data.vocabulary.as_ref())?;
    }
    let mut rng = crate::rng(config.train.seed);
    let (model, _) = experiment::build_model(
        &config.model.layers,
        data.train.feature_shape(),
        data.train.num_classes(),
        &mut rng,
    )?;
    if let Some(init) = &config.train.init {
        load_model(init, &model)?;
    }
    let mut optimizer = experiment::build_optimizer(&config.train.optimizer, &model);
    let mut train_loader = DataLoader::new(data.train.as_ref(), config.data.batch_size);
    if config.data.shuffle {
        train_loader = train_loader.shuffle(config.train.seed);
    }
    let steps_per_period = config.train.steps_per_period();
    if let Some(steps) = steps_per_period {
        train_loader = train_loader
            .shuffle(config.train.seed)
            .samples_per_epoch(steps * config.data.batch_size);
    }
    if let Some(augmentation) = config.data.augment.clone() {
        train_loader = train_loader
            .augment(augmentation, config.train.seed, data.black_pixel())
            .map_err(|why| Error::Config(format!("[data] augment: {why}")))?;
    }
    // text windows are large samples: evaluate them a training batch at a time
    let test_batch = if data.vocabulary.is_some() {
        config.data.batch_size
    } else {
        1000
    };
    let test_loader = DataLoader::new(data.test.as_ref(), test_batch);
    let last_batch = train_loader.batch_len(train_loader.num_batches().saturating_sub(1));
    join_ranks(world, &config, &model, last_batch)?;
    let mut options = fit_options(&config, train_loader.num_batches());
    options.world = world.clone();
    options.fixed_chunks = config.train.fixed_chunks;
    // NABLA_CHECK_REPLICAS=step: compare the ranks' weights after every step
    options.check_replicas_every_step =
        std::env::var("NABLA_CHECK_REPLICAS").is_ok_and(|when| when == "step");
    if args.resume.is_some() {
        // every rank restores the same checkpoint; only rank 0 rewrites the directory
        let point = crate::run::resume(&out, &model, optimizer.as_mut())?;
        (options.start_epoch, options.start_step, options.carried) =
            (point.epoch, point.step, point.progress);
        if let Some(run_dir) = &mut run_dir {
            run_dir.keep_epochs(point.epoch)?;
            run_dir.keep_steps(point.epoch * train_loader.num_batches() + point.step)?;
            outln!(
                "resuming {} at epoch {}, step {}",
                out.display(),
                point.epoch + 1,
                point.step
            );
        }
    } else if let Some(run_dir) = &mut run_dir {
        run_dir.keep_epochs(0)?;
        run_dir.keep_steps(0)?;
        outln!("{}", model.summary(&batch_shape(data.train.as_ref())));
    }
    if world.is_root() && world.is_distributed() {
        outln!(
            "data-parallel over {} ranks: each takes {}–{} samples of every batch of {}",
            world.size(),
            config.data.batch_size / world.size(),
            config.data.batch_size.div_ceil(world.size()),
            config.data.batch_size
        );
    }
    if options.start_epoch >= options.epochs {
        if world.is_root() {
            outln!(
                "nothing to do: the run already finished its {} epochs",
                options.epochs
            );
        }
        return Ok(Outcome::Finished);
    }

    let recorder = live.as_ref().map(|(_, run)| {
        let resuming = args.resume.is_some();
        let batches = train_loader.num_batches();
        start_recording(
            run,
            resuming,
            &out,
            &data,
            &model,
            (options.epochs, batches),
        )
    });
    let tensorboard = match tensorboard_dir(&args, &config, &out).filter(|_| world.is_root()) {
        Some(dir) => Some(EventWriter::create(dir)?),
        None => None,
    };
    let loss = experiment::build_loss(&config.train);
    let probe = make_batch(
        data.train.as_ref(),
        &(0..data.train.len().min(256)).collect::<Vec<_>>(),
    );
    let mut watcher = Watcher {
        run_dir,
        world: world.clone(),
        model: &model,
        progress: world
            .is_root()
            .then(|| Progress::new(options.epochs).by_steps(steps_per_period)),
        interrupted: super::ctrl_c_flag(),
        steps: StepTracker::after(options.carried),
        global_step: 0,
        recorder,
        tensorboard,
        probe: probe.inputs,
        checkpoint_every: config.train.checkpoint_every,
        grad_norms: BTreeMap::new(),
        failure: None,
        stopped_at: None,
        language_model: data.vocabulary.is_some(),
    };
    let result = fit(
        &model,
        optimizer.as_mut(),
        &train_loader,
        Some(&test_loader),
        &loss,
        &options,
        &mut |event| watcher.on_event(event),
    );
    let outcome = watcher.finish(result.map(|_| ()));
    if let Some((dashboard, run)) = &live {
        end_dashboard(dashboard, run, &outcome, &out);
    }
    outcome
}

/// The dashboard's recorder for this run: a resumed run first shows what it had.
fn start_recording(
    run: &SharedRun,
    resuming: bool,
    out: &Path,
    data: &experiment::Data,
    model: &Sequential,
    (epochs, steps_per_epoch): (usize, usize),
) -> Recorder {
    if resuming {
        let mut state = run.lock().expect("the run's lock");
        state.metrics = disk::read_metrics(out);
        state.steps = disk::read_steps(out, 0).0;
    }
    let (train, test) = (data.train.as_ref(), data.test.as_ref());
    let probes = Probes::new(train, test, &data.class_names, data.image_shape);
    let input_shape = train.feature_shape();
    Recorder::new(
        run.clone(),
        model,
        input_shape,
        probes,
        epochs,
        steps_per_epoch,
    )
}

/// Where TensorBoard files go: `--tensorboard DIR`, or the run directory's
/// `tensorboard/` with a bare `--tensorboard` or `[train] tensorboard = true`.
fn tensorboard_dir(args: &TrainArgs, config: &Config, out: &Path) -> Option<PathBuf> {
    match (&args.tensorboard, config.train.tensorboard) {
        (Some(Some(dir)), _) => Some(dir.clone()),
        (Some(None), _) | (None, true) => Some(out.join("tensorboard")),
        (None, false) => None,
    }
}

/// Tells the page how the run ended; after a finished (or failed) run, keeps
/// serving it until Ctrl-C.
fn end_dashboard(dashboard: &Dashboard, run: &SharedRun, outcome: &Result<Outcome>, out: &Path) {
    let (status, message) = match outcome {
        Ok(Outcome::Finished) => (Status::Finished, None),
        Ok(Outcome::Interrupted) => (
            Status::Interrupted,
            Some(format!(
                "stopped by Ctrl-C; continue with `nabla train --resume {}`",
                out.display()
            )),
        ),
        Err(e) => (Status::Failed, Some(e.to_string())),
    };
    run.lock()
        .expect("the run's lock")
        .set_status(status, message);
    if status != Status::Interrupted {
        super::dashboard::keep_serving(dashboard, &super::ctrl_c_flag());
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

/// The config (from the file, or the run being resumed) with the command line's
/// overrides, and the run directory.
fn resolve(args: &TrainArgs) -> Result<(Config, PathBuf)> {
    let (mut config, out) = match (&args.resume, &args.config) {
        (Some(dir), _) => (Config::load(&dir.join("config.toml"))?, dir.clone()),
        (None, Some(path)) => (
            Config::load(path)?,
            args.out.clone().unwrap_or_else(|| default_run_dir(path)),
        ),
        (None, None) => return Err(Error::Config("give a config file, or --resume DIR".into())),
    };
    if let Some(epochs) = args.epochs {
        if config.train.max_steps.is_some() {
            return Err(Error::Config(
                "--epochs does not apply to a run that trains by `max_steps`".into(),
            ));
        }
        config.train.epochs = epochs;
    }
    if let Some(seed) = args.seed {
        config.train.seed = seed;
    }
    Ok((config, out))
}

fn fit_options(config: &Config, steps_per_epoch: usize) -> FitOptions {
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
        ..Default::default()
    }
}

/// What `nabla train` does while training runs: the progress display, Ctrl-C,
/// checkpoints every N steps, and each finished epoch's records and health check.
struct Watcher<'a> {
    /// Rank 0's: the others write nothing.
    run_dir: Option<RunDir>,
    world: World,
    model: &'a Sequential,
    /// Rank 0's: the others print nothing.
    progress: Option<Progress>,
    interrupted: Arc<AtomicBool>,
    /// A fixed batch for the dead-ReLU count.
    probe: Tensor,
    checkpoint_every: Option<usize>,
    /// Gradient norms at the last step of the epoch.
    grad_norms: BTreeMap<String, f64>,
    failure: Option<Error>,
    /// (epoch, step) where Ctrl-C stopped the run.
    stopped_at: Option<(usize, usize)>,
    /// A text model: report losses, not accuracy, at the end.
    language_model: bool,
    /// Each step's own loss and accuracy, for the dashboard and TensorBoard.
    steps: StepTracker,
    /// Steps taken since the start of the run (TensorBoard's x-axis).
    global_step: u64,
    /// Rank 0's, with `--dashboard`: what the page shows.
    recorder: Option<Recorder>,
    /// Rank 0's, with `--tensorboard`.
    tensorboard: Option<EventWriter>,
}

impl Watcher<'_> {
    fn on_event(&mut self, event: &Event<'_>) -> Control {
        let handled = match event {
            Event::EpochStart { epoch, batches } => {
                if let Some(progress) = &mut self.progress {
                    progress.start_epoch(*epoch, *batches);
                }
                Ok(Control::Continue)
            }
            Event::BatchEnd {
                epoch,
                batch,
                batches,
                loss,
                accuracy,
                samples,
                progress: sums,
                optimizer,
            } => {
                if let Some(progress) = &mut self.progress {
                    progress.step(*batch, *batches, *loss, *accuracy, *samples);
                }
                let at = (*epoch, *batch, *batches);
                self.global_step = ((epoch - 1) * batches + batch) as u64;
                let point = self.steps.step(at, sums, optimizer.lr());
                if let Some(recorder) = &mut self.recorder {
                    recorder.step(self.model, at, point);
                }
                if let Some(log) = &mut self.tensorboard {
                    log_step(log, self.model, point, batch == batches);
                }
                if batch == batches {
                    self.grad_norms = gradient_norms(self.model);
                }
                let stop = self.interrupted_anywhere();
                let due = self
                    .checkpoint_every
                    .is_some_and(|n| n > 0 && batch % n == 0 && batch < batches);
                if stop {
                    self.stopped_at = Some((*epoch, *batch));
                }
                let saved = match &mut self.run_dir {
                    Some(run_dir) => point
                        .map_or(Ok(()), |point| run_dir.record_step(&point))
                        .and_then(|()| match stop || due {
                            true => run_dir.save_checkpoint(
                                self.model,
                                *optimizer,
                                epoch - 1,
                                *batch,
                                sums,
                            ),
                            false => Ok(()),
                        }),
                    None => Ok(()),
                };
                saved.map(|()| {
                    if stop {
                        Control::Stop
                    } else {
                        Control::Continue
                    }
                })
            }
            Event::EpochEnd { metrics, optimizer } => match (&mut self.progress, &mut self.run_dir)
            {
                (Some(progress), Some(run_dir)) => {
                    progress.end_epoch(metrics);
                    let health = gradient_health(self.model, &self.probe, &self.grad_norms);
                    for warning in &health.warnings {
                        progress.println(&format!("  warning: {warning}"));
                    }
                    let line = run_dir.end_epoch(metrics, &health, self.model, *optimizer);
                    let plotted = line.and_then(|line| {
                        super::plot::curves(
                            &run_dir.path().join(files::CURVES),
                            run_dir.history(),
                            run_dir.steps_per_period(),
                        )
                        .map(|()| line)
                    });
                    plotted.and_then(|line| {
                        if let Some(log) = &mut self.tensorboard {
                            log_epoch(log, self.model, &line, self.global_step)?;
                        }
                        if let Some(recorder) = &mut self.recorder {
                            recorder.end_epoch(self.model, line, &health.warnings);
                        }
                        Ok(Control::Continue)
                    })
                }
                _ => Ok(Control::Continue),
            },
        };
        handled.unwrap_or_else(|e| {
            self.failure = Some(e);
            Control::Stop
        })
    }

    /// Whether Ctrl-C reached any rank: all stop at the same step, or the others
    /// would wait for it forever.
    fn interrupted_anywhere(&self) -> bool {
        let mut flag = [f64::from(u8::from(self.interrupted.load(Ordering::SeqCst)))];
        self.world.sum_f64(&mut flag);
        flag[0] > 0.0
    }

    /// How the run ended, said in the terminal.
    fn finish(mut self, result: Result<()>) -> Result<Outcome> {
        if let Some(progress) = &mut self.progress {
            progress.abandon();
        }
        if let Some(e) = self.failure {
            return Err(e);
        }
        let Some(run_dir) = &self.run_dir else {
            return result.map(|()| {
                if self.stopped_at.is_some() {
                    Outcome::Interrupted
                } else {
                    Outcome::Finished
                }
            });
        };
        let out = run_dir.path().display();
        if let Err(Error::Diverged(message)) = &result {
            eprintln!("warning: training stopped: {message}");
            eprintln!("the last good checkpoint is kept in {out}");
        }
        result?;
        if let Some((epoch, step)) = self.stopped_at {
            outln!(
                "interrupted at epoch {epoch}, step {step}: checkpoint saved; continue with `nabla train --resume {out}`"
            );
            return Ok(Outcome::Interrupted);
        }
        match (run_dir.history().last(), self.language_model) {
            (Some(last), true) => {
                let loss = last.test_loss.unwrap_or(f64::NAN);
                outln!(
                    "done: validation loss {loss:.4} nats/token (perplexity {:.2}) — run directory {out}\nwrite with: nabla generate {out} --prompt \"…\"",
                    loss.exp()
                );
            }
            (Some(last), false) => outln!(
                "done: test accuracy {:.2}% — run directory {out}",
                100.0 * last.test_accuracy.unwrap_or(0.0)
            ),
            (None, _) => {}
        }
        Ok(Outcome::Finished)
    }
}

/// A step's loss, accuracy and learning rate; at an epoch's last step, every
/// parameter's gradient as a histogram.
fn log_step(log: &mut EventWriter, model: &Sequential, point: Option<StepPoint>, last: bool) {
    let Some(point) = point else { return };
    let step = point.step as u64;
    log.scalar("loss/train_step", step, point.loss);
    log.scalar("accuracy/train_step", step, point.accuracy);
    log.scalar("lr", step, point.lr);
    if last {
        for (name, parameter) in model.named_parameters() {
            if let Some(grad) = parameter.grad() {
                log.histogram(&format!("gradients/{name}"), step, &grad.data());
            }
        }
    }
}

/// An epoch's metrics line as scalars (losses, accuracies, gradient norms, dead
/// ReLU fractions) and every parameter as a histogram, at the epoch's last step.
fn log_epoch(
    log: &mut EventWriter,
    model: &Sequential,
    line: &serde_json::Value,
    step: u64,
) -> Result<()> {
    for (key, tag) in [
        ("train_loss", "loss/train"),
        ("test_loss", "loss/test"),
        ("train_accuracy", "accuracy/train"),
        ("test_accuracy", "accuracy/test"),
    ] {
        if let Some(value) = line[key].as_f64() {
            log.scalar(tag, step, value);
        }
    }
    for (group, tag) in [
        ("grad_norm", "grad_norm"),
        ("dead_relu_fraction", "dead_relu"),
    ] {
        for (name, value) in line[group].as_object().into_iter().flatten() {
            if let Some(value) = value.as_f64() {
                log.scalar(&format!("{tag}/{name}"), step, value);
            }
        }
    }
    for (name, parameter) in model.named_parameters() {
        log.histogram(&format!("weights/{name}"), step, &parameter.data());
    }
    log.flush()
}

/// `runs/<config name>-<UTC timestamp>`.
fn default_run_dir(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    PathBuf::from("runs").join(format!("{stem}-{}", utc_timestamp()))
}

/// `YYYYMMDD-HHMMSS` in UTC, from the system clock (days-to-civil conversion).
fn utc_timestamp() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn batch_shape(dataset: &dyn Dataset) -> Vec<usize> {
    let mut shape = vec![1];
    shape.extend_from_slice(dataset.feature_shape());
    shape
}
