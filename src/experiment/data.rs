//! The data a config describes, loaded and split, ready to batch.

use super::config::{Config, DataKind};
use super::layers::LayerConfig;
use crate::data::cifar::{Cifar, load_cifar};
use crate::data::csv::Standardizer;
use crate::data::image_set::ImageSet;
use crate::data::text::{TextCorpus, TextWindows, Vocabulary};
use crate::data::{CsvOptions, Dataset, TableSchema, load_mnist, read_csv, train_validation_split};
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
    /// Images: per-channel `(mean, std)` of `[0, 1]` pixels that features are
    /// normalised with (new images get the same), or `None` for `x/255`.
    pub image_normalization: Option<(Vec<f32>, Vec<f32>)>,
    /// What loading noticed (converted or skipped images), in plain words.
    pub notes: Vec<String>,
    /// Text: the tokens the model reads and writes (saved with the run).
    pub vocabulary: Option<Vocabulary>,
    /// CSV: the feature columns, label column and classes new files are read by.
    pub table: Option<TableSchema>,
    /// Images: each image's own `[C, H, W]` (also when it is fed flat).
    pub image_shape: Option<[usize; 3]>,
}

impl Data {
    /// Each channel's feature value for a black pixel (what augmentation pads with):
    /// `(0 − mean)/std` under the data's normalisation, 0 without one.
    pub fn black_pixel(&self) -> Vec<f32> {
        match &self.image_normalization {
            Some((mean, std)) => mean.iter().zip(std).map(|(m, s)| -m / s).collect(),
            None => vec![0.0],
        }
    }
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
            let image_shape = Some(train.image_shape());
            Ok(Data {
                train: Box::new(train),
                test: Box::new(test),
                class_names,
                standardizer: None,
                image_normalization: data.normalize.then(|| (vec![0.1307], vec![0.3081])),
                notes: Vec::new(),
                vocabulary: None,
                table: None,
                image_shape,
            })
        }
        DataKind::Csv => {
            let label_column = data.label_column.clone().unwrap_or_default();
            let table = read_csv(
                &data.path,
                &CsvOptions {
                    label_column: label_column.clone(),
                },
            )?;
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
                image_normalization: None,
                notes: Vec::new(),
                vocabulary: None,
                table: Some(table.schema(&label_column)),
                image_shape: None,
            })
        }
        DataKind::Cifar10 | DataKind::Cifar100 => {
            let cifar = match data.kind {
                DataKind::Cifar10 => Cifar::Ten,
                _ => Cifar::Hundred,
            };
            let (train, test, class_names) = load_cifar(&data.path, cifar, data.normalize)?;
            let image_normalization = data.normalize.then(|| train.normalization());
            let image_shape = Some(train.image_shape());
            let (train, test) = (limit(train, data.train_limit), limit(test, data.test_limit));
            let (train, test) = feed(config, train, test);
            Ok(Data {
                train,
                test,
                class_names,
                standardizer: None,
                image_normalization,
                notes: Vec::new(),
                vocabulary: None,
                table: None,
                image_shape,
            })
        }
        DataKind::Text => load_text(config),
        #[cfg(feature = "images")]
        DataKind::ImageFolder => load_image_folder(config),
        #[cfg(not(feature = "images"))]
        DataKind::ImageFolder => Err(crate::error::Error::Config(
            "image folders need nabla built with the `images` feature".into(),
        )),
    }
}

/// An image folder, its limits applied; first layer Linear → flat features.
#[cfg(feature = "images")]
fn load_image_folder(config: &Config) -> Result<Data> {
    use crate::data::image_folder::{BadImage, ImageFolderOptions, load_image_folder};
    let data = &config.data;
    let given = data.mean.clone().zip(data.std.clone());
    let options = ImageFolderOptions {
        image_size: data.image_size.map(|[h, w]| (h, w)),
        channels: data.channels,
        normalize: data.normalize.then_some(given),
        test_fraction: data.test_fraction,
        seed: config.train.seed,
        on_bad_image: match data.on_bad_image {
            super::config::OnBadImage::Error => BadImage::Error,
            super::config::OnBadImage::Skip => BadImage::Skip,
        },
    };
    let folder = load_image_folder(&data.path, &options)?;
    let image_normalization = data.normalize.then(|| folder.train.normalization());
    let image_shape = Some(folder.train.image_shape());
    let (train, test) = (
        limit(folder.train, data.train_limit),
        limit(folder.test, data.test_limit),
    );
    let (train, test) = feed(config, train, test);
    Ok(Data {
        train,
        test,
        class_names: folder.class_names,
        standardizer: None,
        image_normalization,
        notes: folder.notes,
        vocabulary: None,
        table: None,
        image_shape,
    })
}

/// A text file: every window of the training text, consecutive windows of the
/// held-out tail; the classes are the vocabulary's tokens.
fn load_text(config: &Config) -> Result<Data> {
    let data = &config.data;
    let block_size = data.block_size.expect("checked by Config::validate");
    let corpus = TextCorpus::load(&data.path, data.tokenizer, data.val_fraction, block_size)?;
    let vocabulary = corpus.vocabulary;
    let mut train = TextWindows::every(corpus.train, block_size, vocabulary.len());
    let mut test = TextWindows::consecutive(corpus.validation, block_size, vocabulary.len());
    if let Some(limit) = data.train_limit {
        train = train.truncate(limit);
    }
    if let Some(limit) = data.test_limit {
        test = test.truncate(limit);
    }
    let notes = vec![format!(
        "text: {} training and {} validation tokens, a vocabulary of {}",
        train.tokens().len(),
        test.tokens().len(),
        vocabulary.len()
    )];
    Ok(Data {
        train: Box::new(train),
        test: Box::new(test),
        class_names: (0..vocabulary.len())
            .map(|id| vocabulary.decode(&[id]))
            .collect(),
        standardizer: None,
        image_normalization: None,
        notes,
        vocabulary: Some(vocabulary),
        table: None,
        image_shape: None,
    })
}

/// The first `limit` images, if a limit is set.
fn limit(set: ImageSet, limit: Option<usize>) -> ImageSet {
    match limit {
        Some(limit) => set.truncate(limit),
        None => set,
    }
}

/// Image splits as the model takes them: flat when it starts with a Linear layer.
fn feed(config: &Config, train: ImageSet, test: ImageSet) -> (Box<dyn Dataset>, Box<dyn Dataset>) {
    if matches!(
        config.model.layers.first(),
        Some(LayerConfig::Linear { .. })
    ) {
        (Box::new(train.flattened()), Box::new(test.flattened()))
    } else {
        (Box::new(train), Box::new(test))
    }
}
