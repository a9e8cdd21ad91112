//! Where an explained step comes from: a config (its network with the initial
//! weights its seed gives) or a run directory (its latest weights), a training
//! example of the config's data, and the config's optimizer (or plain SGD at a
//! given rate).

use std::path::{Path, PathBuf};

use super::{StepTrace, trace_step};
use crate::data::make_batch;
use crate::error::{Error, Result};
use crate::experiment::{self, Config};
use crate::optim::{Optimizer, Sgd};
use crate::tensor::Tensor;

/// A model to explain one step of, on any of its training examples.
///
/// ```no_run
/// # fn main() -> nabla::Result<()> {
/// let source = nabla::explain::source::StepSource::config("examples/mnist-cnn.toml".as_ref())?;
/// print!("{}", source.trace(0)?.text());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct StepSource {
    /// The config, or the run directory whose `config.toml` is read at each step
    /// (a run being trained may not have written it yet when this is made).
    origin: Origin,
    /// How the explanation names the model (the config's or the run's path).
    label: String,
    /// A weights file to start from instead of the initial weights.
    weights: Option<PathBuf>,
    /// Plain SGD at this rate instead of the config's optimizer.
    sgd_lr: Option<f64>,
}

#[derive(Clone, Debug)]
enum Origin {
    Config(Box<Config>),
    Run(PathBuf),
}

impl StepSource {
    /// The network a config describes, with the initial weights of its seed.
    pub fn config(path: &Path) -> Result<StepSource> {
        Ok(StepSource {
            origin: Origin::Config(Box::new(Config::load(path)?)),
            label: path.display().to_string(),
            weights: None,
            sgd_lr: None,
        })
    }

    /// A run directory's network with its latest weights (`model.safetensors`;
    /// the initial weights while the run has saved none).
    pub fn run(dir: &Path) -> StepSource {
        StepSource {
            origin: Origin::Run(dir.to_path_buf()),
            label: dir.display().to_string(),
            weights: Some(dir.join(crate::run::files::MODEL)),
            sgd_lr: None,
        }
    }

    /// Takes the step with plain SGD at rate `lr` (`w ← w − η·dL/dw`) instead of the
    /// config's optimizer.
    pub fn with_sgd(mut self, lr: f64) -> StepSource {
        self.sgd_lr = Some(lr);
        self
    }

    /// When the weights file was last written (`None`: the initial weights), so a
    /// kept trace of a run still training is known to be stale.
    pub fn weights_version(&self) -> Option<std::time::SystemTime> {
        let path = self.weights.as_ref()?;
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    }

    /// One step on training example `sample`, every number recorded.
    pub fn trace(&self, sample: usize) -> Result<StepTrace> {
        self.trace_checking(sample, super::CHECKED)
    }

    /// [`StepSource::trace`] with `checked` entries of each parameter compared with
    /// finite differences (0: none, for a quick first look at a large model; the
    /// other numbers are the same).
    pub fn trace_checking(&self, sample: usize, checked: usize) -> Result<StepTrace> {
        let config = &match &self.origin {
            Origin::Config(config) => (**config).clone(),
            Origin::Run(dir) => {
                let path = dir.join(crate::run::files::CONFIG);
                if !path.is_file() {
                    return Err(Error::format(
                        dir,
                        "is not a run directory (yet): it has no config.toml",
                    ));
                }
                Config::load(&path)?
            }
        };
        let data = experiment::load_data(config)?;
        let train = data.train.as_ref();
        if sample >= train.len() {
            return Err(Error::Config(format!(
                "--sample {sample}: the training data has {} samples (0 to {})",
                train.len(),
                train.len().saturating_sub(1)
            )));
        }
        let (model, _) = experiment::build_model::<f64>(
            &config.model.layers,
            train.feature_shape(),
            train.num_classes(),
            &mut crate::rng(config.train.seed),
        )?;
        let weights = match &self.weights {
            Some(path) if path.is_file() => {
                crate::checkpoint::load_model(path, &model)?;
                format!(", weights of {}", path.display())
            }
            Some(_) => ", the initial weights (the run has saved none yet)".to_string(),
            None => String::new(),
        };
        let batch = make_batch(train, &[sample]);
        let input: Tensor<f64> = batch.inputs.cast();
        let mut optimizer: Box<dyn Optimizer<f64>> = match self.sgd_lr {
            Some(lr) => Box::new(Sgd::new(crate::nn::Module::named_parameters(&model), lr)),
            None => experiment::build_optimizer(&config.train.optimizer, &model),
        };
        let mut trace = trace_step(&model, &input, &batch.labels, optimizer.as_mut(), checked);
        trace.examples = train.len();
        let label = batch.labels[0];
        let class = data
            .class_names
            .get(label)
            .cloned()
            .unwrap_or_else(|| label.to_string());
        trace.title = format!("Sample {sample} of {} (class {class}){weights}", self.label);
        Ok(trace)
    }
}
