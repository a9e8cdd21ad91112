//! Building a graph layer by layer: each layer's [`Module::to_onnx`] adds the nodes
//! that compute it, reading its weights as initializers named as nabla names them
//! (`3.layers.0.weight`). The builder keeps the naming: a container enters a scope
//! for each child (`scoped("3", …)`), and a parameter's name is the scope's path.

use super::model::{Attribute, ElemType, Graph, Node, TensorData, Values};
use crate::element::Float;
use crate::nn::Module;
use crate::tensor::Tensor;

/// A tensor of the graph being built: its name, and one sample's shape as nabla
/// knows it at export (the batch axis, and a text model's time axis, stay free in
/// the graph itself).
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// The tensor's name in the graph.
    pub name: String,
    /// One sample's shape (no batch axis), as [`Module::output_shape`] gives it.
    pub shape: Vec<usize>,
    /// Its element type: floats, or token ids for an embedding to look up.
    pub elem: ElemType,
}

/// A graph under construction. See the module documentation.
#[derive(Default)]
pub struct Builder {
    graph: Graph,
    scope: Vec<String>,
    count: usize,
}

impl Builder {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// `module` applied to `input`: its nodes, and its output with the shape the
    /// module says it has.
    pub fn apply<T: Float>(
        &mut self,
        module: &dyn Module<T>,
        input: &Value,
    ) -> Result<Value, String> {
        let shape = module.output_shape(&input.shape)?;
        let name = module.to_onnx(self, input)?;
        Ok(Value {
            name,
            shape,
            elem: ElemType::Float,
        })
    }

    /// Runs `build` inside the child scope `name`: parameters added there are named
    /// `name.…` (as PyTorch's `state_dict` names a child's).
    pub fn scoped<R>(&mut self, name: &str, build: impl FnOnce(&mut Builder) -> R) -> R {
        self.scope.push(name.to_string());
        let result = build(self);
        self.scope.pop();
        result
    }

    /// Adds `op_type(inputs; attributes)` and returns the name of its output.
    pub fn node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attributes: &[(&str, Attribute)],
    ) -> String {
        let name = self.unique(op_type);
        let output = format!("{name}_output");
        self.graph.nodes.push(Node {
            name,
            op_type: op_type.to_string(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.clone()],
            attributes: attributes
                .iter()
                .map(|(key, value)| (key.to_string(), value.clone()))
                .collect(),
        });
        output
    }

    /// Adds a parameter as an initializer named by the scope (`0.weight`), its
    /// values as 32-bit floats; returns that name.
    pub fn parameter<T: Float>(&mut self, name: &str, tensor: &Tensor<T>) -> String {
        let name = self
            .scope
            .iter()
            .chain([&name.to_string()])
            .cloned()
            .collect::<Vec<_>>()
            .join(".");
        let values = tensor.to_vec().iter().map(|v| v.as_f64() as f32).collect();
        self.initializer(name, tensor.shape(), Values::Float(values))
    }

    /// A constant float tensor of shape `dims` (`&[]` for a scalar).
    pub fn floats(&mut self, values: &[f32], dims: &[usize]) -> String {
        let name = self.unique("Constant");
        self.initializer(name, dims, Values::Float(values.to_vec()))
    }

    /// A constant integer tensor of shape `dims` (`&[]` for a scalar): shapes, axes
    /// and indices.
    pub fn ints(&mut self, values: &[i64], dims: &[usize]) -> String {
        let name = self.unique("Constant");
        self.initializer(name, dims, Values::Int64(values.to_vec()))
    }

    /// A one-dimensional integer constant: a shape or a list of axes.
    pub fn int_list(&mut self, values: &[i64]) -> String {
        self.ints(values, &[values.len()])
    }

    /// Axis `axis` of `input`'s runtime shape, as a one-element integer tensor: the
    /// batch size or sequence length, which the graph leaves free.
    pub fn runtime_dim(&mut self, input: &str, axis: i64) -> String {
        let shape = self.node("Shape", &[input], &[]);
        let index = self.int_list(&[axis]);
        self.node("Gather", &[&shape, &index], &[])
    }

    /// Gives the tensor `old` the name `new` (a graph output's); a tensor no node
    /// writes (the graph's input passed straight through) gets an Identity node.
    pub fn rename(&mut self, old: &str, new: &str) -> String {
        let written = self
            .graph
            .nodes
            .iter()
            .any(|node| node.outputs.iter().any(|o| o == old));
        if !written {
            let identity = self.node("Identity", &[old], &[]);
            return self.rename(&identity, new);
        }
        for node in &mut self.graph.nodes {
            for name in node.inputs.iter_mut().chain(node.outputs.iter_mut()) {
                if name == old {
                    *name = new.to_string();
                }
            }
        }
        new.to_string()
    }

    /// The graph built so far.
    pub fn finish(self) -> Graph {
        self.graph
    }

    /// Takes the graph's inputs and outputs as given.
    pub fn graph_mut(&mut self) -> &mut Graph {
        &mut self.graph
    }

    fn initializer(&mut self, name: String, dims: &[usize], values: Values) -> String {
        self.graph.initializers.push(TensorData {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            values,
        });
        name
    }

    /// `/3/layers/0/Conv_12`: the scope as a path, the kind, a counter.
    fn unique(&mut self, kind: &str) -> String {
        self.count += 1;
        let path: String = self.scope.iter().map(|part| format!("/{part}")).collect();
        format!("{path}/{kind}_{}", self.count)
    }
}
