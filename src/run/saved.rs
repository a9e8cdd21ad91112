//! A finished run opened for use: the network with its trained weights and the
//! preprocessing its inputs need — read from the run directory alone.

use std::path::{Path, PathBuf};

use super::files;
use super::preprocessing::{Input, Preprocessing, kind_name};
use crate::checkpoint::load_model;
use crate::data::text::{Skipped, TextCorpus, TextWindows, Unknown, Vocabulary, encode_file};
use crate::data::{Dataset, read_csv_as, read_features_as, read_idx};
use crate::error::{Error, Result};
use crate::experiment::{self, Config, DataKind};
use crate::nn::{Module, Sequential};
use crate::tensor::Tensor;

/// A trained model ready to use: `nabla predict`, `eval` and `generate` open one.
///
/// ```no_run
/// use nabla::nn::Module;
/// # fn main() -> nabla::Result<()> {
/// let run = nabla::run::SavedRun::open("runs/spirals".as_ref())?;
/// let (names, batch) = run.inputs("points.csv".as_ref(), false)?;
/// let _no_graph = nabla::no_grad();
/// let probabilities = run.model.forward(&batch).softmax(-1);
/// # Ok(())
/// # }
/// ```
pub struct SavedRun {
    /// The run directory (or the model file's directory).
    pub dir: PathBuf,
    /// The run's resolved config (its network, and where its data was).
    pub config: Config,
    /// How inputs are prepared, and the class names.
    pub preprocessing: Preprocessing,
    /// A text model's tokens.
    pub vocabulary: Option<Vocabulary>,
    /// The network with the trained weights, in evaluation mode.
    pub model: Sequential,
    /// What opening it noticed (an old run read its training data), in plain words.
    pub notes: Vec<String>,
}

impl SavedRun {
    /// Opens a run directory written by `nabla train` (or [`crate::run::RunDir`]):
    /// `config.toml`, `preprocessing.json`, `model.safetensors` and, for a text
    /// model, `vocab.json`. A run written before `preprocessing.json` existed reads
    /// its training data again to rebuild it, and says so in [`SavedRun::notes`].
    pub fn open(dir: &Path) -> Result<SavedRun> {
        let config_path = dir.join(files::CONFIG);
        if !config_path.is_file() {
            return Err(Error::format(
                dir,
                "is not a run directory: it has no config.toml (give the --out directory of `nabla train`)",
            ));
        }
        let config = Config::load(&config_path)?;
        Self::assemble(dir, config, &dir.join(files::MODEL), true)
    }

    /// Opens a bare weights file with the config that describes its network and data
    /// (the preprocessing comes from the config's training data).
    pub fn open_model(model: &Path, config: &Path) -> Result<SavedRun> {
        let config = Config::load(config)?;
        let dir = model
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Self::assemble(&dir, config, model, false)
    }

    fn assemble(dir: &Path, config: Config, model_path: &Path, is_run: bool) -> Result<SavedRun> {
        let mut notes = Vec::new();
        let vocabulary = match config.data.kind {
            DataKind::Text => Some(read_vocabulary(&dir.join(files::VOCABULARY))?),
            _ => None,
        };
        let saved = dir.join(files::PREPROCESSING);
        let preprocessing = if is_run && saved.is_file() {
            read_preprocessing(&saved)?
        } else {
            if is_run {
                notes.push(format!(
                    "{} has no {} (written by an older nabla): its preprocessing is rebuilt from the training data in {}",
                    dir.display(),
                    files::PREPROCESSING,
                    config.data.path.display()
                ));
            }
            let data = experiment::load_data(&config)?;
            Preprocessing::of(&config, &data)
        };
        let (model, _) = experiment::build_model(
            &config.model.layers,
            &preprocessing.input_shape,
            preprocessing.num_classes(),
            &mut crate::rng(0),
        )?;
        load_model(model_path, &model)?;
        model.eval();
        Ok(SavedRun {
            dir: dir.to_path_buf(),
            config,
            preprocessing,
            vocabulary,
            model,
            notes,
        })
    }

    /// Whether this is a language model (text in, next-token logits out).
    pub fn is_language_model(&self) -> bool {
        self.vocabulary.is_some()
    }

    /// Labelled data from `path`, prepared as the training data was and labelled by
    /// the run's classes: every row of a CSV file, every image of an image folder
    /// (its test split if it has `train/` and `test/`), the test files of an MNIST or
    /// CIFAR directory, or consecutive windows covering a text file.
    pub fn labelled_data(&self, path: &Path) -> Result<Box<dyn Dataset>> {
        let preprocessing = &self.preprocessing;
        match (&preprocessing.input, preprocessing.data) {
            (Input::Table { schema, .. }, _) => {
                let mut table = read_csv_as(path, schema, &preprocessing.class_names)?;
                if let Input::Table {
                    standardizer: Some(standardizer),
                    ..
                } = &preprocessing.input
                {
                    table.standardize(standardizer);
                }
                Ok(Box::new(table))
            }
            (Input::Text { block_size }, _) => {
                let vocabulary = self.vocabulary.as_ref().expect("a text run has one");
                let (windows, _) = text_windows(path, vocabulary, *block_size, Unknown::Error)?;
                Ok(Box::new(windows))
            }
            (Input::Images { .. }, DataKind::Mnist | DataKind::FashionMnist) => {
                let (_, test) = crate::data::load_mnist(path)?;
                let count = test.len();
                let pixels = (0..count).flat_map(|i| test.pixels(i).to_vec()).collect();
                let labels = (0..count).map(|i| test.label(i)).collect();
                preprocessing.images(pixels, labels)
            }
            (Input::Images { .. }, kind @ (DataKind::Cifar10 | DataKind::Cifar100)) => {
                let cifar = match kind {
                    DataKind::Cifar10 => crate::data::cifar::Cifar::Ten,
                    _ => crate::data::cifar::Cifar::Hundred,
                };
                let (pixels, labels) = crate::data::cifar::read_test_batch(path, cifar)?;
                preprocessing.images(pixels, labels)
            }
            (Input::Images { shape, .. }, _) => self.image_folder(path, *shape),
        }
    }

    /// [`labelled_data`](Self::labelled_data), choosing what happens to a character
    /// a text model's vocabulary lacks: an error, or left out and reported in
    /// [`Skipped`]. (Other data has nothing to skip: a class the model never saw
    /// is always an error.)
    pub fn labelled_data_with(
        &self,
        path: &Path,
        unknown: Unknown,
    ) -> Result<(Box<dyn Dataset>, Skipped)> {
        match (&self.preprocessing.input, unknown) {
            (Input::Text { block_size }, _) => {
                let vocabulary = self.vocabulary.as_ref().expect("a text run has one");
                let (windows, skipped) = text_windows(path, vocabulary, *block_size, unknown)?;
                Ok((Box::new(windows), skipped))
            }
            (_, Unknown::Skip) => Err(Error::Config(format!(
                "skipping unknown input is for text models; {} is a {} model, and a class it never saw cannot be scored",
                self.dir.display(),
                kind_name(self.preprocessing.data)
            ))),
            (_, Unknown::Error) => Ok((self.labelled_data(path)?, Skipped::default())),
        }
    }

    #[cfg(feature = "images")]
    fn image_folder(&self, path: &Path, shape: [usize; 3]) -> Result<Box<dyn Dataset>> {
        use crate::data::image_folder::{BadImage, read_images_as};
        let (pixels, labels, _) = read_images_as(
            path,
            &self.preprocessing.class_names,
            shape,
            BadImage::Error,
        )?;
        self.preprocessing.images(pixels, labels)
    }

    #[cfg(not(feature = "images"))]
    fn image_folder(&self, _: &Path, _: [usize; 3]) -> Result<Box<dyn Dataset>> {
        Err(Error::Config(
            "image folders need nabla built with the `images` feature".into(),
        ))
    }

    /// The held-out split of the run's own training data (read from the path in its
    /// config, prepared with the saved preprocessing).
    pub fn test_data(&self) -> Result<Box<dyn Dataset>> {
        let config = &self.config;
        let path = &config.data.path;
        if !path.exists() {
            return Err(Error::format(
                path,
                format!(
                    "the run's training data is no longer here, so its test split cannot be read; score the model on a file with `--data FILE` ({} data)",
                    kind_name(config.data.kind)
                ),
            ));
        }
        if let Some(vocabulary) = &self.vocabulary {
            let block_size = self.block_size();
            let data = &config.data;
            let corpus = TextCorpus::load(path, data.tokenizer, data.val_fraction, block_size)?;
            if &corpus.vocabulary != vocabulary {
                return Err(Error::Config(format!(
                    "{} has changed since training: its vocabulary is not the run's vocab.json; give --data",
                    path.display()
                )));
            }
            return Ok(Box::new(TextWindows::consecutive(
                corpus.validation,
                block_size,
                vocabulary.len(),
            )));
        }
        Ok(experiment::load_data(config)?.test)
    }

    /// A text model's context length.
    pub fn block_size(&self) -> usize {
        match self.preprocessing.input {
            Input::Text { block_size } => block_size,
            _ => self.preprocessing.input_shape.iter().product(),
        }
    }

    /// Unlabelled inputs from a file, prepared as the training data was: CSV rows
    /// (feature columns found by name), PNG/JPEG images, or an IDX file of images.
    /// `invert` turns images to `255 − p` first (white digits on black, as MNIST).
    /// A NumPy `.npy` array is taken as the network's input itself, already prepared:
    /// `[count, …input shape]`, or one sample. Returns a name for each sample and the batch.
    pub fn inputs(&self, path: &Path, invert: bool) -> Result<(Vec<String>, Tensor)> {
        let shown = path.display().to_string();
        let lower = shown.to_lowercase();
        let preprocessing = &self.preprocessing;
        if lower.ends_with(".npy") && !self.is_language_model() {
            return self.array_inputs(path);
        }
        if let Input::Table { schema, .. } = &preprocessing.input {
            let features = read_features_as(path, schema)?;
            let batch = preprocessing.rows(features);
            let names = (1..=batch.dim(0))
                .map(|row| format!("{shown} row {row}"))
                .collect();
            return Ok((names, batch));
        }
        let Input::Images { shape, .. } = preprocessing.input else {
            return Err(Error::Config(format!(
                "{} is a language model: let it write with `nabla generate`, or score a text file with `nabla eval --data FILE`",
                self.dir.display()
            )));
        };
        let (names, mut pixels) =
            if lower.ends_with(".png") || lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
                (vec![shown], image_bytes(path, shape)?)
            } else {
                idx_images(path, shape)?
            };
        if invert {
            pixels.iter_mut().for_each(|p| *p = 255 - *p);
        }
        let labels = vec![0; names.len()];
        let set = preprocessing.images(pixels, labels)?;
        let batch = crate::data::make_batch(set.as_ref(), &(0..names.len()).collect::<Vec<_>>());
        Ok((names, batch.inputs))
    }

    /// A `.npy` array of network inputs (see [`SavedRun::inputs`]).
    fn array_inputs(&self, path: &Path) -> Result<(Vec<String>, Tensor)> {
        let input_shape = &self.preprocessing.input_shape;
        let (shape, values) = crate::data::npy::read_npy(path)?;
        let count = if shape == *input_shape {
            1
        } else if shape.len() == input_shape.len() + 1 && shape[1..] == input_shape[..] {
            shape[0]
        } else {
            return Err(Error::format(
                path,
                format!(
                    "an array of shape {shape:?}; the network takes [count, {}] (or one sample, {input_shape:?}), prepared as it takes them",
                    input_shape
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let shown = path.display();
        let names = (0..count).map(|i| format!("{shown} [{i}]")).collect();
        let batch = Tensor::from_vec(values, &[&[count], &input_shape[..]].concat());
        Ok((names, batch))
    }
}

/// An IDX file of images `[count, rows, cols]` (or one `[rows, cols]`) of the model's size.
fn idx_images(
    path: &Path,
    [channels, height, width]: [usize; 3],
) -> Result<(Vec<String>, Vec<u8>)> {
    let idx = read_idx(path)?;
    let (count, size) = match idx.dims[..] {
        [n, rows, cols] => (n, [rows, cols]),
        [rows, cols] => (1, [rows, cols]),
        _ => {
            return Err(Error::format(
                path,
                format!(
                    "expected images [count, rows, columns], found dimensions {:?}",
                    idx.dims
                ),
            ));
        }
    };
    if channels != 1 || size != [height, width] {
        return Err(Error::format(
            path,
            format!(
                "images are {}×{} greyscale, but the model takes {channels}×{height}×{width} (channels × height × width)",
                size[0], size[1]
            ),
        ));
    }
    let shown = path.display();
    let names = (0..count).map(|i| format!("{shown} image {i}")).collect();
    Ok((names, idx.data))
}

/// A PNG/JPEG image as the model's `[C, H, W]` bytes (resized and converted as
/// training images were).
#[cfg(feature = "images")]
fn image_bytes(path: &Path, shape: [usize; 3]) -> Result<Vec<u8>> {
    let image = image::open(path)
        .map_err(|e| Error::format(path, format!("not a readable PNG/JPEG image: {e}")))?;
    let mut bytes = Vec::new();
    crate::data::image_folder::planar_bytes(&image, shape, &mut bytes);
    Ok(bytes)
}

#[cfg(not(feature = "images"))]
fn image_bytes(path: &Path, _: [usize; 3]) -> Result<Vec<u8>> {
    Err(Error::format(
        path,
        "reading PNG/JPEG images needs nabla built with the `images` feature",
    ))
}

/// Consecutive windows covering a text file, in the model's vocabulary.
fn text_windows(
    path: &Path,
    vocabulary: &Vocabulary,
    block_size: usize,
    unknown: Unknown,
) -> Result<(TextWindows, Skipped)> {
    let (tokens, skipped) = encode_file(path, vocabulary, unknown)?;
    if tokens.len() <= block_size {
        return Err(Error::format(
            path,
            format!(
                "{} tokens are too few for one window of block_size + 1 = {}",
                tokens.len(),
                block_size + 1
            ),
        ));
    }
    let windows = TextWindows::consecutive(tokens, block_size, vocabulary.len());
    Ok((windows, skipped))
}

fn read_vocabulary(path: &Path) -> Result<Vocabulary> {
    let json = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&json)
        .map_err(|e| Error::format(path, format!("not a vocabulary written by nabla: {e}")))
}

fn read_preprocessing(path: &Path) -> Result<Preprocessing> {
    let json = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let preprocessing: Preprocessing = serde_json::from_str(&json).map_err(|e| {
        Error::format(
            path,
            format!(
                "line {}: not the preprocessing written by nabla: {e}",
                e.line()
            ),
        )
    })?;
    preprocessing
        .check()
        .map_err(|why| Error::format(path, format!("does not hold together: {why}")))?;
    if preprocessing.format > super::FORMAT_VERSION {
        return Err(Error::format(
            path,
            format!(
                "written in run-directory format {}, but this nabla reads format {} at most: update nabla",
                preprocessing.format,
                super::FORMAT_VERSION
            ),
        ));
    }
    Ok(preprocessing)
}
