//! Errors returned at nabla's boundaries (files, configs, user-supplied shapes).
//! Each names the file, the place in it, what was expected and what was found.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in a fallible nabla call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Shapes that do not fit together; the message names both.
    #[error("shape error: {0}")]
    Shape(String),
    /// A setting out of range.
    #[error("configuration error: {0}")]
    Config(String),
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        #[source]
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file whose contents are not what they should be.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Where in it, what was expected and what was found.
        message: String,
    },
    /// Training stopped because the loss or a gradient stopped being finite.
    #[error("{0}")]
    Diverged(String),
    /// The ranks of a data-parallel run disagree (config, weights) or cannot run.
    #[error("distributed training: {0}")]
    Distributed(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A malformed-content error on `path`.
    pub fn format(path: &Path, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// `Result` with nabla's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
