//! The reference benchmark networks, built once for the examples and `nabla bench`.

use rand::Rng;

use super::init::Init;
use super::{
    BatchNorm2d, Conv2d, Embedding, Flatten, GlobalAvgPool2d, LayerNorm, Linear, MaxPool2d,
    PositionalEmbedding, Relu, Residual, Sequential, TransformerBlock,
};
use crate::element::Float;
use crate::ops::conv::Conv2dOptions;

/// The reference `mlp`: 784-256-128-10 with ReLU (PyTorch's default init).
pub fn mnist_mlp<T: Float>(rng: &mut impl Rng) -> Sequential<T> {
    Sequential::new()
        .layer(Linear::new(784, 256, rng))
        .layer(Relu)
        .layer(Linear::new(256, 128, rng))
        .layer(Relu)
        .layer(Linear::new(128, 10, rng))
}

/// The reference `cnn`, LeNet-5: conv 6@5×5 pad 2, max-pool, conv 16@5×5, max-pool,
/// 120, 84, 10, with ReLU.
pub fn lenet5<T: Float>(rng: &mut impl Rng) -> Sequential<T> {
    Sequential::new()
        .layer(Conv2d::new(
            1,
            6,
            5,
            Conv2dOptions::default().padding(2),
            rng,
        ))
        .layer(Relu)
        .layer(MaxPool2d::new(2))
        .layer(Conv2d::new(6, 16, 5, Conv2dOptions::default(), rng))
        .layer(Relu)
        .layer(MaxPool2d::new(2))
        .layer(Flatten)
        .layer(Linear::new(400, 120, rng))
        .layer(Relu)
        .layer(Linear::new(120, 84, rng))
        .layer(Relu)
        .layer(Linear::new(84, 10, rng))
}

/// ResNet-20 for 32×32 images (He et al. 2016, the CIFAR variant; the reference
/// `resnet` workload): a 3×3 convolution to 16 channels, then three stages of three
/// [`basic_block`]s at 16, 32 and 64 channels (the first block of stages 2 and 3
/// halves the image with stride 2), global average pooling and a linear classifier.
/// 0.27 M parameters; PyTorch's default initialisation.
///
/// ```
/// use nabla::nn::Module;
/// let net = nabla::nn::zoo::resnet20::<f32>(3, 10, &mut nabla::rng(0));
/// assert_eq!(net.num_parameters(), 272_474);
/// assert_eq!(net.output_shape(&[3, 32, 32]), Ok(vec![10]));
/// ```
pub fn resnet20<T: Float>(in_channels: usize, classes: usize, rng: &mut impl Rng) -> Sequential<T> {
    let mut net = Sequential::new()
        .layer(conv_no_bias(in_channels, 16, 3, 1, rng))
        .layer(BatchNorm2d::new(16))
        .layer(Relu);
    let mut channels = 16;
    for (stage_channels, first_stride) in [(16, 1), (32, 2), (64, 2)] {
        for block in 0..3 {
            let stride = if block == 0 { first_stride } else { 1 };
            net = net
                .layer(basic_block(channels, stage_channels, stride, rng))
                .layer(Relu);
            channels = stage_channels;
        }
    }
    net.layer(GlobalAvgPool2d)
        .layer(Linear::new(channels, classes, rng))
}

/// ResNet's basic block, without its final ReLU: conv3×3(stride)-BN-ReLU-conv3×3-BN
/// added to the input, or — where the shape changes — to a conv1×1(stride)-BN
/// projection of it. The convolutions have no bias (batch norm's β takes its place).
pub fn basic_block<T: Float>(
    in_channels: usize,
    out_channels: usize,
    stride: usize,
    rng: &mut impl Rng,
) -> Residual<T> {
    let layers = Sequential::new()
        .layer(conv_no_bias(in_channels, out_channels, 3, stride, rng))
        .layer(BatchNorm2d::new(out_channels))
        .layer(Relu)
        .layer(conv_no_bias(out_channels, out_channels, 3, 1, rng))
        .layer(BatchNorm2d::new(out_channels));
    if stride == 1 && in_channels == out_channels {
        return Residual::new(layers);
    }
    let projection = Sequential::new()
        .layer(conv_no_bias(in_channels, out_channels, 1, stride, rng))
        .layer(BatchNorm2d::new(out_channels));
    Residual::with_shortcut(layers, projection)
}

/// A square convolution without bias, padded to keep the size at stride 1.
fn conv_no_bias<T: Float>(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    rng: &mut impl Rng,
) -> Conv2d<T> {
    let options = Conv2dOptions::default().stride(stride).padding(kernel / 2);
    let kernel = (kernel, kernel);
    Conv2d::with_init(
        in_channels,
        out_channels,
        kernel,
        options,
        false,
        Init::PyTorchDefault,
        rng,
    )
}

/// The shape of a GPT: [`gpt`] builds it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GptShape {
    /// Tokens in the vocabulary.
    pub vocab: usize,
    /// The longest sequence (the number of learned positions).
    pub block_size: usize,
    /// Features per position.
    pub dim: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// How much wider each block's MLP is than `dim`.
    pub mlp_ratio: usize,
}

impl GptShape {
    /// The reference `gpt` workload (`shared/bench/torch_gpt.py`): 128 features,
    /// 4 heads, 4 blocks, an MLP 4× wider, 128 positions.
    pub fn reference(vocab: usize) -> Self {
        GptShape {
            vocab,
            block_size: 128,
            dim: 128,
            heads: 4,
            layers: 4,
            mlp_ratio: 4,
        }
    }
}

/// A decoder-only transformer (GPT-2's layout) mapping token ids `[batch, time]`
/// to next-token logits `[batch, time, vocab]`: token embedding, learned position
/// embedding, `layers` causal pre-LayerNorm blocks, a final LayerNorm and a linear
/// head without bias. Linear and embedding weights N(0, 0.02²), biases 0.
///
/// Parameter names are those of an `nn.Sequential` of the same modules:
/// `0.weight` (tokens), `1.weight` (positions), `2.ln1.weight` … `2.out.bias`
/// for the first block, then the final norm and `{layers + 3}.weight` for the head.
pub fn gpt<T: Float>(shape: GptShape, rng: &mut impl Rng) -> Sequential<T> {
    let init = Init::Normal(0.02);
    let mut model = Sequential::new()
        .layer(Embedding::with_init(shape.vocab, shape.dim, init, rng))
        .layer(PositionalEmbedding::with_init(
            shape.block_size,
            shape.dim,
            init,
            rng,
        ));
    for _ in 0..shape.layers {
        let block = TransformerBlock::new(shape.dim, shape.heads, shape.mlp_ratio, true, init, rng);
        model = model.layer(block);
    }
    model
        .layer(LayerNorm::new(&[shape.dim]))
        .layer(Linear::with_init(shape.dim, shape.vocab, false, init, rng))
}

/// The reference `gpt` workload's optimizer (`shared/bench/torch_gpt.py`): AdamW,
/// lr 1e-3, betas (0.9, 0.99), ε 1e-8, weight decay 0.1 on matrices only.
pub fn gpt_optimizer<T: Float>(
    params: Vec<(String, crate::tensor::Tensor<T>)>,
) -> crate::optim::Adam<T> {
    crate::optim::AdamW::new(params, 1e-3)
        .betas(0.9, 0.99)
        .eps(1e-8)
        .weight_decay(0.1)
        .decay_matrices_only()
}
