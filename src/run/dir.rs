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
use crate::nn::Sequential;
use crate::optim::Optimizer;
use crate::train::health::GradientHealth;
use crate::train::{EpochMetrics, EpochProgress, StepPoint};

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

/// A run directory and the epochs it has recorded.
pub struct RunDir {
    path: PathBuf,
    history: Vec<EpochMetrics>,
    /// A run trained by `max_steps`: steps per period (metrics in steps).
    steps_per_period: Option<usize>,
    /// `steps.jsonl`, open for appending once the first step is recorded; flushed
    /// with every checkpoint, so a resumed run finds every step up to it.
    steps: Option<std::io::BufWriter<std::fs::File>>,
}

impl RunDir {
    /// Creates (or reuses) `path` and writes the resolved config into it.
    pub fn create(path: &Path, config: &Config) -> Result<RunDir> {
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        write_atomically(&path.join(CONFIG), config.to_toml().as_bytes())?;
        let history = std::fs::read_to_string(path.join(METRICS))
            .map(|text| {
                text.lines()
                    .filter_map(|line| serde_json::from_str(line).ok())
                    .collect()
            })
            .unwrap_or_default();
        Ok(RunDir {
            path: path.to_path_buf(),
            history,
            steps_per_period: config.train.steps_per_period(),
            steps: None,
        })
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
    pub fn keep_epochs(&mut self, epochs: usize) -> Result<()> {
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
    pub fn keep_steps(&mut self, last: usize) -> Result<()> {
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
        model: &Sequential,
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

    /// Records a finished epoch: its metrics line (returned, as written), a
    /// checkpoint at the start of the next epoch, and the model.
    pub fn end_epoch(
        &mut self,
        metrics: &EpochMetrics,
        health: &GradientHealth,
        model: &Sequential,
        optimizer: &dyn Optimizer<f32>,
    ) -> Result<serde_json::Value> {
        self.history.push(metrics.clone());
        let line = self.append_metrics(metrics, health)?;
        let start_of_next = EpochProgress::default();
        self.save_checkpoint(model, optimizer, metrics.epoch, 0, &start_of_next)?;
        save_model(self.path.join(MODEL), model, &metadata(metrics.epoch))?;
        Ok(line)
    }

    fn append_metrics(
        &self,
        metrics: &EpochMetrics,
        health: &GradientHealth,
    ) -> Result<serde_json::Value> {
        let path = self.path.join(METRICS);
        let mut line = serde_json::to_value(metrics).expect("metrics serialise");
        if let Some(steps) = self.steps_per_period {
            line["step"] = (metrics.epoch * steps).into();
        }
        line["grad_norm"] = serde_json::to_value(&health.grad_norms).expect("numbers serialise");
        line["dead_relu_fraction"] =
            serde_json::to_value(&health.dead_relu).expect("numbers serialise");
        line["rss_mb"] =
            serde_json::to_value(crate::memory::resident_mb()).expect("a number serialises");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        writeln!(file, "{line}").map_err(|e| Error::io(&path, e))?;
        Ok(line)
    }
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
    model: &Sequential,
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
