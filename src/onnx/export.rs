//! A network — or a whole trained run, its input preparation included — as an ONNX
//! model: `nabla export`, and [`export_network`] for a program's own model.

use std::ops::RangeInclusive;

use super::builder::{Builder, Value};
use super::model::{Dim, ElemType, Model, ValueInfo};
use crate::element::Float;
use crate::error::{Error, Result};
use crate::nn::Module;

/// The operator set written unless another is asked for: the first with
/// LayerNormalization, which ONNX Runtime has run since 1.14.
pub const DEFAULT_OPSET: i64 = 17;

/// The operator sets nabla can write: every op it uses means the same in each.
pub const OPSETS: RangeInclusive<i64> = 17..=21;

/// What the graph's input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// Float features of one fixed shape per sample.
    Features,
    /// Token ids (`int64`), `[batch, time]` with any time up to the model's context.
    TokenIds,
}

/// `model` as an ONNX model taking a batch of samples of shape `sample_shape`:
/// input `input` (`[batch, …sample_shape]`, the batch size free), output `logits`.
/// A layer with no ONNX form is an error naming it.
///
/// ```
/// use nabla::nn::{Linear, Relu, Sequential};
/// use nabla::onnx::{InputKind, export_network};
/// let mut rng = nabla::rng(0);
/// let mlp = Sequential::<f32>::new().layer(Linear::new(4, 8, &mut rng)).layer(Relu).layer(Linear::new(8, 3, &mut rng));
/// let model = export_network(&mlp, &[4], InputKind::Features, 17).unwrap();
/// let ops: Vec<&str> = model.graph.nodes.iter().map(|n| n.op_type.as_str()).collect();
/// assert_eq!(ops, ["Gemm", "Relu", "Gemm"]);
/// assert_eq!(model.graph.initializers[0].name, "0.weight");
/// let bytes = model.encode(); // what `std::fs::write("mlp.onnx", …)` would save
/// assert_eq!(nabla::onnx::Model::decode(&bytes).unwrap(), model);
/// ```
pub fn export_network<T: Float>(
    model: &dyn Module<T>,
    sample_shape: &[usize],
    input: InputKind,
    opset: i64,
) -> Result<Model> {
    let mut onnx = Builder::new();
    let (elem, doc) = match input {
        InputKind::Features => (ElemType::Float, "features as the network takes them"),
        InputKind::TokenIds => (ElemType::Int64, "token ids"),
    };
    let graph_input = graph_input("input", elem, sample_shape, input, doc);
    let value = Value {
        name: "input".into(),
        shape: sample_shape.to_vec(),
        elem,
    };
    finish(
        onnx_of(&mut onnx, model, &value)?,
        onnx,
        graph_input,
        input,
        opset,
    )
}

/// The nodes of `model` applied to `input`, or the error naming the layer.
pub(crate) fn onnx_of<T: Float>(
    onnx: &mut Builder,
    model: &dyn Module<T>,
    input: &Value,
) -> Result<Value> {
    onnx.apply(model, input)
        .map_err(|why| Error::Config(format!("cannot export to ONNX: {why}")))
}

/// The graph input `name`: `[batch, …sample]`, or `[batch, time]` for token ids.
pub(crate) fn graph_input(
    name: &str,
    elem: ElemType,
    sample: &[usize],
    kind: InputKind,
    doc: &str,
) -> ValueInfo {
    let mut dims = vec![Dim::Named("batch".into())];
    match kind {
        InputKind::Features => dims.extend(sample.iter().map(|&d| Dim::Fixed(d as i64))),
        InputKind::TokenIds => dims.push(Dim::Named("time".into())),
    }
    ValueInfo {
        name: name.into(),
        elem,
        dims,
        doc: doc.into(),
    }
}

/// Names the last value `logits`, declares the graph's input and output, and wraps
/// the graph in a model.
pub(crate) fn finish(
    output: Value,
    mut onnx: Builder,
    input: ValueInfo,
    kind: InputKind,
    opset: i64,
) -> Result<Model> {
    if !OPSETS.contains(&opset) {
        return Err(Error::Config(format!(
            "ONNX opset {opset} is not one nabla writes: choose {} to {}",
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    let logits = onnx.rename(&output.name, "logits");
    let mut dims = vec![Dim::Named("batch".into())];
    match kind {
        InputKind::Features => dims.extend(output.shape.iter().map(|&d| Dim::Fixed(d as i64))),
        InputKind::TokenIds => {
            dims.push(Dim::Named("time".into()));
            dims.extend(output.shape.last().map(|&d| Dim::Fixed(d as i64)));
        }
    }
    let graph = onnx.graph_mut();
    graph.name = "nabla".into();
    graph.inputs = vec![input];
    graph.outputs = vec![ValueInfo {
        name: logits,
        elem: ElemType::Float,
        dims,
        doc: "unnormalised scores, one per class (softmax gives probabilities)".into(),
    }];
    Ok(Model {
        opset,
        producer: "nabla".into(),
        doc: String::new(),
        graph: onnx.finish(),
        metadata: Vec::new(),
    })
}
