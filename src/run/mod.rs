//! A training run as a thing to keep: the run directory it writes, and the trained
//! model opened from it for use — without the training data.
//!
//! [`Training`] prepares the run of a config in one call (data, network, optimizer,
//! loss, options, ranks); [`RunDir`] writes a run directory as training goes (a
//! [`crate::train::Listener`], for any model); [`SavedRun`] opens a finished one
//! (network, weights and [`Preprocessing`]) for `predict`, `eval` and `generate`, or
//! for a Rust program of your own. Every file of the format is named in [`files`]
//! and described in `docs/run-directory.md`.

pub mod dir;
pub mod preprocessing;
pub mod saved;
pub mod training;

pub use dir::{ResumePoint, RunDir, resume};
pub use preprocessing::{FORMAT_VERSION, Input, Preprocessing};
pub use saved::SavedRun;
pub use training::Training;

/// The files of a run directory, named once.
pub mod files {
    /// The resolved config: the network, the data it was trained on, the training settings.
    pub const CONFIG: &str = "config.toml";
    /// How raw inputs become the network's input, and the class names ([`super::Preprocessing`]).
    pub const PREPROCESSING: &str = "preprocessing.json";
    /// The class names in label order, for other tools.
    pub const CLASSES: &str = "classes.json";
    /// A language model's tokens.
    pub const VOCABULARY: &str = "vocab.json";
    /// The latest weights (safetensors, PyTorch names and layouts).
    pub const MODEL: &str = "model.safetensors";
    /// Weights, optimizer state and where in the data the run stands (for `--resume`).
    pub const CHECKPOINT: &str = "checkpoint.safetensors";
    /// One JSON line per epoch.
    pub const METRICS: &str = "metrics.jsonl";
    /// One JSON line per step.
    pub const STEPS: &str = "steps.jsonl";
    /// Loss and accuracy curves (written by the `nabla` command).
    pub const CURVES: &str = "curves.png";
    /// The confusion matrix of the last `nabla eval`.
    pub const CONFUSION: &str = "confusion.png";
    /// The samples the dashboard draws (2-feature points, the first test images).
    pub const SAMPLES: &str = "samples.safetensors";
    /// TensorBoard event files, with `--tensorboard`.
    pub const TENSORBOARD: &str = "tensorboard";
}
