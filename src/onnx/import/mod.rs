//! ONNX graphs back into nabla layers: `nabla import`. The graph is read as a chain
//! from its input to its output; each stretch of it becomes one layer config —
//! a node (`Conv` → `conv2d`), a known pair (`MatMul` + `Add` → `linear`), a run of
//! elementwise nodes recognised by the function they compute (PyTorch writes GELU as
//! `Div`, `Erf`, `Add`, `Mul`, `Mul`), or a residual block: where the chain forks
//! and its branches meet again in an `Add`.
//!
//! Weights are renamed as nabla names its parameters (`1.layers.0.weight`); where
//! that differs from the graph's name (PyTorch folds a batch norm into the
//! convolution before it, writing `onnx::Conv_30`) the pair is kept in
//! [`Imported::sources`].

mod activation;
mod graph;
mod layers;

use std::collections::{HashMap, HashSet};

use super::model::{Dim, ElemType, Model};
use crate::checkpoint::assign_state;
use crate::experiment::{LayerConfig, build_model};
use crate::nn::{Module, Sequential};
use crate::tensor::Tensor;
use graph::{Reader, describe};
use layers::float_attribute;

/// What `nabla import` read from an ONNX file.
#[derive(Debug)]
pub struct Imported {
    /// The network, first layer to last.
    pub layers: Vec<LayerConfig>,
    /// One sample's input shape (the graph's input without its batch axis).
    pub input_shape: Vec<usize>,
    /// Whether the input is token ids (`int64`) rather than float features.
    pub token_ids: bool,
    /// The number of outputs per sample (per position, for token ids).
    pub classes: usize,
    /// Every parameter and buffer under nabla's name.
    pub weights: Vec<(String, Tensor)>,
    /// `(nabla's name, the graph's name)` for every weight.
    pub sources: Vec<(String, String)>,
    /// The model's `metadata_props` (class names and preprocessing, when nabla wrote it).
    pub metadata: Vec<(String, String)>,
}

impl Imported {
    /// The network with the imported weights (`source`, the file, names it in errors).
    pub fn model(&self, source: &std::path::Path) -> crate::Result<Sequential> {
        let (model, _) = build_model(
            &self.layers,
            &self.input_shape,
            self.classes,
            &mut crate::rng(0),
        )?;
        assign_state(source, &model, &self.weights)?;
        model.eval();
        Ok(model)
    }
}

/// The ops `nabla import` reads.
pub const SUPPORTED_OPS: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "Neg",
    "Exp",
    "Abs",
    "Erf",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Softsign",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "BatchNormalization",
    "LayerNormalization",
    "Gather",
    "Dropout",
    "Identity",
    "Constant",
];

/// Reads the network in an ONNX file's bytes, or says what in it nabla cannot read:
/// a broken file, an op it does not import (naming the node), a graph that is not
/// a chain of layers.
pub fn import(bytes: &[u8]) -> Result<Imported, String> {
    let model = Model::decode(bytes)?;
    if model.opset < 13 {
        return Err(format!(
            "the model uses ONNX opset {}; nabla imports opset 13 and later (re-export it with a newer opset)",
            model.opset
        ));
    }
    let graph = &model.graph;
    let reader = Reader::new(&model)?;
    let input = reader.input;
    if model.producer == "nabla" && ["pixels", "features"].contains(&input.name.as_str()) {
        return Err(
            "this graph was exported with --with-preprocessing, whose first nodes prepare raw inputs; import the file `nabla export` writes without it (its preprocessing travels in the metadata)".into(),
        );
    }
    let [output] = &graph.outputs[..] else {
        return Err(format!(
            "the graph has {} outputs; nabla imports a graph with one (the logits)",
            graph.outputs.len()
        ));
    };
    let all: HashSet<usize> = (0..graph.nodes.len()).collect();
    let mut weights = Vec::new();
    let layers = reader.sequence(&input.name, &output.name, "", &all, &mut weights)?;
    if let Err((key, message)) = layers.iter().try_for_each(LayerConfig::check) {
        return Err(format!(
            "the graph makes a layer nabla cannot have: `{key}`: {message}"
        ));
    }
    let token_ids = input.elem == ElemType::Int64;
    let input_shape = input.dims[1..]
        .iter()
        .map(|dim| match dim {
            Dim::Fixed(size) if *size > 0 => Ok(*size as usize),
            _ => Err(format!(
                "the graph input `{}` has shape {:?}: nabla needs every axis but the first (the batch) fixed",
                input.name, input.dims
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let classes = match output.dims.last() {
        Some(Dim::Fixed(size)) if *size > 0 => *size as usize,
        _ => {
            return Err(format!(
                "the graph output `{}` has no fixed number of classes",
                output.name
            ));
        }
    };
    let (weights, sources) = weights
        .into_iter()
        .map(|(name, source, tensor)| ((name.clone(), tensor), (name, source)))
        .unzip();
    Ok(Imported {
        layers,
        input_shape,
        token_ids,
        classes,
        weights,
        sources,
        metadata: model.metadata.clone(),
    })
}

/// How deep residual blocks may nest: deeper is a malformed file, not a network.
const MAX_NESTING: usize = 64;

/// A weight found for a layer: (nabla's name, the graph's name, the values).
type Weight = (String, String, Tensor);

impl Reader<'_> {
    /// The layers from `from` to `to`, their weights named under `prefix`.
    pub(super) fn sequence(
        &self,
        from: &str,
        to: &str,
        prefix: &str,
        allowed: &HashSet<usize>,
        weights: &mut Vec<Weight>,
    ) -> Result<Vec<LayerConfig>, String> {
        if prefix.matches(".layers").count() + prefix.matches(".shortcut").count() > MAX_NESTING {
            return Err(format!(
                "residual blocks nest more than {MAX_NESTING} deep (at `{prefix}`)"
            ));
        }
        let mut layers = Vec::new();
        let mut x = from.to_string();
        let name_at = |index: usize| {
            if prefix.is_empty() {
                index.to_string()
            } else {
                format!("{prefix}.{index}")
            }
        };
        while x != to {
            let name = name_at(layers.len());
            let mut found = Vec::new();
            let (layer, next) = self.layer(&x, to, &name, allowed, &mut found)?;
            if let Some(layer) = layer {
                // PyTorch's index of this layer, when the graph's weight names tell it
                // and it is further on: layers with no inference form (dropout, a batch
                // norm folded into its convolution) stood between. Identities take
                // their places, so that every weight keeps PyTorch's name.
                if let Some(index) = source_index(&name, prefix, &found)
                    && index > layers.len()
                {
                    let moved = name_at(index);
                    for (weight, _, _) in &mut found {
                        *weight = format!("{moved}{}", &weight[name.len()..]);
                    }
                    layers.resize(index, LayerConfig::Dropout { p: 0.0 });
                }
                layers.push(layer);
            }
            weights.extend(found);
            x = next;
        }
        Ok(layers)
    }

    /// The layer that starts at value `x` (none for an identity), and the value after it.
    pub(super) fn layer(
        &self,
        x: &str,
        to: &str,
        name: &str,
        allowed: &HashSet<usize>,
        weights: &mut Vec<Weight>,
    ) -> Result<(Option<LayerConfig>, String), String> {
        let readers = self.readers(x, allowed);
        if readers.len() != 1 {
            // the chain forks at x: an activation written out, or a residual block
            // (or nothing reads x: `region` says so)
            let (region, merge) = self.region(x, allowed)?;
            if let Some(found) = self.activation(x, to, allowed)? {
                return Ok(found);
            }
            return self.residual(x, &region, merge, name, weights);
        }
        let node = &self.nodes[readers[0]];
        let output = node.outputs[0].clone();
        let mut param = |local: &str, source: &str, tensor: Tensor| {
            weights.push((format!("{name}.{local}"), source.to_string(), tensor));
        };
        let layer = match node.op_type.as_str() {
            "Identity" | "Dropout" => None,
            "Gemm" => Some(self.gemm(node, &mut param)?),
            "MatMul" => {
                let (layer, end) = self.matmul(node, allowed, &mut param)?;
                return Ok((Some(layer), end));
            }
            "Conv" => Some(self.conv(node, &mut param)?),
            "MaxPool" | "AveragePool" => Some(self.pool(node)?),
            "GlobalAveragePool" => {
                // followed by Flatten: nabla's global_avg_pool ([C, H, W] → [C])
                let next = self.readers(&output, allowed);
                if let [next] = next[..]
                    && self.nodes[next].op_type == "Flatten"
                    && self.flatten_axis(&self.nodes[next])? == 1
                {
                    return Ok((
                        Some(LayerConfig::GlobalAvgPool),
                        self.nodes[next].outputs[0].clone(),
                    ));
                }
                Some(LayerConfig::AdaptiveAvgPool2d { out: [1, 1] })
            }
            "Flatten" => match self.flatten_axis(node)? {
                1 => Some(LayerConfig::Flatten),
                axis => {
                    return Err(format!(
                        "{}: flattens from axis {axis}; nabla's flatten keeps the batch axis (axis 1)",
                        describe(node)
                    ));
                }
            },
            "BatchNormalization" => Some(self.batch_norm(node, &mut param)?),
            "LayerNormalization" => Some(self.layer_norm(node, &mut param)?),
            "Gather" => Some(self.embedding(node, x, &mut param)?),
            "LeakyRelu" => {
                // the f32 slope as the decimal it was written as (0.2, not 0.2000000029…)
                let slope = float_attribute(node, "alpha", 0.01)?;
                let slope = slope.to_string().parse().unwrap_or(slope as f64);
                Some(LayerConfig::LeakyRelu { slope })
            }
            _ => match self.activation(x, to, allowed)? {
                Some(found) => return Ok(found),
                None => {
                    return Err(format!(
                        "{} does not start a layer nabla has (after `{x}`)",
                        describe(node)
                    ));
                }
            },
        };
        Ok((layer, output))
    }

    /// The nodes from `x` until its uses come back together in one value: the
    /// merge node last. For a chain, the one node that reads `x`.
    pub(super) fn region(
        &self,
        x: &str,
        allowed: &HashSet<usize>,
    ) -> Result<(Vec<usize>, usize), String> {
        let first_reader = |value: &str| self.readers(value, allowed);
        let mut live: HashMap<String, usize> = HashMap::new();
        let uses = first_reader(x).len();
        if uses == 0 {
            return Err(format!(
                "`{x}` is read by no node, but it is not the graph's output"
            ));
        }
        live.insert(x.to_string(), uses);
        let start = self.writer.get(x).map_or(0, |&w| w + 1);
        let mut region = Vec::new();
        for index in start..self.nodes.len() {
            if !allowed.contains(&index) {
                continue;
            }
            let node = &self.nodes[index];
            let reads: Vec<&String> = node
                .inputs
                .iter()
                .filter(|v| live.contains_key(v.as_str()))
                .collect();
            if reads.is_empty() {
                continue;
            }
            region.push(index);
            for value in reads {
                let remaining = live.get_mut(value.as_str()).expect("live");
                *remaining -= 1;
                if *remaining == 0 {
                    live.remove(value.as_str());
                }
            }
            for value in &node.outputs {
                let uses = first_reader(value).len();
                if uses > 0 {
                    live.insert(value.clone(), uses);
                }
            }
            if live.len() <= 1 {
                return Ok((region, index));
            }
        }
        Err(format!(
            "the uses of `{x}` never come back together in one value (nabla imports chains of layers and residual blocks)"
        ))
    }

    /// `layers(x) + shortcut(x)` from the region that forks at `x` and ends in an Add.
    pub(super) fn residual(
        &self,
        x: &str,
        region: &[usize],
        merge: usize,
        name: &str,
        weights: &mut Vec<Weight>,
    ) -> Result<(Option<LayerConfig>, String), String> {
        let add = &self.nodes[merge];
        let [a, b] = &add.inputs[..] else {
            return Err(format!("{} has {} inputs", describe(add), add.inputs.len()));
        };
        if add.op_type != "Add" || self.constant(a).is_some() || self.constant(b).is_some() {
            return Err(format!(
                "`{x}` is used by several nodes that meet again in {}; nabla imports such a fork only as a residual block (two branches added) or an activation it knows",
                describe(add)
            ));
        }
        // the branch that ends in `end`: the region's nodes it is computed from
        let branch = |end: &str| -> HashSet<usize> {
            let in_region: HashSet<usize> = region.iter().copied().collect();
            let mut nodes = HashSet::new();
            let mut pending = vec![end.to_string()];
            while let Some(value) = pending.pop() {
                if let Some(&writer) = self.writer.get(value.as_str())
                    && in_region.contains(&writer)
                    && writer != merge
                    && nodes.insert(writer)
                {
                    pending.extend(self.nodes[writer].inputs.iter().cloned());
                }
            }
            nodes
        };
        // an identity shortcut is x itself; otherwise the first input is the main branch
        let (body, shortcut) = if b == x {
            (a, None)
        } else if a == x {
            (b, None)
        } else {
            (a, Some(b))
        };
        let layers = self.sequence(x, body, &format!("{name}.layers"), &branch(body), weights)?;
        if layers.is_empty() {
            return Err(format!("{}: its main branch has no layers", describe(add)));
        }
        let shortcut = match shortcut {
            Some(end) => {
                Some(self.sequence(x, end, &format!("{name}.shortcut"), &branch(end), weights)?)
            }
            None => None,
        };
        Ok((
            Some(LayerConfig::Residual { layers, shortcut }),
            add.outputs[0].clone(),
        ))
    }
}

/// The index in its sequence that the graph's names give the layer named `name`
/// (`prefix.index`): from a weight whose graph name ends as nabla's does
/// (`…4.weight` for nabla's `3.weight` says 4).
fn source_index(name: &str, prefix: &str, weights: &[Weight]) -> Option<usize> {
    weights.iter().find_map(|(weight, source, _)| {
        let rest = &weight[name.len()..];
        let head = source.strip_suffix(rest)?;
        let index = if prefix.is_empty() {
            head
        } else {
            head.strip_prefix(prefix)?.strip_prefix('.')?
        };
        index.parse().ok()
    })
}
