//! A split of images kept as bytes and turned into normalised `f32` features one
//! batch at a time: what image folders and CIFAR-10 load into.

use super::Dataset;
use crate::error::{Error, Result};

/// Images of one split as bytes (`[C, H, W]` each), with their labels and the
/// per-channel normalisation their features get.
#[derive(Clone, Debug)]
pub struct ImageSet {
    pixels: Vec<u8>,
    labels: Vec<usize>,
    shape: [usize; 3],
    classes: usize,
    /// Per channel: `feature = pixel · scale + offset`.
    scale: Vec<f32>,
    offset: Vec<f32>,
    /// Set when fed flat.
    flat_shape: Option<[usize; 1]>,
}

impl ImageSet {
    /// The first `limit` images only (quick runs).
    pub fn truncate(mut self, limit: usize) -> Self {
        let limit = limit.min(self.labels.len());
        self.labels.truncate(limit);
        self.pixels.truncate(limit * self.feature_len());
        self
    }

    /// The same images fed as flat `[C·H·W]` vectors (for a model that starts with
    /// a Linear layer).
    pub fn flattened(mut self) -> Self {
        self.flat_shape = Some([self.feature_len()]);
        self
    }

    /// The images' own shape, `[C, H, W]`, flat-fed or not.
    pub fn image_shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The same images normalised another way (`None`: `x/255`), as
    /// [`ImageSet::new`] takes it: how new images get a trained run's normalisation.
    pub fn with_normalization(self, normalization: Option<(Vec<f32>, Vec<f32>)>) -> Result<Self> {
        let flat_shape = self.flat_shape;
        let renormalized = ImageSet::new(
            self.pixels,
            self.labels,
            self.shape,
            self.classes,
            normalization,
        )?;
        Ok(ImageSet {
            flat_shape,
            ..renormalized
        })
    }

    /// The per-channel `(mean, std)` the features are normalised with, on `[0, 1]` pixels.
    pub fn normalization(&self) -> (Vec<f32>, Vec<f32>) {
        let std: Vec<f32> = self.scale.iter().map(|s| 1.0 / (255.0 * s)).collect();
        let mean = self.offset.iter().zip(&std).map(|(o, s)| -o * s).collect();
        (mean, std)
    }
}

impl Dataset for ImageSet {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn feature_shape(&self) -> &[usize] {
        match &self.flat_shape {
            Some(flat) => flat,
            None => &self.shape,
        }
    }
    fn num_classes(&self) -> usize {
        self.classes
    }
    fn write_features(&self, index: usize, out: &mut [f32]) {
        let len = self.feature_len();
        let plane = self.shape[1] * self.shape[2];
        let pixels = &self.pixels[index * len..][..len];
        for (c, (out, pixels)) in out
            .chunks_exact_mut(plane)
            .zip(pixels.chunks_exact(plane))
            .enumerate()
        {
            let (scale, offset) = (self.scale[c], self.offset[c]);
            for (o, &p) in out.iter_mut().zip(pixels) {
                *o = p as f32 * scale + offset;
            }
        }
    }
    fn label(&self, index: usize) -> usize {
        self.labels[index]
    }
}

impl ImageSet {
    /// Images `pixels` (`[C, H, W]` bytes each, in label order of `labels`) of
    /// `classes` classes; `normalization`, if given, is each channel's `(mean, std)`
    /// on `[0, 1]` pixels (features are then `(p/255 − mean)/std`, else `p/255`).
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<usize>,
        shape: [usize; 3],
        classes: usize,
        normalization: Option<(Vec<f32>, Vec<f32>)>,
    ) -> Result<Self> {
        let channels = shape[0];
        assert_eq!(pixels.len(), labels.len() * shape.iter().product::<usize>());
        if let Some((mean, std)) = &normalization
            && (mean.len() != channels || std.len() != channels || std.iter().any(|s| *s <= 0.0))
        {
            return Err(Error::Config(format!(
                "normalisation needs {channels} means and {channels} positive standard deviations, found {mean:?} and {std:?}"
            )));
        }
        let (scale, offset) = pixel_affine(channels, normalization.as_ref());
        Ok(ImageSet {
            pixels,
            labels,
            shape,
            classes,
            scale,
            offset,
            flat_shape: None,
        })
    }
}

/// Each channel's `(scale, offset)` with which a pixel byte `p` becomes the feature
/// `p·scale + offset`: `p/255`, or `(p/255 − mean)/std` folded into one multiply-add
/// (`scale = 1/(255·std)`, `offset = −mean/std`). Exported ONNX models compute the same.
pub fn pixel_affine(
    channels: usize,
    normalization: Option<&(Vec<f32>, Vec<f32>)>,
) -> (Vec<f32>, Vec<f32>) {
    match normalization {
        None => (vec![1.0 / 255.0; channels], vec![0.0; channels]),
        Some((mean, std)) => {
            let scale = std.iter().map(|s| 1.0 / (255.0 * s)).collect();
            let offset = mean.iter().zip(std).map(|(m, s)| -m / s).collect();
            (scale, offset)
        }
    }
}

/// Per-channel mean and standard deviation of `[0, 1]` pixels over a split.
pub fn channel_statistics(
    pixels: &[u8],
    [channels, height, width]: [usize; 3],
) -> (Vec<f32>, Vec<f32>) {
    let plane = height * width;
    let mut sums = vec![(0f64, 0f64, 0usize); channels];
    for image in pixels.chunks_exact(channels * plane) {
        for (c, values) in image.chunks_exact(plane).enumerate() {
            for &p in values {
                let v = p as f64 / 255.0;
                sums[c].0 += v;
                sums[c].1 += v * v;
                sums[c].2 += 1;
            }
        }
    }
    let mean: Vec<f32> = sums
        .iter()
        .map(|s| (s.0 / s.2.max(1) as f64) as f32)
        .collect();
    let std = sums
        .iter()
        .zip(&mean)
        .map(|(s, &m)| {
            let var = s.1 / s.2.max(1) as f64 - (m as f64).powi(2);
            (var.max(0.0).sqrt() as f32).max(1e-6)
        })
        .collect();
    (mean, std)
}
