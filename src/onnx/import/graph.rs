//! The graph indexed for walking: who reads and writes each value, the constants;
//! checked first — every op one `nabla import` reads, every value defined before it
//! is read, one input.

use std::collections::{HashMap, HashSet};

use super::SUPPORTED_OPS;
use crate::onnx::model::{Attribute, Model, Node, TensorData, Values};

/// The graph, indexed for walking it.
pub(super) struct Reader<'a> {
    pub(super) nodes: &'a [Node],
    pub(super) input: &'a crate::onnx::ValueInfo,
    /// Initializers and the outputs of `Constant` nodes.
    pub(super) constants: HashMap<&'a str, &'a TensorData>,
    /// Each computed value's readers (a node reading it twice is listed twice).
    pub(super) readers: HashMap<&'a str, Vec<usize>>,
    /// Each computed value's writer.
    pub(super) writer: HashMap<&'a str, usize>,
    /// Tensors of `Constant` nodes given as scalars (`value_float`), made tensors.
    pub(super) scalars: Vec<TensorData>,
}

impl<'a> Reader<'a> {
    /// Indexes `model`'s graph after checking it: every op known, every value defined
    /// before it is read, one input.
    pub(super) fn new(model: &'a Model) -> Result<Reader<'a>, String> {
        let graph = &model.graph;
        let initializers: HashSet<&str> =
            graph.initializers.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<&crate::onnx::ValueInfo> = graph
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

    pub(super) fn constant(&self, name: &str) -> Option<&TensorData> {
        self.constants
            .get(name)
            .copied()
            .or_else(|| self.scalars.iter().find(|t| t.name == name))
    }

    /// The nodes among `allowed` that read `value`, once per reading.
    pub(super) fn readers(&self, value: &str, allowed: &HashSet<usize>) -> Vec<usize> {
        self.readers
            .get(value)
            .map(|r| r.iter().copied().filter(|i| allowed.contains(i)).collect())
            .unwrap_or_default()
    }
}

/// `node `/3/Conv_12` (Conv)`, or its op and position when it has no name.
pub(super) fn describe(node: &Node) -> String {
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
