//! A trained run as an ONNX model: its network, optionally the preparation of its
//! inputs in front (what `preprocessing.json` says, as nodes), and its class names
//! and input description in the model's metadata.

use super::builder::{Builder, Value};
use super::export::{InputKind, finish, graph_input, onnx_of};
use super::model::{ElemType, Model};
use crate::data::image_set::pixel_affine;
use crate::error::Result;
use crate::experiment::DataKind;
use crate::run::SavedRun;
use crate::run::preprocessing::{Input, Preprocessing};

/// How to export a run.
#[derive(Clone, Copy, Debug)]
pub struct ExportOptions {
    /// The ONNX operator set ([`super::OPSETS`]).
    pub opset: i64,
    /// Put the run's input preparation in front of the network, so that the graph
    /// takes raw values: CSV features as in the file, pixels 0–255.
    pub with_preprocessing: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            opset: super::DEFAULT_OPSET,
            with_preprocessing: false,
        }
    }
}

/// The run's network as an ONNX model; see [`ExportOptions`]. Its metadata holds
/// `class_names` (a JSON list), `input` (what the graph takes, in words),
/// `preprocessing` (the run's `preprocessing.json`) and, for a text model,
/// `vocabulary` (its `vocab.json`).
pub fn export_run(run: &SavedRun, options: &ExportOptions) -> Result<Model> {
    let preprocessing = &run.preprocessing;
    let kind = match preprocessing.input {
        Input::Text { .. } => InputKind::TokenIds,
        _ => InputKind::Features,
    };
    let mut onnx = Builder::new();
    let (graph_input, network_input, description) = if options.with_preprocessing {
        prepared_input(&mut onnx, preprocessing)
    } else {
        let elem = match kind {
            InputKind::TokenIds => ElemType::Int64,
            InputKind::Features => ElemType::Float,
        };
        let description = features_description(preprocessing);
        let info = graph_input(
            "input",
            elem,
            &preprocessing.input_shape,
            kind,
            &description,
        );
        let value = Value {
            name: "input".into(),
            shape: preprocessing.input_shape.clone(),
            elem,
        };
        (info, value, description)
    };
    let output = onnx_of(&mut onnx, &run.model, &network_input)?;
    let mut model = finish(output, onnx, graph_input, kind, options.opset)?;
    model.doc = format!(
        "A {} model trained with nabla. Input `{}`: {description}. Output `logits`: one score per class.",
        crate::run::preprocessing::kind_name(preprocessing.data),
        model.graph.inputs[0].name,
    );
    model.metadata = vec![
        ("class_names".into(), json(&preprocessing.class_names)),
        ("input".into(), description),
        ("preprocessing".into(), json(preprocessing)),
    ];
    if let Some(vocabulary) = &run.vocabulary {
        model.metadata.push(("vocabulary".into(), json(vocabulary)));
    }
    Ok(model)
}

/// A metadata value as JSON text.
fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("metadata serialises")
}

/// What the network's own input is, in words (an export without preprocessing).
fn features_description(preprocessing: &Preprocessing) -> String {
    let shape = &preprocessing.input_shape;
    match &preprocessing.input {
        Input::Table {
            schema,
            standardizer,
        } => format!(
            "[batch, {}] float features, the columns {}{}",
            shape[0],
            schema.feature_names.join(", "),
            if standardizer.is_some() {
                ", each standardised as (x − mean)/std with the mean and std in the metadata's `preprocessing`"
            } else {
                ", as they are in the file"
            }
        ),
        Input::Images { normalization, .. } => format!(
            "[batch, {}] float pixels p/255{}",
            join(shape),
            if normalization.is_some() {
                ", then (· − mean)/std per channel with the mean and std in the metadata's `preprocessing`"
            } else {
                ""
            }
        ),
        Input::Text { block_size } => text_description(*block_size),
    }
}

fn text_description(block_size: usize) -> String {
    format!(
        "[batch, time] int64 token ids (time at most {block_size}), each a position in the metadata's `vocabulary`; the logits at position t score the token after t"
    )
}

/// The graph input of raw values and the nodes that prepare them as training did;
/// returns the input's description, the value the network takes, and the text.
fn prepared_input(
    onnx: &mut Builder,
    preprocessing: &Preprocessing,
) -> (super::ValueInfo, Value, String) {
    let network_shape = preprocessing.input_shape.clone();
    let float_value = |name: String| Value {
        name,
        shape: network_shape.clone(),
        elem: ElemType::Float,
    };
    match &preprocessing.input {
        Input::Table {
            schema,
            standardizer,
        } => {
            let description = format!(
                "[batch, {}] float values of the columns {}, as in the CSV file",
                network_shape[0],
                schema.feature_names.join(", ")
            );
            let info = graph_input(
                "features",
                ElemType::Float,
                &network_shape,
                InputKind::Features,
                &description,
            );
            let mut x = "features".to_string();
            if let Some(standardizer) = standardizer {
                // (x − mean)/std, as `Standardizer::apply`
                let width = standardizer.mean.len();
                let mean = onnx.floats(&standardizer.mean, &[width]);
                let std = onnx.floats(&standardizer.std, &[width]);
                let centred = onnx.node("Sub", &[&x, &mean], &[]);
                x = onnx.node("Div", &[&centred, &std], &[]);
            }
            (info, float_value(x), description)
        }
        Input::Images {
            shape,
            normalization,
        } => {
            let [channels, height, width] = *shape;
            let description = format!(
                "[batch, {channels}, {height}, {width}] float pixel values 0–255 ({}, {height}×{width})",
                if channels == 1 { "grey" } else { "RGB" }
            );
            let info = graph_input(
                "pixels",
                ElemType::Float,
                shape,
                InputKind::Features,
                &description,
            );
            let pixels = "pixels";
            let x = match preprocessing.data {
                // IDX data: (p/255 − mean)/std in three steps, as `ImageDataset` does
                DataKind::Mnist | DataKind::FashionMnist => {
                    let scale = onnx.floats(&[255.0], &[]);
                    let mut x = onnx.node("Div", &[pixels, &scale], &[]);
                    if let Some((mean, std)) = normalization {
                        let mean = onnx.floats(&mean[..1], &[]);
                        let std = onnx.floats(&std[..1], &[]);
                        let centred = onnx.node("Sub", &[&x, &mean], &[]);
                        x = onnx.node("Div", &[&centred, &std], &[]);
                    }
                    x
                }
                // other images: p·scale + offset per channel, as `ImageSet` does
                _ => {
                    let (scale, offset) = pixel_affine(channels, normalization.as_ref());
                    let scale = onnx.floats(&scale, &[channels, 1, 1]);
                    let offset = onnx.floats(&offset, &[channels, 1, 1]);
                    let scaled = onnx.node("Mul", &[pixels, &scale], &[]);
                    onnx.node("Add", &[&scaled, &offset], &[])
                }
            };
            // a network that starts with a Linear layer takes the image flat
            let x = if network_shape.len() == 1 {
                onnx.node("Flatten", &[&x], &[("axis", super::Attribute::Int(1))])
            } else {
                x
            };
            (info, float_value(x), description)
        }
        Input::Text { block_size } => {
            let description = text_description(*block_size);
            let info = graph_input(
                "tokens",
                ElemType::Int64,
                &network_shape,
                InputKind::TokenIds,
                &description,
            );
            let value = Value {
                name: "tokens".into(),
                shape: network_shape,
                elem: ElemType::Int64,
            };
            (info, value, description)
        }
    }
}

fn join(shape: &[usize]) -> String {
    shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
