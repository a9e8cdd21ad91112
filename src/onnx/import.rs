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

use std::collections::{HashMap, HashSet};

use super::model::{Attribute, Dim, ElemType, Model, Node, TensorData, Values};
use crate::checkpoint::assign_state;
use crate::experiment::{LayerConfig, NormAxes, Width, build_model};
use crate::nn::{Module, Sequential};
use crate::tensor::Tensor;

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

/// Ops that act on each value alone (with scalar constants): runs of them are
/// recognised as activations by what they compute.
const ELEMENTWISE: &[&str] = &[
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Neg", "Exp", "Abs", "Erf", "Relu", "Sigmoid",
    "Tanh", "Softsign",
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

/// The graph, indexed for walking it.
struct Reader<'a> {
    nodes: &'a [Node],
    input: &'a super::ValueInfo,
    /// Initializers and the outputs of `Constant` nodes.
    constants: HashMap<&'a str, &'a TensorData>,
    /// Each computed value's readers (a node reading it twice is listed twice).
    readers: HashMap<&'a str, Vec<usize>>,
    /// Each computed value's writer.
    writer: HashMap<&'a str, usize>,
    /// Tensors of `Constant` nodes given as scalars (`value_float`), made tensors.
    scalars: Vec<TensorData>,
}

impl<'a> Reader<'a> {
    /// Indexes `model`'s graph after checking it: every op known, every value defined
    /// before it is read, one input.
    fn new(model: &'a Model) -> Result<Reader<'a>, String> {
        let graph = &model.graph;
        let initializers: HashSet<&str> =
            graph.initializers.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<&super::ValueInfo> = graph
            .inputs
            .iter()
            .filter(|input| !initializers.contains(input.name.as_str()))
            .collect();
        let [input] = inputs[..] else {
            return Err(format!(
                "the graph has {} inputs; nabla imports a graph with one",
                inputs.len()
            ));
        };
        let mut defined: HashSet<&str> = initializers.clone();
        defined.insert(&input.name);
        let mut reader = Reader {
            nodes: &graph.nodes,
            input,
            constants: graph
                .initializers
                .iter()
                .map(|t| (t.name.as_str(), t))
                .collect(),
            readers: HashMap::new(),
            writer: HashMap::new(),
            scalars: Vec::new(),
        };
        let written: HashSet<&str> = graph
            .nodes
            .iter()
            .flat_map(|n| n.outputs.iter().map(String::as_str))
            .collect();
        for (index, node) in graph.nodes.iter().enumerate() {
            if node.outputs.first().is_none_or(String::is_empty) {
                return Err(format!("{} has no output", describe(node)));
            }
            if !SUPPORTED_OPS.contains(&node.op_type.as_str()) {
                return Err(format!(
                    "{}: nabla does not import the op `{}`; it imports {}",
                    describe(node),
                    node.op_type,
                    SUPPORTED_OPS.join(", ")
                ));
            }
            for value in node.inputs.iter().filter(|v| !v.is_empty()) {
                if !defined.contains(value.as_str()) {
                    return Err(if written.contains(value.as_str()) {
                        format!(
                            "{} reads `{value}` before the node that computes it: the graph has a cycle, or its nodes are out of order",
                            describe(node)
                        )
                    } else {
                        format!(
                            "{} reads `{value}`, which no node, initializer or graph input provides (a missing initializer?)",
                            describe(node)
                        )
                    });
                }
                if !reader.constants.contains_key(value.as_str()) {
                    reader.readers.entry(value).or_default().push(index);
                }
            }
            for value in &node.outputs {
                if !defined.insert(value) {
                    return Err(format!(
                        "{} writes `{value}`, which already has a value",
                        describe(node)
                    ));
                }
                reader.writer.insert(value, index);
            }
            if node.op_type == "Constant" {
                let [output] = &node.outputs[..] else {
                    return Err(format!("{} must have one output", describe(node)));
                };
                let tensor = match &node.attributes[..] {
                    [(_, Attribute::Tensor(tensor))] => Some(tensor),
                    _ => None,
                };
                match tensor {
                    Some(tensor) => {
                        reader.constants.insert(output, tensor);
                    }
                    None => {
                        let values = match &node.attributes[..] {
                            [(name, Attribute::Float(v))] if name == "value_float" => {
                                Values::Float(vec![*v])
                            }
                            [(name, Attribute::Floats(v))] if name == "value_floats" => {
                                Values::Float(v.clone())
                            }
                            [(name, Attribute::Int(v))] if name == "value_int" => {
                                Values::Int64(vec![*v])
                            }
                            [(name, Attribute::Ints(v))] if name == "value_ints" => {
                                Values::Int64(v.clone())
                            }
                            _ => {
                                return Err(format!(
                                    "{}: its value is not a tensor or numbers",
                                    describe(node)
                                ));
                            }
                        };
                        let dims = match &values {
                            Values::Float(v) if v.len() == 1 => vec![],
                            Values::Int64(v) if v.len() == 1 => vec![],
                            Values::Float(v) => vec![v.len() as i64],
                            Values::Int64(v) => vec![v.len() as i64],
                        };
                        reader.scalars.push(TensorData {
                            name: output.clone(),
                            dims,
                            values,
                        });
                    }
                }
            }
        }
        Ok(reader)
    }

    fn constant(&self, name: &str) -> Option<&TensorData> {
        self.constants
            .get(name)
            .copied()
            .or_else(|| self.scalars.iter().find(|t| t.name == name))
    }

    /// The nodes among `allowed` that read `value`, once per reading.
    fn readers(&self, value: &str, allowed: &HashSet<usize>) -> Vec<usize> {
        self.readers
            .get(value)
            .map(|r| r.iter().copied().filter(|i| allowed.contains(i)).collect())
            .unwrap_or_default()
    }

    /// The layers from `from` to `to`, their weights named under `prefix`.
    fn sequence(
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
    fn layer(
        &self,
        x: &str,
        to: &str,
        name: &str,
        allowed: &HashSet<usize>,
        weights: &mut Vec<Weight>,
    ) -> Result<(Option<LayerConfig>, String), String> {
        let readers = self.readers(x, allowed);
        let (region, merge) = self.region(x, allowed)?;
        if readers.len() > 1 || region.len() > 1 {
            // the chain forks at x: an activation written out, or a residual block
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
    fn region(&self, x: &str, allowed: &HashSet<usize>) -> Result<(Vec<usize>, usize), String> {
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

    /// A run of elementwise nodes from `x` that computes one of nabla's activations:
    /// the longest such run, as a layer, and the value after it.
    fn activation(
        &self,
        x: &str,
        to: &str,
        allowed: &HashSet<usize>,
    ) -> Result<Option<(Option<LayerConfig>, String)>, String> {
        // stretches of elementwise nodes, each ending where its uses come together
        let mut stretches: Vec<(Vec<usize>, String)> = Vec::new();
        let mut value = x.to_string();
        while value != to && stretches.len() < 16 {
            let Ok((region, merge)) = self.region(&value, allowed) else {
                break;
            };
            if !region.iter().all(|&i| self.is_elementwise(&self.nodes[i])) {
                break;
            }
            value = self.nodes[merge].outputs[0].clone();
            stretches.push((region, value.clone()));
        }
        for count in (1..=stretches.len()).rev() {
            let nodes: Vec<usize> = stretches[..count]
                .iter()
                .flat_map(|(r, _)| r.clone())
                .collect();
            let f = |t: f64| self.evaluate(&nodes, x, t);
            if let Some(layer) = recognise(f) {
                return Ok(Some((Some(layer), stretches[count - 1].1.clone())));
            }
        }
        Ok(None)
    }

    /// Whether `node` acts on each value alone: an elementwise op whose other inputs
    /// are single constants.
    fn is_elementwise(&self, node: &Node) -> bool {
        let arity = match node.op_type.as_str() {
            "Add" | "Sub" | "Mul" | "Div" | "Pow" => 2,
            _ => 1,
        };
        ELEMENTWISE.contains(&node.op_type.as_str())
            && node.inputs.len() == arity
            && node.inputs.iter().all(|input| match self.constant(input) {
                Some(tensor) => tensor.dims.iter().product::<i64>() == 1,
                None => true,
            })
    }

    /// The value the elementwise `nodes` compute from `x = t`.
    fn evaluate(&self, nodes: &[usize], x: &str, t: f64) -> f64 {
        let mut values: HashMap<&str, f64> = HashMap::from([(x, t)]);
        let mut last = t;
        for &index in nodes {
            let node = &self.nodes[index];
            let arg = |i: usize| -> f64 {
                let name = node.inputs[i].as_str();
                match self.constant(name) {
                    Some(tensor) => match &tensor.values {
                        Values::Float(v) => v[0] as f64,
                        Values::Int64(v) => v[0] as f64,
                    },
                    None => values.get(name).copied().unwrap_or(f64::NAN),
                }
            };
            let a = arg(0);
            last = match node.op_type.as_str() {
                "Add" => a + arg(1),
                "Sub" => a - arg(1),
                "Mul" => a * arg(1),
                "Div" => a / arg(1),
                "Pow" => a.powf(arg(1)),
                "Sqrt" => a.sqrt(),
                "Neg" => -a,
                "Exp" => a.exp(),
                "Abs" => a.abs(),
                "Erf" => libm::erf(a),
                "Relu" => a.max(0.0),
                "Sigmoid" => 1.0 / (1.0 + (-a).exp()),
                "Tanh" => a.tanh(),
                "Softsign" => a / (1.0 + a.abs()),
                _ => f64::NAN,
            };
            values.insert(&node.outputs[0], last);
        }
        last
    }

    /// `layers(x) + shortcut(x)` from the region that forks at `x` and ends in an Add.
    fn residual(
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

    /// A constant input, as a tensor.
    fn weight(&self, node: &Node, index: usize, what: &str) -> Result<(String, Tensor), String> {
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

    fn gemm(
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
    fn matmul(
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

    fn conv(
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

    fn pool(&self, node: &Node) -> Result<LayerConfig, String> {
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

    fn flatten_axis(&self, node: &Node) -> Result<i64, String> {
        int_attribute(node, "axis", 1)
    }

    fn batch_norm(
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

    fn layer_norm(
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

    fn embedding(
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

/// The activation nabla has that `f` computes, if any: compared at points spread
/// over where activations differ, to 1e-6.
fn recognise(f: impl Fn(f64) -> f64) -> Option<LayerConfig> {
    const POINTS: [f64; 10] = [-4.0, -2.5, -1.3, -0.7, -0.2, 0.0, 0.3, 0.9, 1.7, 3.1];
    let gelu = |t: f64| 0.5 * t * (1.0 + libm::erf(t / std::f64::consts::SQRT_2));
    let gelu_tanh = |t: f64| {
        let inner = (2.0 / std::f64::consts::PI).sqrt() * (t + 0.044715 * t * t * t);
        0.5 * t * (1.0 + inner.tanh())
    };
    let sigmoid = |t: f64| 1.0 / (1.0 + (-t).exp());
    let candidates: [(LayerConfig, &dyn Fn(f64) -> f64); 7] = [
        (LayerConfig::Relu, &|t: f64| t.max(0.0)),
        (LayerConfig::Sigmoid, &sigmoid),
        (LayerConfig::Tanh, &|t: f64| t.tanh()),
        (LayerConfig::Softsign, &|t: f64| t / (1.0 + t.abs())),
        (LayerConfig::Silu, &|t: f64| t * sigmoid(t)),
        (
            LayerConfig::Gelu {
                tanh_approximation: false,
            },
            &gelu,
        ),
        (
            LayerConfig::Gelu {
                tanh_approximation: true,
            },
            &gelu_tanh,
        ),
    ];
    candidates.into_iter().find_map(|(layer, g)| {
        POINTS
            .iter()
            .all(|&t| (f(t) - g(t)).abs() <= 1e-6 * (1.0 + g(t).abs()))
            .then_some(layer)
    })
}

/// `node `/3/Conv_12` (Conv)`, or its op and position when it has no name.
fn describe(node: &Node) -> String {
    if node.name.is_empty() {
        format!(
            "a {} node (output `{}`)",
            node.op_type,
            node.outputs.first().map_or("", String::as_str)
        )
    } else {
        format!("node `{}` ({})", node.name, node.op_type)
    }
}

fn int_attribute(node: &Node, key: &str, default: i64) -> Result<i64, String> {
    match node.attribute(key) {
        None => Ok(default),
        Some(Attribute::Int(value)) => Ok(*value),
        Some(other) => Err(format!(
            "{}: attribute {key} is {other:?}, not an integer",
            describe(node)
        )),
    }
}

fn float_attribute(node: &Node, key: &str, default: f32) -> Result<f32, String> {
    match node.attribute(key) {
        None => Ok(default),
        Some(Attribute::Float(value)) => Ok(*value),
        Some(other) => Err(format!(
            "{}: attribute {key} is {other:?}, not a float",
            describe(node)
        )),
    }
}

fn ints_attribute(node: &Node, key: &str, default: &[i64]) -> Result<Vec<i64>, String> {
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
fn symmetric_pads(node: &Node) -> Result<usize, String> {
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
fn check_epsilon(node: &Node) -> Result<(), String> {
    let epsilon = float_attribute(node, "epsilon", 1e-5)?;
    if epsilon != 1e-5 {
        return Err(format!(
            "{}: epsilon = {epsilon}; nabla's norms use 1e-5",
            describe(node)
        ));
    }
    Ok(())
}
