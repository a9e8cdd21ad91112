//! The experiment file: data, model and training in one small TOML file — enough to
//! reproduce a run exactly. Unknown keys are errors that give the file, the line,
//! the key and the closest valid key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layers::LayerConfig;
use crate::error::{Error, Result};

/// A whole experiment.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
}

/// Where the data comes from and how it is batched.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `mnist`, `fashion-mnist` or `csv`.
    pub kind: DataKind,
    /// A directory of IDX files, or a CSV file (relative paths are relative to the
    /// current directory).
    pub path: PathBuf,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Images: `(pixel/255 − mean)/std` with MNIST's statistics; CSV: standardise each
    /// feature with the training split's mean and standard deviation.
    #[serde(default = "yes")]
    pub normalize: bool,
    /// CSV: the label column's name.
    #[serde(default)]
    pub label_column: Option<String>,
    /// CSV: the fraction of rows held out for testing.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Reshuffle the training data every epoch (from the seed); `false` keeps file order.
    #[serde(default = "yes")]
    pub shuffle: bool,
    /// Use only the first N training samples (quick runs).
    #[serde(default)]
    pub train_limit: Option<usize>,
    /// Use only the first N test samples.
    #[serde(default)]
    pub test_limit: Option<usize>,
}

/// The data formats `nabla train` reads.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DataKind {
    Mnist,
    FashionMnist,
    Csv,
}

/// The network: layers in order. The first layer's input size comes from the data.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub layers: Vec<LayerConfig>,
}

/// How to train.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    #[serde(default)]
    pub seed: u64,
    /// Only `cross_entropy` (from logits) for now.
    #[serde(default)]
    pub loss: LossKind,
    #[serde(default)]
    pub label_smoothing: f64,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    #[serde(default)]
    pub early_stopping: Option<EarlyStoppingConfig>,
    /// Start from these weights (a model.safetensors from nabla or PyTorch).
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Also checkpoint every N steps (besides every epoch).
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
}

/// The loss function.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    #[default]
    CrossEntropy,
}

/// The optimizer and its settings (PyTorch's defaults where omitted).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        dampening: f64,
        #[serde(default)]
        nesterov: bool,
        #[serde(default)]
        weight_decay: f64,
    },
    Adam {
        lr: f64,
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
    },
    Adamw {
        lr: f64,
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default = "default_adamw_decay")]
        weight_decay: f64,
    },
    Rmsprop {
        lr: f64,
        #[serde(default = "default_alpha")]
        alpha: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        centered: bool,
        #[serde(default)]
        weight_decay: f64,
    },
    Adagrad {
        lr: f64,
        #[serde(default)]
        lr_decay: f64,
        #[serde(default)]
        weight_decay: f64,
    },
}

impl OptimizerConfig {
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::Adamw { lr, .. }
            | OptimizerConfig::Rmsprop { lr, .. }
            | OptimizerConfig::Adagrad { lr, .. } => *lr,
        }
    }
}

/// A learning-rate schedule (per epoch, except `one_cycle`, which is per step).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleConfig {
    Step {
        step_size: usize,
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    MultiStep {
        milestones: Vec<usize>,
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    Exponential {
        gamma: f64,
    },
    Cosine {
        #[serde(default)]
        eta_min: f64,
    },
    Warmup {
        #[serde(default = "default_start_factor")]
        start_factor: f64,
        epochs: usize,
    },
    OneCycle {
        max_lr: f64,
        #[serde(default = "default_pct_start")]
        pct_start: f64,
    },
}

/// Stop when the test loss stops improving.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    pub patience: usize,
    #[serde(default)]
    pub min_delta: f64,
}

fn yes() -> bool {
    true
}
fn default_batch_size() -> usize {
    64
}
fn default_test_fraction() -> f64 {
    0.2
}
fn default_betas() -> (f64, f64) {
    (0.9, 0.999)
}
fn default_eps() -> f64 {
    1e-8
}
fn default_adamw_decay() -> f64 {
    0.01
}
fn default_alpha() -> f64 {
    0.99
}
fn default_gamma() -> f64 {
    0.1
}
fn default_start_factor() -> f64 {
    0.1
}
fn default_pct_start() -> f64 {
    0.3
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Config::parse(&text, path)
    }

    /// Parses config text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let config: Config =
            toml::from_str(text).map_err(|e| describe_toml_error(text, path, &e))?;
        config.validate().map_err(|(key, message)| {
            let place = find_key_line(text, &key)
                .map(|line| format!("line {line}, "))
                .unwrap_or_default();
            Error::format(path, format!("{place}`{key}`: {message}"))
        })?;
        Ok(config)
    }

    /// The config as TOML (what `nabla train` writes as the resolved config).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a config always serialises")
    }

    /// Range checks serde cannot express; the error names the dotted key.
    fn validate(&self) -> std::result::Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((key.to_string(), message));
        if self.data.batch_size == 0 {
            return fail("batch_size", "must be at least 1, found 0".into());
        }
        if self.data.kind == DataKind::Csv && self.data.label_column.is_none() {
            return fail(
                "label_column",
                "a CSV dataset needs `label_column = \"…\"` in [data]".into(),
            );
        }
        if !(self.data.test_fraction > 0.0 && self.data.test_fraction < 1.0) {
            return fail(
                "test_fraction",
                format!("must be between 0 and 1, found {}", self.data.test_fraction),
            );
        }
        if self.train.epochs == 0 {
            return fail("epochs", "must be at least 1, found 0".into());
        }
        let lr = self.train.optimizer.lr();
        if !(lr > 0.0 && lr.is_finite()) {
            return fail(
                "lr",
                format!("the learning rate must be a positive number, found {lr}"),
            );
        }
        if !(0.0..1.0).contains(&self.train.label_smoothing) {
            return fail(
                "label_smoothing",
                format!("must be in [0, 1), found {}", self.train.label_smoothing),
            );
        }
        if let Some(norm) = self
            .train
            .clip_grad_norm
            .filter(|n| n.is_nan() || *n <= 0.0)
        {
            return fail("clip_grad_norm", format!("must be positive, found {norm}"));
        }
        if self.model.layers.is_empty() {
            return fail("layers", "the model needs at least one layer".into());
        }
        for layer in &self.model.layers {
            layer.check()?;
        }
        Ok(())
    }
}

/// Turns a TOML/serde error into "file, line N: message; did you mean `x`?".
fn describe_toml_error(text: &str, path: &Path, error: &toml::de::Error) -> Error {
    let message = error.message().trim().to_string();
    let line = error.span().map(|span| line_of(text, span.start));
    let mut out = match line {
        Some(line) => format!("line {line}: {message}"),
        None => message.clone(),
    };
    if let Some(suggestion) = suggest(&message) {
        out.push_str(&format!("; did you mean `{suggestion}`?"));
    }
    if let Some(source) = line.and_then(|line| text.lines().nth(line - 1)) {
        out.push_str(&format!(
            "\n  {} | {}",
            line.unwrap_or(0),
            source.trim_end()
        ));
    }
    Error::format(path, out)
}

/// For "unknown field `x`, expected one of `a`, `b`" (or "unknown variant"), the
/// candidate closest to `x`.
fn suggest(message: &str) -> Option<String> {
    if !message.contains("unknown field") && !message.contains("unknown variant") {
        return None;
    }
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let (unknown, candidates) = quoted.split_first()?;
    // Jaro-Winkler favours a shared beginning: `lr_rate` → `lr`, `batch_sise` → `batch_size`
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(unknown, c), *c))
        .filter(|(similarity, _)| *similarity >= 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The first line where `key` is assigned (`key =` or `key=`), for value errors.
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let bare = key.rsplit('.').next().unwrap_or(key);
    text.lines().enumerate().find_map(|(i, line)| {
        let trimmed = line.trim_start();
        let assigned =
            trimmed.starts_with(bare) && trimmed[bare.len()..].trim_start().starts_with('=');
        let inline = line.contains(&format!(" {bare} ="))
            || line.contains(&format!("{{{bare} ="))
            || line.contains(&format!("type = \"{bare}\""));
        (assigned || inline).then_some(i + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_key() {
        let message =
            "unknown field `lr_rate`, expected one of `kind`, `lr`, `momentum`, `dampening`";
        assert_eq!(suggest(message).as_deref(), Some("lr"));
        assert_eq!(
            suggest("unknown variant `adamm`, expected one of `sgd`, `adam`, `adamw`").as_deref(),
            Some("adam")
        );
        assert_eq!(suggest("invalid type: string, expected usize"), None);
    }
}
