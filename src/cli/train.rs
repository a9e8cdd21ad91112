//! `nabla train`: the main job. Reads a config, trains with a progress display, and
//! keeps the run directory ([`RunDir`]) up to date. Ctrl-C checkpoints and exits
//! cleanly; `--resume DIR` continues exactly where the run stopped.

use std::path::{Path, PathBuf};

pub use super::watch::Outcome;
use super::watch::Watch;
use crate::dashboard::Recorder;
use crate::dashboard::samples::SavedSamples;
use crate::data::Dataset;
use crate::distributed::World;
use crate::error::{Error, Result};
use crate::experiment::Config;
use crate::run::{Training, files};

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
    /// Host names the dashboard also answers to (beside localhost and IP addresses).
    pub allow_host: Vec<String>,
}

/// Runs `nabla train` as one rank of `world` (one process alone: [`World::single`]).
/// With several ranks, each trains on its share of every batch; rank 0 alone prints
/// and writes the run directory.
pub fn run(args: TrainArgs, world: &World) -> Result<Outcome> {
    let (config, config_path, out) = resolve(&args)?;
    let root = world.is_root();
    let live = match &args.dashboard {
        Some(address) if root => Some(super::dashboard::for_training(
            address,
            &out,
            &config.to_toml(),
            args.allow_host.clone(),
        )?),
        _ => None,
    };
    // a config that cannot be built is an error in that file: say which
    let mut training = Training::prepare(config, world).map_err(|error| match error {
        Error::Config(message) => Error::Config(format!("{}: {message}", config_path.display())),
        other => other,
    })?;
    // NABLA_CHECK_REPLICAS=step: compare the ranks' weights after every step
    training.options.check_replicas_every_step =
        std::env::var("NABLA_CHECK_REPLICAS").is_ok_and(|when| when == "step");
    let mut run_dir = if root {
        let run_dir = training.run_dir(&out)?;
        if let Some(samples) = SavedSamples::of(&training.data) {
            samples.save(&out)?;
        }
        Some(run_dir)
    } else {
        None
    };
    match (&mut run_dir, args.resume.is_some()) {
        (Some(run_dir), true) => {
            let point = training.resume_in(run_dir)?;
            outln!(
                "resuming {} at epoch {}, step {}",
                out.display(),
                point.epoch + 1,
                point.step
            );
        }
        (None, true) => _ = training.resume_from(&out)?,
        (Some(run_dir), false) => {
            run_dir.start_fresh()?;
            for note in &training.data.notes {
                eprintln!("note: {note}");
            }
            outln!(
                "{}",
                training
                    .model
                    .summary(&batch_shape(training.data.train.as_ref()))
            );
        }
        (None, false) => {}
    }
    let (options, batch_size) = (&training.options, training.config.data.batch_size);
    if root && world.is_distributed() {
        outln!(
            "data-parallel over {} ranks: each takes {}–{} samples of every batch of {batch_size}",
            world.size(),
            batch_size / world.size(),
            batch_size.div_ceil(world.size()),
        );
    }
    if options.start_epoch >= options.epochs {
        if root {
            outln!(
                "nothing to do: the run already finished its {} epochs",
                options.epochs
            );
        }
        return Ok(Outcome::Finished);
    }
    let steps_per_period = training.config.train.steps_per_period();
    let batches = training.train_loader()?.num_batches();
    let live = live.map(|(dashboard, run)| {
        let resumed = args.resume.as_ref().map(|_| out.as_path());
        let plan = (training.options.epochs, batches);
        let data = &training.data;
        let recorder = Recorder::for_data(run.clone(), resumed, data, &training.model, plan);
        ((dashboard, run), recorder)
    });
    let tensorboard = tensorboard_dir(&args, &training.config, &out);
    let epochs = training.options.epochs;
    let mut watch = Watch::new(world, run_dir, &out, epochs, steps_per_period)
        .tensorboard(tensorboard)?
        .dashboard(live);
    let fitted = training.fit(&mut watch.listeners());
    watch.finish(fitted, training.data.vocabulary.is_some())
}

/// Where TensorBoard files go: `--tensorboard DIR`, or the run directory's
/// `tensorboard/` with a bare `--tensorboard` or `[train] tensorboard = true`.
fn tensorboard_dir(args: &TrainArgs, config: &Config, out: &Path) -> Option<PathBuf> {
    match (&args.tensorboard, config.train.tensorboard) {
        (Some(Some(dir)), _) => Some(dir.clone()),
        (Some(None), _) | (None, true) => Some(out.join(files::TENSORBOARD)),
        (None, false) => None,
    }
}

/// The config (from the file, or the run being resumed) with the command line's
/// overrides, the file it came from, and the run directory.
fn resolve(args: &TrainArgs) -> Result<(Config, PathBuf, PathBuf)> {
    let (path, out) = match (&args.resume, &args.config) {
        (Some(dir), _) => (dir.join(files::CONFIG), dir.clone()),
        (None, Some(path)) => (
            path.clone(),
            args.out.clone().unwrap_or_else(|| default_run_dir(path)),
        ),
        (None, None) => return Err(Error::Config("give a config file, or --resume DIR".into())),
    };
    let mut config = Config::load(&path)?;
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
    Ok((config, path, out))
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
