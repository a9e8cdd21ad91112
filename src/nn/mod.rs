//! Layers and networks: the `Module` trait, the layers people know from PyTorch,
//! `Sequential`, and weight initialisation.
//!
//! Parameter names and layouts are PyTorch's (`0.weight` is the `[out, in]` weight
//! of a `Sequential`'s first Linear), so a checkpoint opens in PyTorch and back.

pub mod activation;
pub mod attention;
pub mod conv;
pub mod dropout;
pub mod embedding;
pub mod init;
pub mod linear;
pub mod norm;
pub mod pool;
pub mod residual;
pub mod sequential;
pub mod transformer;
pub mod zoo;

pub use activation::{Gelu, LeakyRelu, Relu, Sigmoid, Silu, Softmax, Softsign, Tanh};
pub use attention::{KvCache, MultiHeadAttention};
pub use conv::Conv2d;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use linear::Linear;
pub use norm::{BatchNorm1d, BatchNorm2d, LayerNorm};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, Flatten, GlobalAvgPool2d, MaxPool2d};
pub use residual::Residual;
pub use sequential::Sequential;
pub use transformer::{PositionalEmbedding, TransformerBlock};

use crate::element::Float;
use crate::onnx;
use crate::tensor::Tensor;

/// A piece of a network: it maps an input tensor to an output tensor and owns
/// named parameters (and, for batch norm, named buffers).
///
/// All methods take `&self`: parameters are tensor handles updated in place by
/// optimizers, and the train/eval flag is interior state.
pub trait Module<T: Float = f32> {
    /// Forward propagation.
    fn forward(&self, input: &Tensor<T>) -> Tensor<T>;

    /// Forward propagation of new positions of a sequence during generation, with
    /// the keys and values of the earlier ones in `cache` (see [`KvCache`]). The
    /// default, plain `forward`, is right for every layer that treats positions
    /// independently (linear, norms, activations, embeddings); attention and
    /// position embeddings, and containers of them, say otherwise.
    fn forward_cached(&self, input: &Tensor<T>, cache: &mut KvCache<T>) -> Tensor<T> {
        let _ = cache;
        self.forward(input)
    }

    /// A one-line description, like PyTorch's `repr`: `Linear(in=784, out=256)`.
    fn describe(&self) -> String;

    /// The shape of one sample's output for one sample's input of shape `input`
    /// (no batch axis), or why the layer cannot take such an input. Model building
    /// asks every layer in turn, so a stack that cannot connect is reported before
    /// anything runs. The default keeps the shape, as activations, dropout and
    /// norms do; layers that change it say how.
    ///
    /// ```
    /// use nabla::nn::{Flatten, Module};
    /// assert_eq!(Module::<f32>::output_shape(&Flatten, &[16, 5, 5]), Ok(vec![400]));
    /// ```
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }

    /// Writes this layer into an ONNX graph: the nodes that compute it from `input`
    /// (`input.shape` is one sample's; the graph's tensors have the batch axis
    /// first), returning the name of its output. Weights go in as initializers
    /// under their parameter names. A layer without an ONNX form keeps this
    /// default, and export stops with its message, naming the layer.
    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        let _ = (onnx, input);
        Err(format!(
            "{} has no ONNX form (a layer of your own exports once it implements `Module::to_onnx`)",
            self.describe()
        ))
    }

    /// Trainable tensors with their PyTorch `state_dict` names, relative to this module.
    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        Vec::new()
    }

    /// The modules this one is made of, in order (a [`Sequential`]'s layers), for
    /// tools that look inside a network layer by layer: the dashboard's drawing, the
    /// dead-ReLU count. A module with none is looked at as one layer.
    fn children(&self) -> Vec<&dyn Module<T>> {
        Vec::new()
    }

    /// Non-trainable state saved with the model (batch norm's running statistics).
    fn named_buffers(&self) -> Vec<(String, Tensor<T>)> {
        Vec::new()
    }

    /// Switches training behaviour (dropout, batch statistics) on or off.
    fn set_training(&self, _training: bool) {}

    /// Draws this module's randomness (dropout masks) from stream `stream` of its
    /// seed. Data-parallel ranks each take their rank, so no two ranks draw the same
    /// masks for their shares of a batch; stream 0 is the one a single process uses.
    fn set_random_stream(&self, _stream: u64) {}

    /// Synchronised batch norm: while training, batch statistics are taken over every
    /// rank's share of the batch, `across` adding up per-channel sums over the ranks
    /// (so the ranks normalise as one process with the whole batch would).
    fn share_batch_statistics(&self, _across: &crate::ops::norm::SumAcross) {}

    /// Every parameter, in `named_parameters` order.
    fn parameters(&self) -> Vec<Tensor<T>> {
        self.named_parameters()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// Parameters and buffers: what a checkpoint stores.
    fn state_dict(&self) -> Vec<(String, Tensor<T>)> {
        let mut state = self.named_parameters();
        state.extend(self.named_buffers());
        state
    }

    /// The number of scalar parameters.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(Tensor::numel).sum()
    }

    /// Freezes (`false`) or unfreezes (`true`) every parameter. Frozen parameters get
    /// no gradient; batch norm still updates its running statistics in training mode.
    fn set_requires_grad(&self, on: bool) {
        for p in self.parameters() {
            p.set_requires_grad(on);
        }
    }

    /// Training mode (the default): dropout drops, batch norm uses batch statistics.
    fn train(&self) {
        self.set_training(true);
    }

    /// Evaluation mode: dropout is the identity, batch norm uses running statistics.
    fn eval(&self) {
        self.set_training(false);
    }

    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        for p in self.parameters() {
            p.zero_grad();
        }
    }
}

/// Names of a child's entries under `prefix`: `weight` → `0.weight`.
/// The layers of `model` as tools look at it: its children, or itself when it has none.
pub fn layers_of<T: Float>(model: &dyn Module<T>) -> Vec<&dyn Module<T>> {
    let children = model.children();
    if children.is_empty() {
        vec![model]
    } else {
        children
    }
}

/// A child's entries (`weight`, `bias`) named as its parent calls it (`hidden.weight`),
/// as PyTorch names a module's attributes: what a [`Module::named_parameters`] of a
/// struct of layers returns.
pub fn prefixed<T: Float>(
    prefix: &str,
    entries: Vec<(String, Tensor<T>)>,
) -> Vec<(String, Tensor<T>)> {
    entries
        .into_iter()
        .map(|(name, tensor)| (format!("{prefix}.{name}"), tensor))
        .collect()
}
