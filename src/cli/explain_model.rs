//! `nabla explain CONFIG --sample N`: one step of backpropagation through any model
//! a config describes (conv nets included), told by the engine itself — the
//! library's [`crate::explain`] records it, this prints it.

use std::path::Path;

use crate::error::Result;
use crate::explain::source::StepSource;

/// The explanation of training sample `sample` of the config's data, as text; the
/// update is plain SGD at `lr` when given, else the config's optimizer.
pub fn explain_config(path: &Path, sample: usize, lr: Option<f64>) -> Result<String> {
    let mut source = StepSource::config(path)?;
    if let Some(lr) = lr {
        source = source.with_sgd(lr);
    }
    Ok(source.trace(sample)?.text())
}
