//! What watches a training run from the command line — the progress bar, the run
//! directory with its checkpoints and `curves.png`, TensorBoard, the dashboard,
//! Ctrl-C — assembled once, for `nabla train` and for a model written in Rust
//! ([`fit_model`], see `examples/custom_model.rs`).

use std::path::{Path, PathBuf};

use super::progress::Progress;
use crate::dashboard::{Dashboard, Recorder, SharedRun};
use crate::data::{DataLoader, Dataset};
use crate::distributed::World;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::optim::Optimizer;
use crate::run::{RunDir, files};
use crate::tensorboard::EventWriter;
use crate::train::{Control, Event, FitOptions, Fitted, Interrupt, Listener, LossFn, fit_with};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every epoch ran (or early stopping ended the run).
    Finished,
    /// Ctrl-C: a checkpoint was saved.
    Interrupted,
}

/// The listeners of one rank's run: rank 0 prints and writes, every rank watches
/// for Ctrl-C (so all stop at the same step).
pub struct Watch {
    interrupt: Interrupt,
    progress: Option<Progress>,
    run_dir: Option<RunDir>,
    curves: Option<Curves>,
    tensorboard: Option<EventWriter>,
    recorder: Option<Recorder>,
    live: Option<(Dashboard, SharedRun)>,
    out: PathBuf,
    /// How to continue an interrupted run, as the user would type it.
    resume_hint: String,
}

impl Watch {
    /// Watches a run of `epochs` (periods of `steps_per_period` steps for a run
    /// counted in steps) written to `run_dir` (rank 0's; `None` on the others).
    pub fn new(
        world: &World,
        run_dir: Option<RunDir>,
        out: &Path,
        epochs: usize,
        steps_per_period: Option<usize>,
    ) -> Watch {
        let root = run_dir.is_some();
        Watch {
            interrupt: Interrupt::new(super::ctrl_c_flag(), world),
            progress: root.then(|| Progress::new(epochs).by_steps(steps_per_period)),
            curves: root.then(|| Curves {
                dir: out.to_path_buf(),
                steps_per_period,
            }),
            run_dir,
            tensorboard: None,
            recorder: None,
            live: None,
            out: out.to_path_buf(),
            resume_hint: format!("nabla train --resume {}", out.display()),
        }
    }

    /// How to continue an interrupted run, as the user would type it.
    pub fn resume_hint(mut self, hint: String) -> Watch {
        self.resume_hint = hint;
        self
    }

    /// Also writes TensorBoard event files into `dir`.
    pub fn tensorboard(mut self, dir: Option<PathBuf>) -> Result<Watch> {
        if let (Some(dir), true) = (dir, self.run_dir.is_some()) {
            self.tensorboard = Some(EventWriter::create(dir)?);
        }
        Ok(self)
    }

    /// Also feeds the live dashboard `live` through `recorder`.
    pub fn dashboard(mut self, live: Option<((Dashboard, SharedRun), Recorder)>) -> Watch {
        if let Some((live, recorder)) = live {
            self.live = Some(live);
            self.recorder = Some(recorder);
        }
        self
    }

    /// Every listener, Ctrl-C first and the run directory before what reads it.
    pub fn listeners(&mut self) -> Vec<&mut dyn Listener> {
        let mut listeners: Vec<&mut dyn Listener> = vec![&mut self.interrupt];
        listeners.extend(self.progress.as_mut().map(|l| l as &mut dyn Listener));
        listeners.extend(self.run_dir.as_mut().map(|l| l as &mut dyn Listener));
        listeners.extend(self.curves.as_mut().map(|l| l as &mut dyn Listener));
        listeners.extend(self.tensorboard.as_mut().map(|l| l as &mut dyn Listener));
        listeners.extend(self.recorder.as_mut().map(|l| l as &mut dyn Listener));
        listeners
    }

    /// Says how the run ended (`language_model`: its summary is the validation loss) and, with a dashboard, keeps serving a finished run
    /// until Ctrl-C.
    pub fn finish(mut self, fitted: Result<Fitted>, language_model: bool) -> Result<Outcome> {
        if let Some(progress) = &mut self.progress {
            progress.abandon();
        }
        let run_dir = self.run_dir.as_ref();
        let outcome = report(
            fitted,
            run_dir,
            language_model,
            &self.out,
            &self.resume_hint,
        );
        if let Some((dashboard, run)) = &self.live {
            super::dashboard::end_of_training(dashboard, run, &outcome, &self.out);
        }
        outcome
    }
}

/// Where a model of your own is trained and what watches it, from the command line:
/// `--out DIR`, `--resume`, `--dashboard [ADDR]`, `--tensorboard [DIR]`,
/// `--epochs N`, `--steps N` (steps an epoch, for a quick run).
#[derive(clap::Parser, Clone, Debug, Default)]
pub struct RunArgs {
    /// The run directory.
    #[arg(long, default_value = "runs/model")]
    pub out: PathBuf,
    /// Continue the run in `--out` from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Serve the live dashboard (default 127.0.0.1:6006).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = crate::dashboard::DEFAULT_ADDRESS)]
    pub dashboard: Option<String>,
    /// Write TensorBoard event files (default: the run directory's `tensorboard/`).
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub tensorboard: Option<Option<PathBuf>>,
    /// Train this many epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Train this many steps an epoch (batches drawn at random).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Save a checkpoint every this many steps, as well as after every epoch.
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
}

impl RunArgs {
    /// The arguments of this process (`--help` says them; a bad one ends it with a message).
    pub fn from_command_line() -> RunArgs {
        clap::Parser::parse()
    }
}

/// Trains a model of your own as `nabla train` trains a config: the run directory
/// in `args.out` (metrics, steps, model, checkpoints, `curves.png`), exact resume,
/// the progress bar, Ctrl-C, and, if asked, the dashboard and TensorBoard.
/// `image_shape` is a sample's `[C, H, W]` when the samples are images (the dashboard
/// shows them). See `examples/custom_model.rs`.
#[allow(clippy::too_many_arguments)]
pub fn fit_model<D: Dataset, E: Dataset>(
    model: &dyn Module<f32>,
    optimizer: &mut dyn Optimizer<f32>,
    train: &DataLoader<'_, D>,
    test: &DataLoader<'_, E>,
    loss: LossFn<'_>,
    mut options: FitOptions,
    image_shape: Option<[usize; 3]>,
    args: &RunArgs,
) -> Result<Outcome> {
    let batch_size = train.batch_size();
    let mut train = train.clone();
    if let Some(steps) = args.steps {
        train = train.samples_per_epoch(steps * batch_size);
    }
    options.epochs = args.epochs.unwrap_or(options.epochs);
    options.health = true;
    let mut run_dir = RunDir::new(&args.out)?.checkpoint_every(args.checkpoint_every.unwrap_or(0));
    let batches = train.num_batches();
    if args.resume {
        let point = run_dir.resume_into(model, optimizer, &mut options, batches)?;
        outln!(
            "resuming {} at epoch {}, step {}",
            args.out.display(),
            point.epoch + 1,
            point.step
        );
    } else {
        run_dir.start_fresh()?;
    }
    let live = match &args.dashboard {
        Some(address) => {
            let datasets = (
                train.dataset() as &dyn Dataset,
                test.dataset() as &dyn Dataset,
            );
            let plan = (options.epochs, batches);
            let (dashboard, recorder) = crate::dashboard::serve_training(
                address,
                &args.out,
                model,
                datasets,
                image_shape,
                plan,
            )?;
            outln!("dashboard: {}", dashboard.url());
            let run = recorder.run().clone();
            Some(((dashboard, run), recorder))
        }
        None => None,
    };
    let tensorboard = args.tensorboard.as_ref().map(|dir| {
        dir.clone()
            .unwrap_or_else(|| args.out.join(files::TENSORBOARD))
    });
    let program = std::env::args().next().unwrap_or_default();
    let hint = format!("{program} --out {} --resume", args.out.display());
    let mut watch = Watch::new(
        &options.world,
        Some(run_dir),
        &args.out,
        options.epochs,
        None,
    )
    .tensorboard(tensorboard)?
    .dashboard(live)
    .resume_hint(hint);
    let fitted = fit_with(
        model,
        optimizer,
        &train,
        Some(test),
        loss,
        &options,
        &mut watch.listeners(),
    );
    watch.finish(fitted, false)
}

/// `curves.png` in the run directory `dir`, redrawn after every epoch from its
/// metrics (listed after the [`RunDir`], which writes them).
struct Curves {
    dir: PathBuf,
    steps_per_period: Option<usize>,
}

impl Listener for Curves {
    fn on_event(&mut self, event: &Event<'_>) -> Result<Control> {
        if let Event::EpochEnd { .. } = event {
            let history = crate::run::dir::read_history(&self.dir);
            let path = self.dir.join(files::CURVES);
            super::plot::curves(&path, &history, self.steps_per_period)?;
        }
        Ok(Control::Continue)
    }
}

/// How the run ended, said in the terminal (rank 0 alone has a run directory).
fn report(
    fitted: Result<Fitted>,
    run_dir: Option<&RunDir>,
    language_model: bool,
    out: &Path,
    resume_hint: &str,
) -> Result<Outcome> {
    let shown = out.display();
    if let (Err(Error::Diverged(message)), Some(_)) = (&fitted, run_dir) {
        eprintln!("warning: training stopped: {message}");
        eprintln!("the last good checkpoint is kept in {shown}");
    }
    let fitted = fitted?;
    let Some(run_dir) = run_dir else {
        return Ok(match fitted.stopped_at {
            Some(_) => Outcome::Interrupted,
            None => Outcome::Finished,
        });
    };
    if let Some((epoch, step)) = fitted.stopped_at {
        outln!(
            "interrupted at epoch {epoch}, step {step}: checkpoint saved; continue with `{resume_hint}`"
        );
        return Ok(Outcome::Interrupted);
    }
    match (run_dir.history().last(), language_model) {
        (Some(last), true) => {
            let loss = last.test_loss.unwrap_or(f64::NAN);
            outln!(
                "done: validation loss {loss:.4} nats/token (perplexity {:.2}) — run directory {shown}\nwrite with: nabla generate {shown} --prompt \"…\"",
                loss.exp()
            );
        }
        (Some(last), false) => outln!(
            "done: test accuracy {:.2}% — run directory {shown}",
            100.0 * last.test_accuracy.unwrap_or(0.0)
        ),
        (None, _) => {}
    }
    Ok(Outcome::Finished)
}
