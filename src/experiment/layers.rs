//! The layer registry: every layer kind a config can name, declared once — its
//! config keys (the enum variant), the range checks serde cannot express
//! ([`LayerConfig::check`]) and how it is built for a given input
//! ([`LayerConfig::build`]). Output shapes are asked of the built module
//! ([`Module::output_shape`]), never re-derived here.
//!
//! Adding a layer: the op in `ops/`, the module in `nn/`, a variant and a `build`
//! arm here (and a `check` arm if it has settings to range-check).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::element::Float;
use crate::error::{Error, Result};
use crate::nn::init::Init;
use crate::nn::*;
use crate::ops::conv::Conv2dOptions;

/// One layer. `type` picks it; the other keys are its settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerConfig {
    /// `z = x·Wᵀ + b` over the last axis; `out` features.
    Linear {
        /// Output features: a number, or `"classes"` for as many as the data has.
        out: Width,
        /// Whether to add a bias.
        #[serde(default = "yes")]
        bias: bool,
        /// Weight initialisation (default: PyTorch's).
        #[serde(default)]
        init: Option<InitKind>,
    },
    /// A 2-D convolution over `[channels, height, width]` images.
    Conv2d {
        /// Output channels.
        out_channels: usize,
        /// Square kernel size.
        kernel: usize,
        /// Step between windows.
        #[serde(default = "one")]
        stride: usize,
        /// Zeros added on each side.
        #[serde(default)]
        padding: usize,
        /// Spacing between kernel taps.
        #[serde(default = "one")]
        dilation: usize,
        /// Channel groups.
        #[serde(default = "one")]
        groups: usize,
        /// Whether to add a bias (leave it out before a batch norm, whose β does its job).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// The largest value of each window.
    MaxPool2d {
        /// Square window size.
        kernel: usize,
        /// Step between windows (default: the kernel).
        #[serde(default)]
        stride: Option<usize>,
        /// Padding on each side (at most half the kernel).
        #[serde(default)]
        padding: usize,
    },
    /// The mean of each window.
    AvgPool2d {
        /// Square window size.
        kernel: usize,
        /// Step between windows (default: the kernel).
        #[serde(default)]
        stride: Option<usize>,
        /// Padding on each side (at most half the kernel).
        #[serde(default)]
        padding: usize,
    },
    /// The mean of each channel over the whole image: `[C, H, W]` → `[C]`.
    GlobalAvgPool,
    /// Average pooling to a fixed `[height, width]`, whatever the input's size.
    AdaptiveAvgPool2d {
        /// Output `[height, width]`.
        out: [usize; 2],
    },
    /// Every axis of a sample into one.
    Flatten,
    /// A residual block: `layers(x) + shortcut(x)`, the shortcut being the identity
    /// unless given. Blocks nest; an activation after the addition is the next layer.
    Residual {
        /// The main branch.
        layers: Vec<LayerConfig>,
        /// The branch `x` takes to the addition (a projection where shapes change).
        #[serde(default)]
        shortcut: Option<Vec<LayerConfig>>,
    },
    /// Zeroes each value with probability `p` while training.
    Dropout {
        /// The drop probability, in [0, 1).
        p: f64,
    },
    /// Batch norm: 1-D for features, 2-D for images (chosen by the input).
    BatchNorm,
    /// Layer norm: over the last axis (each position's features, as transformers
    /// use it), or with `over = "sample"` over the whole sample.
    LayerNorm {
        /// `"last"` (default) or `"sample"`.
        #[serde(default)]
        over: NormAxes,
    },
    /// A lookup table of learned vectors, one per token of the data's vocabulary:
    /// token ids `[time]` → `[time, dim]`.
    Embedding {
        /// Features per token.
        dim: usize,
        /// Initialisation: N(0, 1) as PyTorch's, or `"gpt"` for N(0, 0.02²).
        #[serde(default)]
        init: Option<InitKind>,
    },
    /// Adds a learned vector per position to a sequence `[time, dim]`.
    PositionalEmbedding {
        /// Positions it has vectors for (default: the sequence length).
        #[serde(default)]
        max_len: Option<usize>,
        /// Initialisation: N(0, 1) as PyTorch's, or `"gpt"` for N(0, 0.02²).
        #[serde(default)]
        init: Option<InitKind>,
    },
    /// A pre-LayerNorm transformer block: `x + attention(ln(x))`, then
    /// `x + mlp(ln(x))`, over a sequence `[time, dim]`.
    TransformerBlock {
        /// Attention heads; must divide the feature count.
        heads: usize,
        /// How much wider the MLP is than the features.
        #[serde(default = "default_mlp_ratio")]
        mlp_ratio: usize,
        /// Each position attends only to itself and earlier ones (a GPT).
        #[serde(default = "yes")]
        causal: bool,
        /// Linear weights' initialisation (default `"gpt"`: N(0, 0.02²), zero biases).
        #[serde(default)]
        init: Option<InitKind>,
    },
    /// `max(0, x)`.
    Relu,
    /// `x` for `x > 0`, else `slope·x`.
    LeakyRelu {
        /// The negative slope.
        #[serde(default = "default_slope")]
        slope: f64,
    },
    /// `1 / (1 + e⁻ˣ)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `x·Φ(x)`.
    Gelu {
        /// Use the tanh approximation.
        #[serde(default)]
        tanh_approximation: bool,
    },
    /// `x·σ(x)`.
    Silu,
    /// `x / (1 + |x|)`.
    Softsign,
}

/// The axes a layer norm normalises.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NormAxes {
    /// The last axis: each position's (or pixel column's) features.
    #[default]
    Last,
    /// Every axis of a sample.
    Sample,
}

/// A linear layer's output width: a number, or `"classes"` — as many outputs as
/// the data has classes (for text, `"vocab"` says the same: one per token), so a
/// config copied to another data set needs no edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// Exactly this many.
    Count(usize),
    /// The number of classes of the data.
    Classes,
}

impl Width {
    /// The number of outputs, given the data's number of classes.
    pub fn resolve(self, classes: usize) -> usize {
        match self {
            Width::Count(count) => count,
            Width::Classes => classes,
        }
    }
}

impl From<usize> for Width {
    fn from(count: usize) -> Self {
        Width::Count(count)
    }
}

impl Serialize for Width {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Width::Count(count) => serializer.serialize_u64(*count as u64),
            Width::Classes => serializer.serialize_str("classes"),
        }
    }
}

impl<'de> Deserialize<'de> for Width {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Width;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of outputs or \"classes\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Width, E> {
                usize::try_from(v)
                    .map(Width::Count)
                    .map_err(|_| E::custom(format!("{v} outputs is too many")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Width, E> {
                u64::try_from(v)
                    .map_err(|_| {
                        E::custom(format!(
                            "expected a number of outputs or \"classes\", found {v}"
                        ))
                    })
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Width, E> {
                match v {
                    "classes" | "vocab" => Ok(Width::Classes),
                    other => Err(E::custom(format!(
                        "expected a number of outputs, \"classes\" or \"vocab\", found \"{other}\""
                    ))),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Weight initialisation schemes selectable per Linear layer.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InitKind {
    /// Kaiming-uniform with a = √5 (PyTorch's default).
    Pytorch,
    /// He, uniform.
    KaimingUniform,
    /// He, normal.
    KaimingNormal,
    /// Glorot, uniform.
    XavierUniform,
    /// Glorot, normal.
    XavierNormal,
    /// All zeros.
    Zeros,
    /// N(0, 0.02²) weights and zero biases: GPT-2's.
    Gpt,
}

impl LayerConfig {
    /// The `type` name as written in configs (`"max_pool2d"`).
    pub fn kind(&self) -> String {
        // serde owns the spelling: the tag it writes is the name
        let value = serde_json::to_value(self).expect("a layer config serialises");
        value["type"].as_str().unwrap_or_default().to_string()
    }

    /// Range checks serde cannot express: `Err((key, message))`.
    pub fn check(&self) -> std::result::Result<(), (String, String)> {
        let fail = |key: &str, message: &str| Err((key.to_string(), message.to_string()));
        match self {
            LayerConfig::Dropout { p } if !(0.0..1.0).contains(p) => Err((
                "p".into(),
                format!("dropout probability must be in [0, 1), found {p}"),
            )),
            LayerConfig::Linear {
                out: Width::Count(0),
                ..
            } => fail("out", "a linear layer needs at least 1 output"),
            LayerConfig::TransformerBlock { heads: 0, .. } => {
                fail("heads", "a transformer block needs at least 1 head")
            }
            LayerConfig::TransformerBlock { mlp_ratio: 0, .. } => {
                fail("mlp_ratio", "must be at least 1")
            }
            LayerConfig::PositionalEmbedding {
                max_len: Some(0), ..
            } => fail("max_len", "must be at least 1"),
            LayerConfig::AdaptiveAvgPool2d { out } if out.contains(&0) => {
                fail("out", "an adaptive pooling size must be at least 1 × 1")
            }
            LayerConfig::Residual { layers, .. } if layers.is_empty() => {
                fail("layers", "a residual block needs at least one layer")
            }
            LayerConfig::Residual { layers, shortcut } => layers
                .iter()
                .chain(shortcut.iter().flatten())
                .try_for_each(LayerConfig::check),
            LayerConfig::Conv2d {
                out_channels,
                kernel,
                stride,
                dilation,
                groups,
                ..
            } if [*out_channels, *kernel, *stride, *dilation, *groups].contains(&0) => fail(
                "conv2d",
                "out_channels, kernel, stride, dilation and groups must be at least 1",
            ),
            LayerConfig::MaxPool2d { kernel: 0, .. } | LayerConfig::AvgPool2d { kernel: 0, .. } => {
                fail("kernel", "a pooling kernel must be at least 1")
            }
            LayerConfig::MaxPool2d {
                stride: Some(0), ..
            }
            | LayerConfig::AvgPool2d {
                stride: Some(0), ..
            } => fail("stride", "a pooling stride must be at least 1"),
            _ => Ok(()),
        }
    }

    /// The module this entry describes, for one sample's input of shape `input`
    /// and data with `classes` classes (parameters drawn from `rng`), or why it
    /// cannot take that input.
    pub fn build<T: Float>(
        &self,
        input: &[usize],
        classes: usize,
        rng: &mut impl Rng,
    ) -> std::result::Result<Box<dyn Module<T>>, String> {
        let channels = || match *input {
            [c, _, _] => Ok(c),
            _ => Err(format!(
                "expects an image input [channels, height, width], but receives shape {input:?}"
            )),
        };
        Ok(match *self {
            LayerConfig::Linear { out, bias, init } => {
                let out = out.resolve(classes);
                let features = match *input {
                    [.., features] if input.len() <= 2 => features,
                    _ => {
                        return Err(format!(
                            "expects a flat input [features], but receives shape {input:?}; add {{ type = \"flatten\" }} before it"
                        ));
                    }
                };
                let init = init.map_or(Init::PyTorchDefault, InitKind::scheme);
                Box::new(Linear::with_init(features, out, bias, init, rng))
            }
            LayerConfig::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                dilation,
                groups,
                bias,
            } => {
                let c = channels()?;
                if c % groups != 0 || out_channels % groups != 0 {
                    return Err(format!(
                        "{c} input and {out_channels} output channels do not split into {groups} groups"
                    ));
                }
                let options = Conv2dOptions::default()
                    .stride(stride)
                    .padding(padding)
                    .dilation(dilation)
                    .groups(groups);
                let kernel = (kernel, kernel);
                let init = Init::PyTorchDefault;
                Box::new(Conv2d::with_init(
                    c,
                    out_channels,
                    kernel,
                    options,
                    bias,
                    init,
                    rng,
                ))
            }
            LayerConfig::MaxPool2d {
                kernel,
                stride,
                padding,
            } => {
                let (kernel, stride, padding) = square_window(kernel, stride, padding);
                Box::new(MaxPool2d {
                    kernel,
                    stride,
                    padding,
                })
            }
            LayerConfig::AvgPool2d {
                kernel,
                stride,
                padding,
            } => {
                let (kernel, stride, padding) = square_window(kernel, stride, padding);
                Box::new(AvgPool2d {
                    kernel,
                    stride,
                    padding,
                })
            }
            LayerConfig::GlobalAvgPool => Box::new(GlobalAvgPool2d),
            LayerConfig::AdaptiveAvgPool2d {
                out: [height, width],
            } => Box::new(AdaptiveAvgPool2d {
                out: (height, width),
            }),
            LayerConfig::Flatten => Box::new(Flatten),
            LayerConfig::Residual {
                ref layers,
                ref shortcut,
            } => {
                let (layers, _) = build_stack(layers, input, classes, rng)
                    .map_err(|why| format!("in its layers: {why}"))?;
                let shortcut = shortcut
                    .as_ref()
                    .map(|shortcut| build_stack(shortcut, input, classes, rng))
                    .transpose()
                    .map_err(|why| format!("in its shortcut: {why}"))?;
                Box::new(match shortcut {
                    Some((shortcut, _)) => Residual::with_shortcut(layers, shortcut),
                    None => Residual::new(layers),
                })
            }
            LayerConfig::Dropout { p } => Box::new(Dropout::new(p, rng.next_u64())),
            LayerConfig::BatchNorm => match *input {
                [c] | [c, _] => Box::new(BatchNorm1d::new(c)),
                [c, _, _] => Box::new(BatchNorm2d::new(c)),
                _ => {
                    return Err(format!(
                        "expects [features] or [channels, height, width], but receives shape {input:?}"
                    ));
                }
            },
            LayerConfig::LayerNorm { over } => match (over, input.last()) {
                (NormAxes::Sample, _) => Box::new(LayerNorm::new(input)),
                (NormAxes::Last, Some(&features)) => Box::new(LayerNorm::new(&[features])),
                (NormAxes::Last, None) => return Err("expects at least one axis".into()),
            },
            LayerConfig::Embedding { dim, init } => {
                if dim == 0 {
                    return Err("an embedding needs at least 1 feature".into());
                }
                let init = init.map_or(Init::Normal(1.0), InitKind::scheme);
                Box::new(Embedding::with_init(classes, dim, init, rng))
            }
            LayerConfig::PositionalEmbedding { max_len, init } => {
                let &[time, dim] = input else {
                    return Err(format!(
                        "expects a sequence [time, features], but receives shape {input:?}; put an embedding before it"
                    ));
                };
                let init = init.map_or(Init::Normal(1.0), InitKind::scheme);
                Box::new(PositionalEmbedding::with_init(
                    max_len.unwrap_or(time),
                    dim,
                    init,
                    rng,
                ))
            }
            LayerConfig::TransformerBlock {
                heads,
                mlp_ratio,
                causal,
                init,
            } => {
                let &[_, dim] = input else {
                    return Err(format!(
                        "expects a sequence [time, features], but receives shape {input:?}; put an embedding before it"
                    ));
                };
                if heads == 0 || dim % heads != 0 {
                    return Err(format!("{heads} heads do not divide {dim} features"));
                }
                let init = init.map_or(Init::Normal(0.02), InitKind::scheme);
                Box::new(TransformerBlock::new(
                    dim, heads, mlp_ratio, causal, init, rng,
                ))
            }
            LayerConfig::Relu => Box::new(Relu),
            LayerConfig::LeakyRelu { slope } => Box::new(LeakyRelu { slope }),
            LayerConfig::Sigmoid => Box::new(Sigmoid),
            LayerConfig::Tanh => Box::new(Tanh),
            LayerConfig::Gelu { tanh_approximation } => Box::new(Gelu { tanh_approximation }),
            LayerConfig::Silu => Box::new(Silu),
            LayerConfig::Softsign => Box::new(Softsign),
        })
    }
}

impl InitKind {
    fn scheme(self) -> Init {
        match self {
            InitKind::Pytorch => Init::PyTorchDefault,
            InitKind::KaimingUniform => Init::KaimingUniform,
            InitKind::KaimingNormal => Init::KaimingNormal,
            InitKind::XavierUniform => Init::XavierUniform,
            InitKind::XavierNormal => Init::XavierNormal,
            InitKind::Zeros => Init::Zeros,
            InitKind::Gpt => Init::Normal(0.02),
        }
    }
}

/// A pooling window's (kernel, stride, padding) as (rows, columns) pairs; the stride
/// defaults to the kernel, as in PyTorch.
type WindowPairs = ((usize, usize), (usize, usize), (usize, usize));

fn square_window(kernel: usize, stride: Option<usize>, padding: usize) -> WindowPairs {
    let stride = stride.unwrap_or(kernel);
    ((kernel, kernel), (stride, stride), (padding, padding))
}

/// The most values a layer may output per sample (a quarter of the most one parameter
/// may hold, [`init::MAX_PARAMETER_VALUES`]): a config asking for more is refused
/// before a batch is ever run.
const MAX_ACTIVATION_VALUES: u128 = init::MAX_PARAMETER_VALUES / 4;

/// Builds the layers in order, each for the previous one's output shape; a stack
/// that cannot connect is an error naming the layer and both shapes. Returns the
/// model and each layer's output shape (without the batch axis).
///
/// ```
/// use nabla::experiment::{LayerConfig, Width};
/// let layers = [LayerConfig::Flatten, LayerConfig::Linear { out: Width::Classes, bias: true, init: None }];
/// let (model, shapes) =
///     nabla::experiment::build_model::<f32>(&layers, &[1, 28, 28], 10, &mut nabla::rng(0)).unwrap();
/// assert_eq!(shapes, [vec![784], vec![10]]);
/// ```
pub fn build_model<T: Float>(
    layers: &[LayerConfig],
    input_shape: &[usize],
    classes: usize,
    rng: &mut impl Rng,
) -> Result<(Sequential<T>, Vec<Vec<usize>>)> {
    let (model, shapes) = build_stack(layers, input_shape, classes, rng).map_err(Error::Config)?;
    let shape = shapes.last().map_or(input_shape, Vec::as_slice);
    // a classifier outputs [classes]; a sequence model [time, classes]
    let fits = shape == [classes]
        || (shape.len() == 2
            && shape[1] == classes
            && input_shape.len() == 1
            && shape[0] == input_shape[0]);
    if !fits {
        return Err(Error::Config(format!(
            "the last layer outputs shape {shape:?}, but the data has {classes} classes: end the model with {{ type = \"linear\", out = \"classes\" }}"
        )));
    }
    Ok((model, shapes))
}

/// [`build_model`] without the check on the last shape: a residual block's branches
/// are stacks too.
fn build_stack<T: Float>(
    layers: &[LayerConfig],
    input_shape: &[usize],
    classes: usize,
    rng: &mut impl Rng,
) -> std::result::Result<(Sequential<T>, Vec<Vec<usize>>), String> {
    let mut model = Sequential::new();
    let mut shape = input_shape.to_vec();
    let mut shapes = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let fail = |message: String| format!("layer {index} (`{}`): {message}", layer.kind());
        let module = init::within_limit(|| layer.build::<T>(&shape, classes, rng))
            .map_err(|too_large| fail(format!("for input shape {shape:?}, {too_large}")))?
            .map_err(fail)?;
        let next = module.output_shape(&shape).map_err(fail)?;
        let activations: u128 = next.iter().map(|&s| s as u128).product();
        if activations > MAX_ACTIVATION_VALUES {
            return Err(fail(format!(
                "its output of shape {next:?} is too large ({activations} values per sample)"
            )));
        }
        model.push(module);
        shapes.push(next.clone());
        shape = next;
    }
    Ok((model, shapes))
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn default_slope() -> f64 {
    0.01
}
fn default_mlp_ratio() -> usize {
    4
}
