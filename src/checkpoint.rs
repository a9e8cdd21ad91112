//! Checkpoints as safetensors files, with PyTorch's names and layouts: a model file
//! written here loads in PyTorch with `safetensors.torch.load_file` +
//! `load_state_dict`, and the other way round.
//!
//! Files are written atomically (a temporary file, fsync, rename), so a crash never
//! leaves a half-written checkpoint in place of a good one.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::element::Float;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::optim::Optimizer;
use crate::tensor::Tensor;

/// Tensors read from a file, in file order, plus its string metadata.
pub struct Loaded<T: Float> {
    /// The tensors, in file order, converted to `T`.
    pub tensors: Vec<(String, Tensor<T>)>,
    /// The file's string metadata (epoch, step, …).
    pub metadata: BTreeMap<String, String>,
}

/// PyTorch stores batch norm's counter as a 64-bit integer.
fn is_integer_buffer(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// Writes named tensors (and string metadata) to `path`, atomically.
pub fn save_tensors<T: Float>(
    path: impl AsRef<Path>,
    tensors: &[(String, Tensor<T>)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let dtype = if T::DTYPE == "F64" {
        Dtype::F64
    } else {
        Dtype::F32
    };
    let encoded: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let values = t.data();
            let (dtype, bytes) = if is_integer_buffer(name) {
                (
                    Dtype::I64,
                    values
                        .iter()
                        .flat_map(|v| (v.as_f64() as i64).to_le_bytes())
                        .collect(),
                )
            } else if dtype == Dtype::F64 {
                (
                    dtype,
                    values
                        .iter()
                        .flat_map(|v| v.as_f64().to_le_bytes())
                        .collect(),
                )
            } else {
                (
                    dtype,
                    values
                        .iter()
                        .flat_map(|v| (v.as_f64() as f32).to_le_bytes())
                        .collect(),
                )
            };
            (name.clone(), dtype, t.shape().to_vec(), bytes)
        })
        .collect();
    let views = encoded
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|view| (name.as_str(), view))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::format(path, format!("cannot encode tensors: {e}")))?;
    // the map type is safetensors' own (hashbrown's, as its std feature is off)
    let unordered = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut bytes = safetensors::serialize(views, Some(unordered))
        .map_err(|e| Error::format(path, format!("cannot encode: {e}")))?;
    sort_metadata(&mut bytes, metadata);
    write_atomically(path, &bytes)
}

/// safetensors writes the metadata map in hash order, so two saves of the same
/// model would differ in their header. The map is the header's first entry and its
/// sorted form has exactly the same length, so it is rewritten in place: the same
/// model always gives the same bytes, and a file's checksum identifies it.
fn sort_metadata(bytes: &mut [u8], metadata: &BTreeMap<String, String>) {
    const PREFIX: &[u8] = b"{\"__metadata__\":";
    let start = 8 + PREFIX.len();
    let sorted = serde_json::to_vec(metadata).expect("strings serialise");
    let fits = bytes.len() >= start + sorted.len() && bytes[8..start] == *PREFIX;
    assert!(
        fits,
        "safetensors header layout changed: metadata is not first"
    );
    bytes[start..start + sorted.len()].copy_from_slice(&sorted);
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over
/// `path`: readers see the old file or the new one, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // make the rename itself durable (best effort: not every platform allows it)
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        Error::io(path, e)
    })
}

/// Reads every tensor of a safetensors file as `T` (F32, F64, I64 and I32 are accepted).
pub fn load_tensors<T: Float>(path: impl AsRef<Path>) -> Result<Loaded<T>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_tensors(path, &bytes)
}

/// Decodes the bytes of a safetensors file; `path` names it in errors.
pub fn parse_tensors<T: Float>(path: &Path, bytes: &[u8]) -> Result<Loaded<T>> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
    let metadata = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    // file order: by offset, as written
    let mut views = file.tensors();
    views.sort_by_key(|(_, view)| view.data().as_ptr() as usize);
    let mut tensors = Vec::with_capacity(views.len());
    for (name, view) in views {
        let data = view.data();
        let values: Vec<T> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| T::cast(f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64))
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| T::cast(f64::from_le_bytes(b.try_into().expect("8 bytes"))))
                .collect(),
            Dtype::I64 => data
                .chunks_exact(8)
                .map(|b| T::cast(i64::from_le_bytes(b.try_into().expect("8 bytes")) as f64))
                .collect(),
            Dtype::I32 => data
                .chunks_exact(4)
                .map(|b| T::cast(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64))
                .collect(),
            other => {
                return Err(Error::format(
                    path,
                    format!(
                        "tensor `{name}`: expected dtype F32, F64, I64 or I32, found {other:?}"
                    ),
                ));
            }
        };
        tensors.push((name, Tensor::from_vec(values, view.shape())));
    }
    Ok(Loaded { tensors, metadata })
}

/// Saves a model's parameters and buffers under their `state_dict` names.
pub fn save_model<T: Float>(
    path: impl AsRef<Path>,
    model: &dyn Module<T>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    save_tensors(path, &model.state_dict(), metadata)
}

/// Loads a model file into `model`, which must have exactly the file's tensors with
/// the same shapes; returns the file's metadata. On any mismatch nothing is changed.
pub fn load_model<T: Float>(
    path: impl AsRef<Path>,
    model: &dyn Module<T>,
) -> Result<BTreeMap<String, String>> {
    let path = path.as_ref();
    let loaded = load_tensors::<T>(path)?;
    assign_state(path, model, &loaded.tensors)?;
    Ok(loaded.metadata)
}

/// Copies `tensors` into the model's state after checking that names and shapes
/// match exactly (nothing changes if they do not); errors name `path`, where the
/// tensors came from.
pub fn assign_state<T: Float>(
    path: &Path,
    model: &dyn Module<T>,
    tensors: &[(String, Tensor<T>)],
) -> Result<()> {
    let file: HashMap<&str, &Tensor<T>> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let state = model.state_dict();
    for (name, tensor) in &state {
        let Some(stored) = file.get(name.as_str()) else {
            return Err(Error::format(
                path,
                format!(
                    "tensor `{name}` of the model (shape {:?}) is missing from the file",
                    tensor.shape()
                ),
            ));
        };
        if stored.shape() != tensor.shape() {
            return Err(Error::format(
                path,
                format!(
                    "tensor `{name}`: the model expects shape {:?}, the file holds shape {:?}",
                    tensor.shape(),
                    stored.shape()
                ),
            ));
        }
    }
    let known: std::collections::HashSet<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<String> = tensors
        .iter()
        .filter(|(n, _)| !known.contains(n.as_str()))
        .map(|(n, _)| format!("`{n}`"))
        .collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(Error::format(
            path,
            format!(
                "the file holds tensors the model does not have: {}",
                extra.join(", ")
            ),
        ));
    }
    for (name, tensor) in &state {
        tensor.copy_from_slice(&file[name.as_str()].data());
    }
    Ok(())
}

/// Saves an optimizer's state (momentum buffers, moment estimates, step counts).
pub fn save_optimizer<T: Float>(
    path: impl AsRef<Path>,
    optimizer: &dyn Optimizer<T>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut metadata = metadata.clone();
    metadata.insert("lr".into(), optimizer.lr().to_string());
    save_tensors(path, &optimizer.state(), &metadata)
}

/// Restores an optimizer's state saved by [`save_optimizer`]; returns the metadata.
pub fn load_optimizer<T: Float>(
    path: impl AsRef<Path>,
    optimizer: &mut dyn Optimizer<T>,
) -> Result<BTreeMap<String, String>> {
    let path = path.as_ref();
    let loaded = load_tensors::<T>(path)?;
    restore_optimizer(path, optimizer, &loaded.tensors, &loaded.metadata)?;
    Ok(loaded.metadata)
}

/// Loads `state` into `optimizer` and sets its learning rate from the `"lr"`
/// metadata, if saved; errors name `path`.
fn restore_optimizer<T: Float>(
    path: &Path,
    optimizer: &mut dyn Optimizer<T>,
    state: &[(String, Tensor<T>)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    optimizer
        .load_state(state)
        .map_err(|e| Error::format(path, e.to_string()))?;
    if let Some(lr) = metadata.get("lr").and_then(|v| v.parse::<f64>().ok()) {
        optimizer.set_lr(lr);
    }
    Ok(())
}

/// Saves everything needed to resume training — the model's state (under `model.`),
/// the optimizer's (under `optimizer.`) and string metadata such as the epoch and
/// step — in one file, so one atomic rename commits all of it together.
pub fn save_training_state<T: Float>(
    path: impl AsRef<Path>,
    model: &dyn Module<T>,
    optimizer: &dyn Optimizer<T>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor<T>)> = model
        .state_dict()
        .into_iter()
        .map(|(n, t)| (format!("model.{n}"), t))
        .collect();
    tensors.extend(
        optimizer
            .state()
            .into_iter()
            .map(|(n, t)| (format!("optimizer.{n}"), t)),
    );
    let mut metadata = metadata.clone();
    metadata.insert("lr".into(), optimizer.lr().to_string());
    save_tensors(path, &tensors, &metadata)
}

/// Restores a file written by [`save_training_state`] into `model` and `optimizer`;
/// returns its metadata. The model is checked completely before anything changes.
pub fn load_training_state<T: Float>(
    path: impl AsRef<Path>,
    model: &dyn Module<T>,
    optimizer: &mut dyn Optimizer<T>,
) -> Result<BTreeMap<String, String>> {
    let path = path.as_ref();
    let loaded = load_tensors::<T>(path)?;
    let mut model_tensors = Vec::new();
    let mut optimizer_tensors = Vec::new();
    for (name, tensor) in loaded.tensors {
        if let Some(rest) = name.strip_prefix("model.") {
            model_tensors.push((rest.to_string(), tensor));
        } else if let Some(rest) = name.strip_prefix("optimizer.") {
            optimizer_tensors.push((rest.to_string(), tensor));
        } else {
            return Err(Error::format(
                path,
                format!("tensor `{name}` is neither `model.…` nor `optimizer.…`"),
            ));
        }
    }
    assign_state(path, model, &model_tensors)?;
    restore_optimizer(path, optimizer, &optimizer_tensors, &loaded.metadata)?;
    Ok(loaded.metadata)
}
