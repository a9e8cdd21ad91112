//! The pictures the page draws, computed from the model and the data: the network
//! with its weights, histograms of every parameter, the decision regions over a
//! 2-feature input plane, and predictions for a few test images.
//!
//! Each runs the model in evaluation mode without a graph and puts it back in
//! training mode, like the gradient-health probe: no dropout draw, no batch-norm
//! statistic and no gradient moves, so watching never changes what is trained.

use super::state::{
    DenseWeights, EpochHistograms, Histogram, ImageSamples, LayerView, NetworkView,
    ParameterHistogram, PlanePoints, RegionFrame,
};
use crate::autograd::no_grad;
use crate::data::{Dataset, make_batch};
use crate::nn::{Module, layers_of};
use crate::tensor::Tensor;

/// Units per layer drawn with their connections; wider layers show their first ones.
pub const DRAWN_UNITS: usize = 64;
/// Bins per histogram.
pub const HISTOGRAM_BINS: usize = 30;
/// Cells per side of the decision-region grid.
pub const REGION_CELLS: usize = 64;
/// Test images whose predictions are followed.
pub const SAMPLE_IMAGES: usize = 200;
/// Points of a 2-feature data set drawn (the first ones of each split).
pub const PLANE_POINTS: usize = 2000;

/// The layers, their output shapes and, for linear layers, the weights to draw.
pub fn network_view(model: &dyn Module<f32>, input_shape: &[usize], epoch: usize) -> NetworkView {
    let mut shape = Ok(input_shape.to_vec());
    let layers = layers_of(model)
        .into_iter()
        .map(|layer| {
            shape = shape.clone().and_then(|input| layer.output_shape(&input));
            let description = layer.describe();
            LayerView {
                dense: description
                    .starts_with("Linear")
                    .then(|| dense_weights(layer))
                    .flatten(),
                description,
                output_shape: shape.clone().unwrap_or_default(),
                parameters: layer.num_parameters(),
            }
        })
        .collect();
    NetworkView {
        input_shape: input_shape.to_vec(),
        layers,
        epoch,
    }
}

/// The first [`DRAWN_UNITS`] × [`DRAWN_UNITS`] of a linear layer's `[out, in]` weight.
fn dense_weights(layer: &dyn Module<f32>) -> Option<DenseWeights> {
    let (_, weight) = layer
        .named_parameters()
        .into_iter()
        .find(|(name, _)| name == "weight")?;
    let &[outputs, inputs] = weight.shape() else {
        return None;
    };
    let (shown_outputs, shown_inputs) = (outputs.min(DRAWN_UNITS), inputs.min(DRAWN_UNITS));
    let all = weight.data();
    let values = (0..shown_outputs)
        .flat_map(|o| all[o * inputs..o * inputs + shown_inputs].to_vec())
        .collect();
    Some(DenseWeights {
        inputs,
        outputs,
        shown_inputs,
        shown_outputs,
        values,
    })
}

/// Every parameter's weights binned, with `gradients` (binned at the epoch's last
/// step, by [`gradient_histograms`]) beside them.
pub fn histograms(
    model: &dyn Module<f32>,
    epoch: usize,
    gradients: &[(String, Histogram)],
) -> EpochHistograms {
    let parameters = model
        .named_parameters()
        .into_iter()
        .map(|(name, p)| ParameterHistogram {
            weights: Histogram::of(&p.data(), HISTOGRAM_BINS),
            gradients: gradients
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, h)| h.clone()),
            name,
        })
        .collect();
    EpochHistograms { epoch, parameters }
}

/// Every parameter's current gradient, binned (taken right after a step's backward).
pub fn gradient_histograms(model: &dyn Module<f32>) -> Vec<(String, Histogram)> {
    model
        .named_parameters()
        .into_iter()
        .filter_map(|(name, p)| Some((name, Histogram::of(&p.grad()?.data(), HISTOGRAM_BINS))))
        .collect()
}

/// Runs `inputs` through `model` in evaluation mode, without a graph, and puts
/// the model back in training mode.
fn predict(model: &dyn Module<f32>, inputs: &Tensor) -> Tensor {
    let _guard = no_grad();
    model.eval();
    let logits = model.forward(inputs);
    model.train();
    logits
}

/// The decision regions of a model with two input features: a grid over the plane
/// that holds the data, and the data's points.
pub struct RegionProbe {
    plane: PlanePoints,
    grid: Tensor,
}

impl RegionProbe {
    /// A probe for data with exactly two features per sample, or `None`.
    pub fn new(train: &dyn Dataset, test: &dyn Dataset, class_names: &[String]) -> Option<Self> {
        if train.feature_shape() != [2] || train.is_empty() {
            return None;
        }
        let mut xy = Vec::new();
        let (mut labels, mut is_test) = (Vec::new(), Vec::new());
        for (split, data) in [(false, train), (true, test)] {
            let count = data.len().min(PLANE_POINTS);
            let batch = make_batch(data, &(0..count).collect::<Vec<_>>());
            xy.extend(batch.inputs.data().chunks(2).map(|p| [p[0], p[1]]));
            labels.extend(batch.labels);
            is_test.extend(std::iter::repeat_n(split, count));
        }
        let extent = padded_extent(&xy);
        let [x_min, x_max, y_min, y_max] = extent;
        let cell =
            |i: usize, lo: f64, hi: f64| lo + (i as f64 + 0.5) / REGION_CELLS as f64 * (hi - lo);
        // row 0 is the top of the picture: the largest y
        let grid_values = (0..REGION_CELLS)
            .flat_map(|row| {
                let y = cell(REGION_CELLS - 1 - row, y_min, y_max);
                (0..REGION_CELLS).flat_map(move |col| [cell(col, x_min, x_max) as f32, y as f32])
            })
            .collect();
        Some(RegionProbe {
            plane: PlanePoints {
                extent,
                xy,
                labels,
                test: is_test,
                class_names: class_names.to_vec(),
            },
            grid: Tensor::from_vec(grid_values, &[REGION_CELLS * REGION_CELLS, 2]),
        })
    }

    /// The data's points.
    pub fn plane(&self) -> &PlanePoints {
        &self.plane
    }

    /// The model's predicted class and its probability in every cell.
    pub fn frame(&self, model: &dyn Module<f32>, epoch: f64) -> RegionFrame {
        let probabilities = predict(model, &self.grid).softmax(-1);
        let classes = probabilities.argmax(-1);
        let width = probabilities.shape()[1];
        let values = probabilities.data();
        let confidence = classes
            .iter()
            .enumerate()
            .map(|(cell, &class)| (values[cell * width + class] * 255.0).round() as u8)
            .collect();
        RegionFrame {
            epoch,
            size: REGION_CELLS,
            classes: classes.iter().map(|&c| c as u16).collect(),
            confidence,
        }
    }
}

/// The points' bounding box, widened by a tenth on every side (and to at least
/// 1 across, so a single point still has a plane around it).
fn padded_extent(xy: &[[f32; 2]]) -> [f64; 4] {
    let mut extent = [
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    for point in xy {
        for axis in 0..2 {
            let v = point[axis] as f64;
            extent[2 * axis] = extent[2 * axis].min(v);
            extent[2 * axis + 1] = extent[2 * axis + 1].max(v);
        }
    }
    for axis in 0..2 {
        let (lo, hi) = (extent[2 * axis], extent[2 * axis + 1]);
        let pad = ((hi - lo) * 0.1).max(0.5);
        (extent[2 * axis], extent[2 * axis + 1]) = (lo - pad, hi + pad);
    }
    extent
}

/// A fixed set of test images and the model's predictions for them.
pub struct ImageProbe {
    samples: ImageSamples,
    inputs: Tensor,
}

impl ImageProbe {
    /// A probe for the first [`SAMPLE_IMAGES`] test images, each of `image_shape`
    /// (`[channels, height, width]`; the features may be fed flat).
    pub fn new(test: &dyn Dataset, image_shape: [usize; 3], class_names: &[String]) -> Self {
        let count = test.len().min(SAMPLE_IMAGES);
        let batch = make_batch(test, &(0..count).collect::<Vec<_>>());
        let width = test.feature_len();
        let pixels = batch
            .inputs
            .data()
            .chunks(width.max(1))
            .map(display_bytes)
            .collect();
        ImageProbe {
            samples: ImageSamples {
                shape: image_shape,
                pixels,
                labels: batch.labels,
                class_names: class_names.to_vec(),
            },
            inputs: batch.inputs,
        }
    }

    /// The images.
    pub fn samples(&self) -> &ImageSamples {
        &self.samples
    }

    /// The model's predicted class for each image.
    pub fn predict(&self, model: &dyn Module<f32>) -> Vec<usize> {
        predict(model, &self.inputs).argmax(-1)
    }
}

/// A normalised image's values stretched to 0–255 (its own min to max), for display.
fn display_bytes(values: &[f32]) -> Vec<u8> {
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = if hi > lo { hi - lo } else { 1.0 };
    values
        .iter()
        .map(|&v| ((v - lo) / range * 255.0).round() as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::TableDataset;
    use crate::nn::{Linear, Relu, Sequential};

    fn model() -> Sequential {
        let mut rng = crate::rng(0);
        Sequential::new()
            .layer(Linear::new(2, 80, &mut rng))
            .layer(Relu)
            .layer(Linear::new(80, 3, &mut rng))
    }

    #[test]
    fn the_network_view_holds_each_layer_and_the_drawn_weights() {
        let model = model();
        let view = network_view(&model, &[2], 0);
        assert_eq!(view.layers.len(), 3);
        assert_eq!(view.layers[0].output_shape, vec![80]);
        assert_eq!(view.layers[2].output_shape, vec![3]);
        let dense = view.layers[2].dense.as_ref().unwrap();
        // 3 outputs × the first 64 of 80 inputs, row-major like the weight itself
        assert_eq!((dense.shown_outputs, dense.shown_inputs), (3, DRAWN_UNITS));
        let weight = model.named_parameters()[2].1.clone();
        assert_eq!(dense.values[DRAWN_UNITS + 5], weight.data()[80 + 5]);
        assert!(view.layers[1].dense.is_none());
    }

    #[test]
    fn the_decision_regions_are_the_models_predictions_on_the_grid() {
        let model = model();
        let points = vec![-1.0, -2.0, 3.0, 4.0];
        let data = TableDataset::from_vec(points, 2, vec![0, 2]);
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let probe = RegionProbe::new(&data, &data, &names).unwrap();
        // x from -1 to 3 padded by 0.5 (a tenth of 4 is less): [-1.5, 3.5]
        assert_eq!(probe.plane().extent, [-1.5, 3.5, -2.6, 4.6]);
        let frame = probe.frame(&model, 1.0);
        assert_eq!(frame.classes.len(), REGION_CELLS * REGION_CELLS);
        // the top-left cell is (x_min + half a cell, y_max − half a cell)
        let half = |lo: f64, hi: f64| (hi - lo) / REGION_CELLS as f64 / 2.0;
        let corner = Tensor::from_vec(
            vec![
                (-1.5 + half(-1.5, 3.5)) as f32,
                (4.6 - half(-2.6, 4.6)) as f32,
            ],
            &[1, 2],
        );
        let expected = predict(&model, &corner);
        assert_eq!(frame.classes[0] as usize, expected.argmax(-1)[0]);
        let top = expected
            .softmax(-1)
            .data()
            .iter()
            .cloned()
            .fold(0.0f32, f32::max);
        assert_eq!(frame.confidence[0], (top * 255.0).round() as u8);
    }

    #[test]
    fn data_without_two_features_has_no_plane() {
        let data = TableDataset::from_vec(vec![0.0; 6], 3, vec![0, 1]);
        assert!(RegionProbe::new(&data, &data, &[]).is_none());
    }

    #[test]
    fn display_pixels_span_0_to_255() {
        assert_eq!(display_bytes(&[-1.0, 0.0, 1.0]), vec![0, 128, 255]);
        assert_eq!(display_bytes(&[0.3, 0.3]), vec![0, 0]);
    }
}
