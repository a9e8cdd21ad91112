//! `nabla export` and `nabla import`: a trained run as an ONNX file, and back.

use std::path::{Path, PathBuf};

use crate::checkpoint::write_atomically;
use crate::error::{Error, Result};
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

/// `nabla import`: reads `model` and writes the run directory `out`, printing the
/// network and where each weight came from when its name changed.
pub fn import(model: &Path, out: &Path) -> Result<()> {
    // a run (or anything else) already there is the user's: never written over
    if std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(Error::format(
            out,
            "already holds files: give `nabla import` a new directory",
        ));
    }
    let bytes = std::fs::read(model).map_err(|e| Error::io(model, e))?;
    let imported = crate::onnx::import(&bytes).map_err(|why| Error::format(model, why))?;
    let notes = crate::onnx::write_imported(&imported, model, out)?;
    let run = SavedRun::open(out)?;
    let input: Vec<usize> = [&[1], &imported.input_shape[..]].concat();
    outln!("{}", run.model.summary(&input));
    let renamed: Vec<String> = imported
        .sources
        .iter()
        .filter(|(name, source)| !source.is_empty() && name != source)
        .map(|(name, source)| format!("{name} ← {source}"))
        .collect();
    if !renamed.is_empty() {
        outln!(
            "weights renamed as nabla names them: {}",
            renamed.join(", ")
        );
    }
    for note in notes {
        outln!("note: {note}");
    }
    outln!(
        "wrote {} (config.toml, model.safetensors, preprocessing.json)",
        out.display()
    );
    Ok(())
}
