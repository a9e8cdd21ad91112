//! `nabla train`: the main job. Reads a config, trains with a progress display, and
//! keeps the run directory ([`RunDir`]) up to date. Ctrl-C checkpoints and exits
//! cleanly; `--resume DIR` continues exactly where the run stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::progress::Progress;
use super::run_dir::RunDir;
use crate::checkpoint::load_model;
use crate::data::{DataLoader, Dataset, make_batch};
use crate::error::{Error, Result};
use crate::experiment::{self, Config};
use crate::nn::Sequential;
use crate::tensor::Tensor;
use crate::train::health::{gradient_health, gradient_norms};
use crate::train::{Control, EarlyStopping, Event, FitOptions, fit};

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
}

/// How a run ended.
pub enum Outcome {
    /// Every epoch ran (or early stopping ended the run).
    Finished,
    /// Ctrl-C: a checkpoint was saved.
    Interrupted,
}

/// Runs `nabla train`.
pub fn run(args: TrainArgs) -> Result<Outcome> {
    let (config, out) = resolve(&args)?;
    let mut run_dir = RunDir::create(&out, &config)?;
    let data = experiment::load_data(&config)?;
    for note in &data.notes {
        eprintln!("note: {note}");
    }
    run_dir.write_classes(&data.class_names)?;
    if let Some(vocabulary) = &data.vocabulary {
        run_dir.write_vocabulary(vocabulary)?;
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
    let mut options = fit_options(&config, train_loader.num_batches());
    if args.resume.is_some() {
        let point = run_dir.resume(&model, optimizer.as_mut())?;
        (options.start_epoch, options.start_step, options.carried) =
            (point.epoch, point.step, point.progress);
        run_dir.keep_epochs(point.epoch)?;
        println!(
            "resuming {} at epoch {}, step {}",
            out.display(),
            point.epoch + 1,
            point.step
        );
    } else {
        run_dir.keep_epochs(0)?;
        println!("{}", model.summary(&batch_shape(data.train.as_ref())));
    }
    if options.start_epoch >= options.epochs {
        println!(
            "nothing to do: the run already finished its {} epochs",
            options.epochs
        );
        return Ok(Outcome::Finished);
    }

    let loss = experiment::build_loss(&config.train);
    let probe = make_batch(
        data.train.as_ref(),
        &(0..data.train.len().min(256)).collect::<Vec<_>>(),
    );
    let mut watcher = Watcher {
        run_dir,
        model: &model,
        progress: Progress::new(options.epochs).by_steps(steps_per_period),
        interrupted: ctrl_c_flag(),
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
    watcher.finish(result.map(|_| ()))
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

/// A flag that Ctrl-C sets; training checks it after every step.
fn ctrl_c_flag() -> Arc<AtomicBool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    // a second registration (tests calling run twice in one process) is harmless
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    interrupted
}

/// What `nabla train` does while training runs: the progress display, Ctrl-C,
/// checkpoints every N steps, and each finished epoch's records and health check.
struct Watcher<'a> {
    run_dir: RunDir,
    model: &'a Sequential,
    progress: Progress,
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
}

impl Watcher<'_> {
    fn on_event(&mut self, event: &Event<'_>) -> Control {
        let handled = match event {
            Event::EpochStart { epoch, batches } => {
                self.progress.start_epoch(*epoch, *batches);
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
                self.progress
                    .step(*batch, *batches, *loss, *accuracy, *samples);
                if batch == batches {
                    self.grad_norms = gradient_norms(self.model);
                }
                let stop = self.interrupted.load(Ordering::SeqCst);
                let due = self
                    .checkpoint_every
                    .is_some_and(|n| n > 0 && batch % n == 0 && batch < batches);
                if stop {
                    self.stopped_at = Some((*epoch, *batch));
                }
                let saved = if stop || due {
                    self.run_dir
                        .save_checkpoint(self.model, *optimizer, epoch - 1, *batch, sums)
                } else {
                    Ok(())
                };
                saved.map(|()| {
                    if stop {
                        Control::Stop
                    } else {
                        Control::Continue
                    }
                })
            }
            Event::EpochEnd { metrics, optimizer } => {
                self.progress.end_epoch(metrics);
                let health = gradient_health(self.model, &self.probe, &self.grad_norms);
                for warning in &health.warnings {
                    self.progress.println(&format!("  warning: {warning}"));
                }
                self.run_dir
                    .end_epoch(metrics, &health, self.model, *optimizer)
                    .map(|()| Control::Continue)
            }
        };
        handled.unwrap_or_else(|e| {
            self.failure = Some(e);
            Control::Stop
        })
    }

    /// How the run ended, said in the terminal.
    fn finish(mut self, result: Result<()>) -> Result<Outcome> {
        self.progress.abandon();
        if let Some(e) = self.failure {
            return Err(e);
        }
        let out = self.run_dir.path().display();
        if let Err(Error::Diverged(message)) = &result {
            eprintln!("warning: training stopped: {message}");
            eprintln!("the last good checkpoint is kept in {out}");
        }
        result?;
        if let Some((epoch, step)) = self.stopped_at {
            println!(
                "interrupted at epoch {epoch}, step {step}: checkpoint saved; continue with `nabla train --resume {out}`"
            );
            return Ok(Outcome::Interrupted);
        }
        match (self.run_dir.history().last(), self.language_model) {
            (Some(last), true) => {
                let loss = last.test_loss.unwrap_or(f64::NAN);
                println!(
                    "done: validation loss {loss:.4} nats/token (perplexity {:.2}) — run directory {out}\nwrite with: nabla generate {out} --prompt \"…\"",
                    loss.exp()
                );
            }
            (Some(last), false) => println!(
                "done: test accuracy {:.2}% — run directory {out}",
                100.0 * last.test_accuracy.unwrap_or(0.0)
            ),
            (None, _) => {}
        }
        Ok(Outcome::Finished)
    }
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
