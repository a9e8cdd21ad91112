//! A stack of layers applied in order; parameter names are the layer's index,
//! exactly as PyTorch's `nn.Sequential.state_dict()` names them.

use super::{KvCache, Module, prefixed};
use crate::element::Float;
use crate::onnx;
use crate::tensor::Tensor;

/// Layers applied one after the other.
///
/// ```
/// use nabla::nn::{Linear, Module, Relu, Sequential};
/// let mut rng = nabla::rng(0);
/// let mlp = Sequential::<f32>::new()
///     .layer(Linear::new(784, 256, &mut rng))
///     .layer(Relu)
///     .layer(Linear::new(256, 10, &mut rng));
/// let names: Vec<String> = mlp.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// ```
pub struct Sequential<T: Float = f32> {
    layers: Vec<Box<dyn Module<T>>>,
}

impl<T: Float> Default for Sequential<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Sequential<T> {
    /// An empty stack.
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }

    /// Appends a layer (builder style).
    pub fn layer(mut self, layer: impl Module<T> + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends a boxed layer.
    pub fn push(&mut self, layer: Box<dyn Module<T>>) {
        self.layers.push(layer);
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Module<T>>] {
        &self.layers
    }

    /// The number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// A Keras-style table: each layer, its output shape for an input of
    /// `input_shape` (batch axis first), and its parameter count. The shapes are
    /// asked of the layers, so nothing runs: no batch-norm statistics or dropout
    /// draws move.
    pub fn summary(&self, input_shape: &[usize]) -> String {
        let (batch, mut sample) = (input_shape[0], Ok(input_shape[1..].to_vec()));
        let mut rows = vec![(
            "Layer".to_string(),
            "Output shape".to_string(),
            "Params".to_string(),
        )];
        for (index, layer) in self.layers.iter().enumerate() {
            sample = sample.and_then(|shape| layer.output_shape(&shape));
            let shape = match &sample {
                Ok(shape) => format!("{:?}", [&[batch], &shape[..]].concat()),
                Err(_) => "?".to_string(),
            };
            rows.push((
                format!("{index}: {}", layer.describe()),
                shape,
                layer.num_parameters().to_string(),
            ));
        }
        let widths = rows.iter().fold((0, 0, 0), |w, r| {
            (w.0.max(r.0.len()), w.1.max(r.1.len()), w.2.max(r.2.len()))
        });
        let rule = "─".repeat(widths.0 + widths.1 + widths.2 + 4);
        let mut out = String::new();
        for (i, (layer, shape, params)) in rows.iter().enumerate() {
            out.push_str(&format!(
                "{layer:<w0$}  {shape:<w1$}  {params:>w2$}\n",
                w0 = widths.0,
                w1 = widths.1,
                w2 = widths.2
            ));
            if i == 0 {
                out.push_str(&rule);
                out.push('\n');
            }
        }
        let trainable: usize = self
            .parameters()
            .iter()
            .filter(|p| p.tracks_grad())
            .map(Tensor::numel)
            .sum();
        out.push_str(&rule);
        out.push_str(&format!(
            "\nTotal params: {}\nTrainable params: {trainable}\n",
            self.num_parameters()
        ));
        out
    }
}

impl<T: Float> Module<T> for Sequential<T> {
    fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
        self.layers
            .iter()
            .fold(input.clone(), |x, layer| layer.forward(&x))
    }

    fn children(&self) -> Vec<&dyn Module<T>> {
        self.layers.iter().map(|layer| layer.as_ref()).collect()
    }

    fn forward_cached(&self, input: &Tensor<T>, cache: &mut KvCache<T>) -> Tensor<T> {
        self.layers
            .iter()
            .fold(input.clone(), |x, layer| layer.forward_cached(&x, cache))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        self.layers
            .iter()
            .enumerate()
            .try_fold(input.to_vec(), |shape, (index, layer)| {
                layer
                    .output_shape(&shape)
                    .map_err(|message| format!("layer {index} ({}): {message}", layer.describe()))
            })
    }

    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        let mut x = input.clone();
        for (index, layer) in self.layers.iter().enumerate() {
            x = onnx
                .scoped(&index.to_string(), |onnx| onnx.apply(layer.as_ref(), &x))
                .map_err(|message| format!("layer {index} ({}): {message}", layer.describe()))?;
        }
        Ok(x.name)
    }

    fn describe(&self) -> String {
        let inner: Vec<String> = self.layers.iter().map(|l| l.describe()).collect();
        format!("Sequential({})", inner.join(", "))
    }

    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, layer)| prefixed(&i.to_string(), layer.named_parameters()))
            .collect()
    }

    fn named_buffers(&self) -> Vec<(String, Tensor<T>)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, layer)| prefixed(&i.to_string(), layer.named_buffers()))
            .collect()
    }

    fn set_training(&self, training: bool) {
        for layer in &self.layers {
            layer.set_training(training);
        }
    }

    fn set_random_stream(&self, stream: u64) {
        for layer in &self.layers {
            layer.set_random_stream(stream);
        }
    }
    fn share_batch_statistics(&self, across: &crate::ops::norm::SumAcross) {
        for layer in &self.layers {
            layer.share_batch_statistics(across);
        }
    }
}
