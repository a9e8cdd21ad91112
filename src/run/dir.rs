//! Writing a run directory: what a run leaves behind and how it is picked up again
//! (the files are listed in [`super::files`] and `docs/run-directory.md`). Every file
//! is written atomically, except the `.jsonl` logs, which only grow by whole lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::files::{CHECKPOINT, CLASSES, CONFIG, METRICS, MODEL, PREPROCESSING, STEPS, VOCABULARY};
use super::preprocessing::Preprocessing;
use crate::checkpoint::{load_training_state, save_model, save_training_state, write_atomically};
use crate::error::{Error, Result};
use crate::experiment::Config;
use crate::nn::Module;
use crate::optim::Optimizer;
use crate::train::{Control, EpochMetrics, EpochProgress, Event, FitOptions, Listener, StepPoint};

/// Where a saved run stands: the epoch in progress (from 0), steps done in it, and
/// its running sums.
pub struct ResumePoint {
    /// The epoch in progress, counting from 0.
    pub epoch: usize,
    /// Steps of it already taken.
    pub step: usize,
    /// Its running sums so far.
    pub progress: EpochProgress,
}

impl ResumePoint {
    /// Points `options` at this place: the epoch, the steps done in it, their sums.
    pub fn apply(&self, options: &mut FitOptions) {
        (options.start_epoch, options.start_step, options.carried) =
            (self.epoch, self.step, self.progress);
    }
}

/// A run directory being written: as a [`Listener`] of [`crate::train::fit_with`] it
/// records every step (`steps.jsonl`), every epoch (`metrics.jsonl`, the model, a
/// checkpoint), a checkpoint every `checkpoint_every` steps and when the run is stopped.
///
/// ```no_run
/// # fn main() -> nabla::Result<()> {
/// # let model = nabla::nn::zoo::mnist_mlp::<f32>(&mut nabla::rng(0));
/// # use nabla::nn::Module;
/// # let mut optimizer = nabla::optim::Sgd::new(model.named_parameters(), 0.05);
/// # let (train, test) = nabla::data::load_mnist("data/mnist")?;
/// # let (train, test) = (train.flattened(), test.flattened());
/// # let (train, test) = (nabla::data::DataLoader::new(&train, 128), nabla::data::DataLoader::new(&test, 1000));
/// # let loss = |l: &nabla::Tensor, y: &[usize]| nabla::loss::cross_entropy(l, y, &Default::default());
/// let mut options = nabla::train::FitOptions { epochs: 3, ..Default::default() };
/// let mut run = nabla::run::RunDir::new("runs/mine".as_ref())?;
/// if run.has_checkpoint() {
///     run.resume_into(&model, &mut optimizer, &mut options, train.num_batches())?;
/// } else {
///     run.start_fresh()?;
/// }
/// nabla::train::fit_with(&model, &mut optimizer, &train, Some(&test), &loss, &options, &mut [&mut run])?;
/// # Ok(())
/// # }
/// ```
pub struct RunDir {
    path: PathBuf,
    history: Vec<EpochMetrics>,
    /// A run trained by `max_steps`: steps per period (metrics in steps).
    steps_per_period: Option<usize>,
    /// Save a checkpoint every this many steps within an epoch, as well.
    checkpoint_every: Option<usize>,
    /// `steps.jsonl`, open for appending once the first step is recorded; flushed
    /// with every checkpoint, so a resumed run finds every step up to it.
    steps: Option<std::io::BufWriter<std::fs::File>>,
}

impl RunDir {
    /// Creates (or reuses) `path` for a run of a config, and writes the resolved
    /// config into it (what [`crate::run::SavedRun::open`] rebuilds the network from).
    pub fn create(path: &Path, config: &Config) -> Result<RunDir> {
        let mut run = RunDir::new(path)?;
        write_atomically(&path.join(CONFIG), config.to_toml().as_bytes())?;
        run.steps_per_period = config.train.steps_per_period();
        run.checkpoint_every = config.train.checkpoint_every.filter(|&n| n > 0);
        Ok(run)
    }

    /// Creates (or reuses) `path` for a run of any model (one defined in Rust: its
    /// code, not a config, says what the network is).
    pub fn new(path: &Path) -> Result<RunDir> {
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let history = read_history(path);
        Ok(RunDir {
            path: path.to_path_buf(),
            history,
            steps_per_period: None,
            checkpoint_every: None,
            steps: None,
        })
    }

    /// Also saves a checkpoint every `steps` steps within an epoch.
    pub fn checkpoint_every(mut self, steps: usize) -> RunDir {
        self.checkpoint_every = (steps > 0).then_some(steps);
        self
    }

    /// Whether a checkpoint is there to resume from.
    pub fn has_checkpoint(&self) -> bool {
        self.path.join(CHECKPOINT).is_file()
    }

    /// Starts a fresh run here: the epochs and steps of an earlier run are forgotten.
    pub fn start_fresh(&mut self) -> Result<()> {
        self.keep_epochs(0)?;
        self.keep_steps(0)
    }

    /// Continues the run exactly where its checkpoint stands: restores `model` and
    /// `optimizer`, points `options` there, and cuts the logs back to it (a run of
    /// `steps_per_epoch` steps an epoch).
    pub fn resume_into(
        &mut self,
        model: &dyn Module<f32>,
        optimizer: &mut dyn Optimizer<f32>,
        options: &mut FitOptions,
        steps_per_epoch: usize,
    ) -> Result<ResumePoint> {
        let point = resume(&self.path, model, optimizer)?;
        point.apply(options);
        self.keep_epochs(point.epoch)?;
        self.keep_steps(point.epoch * steps_per_epoch + point.step)?;
        Ok(point)
    }

    /// Writes what makes the run usable without its training data:
    /// `preprocessing.json`, `classes.json` (the class names in label order, for other
    /// tools) and, for a language model, `vocab.json` (its tokens).
    pub fn write_preprocessing(
        &self,
        preprocessing: &Preprocessing,
        vocabulary: Option<&crate::data::text::Vocabulary>,
    ) -> Result<()> {
        let json = serde_json::to_string_pretty(preprocessing).expect("plain data serialises");
        write_atomically(&self.path.join(PREPROCESSING), json.as_bytes())?;
        let json =
            serde_json::to_string_pretty(&preprocessing.class_names).expect("strings serialise");
        write_atomically(&self.path.join(CLASSES), json.as_bytes())?;
        if let Some(vocabulary) = vocabulary {
            let json = serde_json::to_string_pretty(vocabulary).expect("a vocabulary serialises");
            write_atomically(&self.path.join(VOCABULARY), json.as_bytes())?;
        }
        Ok(())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A run trained by `max_steps`: its steps per period.
    pub fn steps_per_period(&self) -> Option<usize> {
        self.steps_per_period
    }

    /// The epochs recorded so far.
    pub fn history(&self) -> &[EpochMetrics] {
        &self.history
    }

    /// Forgets every epoch after the first `epochs` (a fresh run keeps none; a
    /// resumed one redoes the epoch it stopped in). Kept lines stay byte for byte.
    fn keep_epochs(&mut self, epochs: usize) -> Result<()> {
        self.history.retain(|m| m.epoch <= epochs);
        let path = self.path.join(METRICS);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let kept: String = text
            .lines()
            .filter(|line| {
                serde_json::from_str::<EpochMetrics>(line).is_ok_and(|m| m.epoch <= epochs)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        write_atomically(&path, kept.as_bytes())
    }

    /// Forgets every step after global step `last` (as [`RunDir::keep_epochs`]).
    fn keep_steps(&mut self, last: usize) -> Result<()> {
        self.steps = None;
        let path = self.path.join(STEPS);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let kept: String = text
            .lines()
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .is_ok_and(|step| step["step"].as_u64().is_some_and(|s| s as usize <= last))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        write_atomically(&path, kept.as_bytes())
    }

    /// Appends a step's line to `steps.jsonl` (buffered; written out with the next
    /// checkpoint).
    pub fn record_step(&mut self, point: &StepPoint) -> Result<()> {
        let path = self.path.join(STEPS);
        if self.steps.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            self.steps = Some(std::io::BufWriter::new(file));
        }
        let line = serde_json::to_string(point).expect("plain numbers serialise");
        let steps = self.steps.as_mut().expect("opened above");
        writeln!(steps, "{line}").map_err(|e| Error::io(&path, e))
    }

    /// Saves the training state: `epoch` (from 0) in progress with `step` steps done.
    pub fn save_checkpoint(
        &mut self,
        model: &dyn Module<f32>,
        optimizer: &dyn Optimizer<f32>,
        epoch: usize,
        step: usize,
        sums: &EpochProgress,
    ) -> Result<()> {
        if let Some(steps) = &mut self.steps {
            let path = self.path.join(STEPS);
            steps.flush().map_err(|e| Error::io(&path, e))?;
        }
        let mut metadata = metadata(epoch);
        metadata.insert("step".into(), step.to_string());
        metadata.insert(
            "progress".into(),
            serde_json::to_string(sums).expect("plain numbers serialise"),
        );
        save_training_state(self.path.join(CHECKPOINT), model, optimizer, &metadata)
    }

    /// Records a finished epoch: its metrics line, a checkpoint at the start of the
    /// next epoch, and the model.
    pub fn end_epoch(
        &mut self,
        metrics: &EpochMetrics,
        line: &serde_json::Value,
        model: &dyn Module<f32>,
        optimizer: &dyn Optimizer<f32>,
    ) -> Result<()> {
        self.history.push(metrics.clone());
        let path = self.path.join(METRICS);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        writeln!(file, "{line}").map_err(|e| Error::io(&path, e))?;
        let start_of_next = EpochProgress::default();
        self.save_checkpoint(model, optimizer, metrics.epoch, 0, &start_of_next)?;
        save_model(self.path.join(MODEL), model, &metadata(metrics.epoch))
    }
}

impl Listener for RunDir {
    fn on_event(&mut self, event: &Event<'_>) -> Result<Control> {
        match event {
            Event::BatchEnd {
                epoch,
                batch,
                batches,
                progress,
                step,
                model,
                optimizer,
                ..
            } => {
                self.record_step(step)?;
                let due = self
                    .checkpoint_every
                    .is_some_and(|n| batch % n == 0 && batch < batches);
                if due {
                    self.save_checkpoint(*model, *optimizer, epoch - 1, *batch, progress)?;
                }
            }
            Event::Stopped {
                epoch,
                batch,
                progress,
                model,
                optimizer,
            } => self.save_checkpoint(*model, *optimizer, epoch - 1, *batch, progress)?,
            Event::EpochEnd {
                metrics,
                line,
                model,
                optimizer,
                ..
            } => self.end_epoch(metrics, line, *model, *optimizer)?,
            Event::EpochStart { .. } => {}
        }
        Ok(Control::Continue)
    }
}

/// The `metrics.jsonl` lines of the run in `dir` as JSON, every field kept (none when
/// the file is missing; a line being written is left for the next look).
pub fn read_metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join(METRICS))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The `steps.jsonl` lines from byte `offset` on, and the offset after the last
/// whole line (a line being written is left for the next look).
pub fn read_steps(dir: &Path, offset: u64) -> (Vec<StepPoint>, u64) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(dir.join(STEPS)) else {
        return (Vec::new(), offset);
    };
    let mut text = String::new();
    if file.seek(SeekFrom::Start(offset)).is_err() || file.read_to_string(&mut text).is_err() {
        return (Vec::new(), offset);
    }
    let whole = text.rfind('\n').map_or(0, |end| end + 1);
    let steps = text[..whole]
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    (steps, offset + whole as u64)
}

/// The epochs recorded in the run directory `dir` (none when it has no metrics).
pub fn read_history(dir: &Path) -> Vec<EpochMetrics> {
    std::fs::read_to_string(dir.join(METRICS))
        .map(|text| {
            text.lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn metadata(epoch: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("epoch".to_string(), epoch.to_string()),
        ("format".to_string(), "pt".to_string()),
    ])
}

/// Restores `model` and `optimizer` from the checkpoint of the run in `dir` (read
/// only: every rank of a data-parallel run does this); says where the run stood.
pub fn resume(
    dir: &Path,
    model: &dyn Module<f32>,
    optimizer: &mut dyn Optimizer<f32>,
) -> Result<ResumePoint> {
    let path = dir.join(CHECKPOINT);
    let metadata = load_training_state(&path, model, optimizer)?;
    let number = |key: &str| -> Result<usize> {
        metadata
            .get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                Error::format(
                    &path,
                    format!(
                        "metadata `{key}`: expected a whole number, found {:?}",
                        metadata.get(key)
                    ),
                )
            })
    };
    let progress = metadata
        .get("progress")
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    Ok(ResumePoint {
        epoch: number("epoch")?,
        step: number("step")?,
        progress,
    })
}
