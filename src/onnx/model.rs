//! The parts of an ONNX model nabla writes and reads, as plain structs, and their
//! protobuf encoding (field numbers from `onnx.proto`). Only what a feed-forward
//! network needs: no subgraphs, sparse tensors or external data.

use crate::protobuf::Message;

/// A whole `.onnx` file: one graph, the operator-set version its nodes follow, and
/// free-form metadata (class names, how inputs are prepared).
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The version of the default (`ai.onnx`) operator set the nodes follow.
    pub opset: i64,
    /// The program that wrote the file.
    pub producer: String,
    /// What the model is, in words.
    pub doc: String,
    /// The computation.
    pub graph: Graph,
    /// `metadata_props`: key–value pairs an application can read.
    pub metadata: Vec<(String, String)>,
}

/// A computation: nodes in an order where each one's inputs come before it, the
/// constant tensors they read (initializers), and the graph's inputs and outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// The graph's name.
    pub name: String,
    /// The operations, in a valid order.
    pub nodes: Vec<Node>,
    /// Named constant tensors: the weights.
    pub initializers: Vec<TensorData>,
    /// What the caller feeds.
    pub inputs: Vec<ValueInfo>,
    /// What the caller gets back.
    pub outputs: Vec<ValueInfo>,
}

/// One operation: `outputs = op_type(inputs; attributes)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// A name for tools to show.
    pub name: String,
    /// The operator (`"Conv"`, `"Relu"`).
    pub op_type: String,
    /// The names of the tensors it reads (`""` for an omitted optional input).
    pub inputs: Vec<String>,
    /// The names of the tensors it writes.
    pub outputs: Vec<String>,
    /// Its settings.
    pub attributes: Vec<(String, Attribute)>,
}

impl Node {
    /// The attribute called `name`, if the node has it.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

/// A node's setting.
#[derive(Clone, Debug, PartialEq)]
pub enum Attribute {
    /// One float.
    Float(f32),
    /// One integer.
    Int(i64),
    /// Text.
    String(String),
    /// A constant tensor.
    Tensor(TensorData),
    /// A list of floats.
    Floats(Vec<f32>),
    /// A list of integers.
    Ints(Vec<i64>),
}

/// The element types nabla's graphs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemType {
    /// 32-bit float (`TensorProto.FLOAT`, 1).
    Float,
    /// 64-bit signed integer (`TensorProto.INT64`, 7): token ids, shapes.
    Int64,
}

impl ElemType {
    /// The `TensorProto.DataType` number.
    pub fn code(self) -> i64 {
        match self {
            ElemType::Float => 1,
            ElemType::Int64 => 7,
        }
    }
}

/// A named constant tensor: its shape and values.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorData {
    /// The name nodes read it by (a weight's is nabla's parameter name).
    pub name: String,
    /// Its shape.
    pub dims: Vec<i64>,
    /// Its values, row-major.
    pub values: Values,
}

/// A tensor's values.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// 32-bit floats.
    Float(Vec<f32>),
    /// 64-bit integers.
    Int64(Vec<i64>),
}

/// A graph input's or output's name, element type and shape, with a description.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub elem: ElemType,
    /// Its shape: fixed sizes, and named ones the caller chooses (`"batch"`).
    pub dims: Vec<Dim>,
    /// What it holds, in words.
    pub doc: String,
}

/// One axis of a graph input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// Always this size.
    Fixed(i64),
    /// Any size, the same wherever the name appears.
    Named(String),
}

/// The intermediate-representation version that goes with the operator sets nabla
/// writes (IR 8 came with opset 17 and reads every later one nabla allows).
const IR_VERSION: i64 = 8;

impl Model {
    /// The model as `.onnx` file bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut opset = Message::new();
        opset.string(1, "").int(2, self.opset);
        let mut model = Message::new();
        model
            .int(1, IR_VERSION)
            .string(2, &self.producer)
            .string(3, env!("CARGO_PKG_VERSION"))
            .string(6, &self.doc)
            .message(7, &self.graph.encode())
            .message(8, &opset);
        for (key, value) in &self.metadata {
            let mut entry = Message::new();
            entry.string(1, key).string(2, value);
            model.message(14, &entry);
        }
        model.into_bytes()
    }
}

impl Graph {
    fn encode(&self) -> Message {
        let mut graph = Message::new();
        for node in &self.nodes {
            graph.message(1, &node.encode());
        }
        graph.string(2, &self.name);
        for tensor in &self.initializers {
            graph.message(5, &tensor.encode());
        }
        for input in &self.inputs {
            graph.message(11, &input.encode());
        }
        for output in &self.outputs {
            graph.message(12, &output.encode());
        }
        graph
    }
}

impl Node {
    fn encode(&self) -> Message {
        let mut node = Message::new();
        for input in &self.inputs {
            node.string(1, input);
        }
        for output in &self.outputs {
            node.string(2, output);
        }
        node.string(3, &self.name).string(4, &self.op_type);
        for (name, value) in &self.attributes {
            node.message(5, &value.encode(name));
        }
        node
    }
}

impl Attribute {
    /// `AttributeProto`: the name, the value in its type's field, the type's number.
    fn encode(&self, name: &str) -> Message {
        let mut attribute = Message::new();
        attribute.string(1, name);
        let kind = match self {
            Attribute::Float(value) => {
                attribute.f32(2, *value);
                1
            }
            Attribute::Int(value) => {
                attribute.int(3, *value);
                2
            }
            Attribute::String(text) => {
                attribute.string(4, text);
                3
            }
            Attribute::Tensor(tensor) => {
                attribute.message(5, &tensor.encode());
                4
            }
            Attribute::Floats(values) => {
                for value in values {
                    attribute.f32(7, *value);
                }
                6
            }
            Attribute::Ints(values) => {
                for value in values {
                    attribute.int(8, *value);
                }
                7
            }
        };
        attribute.int(20, kind);
        attribute
    }
}

impl TensorData {
    fn encode(&self) -> Message {
        let mut tensor = Message::new();
        for &dim in &self.dims {
            tensor.int(1, dim);
        }
        // values as raw little-endian bytes: the compact form every reader takes
        let (elem, raw): (ElemType, Vec<u8>) = match &self.values {
            Values::Float(values) => (
                ElemType::Float,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            Values::Int64(values) => (
                ElemType::Int64,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        };
        tensor
            .int(2, elem.code())
            .string(8, &self.name)
            .bytes(9, &raw);
        tensor
    }
}

impl ValueInfo {
    fn encode(&self) -> Message {
        let mut shape = Message::new();
        for dim in &self.dims {
            let mut dimension = Message::new();
            match dim {
                Dim::Fixed(size) => dimension.int(1, *size),
                Dim::Named(name) => dimension.string(2, name),
            };
            shape.message(1, &dimension);
        }
        let mut tensor_type = Message::new();
        tensor_type.int(1, self.elem.code()).message(2, &shape);
        let mut type_proto = Message::new();
        type_proto.message(1, &tensor_type);
        let mut info = Message::new();
        info.string(1, &self.name)
            .message(2, &type_proto)
            .string(3, &self.doc);
        info
    }
}
