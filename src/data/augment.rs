//! Seeded data augmentation for images: a random crop of the zero-padded image and a
//! random horizontal flip, drawn afresh for every sample in every epoch. Each
//! sample's draws come from its own generator, seeded by (seed, epoch, sample index),
//! so a batch is the same however it is computed — on any number of threads, or
//! rebuilt when a run resumes mid-epoch.

use rand::RngExt;
use serde::{Deserialize, Serialize};

/// The augmentations applied to each training image (never to the test split).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Augmentation {
    /// Pad with black, then crop back to the image's size at a random place.
    #[serde(default)]
    pub random_crop: Option<RandomCrop>,
    /// Mirror left–right with probability ½.
    #[serde(default)]
    pub horizontal_flip: bool,
}

/// torchvision's `RandomCrop(size, padding)` with `size` the image's own size.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RandomCrop {
    /// The crop's height and width: the image's (augmentation keeps shapes).
    pub size: usize,
    /// Black pixels added on each side before cropping.
    pub padding: usize,
}

impl Augmentation {
    /// Whether it changes anything.
    pub fn is_identity(&self) -> bool {
        self.random_crop.is_none() && !self.horizontal_flip
    }

    /// Checks that it fits samples of `shape`, or says why not.
    pub fn check(&self, shape: &[usize]) -> Result<(), String> {
        let &[_, height, width] = shape else {
            return Err(format!(
                "augmentation needs images [channels, height, width], but samples have shape {shape:?} (a model starting with a linear layer gets flat images)"
            ));
        };
        match self.random_crop {
            Some(crop) if crop.size != height || crop.size != width => Err(format!(
                "random_crop size {} must be the image size ({height}×{width}): set image_size to resize first",
                crop.size
            )),
            _ => Ok(()),
        }
    }

    /// Augments a batch `[N, C, H, W]` in place: sample `row` is dataset sample
    /// `indices[row]`. `fill` is each channel's value for a black pixel (after
    /// normalisation).
    pub fn apply(
        &self,
        batch: &mut [f32],
        shape: [usize; 3],
        indices: &[usize],
        (seed, epoch): (u64, usize),
        fill: &[f32],
    ) {
        let len = shape.iter().product::<usize>();
        if len == 0 || self.is_identity() {
            return;
        }
        let augment = |_, (sample, index): (&mut [f32], &[usize])| {
            let mut rng = sample_rng(seed, epoch, index[0]);
            let mut scratch = crate::cpu::buffer::Scratch::new(len);
            self.apply_one(sample, &mut scratch, shape, fill, &mut rng);
        };
        use crate::cpu::parallel::{for_each_task, pieces, pieces_mut};
        for_each_task((pieces_mut(batch, len), pieces(indices, 1)), true, &augment);
    }

    fn apply_one(
        &self,
        sample: &mut [f32],
        scratch: &mut [f32],
        [channels, height, width]: [usize; 3],
        fill: &[f32],
        rng: &mut impl RngExt,
    ) {
        if let Some(RandomCrop { padding, .. }) = self.random_crop {
            // the crop's top-left corner in the padded image: 0..=2·padding on each axis
            let dy = rng.random_range(0..=2 * padding) as isize - padding as isize;
            let dx = rng.random_range(0..=2 * padding) as isize - padding as isize;
            scratch.copy_from_slice(sample);
            for c in 0..channels {
                let black = fill[c.min(fill.len() - 1)];
                let plane = &scratch[c * height * width..][..height * width];
                let out = &mut sample[c * height * width..][..height * width];
                for (y, row) in out.chunks_exact_mut(width).enumerate() {
                    let source_y = y as isize + dy;
                    for (x, value) in row.iter_mut().enumerate() {
                        let source_x = x as isize + dx;
                        let inside = (0..height as isize).contains(&source_y)
                            && (0..width as isize).contains(&source_x);
                        *value = if inside {
                            plane[source_y as usize * width + source_x as usize]
                        } else {
                            black
                        };
                    }
                }
            }
        }
        if self.horizontal_flip && rng.random_bool(0.5) {
            for row in sample.chunks_exact_mut(width) {
                row.reverse();
            }
        }
    }
}

/// The generator of one sample in one epoch (SplitMix64-style mixing of the three).
fn sample_rng(seed: u64, epoch: usize, index: usize) -> rand::rngs::StdRng {
    let mut z = seed
        ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (index as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    crate::rng(z ^ (z >> 31))
}
