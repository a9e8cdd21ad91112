//! A trained run as an ONNX model: its network, optionally the preparation of its
//! inputs in front (what `preprocessing.json` says, as nodes), and its class names
//! and input description in the model's metadata; and an imported ONNX network
//! written as a run directory.

use std::path::Path;

use super::builder::{Builder, Value};
use super::export::{InputKind, finish, graph_input, onnx_of};
use super::import::Imported;
use super::model::{ElemType, Model};
use crate::checkpoint::{save_model, write_atomically};
use crate::data::TableSchema;
use crate::data::image_set::pixel_affine;
use crate::data::text::Vocabulary;
use crate::error::{Error, Result};
use crate::experiment::{Config, DataKind};
use crate::run::preprocessing::{Input, Preprocessing};
use crate::run::{RunDir, SavedRun, files};

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

/// Writes an imported network as a run directory `dir` that `nabla predict`, `eval
/// --data`, `export` and (its `[data]` filled in) `train` take: `config.toml` (the
/// network, and placeholders for the data and training, which its comments say to
/// fill in), `model.safetensors` (the weights under nabla's names),
/// `preprocessing.json` and `classes.json` (and `vocab.json` for a text model).
/// A model nabla exported brings its preprocessing and class names back from its
/// metadata; for any other, inputs are taken as they are — the returned notes say so.
pub fn write_imported(imported: &Imported, source: &Path, dir: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let metadata = |key: &str| {
        imported
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let vocabulary: Option<Vocabulary> =
        metadata("vocabulary").and_then(|v| serde_json::from_str(v).ok());
    let saved: Option<Preprocessing> = metadata("preprocessing")
        .and_then(|p| serde_json::from_str(p).ok())
        .filter(|p: &Preprocessing| p.check().is_ok() && p.input_shape == imported.input_shape);
    let preprocessing = match saved {
        Some(preprocessing) => {
            notes.push(
                "its input preparation and class names are nabla's own, from the file's metadata"
                    .into(),
            );
            preprocessing
        }
        None => foreign_preprocessing(imported, metadata("class_names"), &mut notes)?,
    };
    if imported.token_ids && vocabulary.is_none() {
        return Err(Error::format(
            source,
            "the model takes token ids, but the file has no `vocabulary` in its metadata (nabla imports token models it exported)",
        ));
    }
    let shown = source.file_name().map_or_else(
        || source.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let config = imported_config(imported, &preprocessing, dir)?;
    let header = format!(
        "# Imported by `nabla import` from {shown}.\n\
         # [model] is the ONNX graph's network; its weights are model.safetensors beside this\n\
         # file (named as nabla names them; see `nabla import`'s output for the graph's names).\n\
         # `nabla predict`, `nabla eval --data FILE` and `nabla export` take this directory as\n\
         # it is. To train the network further: point [data] at your data (its path and kind\n\
         # below are placeholders) and run `nabla train` on this file; [train] init starts\n\
         # from the imported weights.\n"
    );
    let run = RunDir::new(dir)?;
    write_atomically(
        &dir.join(files::CONFIG),
        format!("{header}{}", config.to_toml()).as_bytes(),
    )?;
    run.write_preprocessing(&preprocessing, vocabulary.as_ref())?;
    let model = imported.model(source)?;
    save_model(dir.join(files::MODEL), &model, &Default::default())?;
    Ok(notes)
}

/// The preparation of a graph's inputs nabla did not write: none (values are fed
/// as they are), classes named by the metadata's `class_names` or numbered.
fn foreign_preprocessing(
    imported: &Imported,
    class_names: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<Preprocessing> {
    let class_names: Vec<String> = class_names
        .and_then(|names| serde_json::from_str::<Vec<String>>(names).ok())
        .filter(|names| names.len() == imported.classes)
        .unwrap_or_else(|| (0..imported.classes).map(|c| c.to_string()).collect());
    let shape = &imported.input_shape;
    let (data, input) = match shape[..] {
        _ if imported.token_ids => (
            DataKind::Text,
            Input::Text {
                block_size: shape.iter().product(),
            },
        ),
        [width] => {
            notes.push(format!(
                "inputs are fed as they are: a CSV file for `nabla predict` needs the columns x0 … x{} (the graph's input order)",
                width - 1
            ));
            let schema = TableSchema {
                feature_names: (0..width).map(|i| format!("x{i}")).collect(),
                label_column: "label".into(),
            };
            (
                DataKind::Csv,
                Input::Table {
                    schema,
                    standardizer: None,
                },
            )
        }
        [channels @ (1 | 3), height, width] => {
            notes.push(
                "images are fed as pixel/255 (the graph's own input preparation is not in the file): give [data] mean and std if the network was trained on normalised pixels".into(),
            );
            (
                DataKind::ImageFolder,
                Input::Images {
                    shape: [channels, height, width],
                    normalization: None,
                },
            )
        }
        _ => {
            return Err(Error::Config(format!(
                "the graph's input of shape {shape:?} per sample is neither features [n] nor an image [1 or 3, height, width]"
            )));
        }
    };
    Ok(Preprocessing {
        format: crate::run::preprocessing::FORMAT_VERSION,
        data,
        input_shape: shape.clone(),
        class_names,
        input,
    })
}

/// The run's config: the imported layers, placeholder data of the input's kind, and
/// training that starts from the imported weights.
fn imported_config(
    imported: &Imported,
    preprocessing: &Preprocessing,
    dir: &Path,
) -> Result<Config> {
    let data = match &preprocessing.input {
        Input::Table { schema, .. } => {
            format!(
                "kind = \"csv\"\npath = \"your-data.csv\"\nlabel_column = \"{}\"",
                schema.label_column
            )
        }
        Input::Images { shape, .. } => format!(
            "kind = \"image_folder\"\npath = \"your-images\"\nimage_size = [{}, {}]\nchannels = {}",
            shape[1], shape[2], shape[0]
        ),
        Input::Text { block_size } => {
            format!("kind = \"text\"\npath = \"your-text.txt\"\nblock_size = {block_size}")
        }
    };
    let template = format!(
        "[data]\n{data}\n\n[model]\nlayers = [{{ type = \"flatten\" }}]\n\n[train]\nepochs = 1\noptimizer = {{ kind = \"adam\", lr = 1e-3 }}\n"
    );
    let mut config = Config::parse(&template, Path::new("config.toml"))?;
    config.model.layers = imported.layers.clone();
    config.train.init = Some(dir.join(files::MODEL));
    Ok(config)
}
