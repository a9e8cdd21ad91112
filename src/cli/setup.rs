//! From a config to the objects that train: datasets, the model (with every
//! layer's input shape inferred from the data), the optimizer and the schedule.

use rand::Rng;

use super::config::{Config, DataKind, InitKind, LayerConfig, OptimizerConfig, ScheduleConfig};
use crate::data::csv::Standardizer;
use crate::data::{CsvOptions, Dataset, load_mnist, read_csv, train_validation_split};
use crate::element::Float;
use crate::error::{Error, Result};
use crate::nn::init::Init;
use crate::nn::*;
use crate::ops::conv::Conv2dOptions;
use crate::optim::{Adagrad, Adam, AdamW, Optimizer, RmsProp, Schedule, Sgd};

/// Training and test data, ready to batch.
pub struct Data {
    pub train: Box<dyn Dataset>,
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

/// Builds the layers in order, inferring each one's input shape from the previous
/// one's output; a stack that cannot connect is an error naming the layer and both
/// shapes. Returns the model and each layer's output shape (without the batch axis).
pub fn build_model<T: Float>(
    layers: &[LayerConfig],
    input_shape: &[usize],
    classes: usize,
    rng: &mut impl Rng,
) -> Result<(Sequential<T>, Vec<Vec<usize>>)> {
    let mut model = Sequential::new();
    let mut shape = input_shape.to_vec();
    let mut shapes = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let name = layer_name(layer);
        let fail = |message: String| Error::Config(format!("layer {index} (`{name}`): {message}"));
        let image = |shape: &[usize]| -> Result<(usize, usize, usize)> {
            match *shape {
                [c, h, w] => Ok((c, h, w)),
                _ => Err(fail(format!(
                    "expects an image input [channels, height, width], but receives shape {shape:?}"
                ))),
            }
        };
        check_size(index, name, layer, &shape)?;
        let (boxed, next): (Box<dyn Module<T>>, Vec<usize>) = match layer {
            LayerConfig::Linear { out, bias, init } => {
                let [features] = shape[..] else {
                    return Err(fail(format!(
                        "expects a flat input [features], but receives shape {shape:?}; add {{ type = \"flatten\" }} before it"
                    )));
                };
                let init = init.map_or(Init::PyTorchDefault, init_scheme);
                (
                    Box::new(Linear::with_init(features, *out, *bias, init, rng)),
                    vec![*out],
                )
            }
            LayerConfig::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                dilation,
                groups,
            } => {
                let (c, h, w) = image(&shape)?;
                if c % groups != 0 || out_channels % groups != 0 {
                    return Err(fail(format!(
                        "{c} input and {out_channels} output channels do not split into {groups} groups"
                    )));
                }
                let options = Conv2dOptions::default()
                    .stride(*stride)
                    .padding(*padding)
                    .dilation(*dilation)
                    .groups(*groups);
                let span = dilation * (kernel - 1) + 1;
                if h + 2 * padding < span || w + 2 * padding < span {
                    return Err(fail(format!(
                        "a {kernel}×{kernel} kernel (dilation {dilation}) does not fit the input of shape {shape:?}"
                    )));
                }
                let size = |n: usize| (n + 2 * padding - span) / stride + 1;
                (
                    Box::new(Conv2d::new(c, *out_channels, *kernel, options, rng)),
                    vec![*out_channels, size(h), size(w)],
                )
            }
            LayerConfig::MaxPool2d {
                kernel,
                stride,
                padding,
            }
            | LayerConfig::AvgPool2d {
                kernel,
                stride,
                padding,
            } => {
                let (c, h, w) = image(&shape)?;
                let stride = stride.unwrap_or(*kernel).max(1);
                if h + 2 * padding < *kernel || w + 2 * padding < *kernel || 2 * padding > *kernel {
                    return Err(fail(format!(
                        "a {kernel}×{kernel} window with padding {padding} does not fit the input of shape {shape:?}"
                    )));
                }
                let size = |n: usize| (n + 2 * padding - kernel) / stride + 1;
                let (k, s, p) = ((*kernel, *kernel), (stride, stride), (*padding, *padding));
                let layer: Box<dyn Module<T>> = if matches!(layer, LayerConfig::MaxPool2d { .. }) {
                    Box::new(MaxPool2d {
                        kernel: k,
                        stride: s,
                        padding: p,
                    })
                } else {
                    Box::new(AvgPool2d {
                        kernel: k,
                        stride: s,
                        padding: p,
                    })
                };
                (layer, vec![c, size(h), size(w)])
            }
            LayerConfig::Flatten => (Box::new(Flatten), vec![shape.iter().product()]),
            LayerConfig::Dropout { p } => {
                (Box::new(Dropout::new(*p, rng.next_u64())), shape.clone())
            }
            LayerConfig::BatchNorm => match shape[..] {
                [c] | [c, _] => (Box::new(BatchNorm1d::new(c)), shape.clone()),
                [c, _, _] => (Box::new(BatchNorm2d::new(c)), shape.clone()),
                _ => {
                    return Err(fail(format!(
                        "expects [features] or [channels, height, width], but receives shape {shape:?}"
                    )));
                }
            },
            LayerConfig::LayerNorm => (Box::new(LayerNorm::new(&shape)), shape.clone()),
            LayerConfig::Relu => (Box::new(Relu), shape.clone()),
            LayerConfig::LeakyRelu { slope } => {
                (Box::new(LeakyRelu { slope: *slope }), shape.clone())
            }
            LayerConfig::Sigmoid => (Box::new(Sigmoid), shape.clone()),
            LayerConfig::Tanh => (Box::new(Tanh), shape.clone()),
            LayerConfig::Gelu { tanh_approximation } => (
                Box::new(Gelu {
                    tanh_approximation: *tanh_approximation,
                }),
                shape.clone(),
            ),
            LayerConfig::Silu => (Box::new(Silu), shape.clone()),
        };
        let activations: u128 = next.iter().map(|&s| s as u128).product();
        if activations > MAX_LAYER_PARAMETERS / 4 {
            return Err(fail(format!(
                "its output of shape {next:?} is too large ({activations} values per sample)"
            )));
        }
        model.push(boxed);
        shape = next;
        shapes.push(shape.clone());
    }
    if shape != [classes] {
        return Err(Error::Config(format!(
            "the last layer outputs shape {shape:?}, but the data has {classes} classes: end the model with {{ type = \"linear\", out = {classes} }}"
        )));
    }
    Ok((model, shapes))
}

/// The most parameters one layer may have (2³⁰, 4 GiB of f32): a config asking for
/// more is refused before anything is allocated.
const MAX_LAYER_PARAMETERS: u128 = 1 << 30;

fn check_size(index: usize, name: &str, layer: &LayerConfig, shape: &[usize]) -> Result<()> {
    let inputs: u128 = shape.iter().map(|&s| s as u128).product();
    let parameters = match layer {
        LayerConfig::Linear { out, .. } => inputs.saturating_mul(*out as u128),
        LayerConfig::Conv2d {
            out_channels,
            kernel,
            ..
        } => {
            let channels = shape.first().copied().unwrap_or(1) as u128;
            channels
                .saturating_mul(*out_channels as u128)
                .saturating_mul((*kernel as u128).pow(2))
        }
        _ => 0,
    };
    if parameters > MAX_LAYER_PARAMETERS {
        return Err(Error::Config(format!(
            "layer {index} (`{name}`) would have {parameters} parameters for input shape {shape:?}; the limit is {MAX_LAYER_PARAMETERS}"
        )));
    }
    Ok(())
}

/// The `type` name of a layer as written in configs.
pub fn layer_name(layer: &LayerConfig) -> &'static str {
    match layer {
        LayerConfig::Linear { .. } => "linear",
        LayerConfig::Conv2d { .. } => "conv2d",
        LayerConfig::MaxPool2d { .. } => "max_pool2d",
        LayerConfig::AvgPool2d { .. } => "avg_pool2d",
        LayerConfig::Flatten => "flatten",
        LayerConfig::Dropout { .. } => "dropout",
        LayerConfig::BatchNorm => "batch_norm",
        LayerConfig::LayerNorm => "layer_norm",
        LayerConfig::Relu => "relu",
        LayerConfig::LeakyRelu { .. } => "leaky_relu",
        LayerConfig::Sigmoid => "sigmoid",
        LayerConfig::Tanh => "tanh",
        LayerConfig::Gelu { .. } => "gelu",
        LayerConfig::Silu => "silu",
    }
}

fn init_scheme(kind: InitKind) -> Init {
    match kind {
        InitKind::Pytorch => Init::PyTorchDefault,
        InitKind::KaimingUniform => Init::KaimingUniform,
        InitKind::KaimingNormal => Init::KaimingNormal,
        InitKind::XavierUniform => Init::XavierUniform,
        InitKind::XavierNormal => Init::XavierNormal,
        InitKind::Zeros => Init::Zeros,
    }
}

/// The optimizer a config names, over the model's parameters.
pub fn build_optimizer(
    config: &OptimizerConfig,
    model: &dyn Module<f32>,
) -> Box<dyn Optimizer<f32>> {
    let params = model.named_parameters();
    match *config {
        OptimizerConfig::Sgd {
            lr,
            momentum,
            dampening,
            nesterov,
            weight_decay,
        } => Box::new(
            Sgd::new(params, lr)
                .momentum(momentum)
                .dampening(dampening)
                .nesterov(nesterov)
                .weight_decay(weight_decay),
        ),
        OptimizerConfig::Adam {
            lr,
            betas,
            eps,
            weight_decay,
        } => Box::new(
            Adam::new(params, lr)
                .betas(betas.0, betas.1)
                .eps(eps)
                .weight_decay(weight_decay),
        ),
        OptimizerConfig::Adamw {
            lr,
            betas,
            eps,
            weight_decay,
        } => Box::new(
            AdamW::new(params, lr)
                .betas(betas.0, betas.1)
                .eps(eps)
                .weight_decay(weight_decay),
        ),
        OptimizerConfig::Rmsprop {
            lr,
            alpha,
            momentum,
            centered,
            weight_decay,
        } => Box::new(
            RmsProp::new(params, lr)
                .alpha(alpha)
                .momentum(momentum)
                .centered(centered)
                .weight_decay(weight_decay),
        ),
        OptimizerConfig::Adagrad {
            lr,
            lr_decay,
            weight_decay,
        } => Box::new(
            Adagrad::new(params, lr)
                .lr_decay(lr_decay)
                .weight_decay(weight_decay),
        ),
    }
}

/// The schedule a config names, and whether it advances per step (else per epoch).
pub fn build_schedule(
    config: Option<&ScheduleConfig>,
    epochs: usize,
    steps_per_epoch: usize,
) -> (Schedule, bool) {
    match config {
        None => (Schedule::Constant, false),
        Some(ScheduleConfig::Step { step_size, gamma }) => (
            Schedule::Step {
                step_size: *step_size,
                gamma: *gamma,
            },
            false,
        ),
        Some(ScheduleConfig::MultiStep { milestones, gamma }) => (
            Schedule::MultiStep {
                milestones: milestones.clone(),
                gamma: *gamma,
            },
            false,
        ),
        Some(ScheduleConfig::Exponential { gamma }) => {
            (Schedule::Exponential { gamma: *gamma }, false)
        }
        Some(ScheduleConfig::Cosine { eta_min }) => (
            Schedule::Cosine {
                t_max: epochs,
                eta_min: *eta_min,
            },
            false,
        ),
        Some(ScheduleConfig::Warmup {
            start_factor,
            epochs,
        }) => (
            Schedule::LinearWarmup {
                start_factor: *start_factor,
                warmup: *epochs,
            },
            false,
        ),
        Some(ScheduleConfig::OneCycle { max_lr, pct_start }) => (
            Schedule::OneCycle {
                max_lr: *max_lr,
                total_steps: epochs * steps_per_epoch,
                pct_start: *pct_start,
                div_factor: 25.0,
                final_div_factor: 1e4,
            },
            true,
        ),
    }
}
