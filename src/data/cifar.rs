//! CIFAR-10 and CIFAR-100 in their binary versions. CIFAR-10 (`cifar-10-batches-bin/`):
//! `data_batch_1.bin` … `data_batch_5.bin` (50,000 training images) and
//! `test_batch.bin` (10,000), each a run of 3,073-byte records — one label byte, then
//! the 32×32 red, green and blue planes; class names in `batches.meta.txt`.
//! CIFAR-100 (`cifar-100-binary/`): `train.bin` and `test.bin`, records of two label
//! bytes (the coarse superclass, then the fine class, which is the label used) and
//! the pixels; class names in `fine_label_names.txt`.

use std::path::Path;

use super::image_set::{ImageSet, channel_statistics};
use crate::error::{Error, Result};

/// One image's shape.
const SHAPE: [usize; 3] = [3, 32, 32];
/// Bytes of pixels per record.
const PIXELS: usize = 3 * 32 * 32;
/// CIFAR-10's classes, in label order, when `batches.meta.txt` is absent.
const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Which of the two data sets, and how its files are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar {
    /// 10 classes, five training batches, one label byte per record.
    Ten,
    /// 100 classes, one training file, two label bytes (coarse, fine) per record.
    Hundred,
}

impl Cifar {
    /// The training files and the test file.
    pub fn files(self) -> (Vec<String>, String) {
        match self {
            Cifar::Ten => (
                (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
                "test_batch.bin".into(),
            ),
            Cifar::Hundred => (vec!["train.bin".into()], "test.bin".into()),
        }
    }

    /// The file of class names, one per line.
    pub fn names_file(self) -> &'static str {
        match self {
            Cifar::Ten => "batches.meta.txt",
            Cifar::Hundred => "fine_label_names.txt",
        }
    }

    fn classes(self) -> usize {
        match self {
            Cifar::Ten => 10,
            Cifar::Hundred => 100,
        }
    }

    fn label_bytes(self) -> usize {
        match self {
            Cifar::Ten => 1,
            Cifar::Hundred => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Cifar::Ten => "CIFAR-10",
            Cifar::Hundred => "CIFAR-100",
        }
    }
}

/// CIFAR-10's training and test splits and class names, from a directory of the
/// binary version's files; with `normalize`, features are standardised per channel
/// with the training split's mean and standard deviation.
pub fn load_cifar10(
    dir: impl AsRef<Path>,
    normalize: bool,
) -> Result<(ImageSet, ImageSet, Vec<String>)> {
    load_cifar(dir, Cifar::Ten, normalize)
}

/// CIFAR-10 or CIFAR-100 (the fine labels) from a directory of its binary version's
/// files, as [`load_cifar10`].
pub fn load_cifar(
    dir: impl AsRef<Path>,
    cifar: Cifar,
    normalize: bool,
) -> Result<(ImageSet, ImageSet, Vec<String>)> {
    let dir = dir.as_ref();
    let (train_files, test_file) = cifar.files();
    let (train_pixels, train_labels) = read_batches(dir, &train_files, cifar)?;
    let (test_pixels, test_labels) = read_batches(dir, &[test_file], cifar)?;
    let names_path = dir.join(cifar.names_file());
    let class_names: Vec<String> = match std::fs::read_to_string(&names_path) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        Err(_) if cifar == Cifar::Ten => CLASSES.iter().map(|c| c.to_string()).collect(),
        Err(_) => (0..cifar.classes()).map(|c| c.to_string()).collect(),
    };
    if class_names.len() != cifar.classes() {
        return Err(Error::format(
            &names_path,
            format!(
                "expected {} class names, one per line, found {}",
                cifar.classes(),
                class_names.len()
            ),
        ));
    }
    let classes = cifar.classes();
    let normalization = normalize.then(|| channel_statistics(&train_pixels, SHAPE));
    let train = ImageSet::new(
        train_pixels,
        train_labels,
        SHAPE,
        classes,
        normalization.clone(),
    )?;
    let test = ImageSet::new(test_pixels, test_labels, SHAPE, classes, normalization)?;
    Ok((train, test, class_names))
}

/// The pixels and labels of the given batch files, in order.
/// The test batch of a CIFAR directory: `[3, 32, 32]` bytes per image, and the labels.
pub fn read_test_batch(dir: &Path, cifar: Cifar) -> Result<(Vec<u8>, Vec<usize>)> {
    let (_, test_file) = cifar.files();
    read_batches(dir, &[test_file], cifar)
}

fn read_batches(dir: &Path, files: &[String], cifar: Cifar) -> Result<(Vec<u8>, Vec<usize>)> {
    let (label_bytes, classes) = (cifar.label_bytes(), cifar.classes());
    let record = label_bytes + PIXELS;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for name in files {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                let (train, test) = cifar.files();
                Error::format(
                    &path,
                    format!(
                        "missing: a {} directory holds {} and {test} (the binary version; `nabla data fetch` downloads it)",
                        cifar.name(),
                        train.join(", ")
                    ),
                )
            } else {
                Error::io(&path, e)
            }
        })?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(Error::format(
                &path,
                format!(
                    "{} bytes is not a whole number of {record}-byte records ({label_bytes} label byte(s) and 3×32×32 pixels)",
                    bytes.len()
                ),
            ));
        }
        for (index, record_bytes) in bytes.chunks_exact(record).enumerate() {
            // CIFAR-100's second label byte is the fine class
            let label = record_bytes[label_bytes - 1] as usize;
            if label >= classes {
                return Err(Error::format(
                    &path,
                    format!(
                        "record {index} (byte {}): label {label}, expected 0–{}",
                        index * record + label_bytes - 1,
                        classes - 1
                    ),
                ));
            }
            labels.push(label);
            pixels.extend_from_slice(&record_bytes[label_bytes..]);
        }
    }
    Ok((pixels, labels))
}
