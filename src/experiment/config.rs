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
    /// The data and how it is batched.
    pub data: DataConfig,
    /// The network.
    pub model: ModelConfig,
    /// How to train.
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
    /// Samples per training step.
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
    /// Image folders: resize every image to `[height, width]` (stretched).
    #[serde(default)]
    pub image_size: Option<[usize; 2]>,
    /// Image folders: 1 (grey) or 3 (RGB); default: 3 if any image has colour (the
    /// others are converted).
    #[serde(default)]
    pub channels: Option<usize>,
    /// Image folders: per-channel means on `[0, 1]` pixels (default: the training split's).
    #[serde(default)]
    pub mean: Option<Vec<f32>>,
    /// Image folders: per-channel standard deviations (default: the training split's).
    #[serde(default)]
    pub std: Option<Vec<f32>>,
    /// Image folders: `"error"` (default) or `"skip"` for files that do not decode.
    #[serde(default)]
    pub on_bad_image: OnBadImage,
    /// Images: random crops and flips of the training samples, drawn per sample and
    /// epoch from the seed: `{ random_crop = { size = 32, padding = 4 },
    /// horizontal_flip = true }`.
    #[serde(default)]
    pub augment: Option<crate::data::augment::Augmentation>,
    /// Text: `"char"` (default; one token per character of a UTF-8 file) or `"byte"`.
    #[serde(default = "default_tokenizer")]
    pub tokenizer: crate::data::text::Tokenizer,
    /// Text: tokens per window (the context a model sees); required for text.
    #[serde(default)]
    pub block_size: Option<usize>,
    /// Text: the fraction of the file, taken from its end, held out for validation.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
}

/// The data formats `nabla train` reads.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DataKind {
    /// MNIST: a directory of the four IDX files.
    Mnist,
    /// Fashion-MNIST, in the same IDX format.
    FashionMnist,
    /// A CSV file with a header, numeric features and a label column.
    Csv,
    /// CIFAR-10's binary version: a directory of `data_batch_*.bin` and `test_batch.bin`.
    #[serde(rename = "cifar10", alias = "cifar-10")]
    Cifar10,
    /// CIFAR-100's binary version (fine labels): a directory of `train.bin` and `test.bin`.
    #[serde(rename = "cifar100", alias = "cifar-100")]
    Cifar100,
    /// A directory of class folders of PNG/JPEG images (or `train/` and `test/`
    /// holding them).
    #[serde(rename = "image_folder", alias = "image-folder")]
    ImageFolder,
    /// A text file for a language model: windows of `block_size` tokens, each
    /// position's label the next token.
    Text,
}

/// What to do with an image file that does not decode.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnBadImage {
    /// Stop, naming the file.
    #[default]
    Error,
    /// Leave it out; the run says how many were skipped.
    Skip,
}

/// The network: layers in order. The first layer's input size comes from the data.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The layers, first to last.
    pub layers: Vec<LayerConfig>,
}

/// How to train.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training data (or give `max_steps`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epochs: usize,
    /// Train for this many steps instead of epochs, each on `batch_size` samples
    /// drawn at random (how language models train).
    #[serde(default)]
    pub max_steps: Option<usize>,
    /// With `max_steps`: evaluate (and record metrics, checkpoint) every this many
    /// steps; must divide `max_steps` (default: `max_steps`, once at the end).
    #[serde(default)]
    pub eval_every: Option<usize>,
    /// Seeds initialisation, shuffling and dropout: same seed, same run.
    #[serde(default)]
    pub seed: u64,
    /// Only `cross_entropy` (from logits) for now.
    #[serde(default)]
    pub loss: LossKind,
    /// Cross-entropy label smoothing, in [0, 1).
    #[serde(default)]
    pub label_smoothing: f64,
    /// The optimizer and its settings.
    pub optimizer: OptimizerConfig,
    /// How the learning rate changes (default: constant).
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
    /// Rescale gradients to at most this global L2 norm.
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// Stop when the test loss stops improving.
    #[serde(default)]
    pub early_stopping: Option<EarlyStoppingConfig>,
    /// Start from these weights (a model.safetensors from nabla or PyTorch).
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Also checkpoint every N steps (besides every epoch).
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// Data-parallel runs (`mpirun`): batch norm takes its statistics over every
    /// rank's share of the batch, not each rank's own (PyTorch's SyncBatchNorm).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sync_batch_norm: bool,
    /// Cut every batch into this many fixed chunks (a power of two), each
    /// differentiated on its own and added in a fixed tree: then one process and
    /// any power-of-two number of ranks that divides it train bit-identical weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_chunks: Option<usize>,
    /// Also write TensorBoard event files into `<run>/tensorboard/` (`nabla train
    /// --tensorboard DIR` picks another directory).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tensorboard: bool,
}

/// The loss function.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Softmax cross-entropy from logits.
    #[default]
    CrossEntropy,
}

/// The optimizer and its settings (PyTorch's defaults where omitted).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Stochastic gradient descent (momentum, dampening, Nesterov, weight decay).
    Sgd {
        /// The learning rate.
        lr: f64,
        /// Momentum factor.
        #[serde(default)]
        momentum: f64,
        /// Dampening of the momentum update.
        #[serde(default)]
        dampening: f64,
        /// Nesterov momentum.
        #[serde(default)]
        nesterov: bool,
        /// L2 penalty (decoupled for AdamW).
        #[serde(default)]
        weight_decay: f64,
    },
    /// Adam.
    Adam {
        /// The learning rate.
        lr: f64,
        /// Decay rates of the moment estimates (β₁, β₂).
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        /// Added to the denominator for stability.
        #[serde(default = "default_eps")]
        eps: f64,
        /// L2 penalty (decoupled for AdamW).
        #[serde(default)]
        weight_decay: f64,
    },
    /// AdamW: Adam with decoupled weight decay (default 0.01).
    Adamw {
        /// The learning rate.
        lr: f64,
        /// Decay rates of the moment estimates (β₁, β₂).
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        /// Added to the denominator for stability.
        #[serde(default = "default_eps")]
        eps: f64,
        /// L2 penalty (decoupled for AdamW).
        #[serde(default = "default_adamw_decay")]
        weight_decay: f64,
        /// Decay only weights with two or more axes, not biases and norm scales
        /// (the GPT recipe).
        #[serde(default)]
        decay_matrices_only: bool,
    },
    /// RMSprop.
    Rmsprop {
        /// The learning rate.
        lr: f64,
        /// Smoothing constant of the squared-gradient average.
        #[serde(default = "default_alpha")]
        alpha: f64,
        /// Momentum factor.
        #[serde(default)]
        momentum: f64,
        /// Normalise by the estimated variance.
        #[serde(default)]
        centered: bool,
        /// L2 penalty (decoupled for AdamW).
        #[serde(default)]
        weight_decay: f64,
    },
    /// Adagrad.
    Adagrad {
        /// The learning rate.
        lr: f64,
        /// Learning-rate decay per step.
        #[serde(default)]
        lr_decay: f64,
        /// L2 penalty (decoupled for AdamW).
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
    /// Multiply the rate by `gamma` every `step_size` epochs.
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// The decay factor.
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// Multiply the rate by `gamma` at each epoch in `milestones`.
    MultiStep {
        /// Epochs at which to decay.
        milestones: Vec<usize>,
        /// The decay factor.
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// Multiply the rate by `gamma` every epoch.
    Exponential {
        /// The decay factor.
        gamma: f64,
    },
    /// Cosine annealing from the base rate to `eta_min` over the run.
    Cosine {
        /// The final learning rate.
        #[serde(default)]
        eta_min: f64,
    },
    /// Rise linearly from `start_factor`·lr to lr over `epochs` epochs.
    Warmup {
        /// The starting fraction of the rate.
        #[serde(default = "default_start_factor")]
        start_factor: f64,
        /// Epochs of the ramp.
        epochs: usize,
    },
    /// One-cycle: up to `max_lr` and down again, per step.
    OneCycle {
        /// The peak learning rate.
        max_lr: f64,
        /// Fraction of the steps spent rising.
        #[serde(default = "default_pct_start")]
        pct_start: f64,
    },
}

/// Stop when the test loss stops improving.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    /// Epochs without improvement tolerated.
    pub patience: usize,
    /// The smallest decrease that counts as an improvement.
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
fn default_tokenizer() -> crate::data::text::Tokenizer {
    crate::data::text::Tokenizer::Char
}
fn default_val_fraction() -> f64 {
    0.1
}
fn is_zero(n: &usize) -> bool {
    *n == 0
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

impl TrainConfig {
    /// The number of training periods: epochs, or `max_steps / eval_every`.
    pub fn periods(&self) -> usize {
        match self.max_steps {
            Some(steps) => steps / self.steps_per_period().unwrap_or(steps),
            None => self.epochs,
        }
    }

    /// With `max_steps`: the steps between evaluations.
    pub fn steps_per_period(&self) -> Option<usize> {
        self.max_steps.map(|steps| self.eval_every.unwrap_or(steps))
    }
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
        match (
            self.train.epochs,
            self.train.max_steps,
            self.train.eval_every,
        ) {
            (0, None, _) => {
                return fail(
                    "epochs",
                    "training needs at least 1 epoch: give `epochs = N` (passes over the data) or `max_steps = N` in [train]".into(),
                );
            }
            (epochs, Some(_), _) if epochs > 0 => {
                return fail("max_steps", "give `epochs` or `max_steps`, not both".into());
            }
            (_, None, Some(_)) => {
                return fail("eval_every", "goes with `max_steps`".into());
            }
            (_, Some(0), _) => return fail("max_steps", "must be at least 1, found 0".into()),
            (_, Some(steps), Some(every)) if every == 0 || steps % every != 0 => {
                return fail(
                    "eval_every",
                    format!("must divide max_steps = {steps} into whole periods, found {every}"),
                );
            }
            _ => {}
        }
        if self.data.kind == DataKind::Text {
            match self.data.block_size {
                None => {
                    return fail(
                        "block_size",
                        "text needs `block_size = N` in [data]: the tokens a model sees at once"
                            .into(),
                    );
                }
                Some(0) => return fail("block_size", "must be at least 1, found 0".into()),
                _ => {}
            }
            if !(0.0..1.0).contains(&self.data.val_fraction) || self.data.val_fraction == 0.0 {
                return fail(
                    "val_fraction",
                    format!("must be between 0 and 1, found {}", self.data.val_fraction),
                );
            }
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
        if let Some(channels) = self.data.channels.filter(|c| ![1, 3].contains(c)) {
            return fail("channels", format!("must be 1 or 3, found {channels}"));
        }
        if let Some(size) = self.data.image_size.filter(|s| s.contains(&0)) {
            return fail("image_size", format!("must be positive, found {size:?}"));
        }
        if self.data.mean.is_some() != self.data.std.is_some() {
            return fail("mean", "give both mean and std, or neither".into());
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
