//! CIFAR-10 in its binary version (`cifar-10-batches-bin/`): `data_batch_1.bin` …
//! `data_batch_5.bin` (50,000 training images) and `test_batch.bin` (10,000), each a
//! run of 3,073-byte records — one label byte, then the 32×32 red, green and blue
//! planes. Class names come from `batches.meta.txt` when it is there.

use std::path::Path;

use super::image_set::{ImageSet, channel_statistics};
use crate::error::{Error, Result};

/// One image's shape.
const SHAPE: [usize; 3] = [3, 32, 32];
/// Bytes per record: the label, then the pixels.
const RECORD: usize = 1 + 3 * 32 * 32;
/// The classes, in label order, when `batches.meta.txt` is absent.
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

/// CIFAR-10's training and test splits and class names, from a directory of the
/// binary version's files; with `normalize`, features are standardised per channel
/// with the training split's mean and standard deviation.
pub fn load_cifar10(
    dir: impl AsRef<Path>,
    normalize: bool,
) -> Result<(ImageSet, ImageSet, Vec<String>)> {
    let dir = dir.as_ref();
    let train_files: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    let (train_pixels, train_labels) = read_batches(dir, &train_files)?;
    let (test_pixels, test_labels) = read_batches(dir, &["test_batch.bin".to_string()])?;
    let class_names: Vec<String> = match std::fs::read_to_string(dir.join("batches.meta.txt")) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        Err(_) => CLASSES.iter().map(|c| c.to_string()).collect(),
    };
    if class_names.len() != 10 {
        return Err(Error::format(
            &dir.join("batches.meta.txt"),
            format!(
                "expected 10 class names, one per line, found {}",
                class_names.len()
            ),
        ));
    }
    let normalization = normalize.then(|| channel_statistics(&train_pixels, SHAPE));
    let train = ImageSet::new(train_pixels, train_labels, SHAPE, 10, normalization.clone())?;
    let test = ImageSet::new(test_pixels, test_labels, SHAPE, 10, normalization)?;
    Ok((train, test, class_names))
}

/// The pixels and labels of the given batch files, in order.
fn read_batches(dir: &Path, files: &[String]) -> Result<(Vec<u8>, Vec<usize>)> {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for name in files {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::format(
                    &path,
                    "missing: a CIFAR-10 directory holds data_batch_1.bin … data_batch_5.bin and test_batch.bin (the binary version)",
                )
            } else {
                Error::io(&path, e)
            }
        })?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(Error::format(
                &path,
                format!(
                    "{} bytes is not a whole number of {RECORD}-byte records (a label byte and 3×32×32 pixels)",
                    bytes.len()
                ),
            ));
        }
        for (index, record) in bytes.chunks_exact(RECORD).enumerate() {
            let label = record[0] as usize;
            if label >= 10 {
                return Err(Error::format(
                    &path,
                    format!(
                        "record {index} (byte {}): label {label}, expected 0–9",
                        index * RECORD
                    ),
                ));
            }
            labels.push(label);
            pixels.extend_from_slice(&record[1..]);
        }
    }
    Ok((pixels, labels))
}
