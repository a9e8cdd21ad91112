//! The IDX format of MNIST and Fashion-MNIST (gzipped or raw), and image datasets.
//!
//! An IDX file is a 4-byte magic number (two zero bytes, a type code — 0x08 for
//! unsigned bytes — and the number of dimensions), one big-endian `u32` per
//! dimension, then the values in row-major order.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::Dataset;
use crate::error::{Error, Result};

/// The largest decompressed file accepted (MNIST's training images are 47 MB).
const MAX_DECOMPRESSED: u64 = 1 << 30;

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The size of each dimension, from the header.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes, gzipped (detected by its magic bytes) or raw.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    crate::memory::ensure_fits(path, size)?;
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) && raw.len() >= 4 {
        // gzip's last four bytes hold the uncompressed size (mod 2³²)
        let tail: [u8; 4] = raw[raw.len() - 4..].try_into().expect("four bytes");
        crate::memory::ensure_fits(path, u32::from_le_bytes(tail) as u64)?;
    }
    parse_idx_bytes(path, raw)
}

/// Parses the bytes of an IDX file (gzipped or raw); `path` names it in errors.
pub fn parse_idx_bytes(path: &Path, raw: Vec<u8>) -> Result<IdxArray> {
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                Error::format(
                    path,
                    format!("not a valid gzip stream (it may be cut short): {e}"),
                )
            })?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(Error::format(
                path,
                format!("decompresses to more than {MAX_DECOMPRESSED} bytes"),
            ));
        }
        out
    } else {
        raw
    };
    parse_idx(path, bytes)
}

fn parse_idx(path: &Path, mut bytes: Vec<u8>) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(Error::format(
            path,
            format!(
                "byte 0: expected a 4-byte IDX header, found a file of {} bytes",
                bytes.len()
            ),
        ));
    }
    let magic = &bytes[..4];
    if magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 {
        return Err(Error::format(
            path,
            format!(
                "byte 0: expected the IDX magic number 00 00 08 xx (unsigned bytes), found {:02x} {:02x} {:02x} {:02x}",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    let ndim = magic[3] as usize;
    if !(1..=4).contains(&ndim) {
        return Err(Error::format(
            path,
            format!("byte 3: expected 1 to 4 dimensions, found {ndim}"),
        ));
    }
    let header_len = 4 + 4 * ndim;
    if bytes.len() < header_len {
        return Err(Error::format(
            path,
            format!(
                "byte 4: expected {ndim} dimension sizes ({} bytes), found only {} bytes",
                4 * ndim,
                bytes.len() - 4
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let promised = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let found = bytes.len() - header_len;
    if promised != Some(found) {
        let promised =
            promised.map_or_else(|| "more than usize::MAX".to_string(), |p| p.to_string());
        return Err(Error::format(
            path,
            format!(
                "byte {header_len}: the header's dimensions {dims:?} promise {promised} values, but the file holds {found}"
            ),
        ));
    }
    bytes.drain(..header_len);
    Ok(IdxArray { dims, data: bytes })
}

/// Labelled greyscale images kept as bytes; features are `(pixel/255 − mean)/std`.
#[derive(Clone, Debug)]
pub struct ImageDataset {
    images: Vec<u8>,
    labels: Vec<u8>,
    shape: [usize; 3],
    /// Set when fed flat: `[rows·cols]`.
    flat: Option<[usize; 1]>,
    mean: f32,
    std: f32,
    /// The feature of each byte value: a lookup per pixel instead of two divisions.
    features_of_byte: [f32; 256],
    classes: usize,
}

impl ImageDataset {
    /// Pairs an images file (`[n, rows, cols]`) with a labels file (`[n]`).
    /// Normalisation defaults to MNIST's mean 0.1307 and standard deviation 0.3081.
    pub fn from_idx(images_path: impl AsRef<Path>, labels_path: impl AsRef<Path>) -> Result<Self> {
        let (images_path, labels_path) = (images_path.as_ref(), labels_path.as_ref());
        let images = read_idx(images_path)?;
        let labels = read_idx(labels_path)?;
        let &[count, rows, cols] = images.dims.as_slice() else {
            return Err(Error::format(
                images_path,
                format!(
                    "expected 3 dimensions [images, rows, columns], found {:?}",
                    images.dims
                ),
            ));
        };
        if labels.dims.len() != 1 {
            return Err(Error::format(
                labels_path,
                format!("expected 1 dimension [labels], found {:?}", labels.dims),
            ));
        }
        if labels.dims[0] != count {
            return Err(Error::format(
                labels_path,
                format!(
                    "holds {} labels, but {} holds {count} images",
                    labels.dims[0],
                    images_path.display()
                ),
            ));
        }
        let classes = labels
            .data
            .iter()
            .map(|&l| l as usize + 1)
            .max()
            .unwrap_or(0)
            .max(10);
        Ok(ImageDataset {
            images: images.data,
            labels: labels.data,
            shape: [1, rows, cols],
            flat: None,
            mean: 0.0,
            std: 1.0,
            features_of_byte: [0.0; 256],
            classes,
        }
        .with_normalization(0.1307, 0.3081))
    }

    /// Images in memory: `images` holds `labels.len()` images of `rows × cols` bytes.
    pub fn from_pixels(images: Vec<u8>, labels: Vec<u8>, [rows, cols]: [usize; 2]) -> Self {
        assert_eq!(images.len(), labels.len() * rows * cols);
        ImageDataset {
            images,
            labels,
            shape: [1, rows, cols],
            flat: None,
            mean: 0.0,
            std: 1.0,
            features_of_byte: [0.0; 256],
            classes: 10,
        }
        .with_normalization(0.1307, 0.3081)
    }

    /// Sets the normalisation `(pixel/255 − mean)/std`.
    pub fn with_normalization(mut self, mean: f32, std: f32) -> Self {
        self.mean = mean;
        self.std = std;
        // the same three steps, in the same f32 order, as the PyTorch reference
        for (byte, feature) in self.features_of_byte.iter_mut().enumerate() {
            *feature = (byte as f32 / 255.0 - mean) / std;
        }
        self
    }

    /// The normalisation `(mean, std)`: features are `(pixel/255 − mean)/std`.
    pub fn normalization(&self) -> (f32, f32) {
        (self.mean, self.std)
    }

    /// Presents each image as a flat vector (`[rows·cols]`), for models that start
    /// with a Linear layer (as PyTorch's `x.reshape(-1, 784)`).
    pub fn flattened(mut self) -> Self {
        self.flat = Some([self.shape[1] * self.shape[2]]);
        self
    }

    /// The first `count` samples only (for quick runs and tests).
    pub fn truncate(mut self, count: usize) -> Self {
        let count = count.min(self.labels.len());
        self.labels.truncate(count);
        self.images.truncate(count * self.shape[1] * self.shape[2]);
        self
    }

    /// Each image's own shape, `[1, rows, cols]`, flat-fed or not.
    pub fn image_shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The raw pixels of sample `index`.
    pub fn pixels(&self, index: usize) -> &[u8] {
        let size = self.shape[1] * self.shape[2];
        &self.images[index * size..(index + 1) * size]
    }
}

impl Dataset for ImageDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn feature_shape(&self) -> &[usize] {
        match &self.flat {
            Some(flat) => flat,
            None => &self.shape,
        }
    }

    fn num_classes(&self) -> usize {
        self.classes
    }

    fn write_features(&self, index: usize, out: &mut [f32]) {
        for (o, &p) in out.iter_mut().zip(self.pixels(index)) {
            *o = self.features_of_byte[p as usize];
        }
    }

    fn label(&self, index: usize) -> usize {
        self.labels[index] as usize
    }

    /// A shuffled batch reads rows from all over the image file, and each row's
    /// first access is a cache (and TLB) miss: rows are shared out over the
    /// threads, and each task touches the rows a few ahead of the one it converts,
    /// so that their misses overlap instead of queueing (measured on MNIST: 0.12 ms
    /// → 0.03 ms per batch of 128).
    fn write_batch(&self, indices: &[usize], out: &mut [f32]) {
        const ROWS_PER_TASK: usize = 16;
        const AHEAD: usize = 4;
        let width = self.feature_len();
        if width == 0 {
            return;
        }
        let convert = |_, (rows, indices): (&mut [f32], &[usize])| {
            for (k, (row, &index)) in rows.chunks_mut(width).zip(indices).enumerate() {
                if let Some(&upcoming) = indices.get(k + AHEAD) {
                    // loads whose values are unused start the misses early
                    let upcoming = self.pixels(upcoming);
                    for line in upcoming.iter().step_by(64) {
                        std::hint::black_box(*line);
                    }
                }
                self.write_features(index, row);
            }
        };
        use crate::cpu::parallel::{for_each_task, pieces, pieces_mut};
        let tasks = (
            pieces_mut(out, width * ROWS_PER_TASK),
            pieces(indices, ROWS_PER_TASK),
        );
        for_each_task(tasks, indices.len() > ROWS_PER_TASK, &convert);
    }
}

/// Loads MNIST (or Fashion-MNIST, same file names) from `dir`: the four
/// `*-idx?-ubyte` files, each `.gz` or raw. Returns (train, test).
pub fn load_mnist(dir: impl AsRef<Path>) -> Result<(ImageDataset, ImageDataset)> {
    let dir = dir.as_ref();
    let find = |stem: &str| -> Result<PathBuf> {
        let gz = dir.join(format!("{stem}.gz"));
        let raw = dir.join(stem);
        if gz.exists() {
            Ok(gz)
        } else if raw.exists() {
            Ok(raw)
        } else {
            Err(Error::io(
                &gz,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("neither {stem}.gz nor {stem} is in {}", dir.display()),
                ),
            ))
        }
    };
    let train = ImageDataset::from_idx(
        find("train-images-idx3-ubyte")?,
        find("train-labels-idx1-ubyte")?,
    )?;
    let test = ImageDataset::from_idx(
        find("t10k-images-idx3-ubyte")?,
        find("t10k-labels-idx1-ubyte")?,
    )?;
    Ok((train, test))
}
