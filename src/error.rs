//! Errors returned at nabla's boundaries (files, configs, user-supplied shapes).

/// Everything that can go wrong in a fallible nabla call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Shapes that do not fit together; the message names both.
    #[error("shape error: {0}")]
    Shape(String),
    /// A setting out of range.
    #[error("configuration error: {0}")]
    Config(String),
}

/// `Result` with nabla's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
