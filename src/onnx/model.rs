//! The parts of an ONNX model nabla writes and reads, as plain structs, and their
//! protobuf encoding (field numbers from `onnx.proto`). Only what a feed-forward
//! network needs: no subgraphs, sparse tensors or external data.

use crate::protobuf::{Message, fields};

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

/// Reading a `.onnx` file: every message is checked as it is read, and anything
/// outside what nabla's graphs use is an error saying what it is.
impl Model {
    /// The model in `bytes`, or why they are not an ONNX model nabla can read.
    pub fn decode(bytes: &[u8]) -> Result<Model, String> {
        let mut model = Model {
            opset: 0,
            producer: String::new(),
            doc: String::new(),
            graph: Graph::default(),
            metadata: Vec::new(),
        };
        let mut has_graph = false;
        for (field, value) in fields(bytes).map_err(|why| format!("not an ONNX model: {why}"))? {
            match field {
                2 => model.producer = value.string()?,
                6 => model.doc = value.string()?,
                7 => {
                    model.graph = Graph::decode(value.bytes()?)?;
                    has_graph = true;
                }
                8 => {
                    let (mut domain, mut version) = (String::new(), 0);
                    for (field, value) in fields(value.bytes()?)? {
                        match field {
                            1 => domain = value.string()?,
                            2 => version = value.int()?,
                            _ => {}
                        }
                    }
                    if domain.is_empty() || domain == "ai.onnx" {
                        model.opset = version;
                    }
                }
                14 => {
                    let (mut key, mut text) = (String::new(), String::new());
                    for (field, value) in fields(value.bytes()?)? {
                        match field {
                            1 => key = value.string()?,
                            2 => text = value.string()?,
                            _ => {}
                        }
                    }
                    model.metadata.push((key, text));
                }
                _ => {}
            }
        }
        if !has_graph {
            return Err("not an ONNX model: it has no graph".into());
        }
        Ok(model)
    }
}

impl Graph {
    fn decode(bytes: &[u8]) -> Result<Graph, String> {
        let mut graph = Graph::default();
        for (field, value) in fields(bytes)? {
            match field {
                1 => graph.nodes.push(Node::decode(value.bytes()?)?),
                2 => graph.name = value.string()?,
                5 => graph.initializers.push(TensorData::decode(value.bytes()?)?),
                11 => graph.inputs.push(ValueInfo::decode(value.bytes()?)?),
                12 => graph.outputs.push(ValueInfo::decode(value.bytes()?)?),
                15 => {
                    return Err(
                        "the graph has sparse initializers, which nabla does not read".into(),
                    );
                }
                _ => {}
            }
        }
        Ok(graph)
    }
}

impl Node {
    fn decode(bytes: &[u8]) -> Result<Node, String> {
        let mut node = Node {
            name: String::new(),
            op_type: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            attributes: Vec::new(),
        };
        let mut domain = String::new();
        for (field, value) in fields(bytes)? {
            match field {
                1 => node.inputs.push(value.string()?),
                2 => node.outputs.push(value.string()?),
                3 => node.name = value.string()?,
                4 => node.op_type = value.string()?,
                5 => node.attributes.push(Attribute::decode(value.bytes()?)?),
                7 => domain = value.string()?,
                _ => {}
            }
        }
        if !(domain.is_empty() || domain == "ai.onnx") {
            return Err(format!(
                "node `{}` ({}) is from the operator domain `{domain}`; nabla reads the standard one",
                node.name, node.op_type
            ));
        }
        Ok(node)
    }
}

impl Attribute {
    fn decode(bytes: &[u8]) -> Result<(String, Attribute), String> {
        let mut name = String::new();
        let mut kind = 0;
        let (mut float, mut int, mut text, mut tensor) = (None, None, None, None);
        let (mut floats, mut ints) = (Vec::new(), Vec::new());
        for (field, value) in fields(bytes)? {
            match field {
                1 => name = value.string()?,
                2 => float = Some(value.f32()?),
                3 => int = Some(value.int()?),
                4 => text = Some(value.string()?),
                5 => tensor = Some(TensorData::decode(value.bytes()?)?),
                7 => floats.extend(value.f32s()?),
                8 => ints.extend(value.ints()?),
                20 => kind = value.int()?,
                _ => {}
            }
        }
        let missing = || format!("attribute `{name}` has no value of its type");
        let attribute = match kind {
            1 => Attribute::Float(float.ok_or_else(missing)?),
            2 => Attribute::Int(int.ok_or_else(missing)?),
            3 => Attribute::String(text.ok_or_else(missing)?),
            4 => Attribute::Tensor(tensor.ok_or_else(missing)?),
            6 => Attribute::Floats(floats),
            7 => Attribute::Ints(ints),
            other => {
                return Err(format!(
                    "attribute `{name}` is of type {other} (graphs, strings lists, …), which nabla does not read"
                ));
            }
        };
        Ok((name, attribute))
    }
}

impl TensorData {
    fn decode(bytes: &[u8]) -> Result<TensorData, String> {
        let (mut name, mut dims, mut data_type) = (String::new(), Vec::new(), 0);
        let (mut raw, mut floats, mut ints, mut doubles) =
            (None, Vec::new(), Vec::new(), Vec::new());
        for (field, value) in fields(bytes)? {
            match field {
                1 => dims.extend(value.ints()?),
                2 => data_type = value.int()?,
                4 => floats.extend(value.f32s()?),
                5 | 7 => ints.extend(value.ints()?),
                8 => name = value.string()?,
                9 => raw = Some(value.bytes()?),
                10 => doubles.extend(value.f64s()?),
                13 | 14 => {
                    return Err(format!(
                        "tensor `{name}` keeps its values in an external file, which nabla does not read"
                    ));
                }
                _ => {}
            }
        }
        if dims.iter().any(|&d| d < 0) {
            return Err(format!(
                "tensor `{name}` has a negative size in its shape {dims:?}"
            ));
        }
        let count = dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .filter(|&n| n <= 1 << 32)
            .ok_or_else(|| format!("tensor `{name}` of shape {dims:?} is too large"))?
            as usize;
        // values: raw little-endian bytes, or the typed field
        let width = match data_type {
            1 | 6 => 4,
            7 | 11 => 8,
            other => {
                return Err(format!(
                    "tensor `{name}` holds {}, not float32, float64, int32 or int64",
                    data_type_name(other)
                ));
            }
        };
        if let Some(raw) = raw
            && raw.len() != count * width
        {
            return Err(format!(
                "tensor `{name}` of shape {dims:?} needs {} bytes of values, but holds {}",
                count * width,
                raw.len()
            ));
        }
        let chunks = |raw: &[u8]| {
            raw.chunks_exact(width)
                .map(|c| c.to_vec())
                .collect::<Vec<_>>()
        };
        let values = match (data_type, raw) {
            (1, Some(raw)) => Values::Float(
                chunks(raw)
                    .iter()
                    .map(|c| f32::from_le_bytes(c[..4].try_into().unwrap()))
                    .collect(),
            ),
            (11, Some(raw)) => Values::Float(
                chunks(raw)
                    .iter()
                    .map(|c| f64::from_le_bytes(c[..8].try_into().unwrap()) as f32)
                    .collect(),
            ),
            (6, Some(raw)) => Values::Int64(
                chunks(raw)
                    .iter()
                    .map(|c| i32::from_le_bytes(c[..4].try_into().unwrap()) as i64)
                    .collect(),
            ),
            (7, Some(raw)) => Values::Int64(
                chunks(raw)
                    .iter()
                    .map(|c| i64::from_le_bytes(c[..8].try_into().unwrap()))
                    .collect(),
            ),
            (1, None) => Values::Float(floats),
            (11, None) => Values::Float(doubles.iter().map(|&d| d as f32).collect()),
            (_, None) => Values::Int64(ints),
            _ => unreachable!("the data types are checked above"),
        };
        let found = match &values {
            Values::Float(v) => v.len(),
            Values::Int64(v) => v.len(),
        };
        if found != count {
            return Err(format!(
                "tensor `{name}` of shape {dims:?} needs {count} values, but holds {found}"
            ));
        }
        Ok(TensorData { name, dims, values })
    }
}

fn data_type_name(code: i64) -> String {
    match code {
        2 => "uint8".into(),
        3 => "int8".into(),
        9 => "bools".into(),
        10 => "float16".into(),
        16 => "bfloat16".into(),
        8 => "strings".into(),
        0 => "no data type".into(),
        other => format!("data type {other}"),
    }
}

impl ValueInfo {
    fn decode(bytes: &[u8]) -> Result<ValueInfo, String> {
        let mut info = ValueInfo {
            name: String::new(),
            elem: ElemType::Float,
            dims: Vec::new(),
            doc: String::new(),
        };
        for (field, value) in fields(bytes)? {
            match field {
                1 => info.name = value.string()?,
                3 => info.doc = value.string()?,
                2 => {
                    for (field, value) in fields(value.bytes()?)? {
                        if field != 1 {
                            continue;
                        }
                        for (field, value) in fields(value.bytes()?)? {
                            match field {
                                1 => {
                                    info.elem = match value.int()? {
                                        1 => ElemType::Float,
                                        7 => ElemType::Int64,
                                        other => {
                                            return Err(format!(
                                                "graph input or output `{}` holds {}; nabla reads float32 and int64",
                                                info.name,
                                                data_type_name(other)
                                            ));
                                        }
                                    }
                                }
                                2 => {
                                    for (field, dim) in fields(value.bytes()?)? {
                                        if field == 1 {
                                            info.dims.push(Dim::decode(dim.bytes()?)?);
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(info)
    }
}

impl Dim {
    fn decode(bytes: &[u8]) -> Result<Dim, String> {
        let mut dim = Dim::Named(String::new());
        for (field, value) in fields(bytes)? {
            match field {
                1 => dim = Dim::Fixed(value.int()?),
                2 => dim = Dim::Named(value.string()?),
                _ => {}
            }
        }
        Ok(dim)
    }
}
