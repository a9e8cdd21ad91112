//! The residual block of ResNets: `out = body(x) + shortcut(x)`, where the shortcut
//! is the identity or a small stack (a strided 1×1 convolution and batch norm) that
//! brings `x` to the body's output shape. Backward needs no rule of its own: the
//! gradient of a sum flows unchanged into both branches, and the engine adds what
//! reaches `x` along each.

use super::{KvCache, Module, Sequential, prefixed};
use crate::element::Float;
use crate::onnx;
use crate::tensor::Tensor;

/// `body(x) + shortcut(x)`, with an identity shortcut unless one is given.
/// An activation after the addition is the next layer of the enclosing stack.
///
/// Parameter names follow PyTorch for a module with attributes `layers` and
/// `shortcut`, both `nn.Sequential`: `layers.0.weight`, `shortcut.1.running_mean`.
///
/// ```
/// use nabla::nn::{Linear, Module, Relu, Residual, Sequential};
/// let mut rng = nabla::rng(0);
/// let block = Residual::<f32>::new(
///     Sequential::new().layer(Linear::new(4, 4, &mut rng)).layer(Relu),
/// );
/// let x = nabla::Tensor::ones(&[2, 4]);
/// assert_eq!(block.forward(&x).shape(), &[2, 4]);
/// assert_eq!(Module::<f32>::output_shape(&block, &[4]), Ok(vec![4]));
/// ```
pub struct Residual<T: Float = f32> {
    /// The main branch.
    pub layers: Sequential<T>,
    /// The branch `x` takes to the addition; `None` is the identity.
    pub shortcut: Option<Sequential<T>>,
}

impl<T: Float> Residual<T> {
    /// A block with an identity shortcut: `out = layers(x) + x`.
    pub fn new(layers: Sequential<T>) -> Self {
        Residual {
            layers,
            shortcut: None,
        }
    }

    /// A block whose shortcut is its own stack (a projection): `out = layers(x) + shortcut(x)`.
    pub fn with_shortcut(layers: Sequential<T>, shortcut: Sequential<T>) -> Self {
        Residual {
            layers,
            shortcut: Some(shortcut),
        }
    }
}

impl<T: Float> Module<T> for Residual<T> {
    fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
        let body = self.layers.forward(input);
        // d(out)/d(body) = d(out)/d(shortcut) = 1
        match &self.shortcut {
            Some(shortcut) => body + shortcut.forward(input),
            None => body + input,
        }
    }

    fn forward_cached(&self, input: &Tensor<T>, cache: &mut KvCache<T>) -> Tensor<T> {
        let body = self.layers.forward_cached(input, cache);
        match &self.shortcut {
            Some(shortcut) => body + shortcut.forward_cached(input, cache),
            None => body + input,
        }
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let body = self
            .layers
            .output_shape(input)
            .map_err(|why| format!("in its layers: {why}"))?;
        let shortcut = match &self.shortcut {
            Some(shortcut) => shortcut
                .output_shape(input)
                .map_err(|why| format!("in its shortcut: {why}"))?,
            None => input.to_vec(),
        };
        if body == shortcut {
            Ok(body)
        } else {
            Err(format!(
                "its layers output shape {body:?} but its {} outputs {shortcut:?} (for an input of shape {input:?}); they must match to be added",
                if self.shortcut.is_some() {
                    "shortcut"
                } else {
                    "identity shortcut"
                }
            ))
        }
    }

    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        let body = onnx.scoped("layers", |onnx| onnx.apply(&self.layers, input))?;
        let shortcut = match &self.shortcut {
            Some(shortcut) => {
                onnx.scoped("shortcut", |onnx| onnx.apply(shortcut, input))?
                    .name
            }
            None => input.name.clone(),
        };
        Ok(onnx.node("Add", &[&body.name, &shortcut], &[]))
    }

    fn describe(&self) -> String {
        match &self.shortcut {
            Some(shortcut) => format!(
                "Residual(layers={}, shortcut={})",
                self.layers.describe(),
                shortcut.describe()
            ),
            None => format!("Residual(layers={})", self.layers.describe()),
        }
    }

    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        let mut params = prefixed("layers", self.layers.named_parameters());
        if let Some(shortcut) = &self.shortcut {
            params.extend(prefixed("shortcut", shortcut.named_parameters()));
        }
        params
    }

    fn named_buffers(&self) -> Vec<(String, Tensor<T>)> {
        let mut buffers = prefixed("layers", self.layers.named_buffers());
        if let Some(shortcut) = &self.shortcut {
            buffers.extend(prefixed("shortcut", shortcut.named_buffers()));
        }
        buffers
    }

    fn set_training(&self, training: bool) {
        self.layers.set_training(training);
        if let Some(shortcut) = &self.shortcut {
            shortcut.set_training(training);
        }
    }

    fn set_random_stream(&self, stream: u64) {
        self.layers.set_random_stream(stream);
        if let Some(shortcut) = &self.shortcut {
            shortcut.set_random_stream(stream);
        }
    }
    fn share_batch_statistics(&self, across: &crate::ops::norm::SumAcross) {
        self.layers.share_batch_statistics(across);
        if let Some(shortcut) = &self.shortcut {
            shortcut.share_batch_statistics(across);
        }
    }
}
