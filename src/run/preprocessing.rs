//! What turns a user's raw inputs — CSV rows, image pixels, text — into the numbers a
//! trained network takes, as the training run did it: saved in the run directory
//! (`preprocessing.json`), so the model can be used without its training data.

use serde::{Deserialize, Serialize};

use crate::data::csv::Standardizer;
use crate::data::image_set::ImageSet;
use crate::data::{Dataset, ImageDataset, TableSchema};
use crate::error::Result;
use crate::experiment::{Config, Data, DataKind};
use crate::tensor::Tensor;

/// The version of the run-directory format this build writes (see `docs/run-directory.md`).
pub const FORMAT_VERSION: u32 = 1;

/// How a trained model's inputs are prepared, and what its outputs mean.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// The run-directory format it was written with ([`FORMAT_VERSION`]).
    pub format: u32,
    /// The kind of data the model was trained on.
    pub data: DataKind,
    /// One sample's shape as the network takes it (`[784]`, `[1, 28, 28]`, `[block_size]`).
    pub input_shape: Vec<usize>,
    /// The class of each output index (for a text model: each token).
    pub class_names: Vec<String>,
    /// How raw inputs become that input.
    pub input: Input,
}

/// The raw inputs a model takes, and how they are turned into features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Input {
    /// Rows of a table: feature columns by name, standardised with the training
    /// split's statistics when the run normalised.
    Table {
        /// Feature columns, label column and classes.
        schema: TableSchema,
        /// `(x − mean)/std` per feature, fitted on the training split.
        standardizer: Option<Standardizer>,
    },
    /// Images of `shape` = `[C, H, W]` bytes: new images are resized and converted to
    /// it; features are `p/255`, or `(p/255 − mean)/std` per channel.
    Images {
        /// Channels, height, width.
        shape: [usize; 3],
        /// Per-channel `(mean, std)` of `[0, 1]` pixels, if the run normalised.
        normalization: Option<(Vec<f32>, Vec<f32>)>,
    },
    /// Token ids in windows of `block_size` (the vocabulary is the run's `vocab.json`).
    Text {
        /// The context length.
        block_size: usize,
    },
}

impl Preprocessing {
    /// What the run of `config`, with its data loaded, did to its inputs.
    pub fn of(config: &Config, data: &Data) -> Preprocessing {
        let input = match (&data.table, data.image_shape, config.data.block_size) {
            (Some(schema), _, _) => Input::Table {
                schema: schema.clone(),
                standardizer: data.standardizer.clone(),
            },
            (None, Some(shape), _) => Input::Images {
                shape,
                normalization: data.image_normalization.clone(),
            },
            (None, None, block_size) => Input::Text {
                block_size: block_size.unwrap_or(data.train.feature_len()),
            },
        };
        Preprocessing {
            format: FORMAT_VERSION,
            data: config.data.kind,
            input_shape: data.train.feature_shape().to_vec(),
            class_names: data.class_names.clone(),
            input,
        }
    }

    /// Whether its parts agree (a file edited by hand, or from another program, may
    /// not): the reason when they do not.
    pub fn check(&self) -> std::result::Result<(), String> {
        let width: usize = self.input_shape.iter().product();
        if width == 0 || width > 1 << 28 {
            return Err(format!(
                "input_shape {:?} holds {width} values per sample",
                self.input_shape
            ));
        }
        if self.class_names.is_empty() {
            return Err("class_names is empty".into());
        }
        match &self.input {
            Input::Table {
                schema,
                standardizer,
            } => {
                if schema.feature_names.len() != width {
                    return Err(format!(
                        "{} feature columns for an input of {width} values",
                        schema.feature_names.len()
                    ));
                }
                if let Some(s) = standardizer
                    && (s.mean.len() != width || s.std.len() != width)
                {
                    return Err(format!(
                        "the standardizer has {} means and {} deviations for {width} features",
                        s.mean.len(),
                        s.std.len()
                    ));
                }
            }
            Input::Images {
                shape,
                normalization,
            } => {
                if shape.iter().product::<usize>() != width || !matches!(shape[0], 1 | 3) {
                    return Err(format!(
                        "images of shape {shape:?} (1 or 3 channels) do not make an input of shape {:?}",
                        self.input_shape
                    ));
                }
                if let Some((mean, std)) = normalization
                    && (mean.len() != shape[0]
                        || std.len() != shape[0]
                        || std.iter().any(|s| *s <= 0.0))
                {
                    return Err(format!(
                        "the normalization needs {} means and {} positive deviations, found {mean:?} and {std:?}",
                        shape[0], shape[0]
                    ));
                }
            }
            Input::Text { block_size } => {
                if *block_size != width {
                    return Err(format!(
                        "block_size {block_size} for an input of {width} tokens"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The number of classes (outputs per position).
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// A class's name (its index when the run named none).
    pub fn class_name(&self, class: usize) -> String {
        self.class_names
            .get(class)
            .cloned()
            .unwrap_or_else(|| class.to_string())
    }

    /// Table rows (`features` row-major, in the schema's column order) as a batch,
    /// standardised as in training.
    pub fn rows(&self, mut features: Vec<f32>) -> Tensor {
        let width: usize = self.input_shape.iter().product();
        if let Input::Table {
            standardizer: Some(standardizer),
            ..
        } = &self.input
        {
            standardizer.apply(&mut features);
        }
        let rows = features.len() / width.max(1);
        Tensor::from_vec(features, &[rows, width])
    }

    /// Images (`[C, H, W]` bytes each, in the model's shape) with their labels, as
    /// a dataset whose features are computed exactly as the training data's were.
    pub fn images(&self, pixels: Vec<u8>, labels: Vec<usize>) -> Result<Box<dyn Dataset>> {
        let Input::Images {
            shape,
            normalization,
        } = &self.input
        else {
            return Err(crate::Error::Config(format!(
                "the model was trained on {} data, not images",
                kind_name(self.data)
            )));
        };
        let flat = self.input_shape.len() == 1;
        Ok(match self.data {
            // IDX images: (p/255 − mean)/std per byte value, as `load_mnist` gives
            DataKind::Mnist | DataKind::FashionMnist => {
                let labels = labels.iter().map(|&l| l as u8).collect();
                let (mean, std) = match normalization {
                    Some((mean, std)) => (mean[0], std[0]),
                    None => (0.0, 1.0),
                };
                let set = ImageDataset::from_pixels(pixels, labels, [shape[1], shape[2]])
                    .with_normalization(mean, std);
                if flat {
                    Box::new(set.flattened())
                } else {
                    Box::new(set)
                }
            }
            _ => {
                let classes = self.num_classes();
                let set = ImageSet::new(pixels, labels, *shape, classes, normalization.clone())?;
                if flat {
                    Box::new(set.flattened())
                } else {
                    Box::new(set)
                }
            }
        })
    }
}

/// The data kind as a config spells it.
pub fn kind_name(kind: DataKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{kind:?}"))
}
