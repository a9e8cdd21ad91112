//! The data a config describes, loaded and split, ready to batch.

use super::config::{Config, DataKind};
use super::layers::LayerConfig;
use crate::data::csv::Standardizer;
use crate::data::{CsvOptions, Dataset, load_mnist, read_csv, train_validation_split};
use crate::error::Result;

/// Training and test data, ready to batch.
pub struct Data {
    /// The training split.
    pub train: Box<dyn Dataset>,
    /// The test split.
    pub test: Box<dyn Dataset>,
    /// Class names, for printing predictions.
    pub class_names: Vec<String>,
    /// CSV: the training split's feature statistics, applied to new rows too.
    pub standardizer: Option<Standardizer>,
}

/// Loads the data a config describes. Images are fed flat when the model starts
/// with a Linear layer (as PyTorch's `x.reshape(-1, 784)`), so parameter names match.
pub fn load_data(config: &Config) -> Result<Data> {
    let data = &config.data;
    match data.kind {
        DataKind::Mnist | DataKind::FashionMnist => {
            let (mut train, mut test) = load_mnist(&data.path)?;
            if !data.normalize {
                train = train.with_normalization(0.0, 1.0);
                test = test.with_normalization(0.0, 1.0);
            }
            if let Some(limit) = data.train_limit {
                train = train.truncate(limit);
            }
            if let Some(limit) = data.test_limit {
                test = test.truncate(limit);
            }
            if matches!(
                config.model.layers.first(),
                Some(LayerConfig::Linear { .. })
            ) {
                train = train.flattened();
                test = test.flattened();
            }
            let class_names = (0..train.num_classes()).map(|c| c.to_string()).collect();
            Ok(Data {
                train: Box::new(train),
                test: Box::new(test),
                class_names,
                standardizer: None,
            })
        }
        DataKind::Csv => {
            let label_column = data.label_column.clone().unwrap_or_default();
            let table = read_csv(&data.path, &CsvOptions { label_column })?;
            let (train_rows, test_rows) =
                train_validation_split(table.len(), data.test_fraction, config.train.seed);
            let mut train = table.select(&train_rows);
            let mut test = table.select(&test_rows);
            let standardizer = data.normalize.then(|| {
                let standardizer = train.fit_standardizer(&(0..train.len()).collect::<Vec<_>>());
                train.standardize(&standardizer);
                test.standardize(&standardizer);
                standardizer
            });
            if let Some(limit) = data.train_limit {
                train = train.select(&(0..limit.min(train.len())).collect::<Vec<_>>());
            }
            let class_names = table.class_names.clone();
            Ok(Data {
                train: Box::new(train),
                test: Box::new(test),
                class_names,
                standardizer,
            })
        }
    }
}
