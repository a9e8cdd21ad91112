//! A tensor as the explanation shows it: every number when it is small; otherwise
//! its shape, norm, extremes, first entries and, for anything with a height and a
//! width (feature maps, kernels, a sequence's activations), a picture.

use serde::Serialize;

/// Entries listed in the one-line summary.
pub const SHOWN: usize = 4;
/// Tensors up to this many elements carry all their values (a 64×64 weight matrix).
pub const ALL_VALUES: usize = 4096;
/// Tiles (channels, heads…) a picture shows at most.
const TILES: usize = 8;
/// A tile's longest side; larger maps are sampled down by a whole stride.
const TILE_SIDE: usize = 32;

/// Numbers that describe one tensor (a node's value or its gradient).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Its shape.
    pub shape: Vec<usize>,
    /// √(Σ v²).
    pub norm: f64,
    /// The smallest entry.
    pub min: f64,
    /// The largest entry.
    pub max: f64,
    /// The mean entry.
    pub mean: f64,
    /// The standard deviation of the entries (over n, as a population).
    pub std: f64,
    /// The one-line summary `nabla explain` prints, digit for digit.
    pub text: String,
    /// Every value, row-major, when there are at most [`ALL_VALUES`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f64>>,
    /// A picture of its last two axes, when it has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<Picture>,
}

/// The last two axes of a tensor as grey-scale tiles: one per index of the axes
/// before them (a feature map per channel), at most 8, each at most 32×32.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Picture {
    /// Tiles shown (of `of_tiles`).
    pub tiles: usize,
    /// Tiles there are.
    pub of_tiles: usize,
    /// Rows of a tile (after sampling).
    pub rows: usize,
    /// Columns of a tile (after sampling).
    pub cols: usize,
    /// Every `stride`-th row and column was kept.
    pub stride: usize,
    /// Tile after tile, row-major.
    pub values: Vec<f32>,
}

impl Summary {
    /// Summarises `values` of `shape`.
    pub fn of(values: &[f64], shape: &[usize]) -> Summary {
        let count = values.len().max(1) as f64;
        let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = values.iter().sum::<f64>() / count;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count;
        let shown: Vec<String> = values
            .iter()
            .take(SHOWN)
            .map(|v| format!("{v:.4}"))
            .collect();
        let more = if values.len() > SHOWN { ", …" } else { "" };
        let text = format!(
            "{shape:?}  ‖·‖ {norm:.4}  min {min:.4}  max {max:.4}  [{}{more}]",
            shown.join(", ")
        );
        Summary {
            shape: shape.to_vec(),
            norm,
            min,
            max,
            mean,
            std: variance.sqrt(),
            text,
            values: (values.len() <= ALL_VALUES).then(|| values.to_vec()),
            picture: picture(values, shape),
        }
    }

    /// The same without the values and the picture: what an overview of thousands
    /// of nodes carries.
    pub fn brief(&self) -> Summary {
        Summary {
            values: None,
            picture: None,
            ..self.clone()
        }
    }
}

/// The last two axes as tiles, when both are longer than 1 (a batch axis of 1 in
/// front does not count as a tile axis).
fn picture(values: &[f64], shape: &[usize]) -> Option<Picture> {
    let [.., height, width] = *shape else {
        return None;
    };
    if height < 2 || width < 2 {
        return None;
    }
    let of_tiles = values.len() / (height * width);
    let stride = height.max(width).div_ceil(TILE_SIDE);
    let (rows, cols) = (height.div_ceil(stride), width.div_ceil(stride));
    let tiles = of_tiles.min(TILES);
    let mut kept = Vec::with_capacity(tiles * rows * cols);
    for tile in 0..tiles {
        let map = &values[tile * height * width..(tile + 1) * height * width];
        for row in (0..height).step_by(stride) {
            for col in (0..width).step_by(stride) {
                kept.push(map[row * width + col] as f32);
            }
        }
    }
    Some(Picture {
        tiles,
        of_tiles,
        rows,
        cols,
        stride,
        values: kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_tensor_keeps_every_value_and_its_moments() {
        let summary = Summary::of(&[3.0, -4.0], &[1, 2]);
        // ‖(3, −4)‖ = 5, mean −½, std = √((3.5² + 3.5²)/2) = 3.5
        assert_eq!(summary.norm, 5.0);
        assert_eq!((summary.mean, summary.std), (-0.5, 3.5));
        assert_eq!(
            summary.text,
            "[1, 2]  ‖·‖ 5.0000  min -4.0000  max 3.0000  [3.0000, -4.0000]"
        );
        assert_eq!(summary.values.as_deref(), Some(&[3.0, -4.0][..]));
        assert!(summary.picture.is_none(), "a row is not a picture");
    }

    #[test]
    fn feature_maps_become_sampled_tiles() {
        // 10 channels of 64×40: 8 tiles, every 2nd row and column (64/32 = 2)
        let values: Vec<f64> = (0..10 * 64 * 40).map(f64::from).collect();
        let picture = Summary::of(&values, &[1, 10, 64, 40]).picture.unwrap();
        assert_eq!((picture.tiles, picture.of_tiles), (8, 10));
        assert_eq!((picture.rows, picture.cols, picture.stride), (32, 20, 2));
        assert_eq!(picture.values.len(), 8 * 32 * 20);
        // tile 1, row 1 of the tile = row 2 of channel 1, column 0
        assert_eq!(picture.values[32 * 20 + 20], (64 * 40 + 2 * 40) as f32);
    }
}
