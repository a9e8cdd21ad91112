//! One node (or a node and the bias `Add` after it) as one layer config: its
//! attributes checked against what nabla's layer can do, its weights taken in
//! nabla's layout.

use std::collections::HashSet;

use super::graph::{Reader, describe};
use crate::experiment::{LayerConfig, NormAxes, Width};
use crate::onnx::model::{Attribute, Node, Values};
use crate::tensor::Tensor;

impl Reader<'_> {
    /// A constant input, as a tensor.
    pub(super) fn weight(
        &self,
        node: &Node,
        index: usize,
        what: &str,
    ) -> Result<(String, Tensor), String> {
        let name = node
            .inputs
            .get(index)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("{} has no {what} (input {index})", describe(node)))?;
        let tensor = self.constant(name).ok_or_else(|| {
            format!(
                "{}: its {what} `{name}` is computed in the graph; nabla imports weights given as initializers or constants",
                describe(node)
            )
        })?;
        let Values::Float(values) = &tensor.values else {
            return Err(format!(
                "{}: its {what} `{name}` holds integers, not floats",
                describe(node)
            ));
        };
        let shape: Vec<usize> = tensor.dims.iter().map(|&d| d as usize).collect();
        Ok((name.clone(), Tensor::from_vec(values.clone(), &shape)))
    }

    pub(super) fn gemm(
        &self,
        node: &Node,
        param: &mut impl FnMut(&str, &str, Tensor),
    ) -> Result<LayerConfig, String> {
        if float_attribute(node, "alpha", 1.0)? != 1.0
            || float_attribute(node, "beta", 1.0)? != 1.0
            || int_attribute(node, "transA", 0)? != 0
        {
            return Err(format!(
                "{}: nabla imports Gemm as a linear layer, y = x·Wᵀ + b (alpha = beta = 1, transA = 0)",
                describe(node)
            ));
        }
        let (source, weight) = self.weight(node, 1, "weight")?;
        if weight.ndim() != 2 {
            return Err(format!(
                "{}: its weight has shape {:?}, not a matrix",
                describe(node),
                weight.shape()
            ));
        }
        // nabla's (and PyTorch's) layout is [out, in]: transB = 1 is it already
        let weight = if int_attribute(node, "transB", 0)? == 1 {
            weight
        } else {
            weight.t()
        };
        let out = weight.shape()[0];
        param("weight", &source, weight);
        let bias = node.inputs.get(2).is_some_and(|b| !b.is_empty());
        if bias {
            let (source, bias) = self.weight(node, 2, "bias")?;
            if bias.numel() != out {
                return Err(format!(
                    "{}: its bias of shape {:?} does not give one value per output ({out})",
                    describe(node),
                    bias.shape()
                ));
            }
            param("bias", &source, bias.reshape(&[out]));
        }
        Ok(LayerConfig::Linear {
            out: Width::Count(out),
            bias,
            init: None,
        })
    }

    /// `MatMul` by a constant `[in, out]` matrix, and the `Add` of a bias after it if
    /// there is one: a linear layer over the last axis.
    pub(super) fn matmul(
        &self,
        node: &Node,
        allowed: &HashSet<usize>,
        param: &mut impl FnMut(&str, &str, Tensor),
    ) -> Result<(LayerConfig, String), String> {
        let (source, weight) = self.weight(node, 1, "weight")?;
        if weight.ndim() != 2 {
            return Err(format!(
                "{}: nabla imports MatMul by a constant matrix as a linear layer; this one is of shape {:?}",
                describe(node),
                weight.shape()
            ));
        }
        let out = weight.shape()[1];
        param("weight", &source, weight.t());
        let product = &node.outputs[0];
        if let [next] = self.readers(product, allowed)[..] {
            let add = &self.nodes[next];
            let other = add.inputs.iter().find(|i| *i != product);
            if add.op_type == "Add"
                && let Some(bias) = other.and_then(|b| self.constant(b))
                && bias.dims.iter().product::<i64>() == out as i64
                && bias.dims.last() == Some(&(out as i64))
            {
                let index = add
                    .inputs
                    .iter()
                    .position(|i| i != product)
                    .expect("found above");
                let (source, bias) = self.weight(add, index, "bias")?;
                param("bias", &source, bias.reshape(&[out]));
                let layer = LayerConfig::Linear {
                    out: Width::Count(out),
                    bias: true,
                    init: None,
                };
                return Ok((layer, add.outputs[0].clone()));
            }
        }
        let layer = LayerConfig::Linear {
            out: Width::Count(out),
            bias: false,
            init: None,
        };
        Ok((layer, product.clone()))
    }

    pub(super) fn conv(
        &self,
        node: &Node,
        param: &mut impl FnMut(&str, &str, Tensor),
    ) -> Result<LayerConfig, String> {
        let (source, weight) = self.weight(node, 1, "weight")?;
        let &[out_channels, _, kh, kw] = weight.shape() else {
            return Err(format!(
                "{}: nabla imports 2-D convolutions; its weight has shape {:?}",
                describe(node),
                weight.shape()
            ));
        };
        if let Some(Attribute::String(pad)) = node.attribute("auto_pad")
            && pad != "NOTSET"
        {
            return Err(format!(
                "{}: auto_pad = {pad}; nabla imports explicit pads",
                describe(node)
            ));
        }
        let square = |key: &str, default: i64| -> Result<usize, String> {
            let values = ints_attribute(node, key, &[default, default])?;
            match values[..] {
                [a, b] if a == b && a >= 0 => Ok(a as usize),
                _ => Err(format!(
                    "{}: {key} = {values:?}; nabla's conv2d takes the same value for height and width",
                    describe(node)
                )),
            }
        };
        let stride = square("strides", 1)?;
        let dilation = square("dilations", 1)?;
        let padding = symmetric_pads(node)?;
        if kh != kw {
            return Err(format!(
                "{}: a {kh}×{kw} kernel; nabla's conv2d takes square kernels",
                describe(node)
            ));
        }
        let groups = int_attribute(node, "group", 1)?;
        param("weight", &source, weight);
        let bias = node.inputs.get(2).is_some_and(|b| !b.is_empty());
        if bias {
            let (source, bias) = self.weight(node, 2, "bias")?;
            param("bias", &source, bias);
        }
        Ok(LayerConfig::Conv2d {
            out_channels,
            kernel: kh,
            stride,
            padding,
            dilation,
            groups: usize::try_from(groups)
                .map_err(|_| format!("{}: group = {groups}", describe(node)))?,
            bias,
        })
    }

    pub(super) fn pool(&self, node: &Node) -> Result<LayerConfig, String> {
        let kernel = ints_attribute(node, "kernel_shape", &[])?;
        let strides = ints_attribute(node, "strides", &[1, 1])?;
        let [k, k2] = kernel[..] else {
            return Err(format!(
                "{}: nabla imports 2-D pooling; kernel_shape = {kernel:?}",
                describe(node)
            ));
        };
        let [s, s2] = strides[..] else {
            return Err(format!("{}: strides = {strides:?}", describe(node)));
        };
        if k != k2 || s != s2 || k < 1 || s < 1 {
            return Err(format!(
                "{}: kernel_shape {kernel:?} and strides {strides:?}; nabla pools square windows with equal strides",
                describe(node)
            ));
        }
        if int_attribute(node, "ceil_mode", 0)? != 0
            || ints_attribute(node, "dilations", &[1, 1])? != [1, 1]
        {
            return Err(format!(
                "{}: ceil_mode and dilations are not imported",
                describe(node)
            ));
        }
        if node.outputs.len() > 1
            && !node.outputs[1].is_empty()
            && self.readers.contains_key(node.outputs[1].as_str())
        {
            return Err(format!(
                "{}: its indices output is used; nabla's pooling gives values only",
                describe(node)
            ));
        }
        let padding = symmetric_pads(node)?;
        let (kernel, stride) = (k as usize, Some(s as usize));
        Ok(if node.op_type == "MaxPool" {
            LayerConfig::MaxPool2d {
                kernel,
                stride,
                padding,
            }
        } else {
            if padding > 0 && int_attribute(node, "count_include_pad", 0)? == 0 {
                return Err(format!(
                    "{}: averages without the padding (count_include_pad = 0); nabla counts padded zeros, as PyTorch does by default",
                    describe(node)
                ));
            }
            LayerConfig::AvgPool2d {
                kernel,
                stride,
                padding,
            }
        })
    }

    pub(super) fn flatten_axis(&self, node: &Node) -> Result<i64, String> {
        int_attribute(node, "axis", 1)
    }

    pub(super) fn batch_norm(
        &self,
        node: &Node,
        param: &mut impl FnMut(&str, &str, Tensor),
    ) -> Result<LayerConfig, String> {
        check_epsilon(node)?;
        if int_attribute(node, "training_mode", 0)? != 0 {
            return Err(format!(
                "{}: is in training mode; export the model in evaluation mode",
                describe(node)
            ));
        }
        for (index, local) in [
            (1, "weight"),
            (2, "bias"),
            (3, "running_mean"),
            (4, "running_var"),
        ] {
            let (source, tensor) = self.weight(node, index, local)?;
            param(local, &source, tensor);
        }
        // a training counter nabla keeps with the statistics; the graph has none
        param("num_batches_tracked", "", Tensor::zeros(&[]));
        Ok(LayerConfig::BatchNorm)
    }

    pub(super) fn layer_norm(
        &self,
        node: &Node,
        param: &mut impl FnMut(&str, &str, Tensor),
    ) -> Result<LayerConfig, String> {
        check_epsilon(node)?;
        let (source, scale) = self.weight(node, 1, "scale")?;
        let axis = int_attribute(node, "axis", -1)?;
        let over = if scale.ndim() == 1 {
            NormAxes::Last
        } else if axis == 1 || axis == -(scale.ndim() as i64) {
            NormAxes::Sample
        } else {
            return Err(format!(
                "{}: normalises from axis {axis} with a scale of shape {:?}; nabla normalises the last axis or the whole sample",
                describe(node),
                scale.shape()
            ));
        };
        let bias = if node.inputs.get(2).is_some_and(|b| !b.is_empty()) {
            self.weight(node, 2, "bias")?
        } else {
            (String::new(), Tensor::zeros(scale.shape()))
        };
        param("weight", &source, scale);
        param("bias", &bias.0, bias.1);
        Ok(LayerConfig::LayerNorm { over })
    }

    pub(super) fn embedding(
        &self,
        node: &Node,
        x: &str,
        param: &mut impl FnMut(&str, &str, Tensor),
    ) -> Result<LayerConfig, String> {
        if node.inputs.first().map(String::as_str) == Some(x)
            || int_attribute(node, "axis", 0)? != 0
        {
            return Err(format!(
                "{}: nabla imports Gather only as an embedding (a constant table indexed by the input's ids)",
                describe(node)
            ));
        }
        let (source, table) = self.weight(node, 0, "embedding table")?;
        let &[_, dim] = table.shape() else {
            return Err(format!(
                "{}: its table has shape {:?}, not [tokens, dim]",
                describe(node),
                table.shape()
            ));
        };
        param("weight", &source, table);
        Ok(LayerConfig::Embedding { dim, init: None })
    }
}

pub(super) fn int_attribute(node: &Node, key: &str, default: i64) -> Result<i64, String> {
    match node.attribute(key) {
        None => Ok(default),
        Some(Attribute::Int(value)) => Ok(*value),
        Some(other) => Err(format!(
            "{}: attribute {key} is {other:?}, not an integer",
            describe(node)
        )),
    }
}

pub(super) fn float_attribute(node: &Node, key: &str, default: f32) -> Result<f32, String> {
    match node.attribute(key) {
        None => Ok(default),
        Some(Attribute::Float(value)) => Ok(*value),
        Some(other) => Err(format!(
            "{}: attribute {key} is {other:?}, not a float",
            describe(node)
        )),
    }
}

pub(super) fn ints_attribute(node: &Node, key: &str, default: &[i64]) -> Result<Vec<i64>, String> {
    match node.attribute(key) {
        None => Ok(default.to_vec()),
        Some(Attribute::Ints(values)) => Ok(values.clone()),
        Some(other) => Err(format!(
            "{}: attribute {key} is {other:?}, not integers",
            describe(node)
        )),
    }
}

/// The one padding of a window padded alike on every side.
pub(super) fn symmetric_pads(node: &Node) -> Result<usize, String> {
    let pads = ints_attribute(node, "pads", &[0, 0, 0, 0])?;
    match pads[..] {
        [a, b, c, d] if a == b && b == c && c == d && a >= 0 => Ok(a as usize),
        _ => Err(format!(
            "{}: pads = {pads:?}; nabla pads every side alike",
            describe(node)
        )),
    }
}

/// nabla's norms use ε = 1e-5 (PyTorch's default).
pub(super) fn check_epsilon(node: &Node) -> Result<(), String> {
    let epsilon = float_attribute(node, "epsilon", 1e-5)?;
    if epsilon != 1e-5 {
        return Err(format!(
            "{}: epsilon = {epsilon}; nabla's norms use 1e-5",
            describe(node)
        ));
    }
    Ok(())
}
