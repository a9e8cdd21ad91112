//! `nabla export`: a trained run as an ONNX file.

use std::path::PathBuf;

use crate::checkpoint::write_atomically;
use crate::error::Result;
use crate::onnx::{ExportOptions, export_run};
use crate::run::SavedRun;

/// Writes `run` as ONNX to `out` (default: `model.onnx` in the run directory) and
/// says what the file takes and gives.
pub fn export(run: &SavedRun, out: Option<PathBuf>, options: &ExportOptions) -> Result<()> {
    let model = export_run(run, options)?;
    let out = out.unwrap_or_else(|| run.dir.join("model.onnx"));
    let bytes = model.encode();
    write_atomically(&out, &bytes)?;
    let input = &model.graph.inputs[0];
    let metadata = |key: &str| {
        model
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    };
    outln!(
        "wrote {} ({:.1} kB, opset {}, {} nodes)",
        out.display(),
        bytes.len() as f64 / 1000.0,
        model.opset,
        model.graph.nodes.len()
    );
    outln!("input  `{}`: {}", input.name, metadata("input"));
    outln!(
        "output `logits`: {} classes (names in the metadata's `class_names`)",
        run.preprocessing.num_classes()
    );
    Ok(())
}
