//! ONNX: nabla's networks written as ONNX graphs, for ONNX Runtime on a server, in a
//! browser or on a phone.
//!
//! Each layer writes its own nodes ([`crate::nn::Module::to_onnx`]) through a
//! [`Builder`]; [`model`] holds the file's parts and their protobuf encoding.

pub mod builder;
pub mod export;
#[cfg(feature = "experiment")]
pub mod import;
pub mod model;
#[cfg(feature = "experiment")]
pub mod run;

pub use builder::{Builder, Value};
pub use export::{DEFAULT_OPSET, InputKind, OPSETS, export_network};
#[cfg(feature = "experiment")]
pub use import::{Imported, import};
pub use model::{Attribute, Dim, ElemType, Graph, Model, Node, TensorData, ValueInfo, Values};
#[cfg(feature = "experiment")]
pub use run::{ExportOptions, export_run, write_imported};
