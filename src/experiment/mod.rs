//! The experiment: one small TOML file that says everything needed to reproduce a
//! run — data, model, loss, optimizer, schedule, seed — and what turns it into the
//! objects that train. The `nabla` command is a thin shell over this module;
//! library users call it the same way:
//!
//! ```no_run
//! use nabla::experiment::{Config, build_model, build_optimizer, load_data};
//! # fn main() -> nabla::Result<()> {
//! let config = Config::load("examples/mnist-mlp.toml".as_ref())?;
//! let data = load_data(&config)?;
//! let mut rng = nabla::rng(config.train.seed);
//! let (model, _shapes) = build_model::<f32>(
//!     &config.model.layers,
//!     data.train.feature_shape(),
//!     data.train.num_classes(),
//!     &mut rng,
//! )?;
//! let optimizer = build_optimizer(&config.train.optimizer, &model);
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod data;
pub mod layers;
pub mod loss;
pub mod optimizer;

pub use config::{Config, DataConfig, DataKind, ModelConfig, OptimizerConfig, TrainConfig};
pub use data::{Data, load_data};
pub use layers::{InitKind, LayerConfig, NormAxes, Width, build_model};
pub use loss::build_loss;
pub use optimizer::{build_optimizer, build_schedule};
