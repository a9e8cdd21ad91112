//! The device seam: every kernel an op calls, by job, in one place.
//!
//! Ops (`src/ops/`) state the math — forward and backward rules — and reach the
//! loops that compute it only through this module, never through a device's own
//! folder. Today every tensor lives in main memory
//! ([`Device::Cpu`](crate::tensor::storage::Device)) and each entry below is the
//! CPU kernel of `src/cpu/`. A second device (a GPU) adds its folder of kernels and a
//! [`Storage`](crate::tensor::storage::Storage) variant, and implements each entry
//! here for its storage, choosing by the operands' device; the ops stay as they are.
//! What such a device implements is listed in CONTRIBUTING.md ("Adding a device").

/// Output and scratch memory: buffers from the pool, and guards that hand them back.
pub use crate::cpu::buffer::{self, Recycled};

/// Elementwise maps and zips (with their wide-vector loops), broadcasting zips.
pub use crate::cpu::{map, zip_broadcast, zip3};

/// Layout: strided gathers (transpose, permute, broadcast_to) and boxes (concat,
/// slice, pad).
pub use crate::cpu::{copy_into_box, extract_box, gather_strided};

/// Sums, maxima, means along axes; the finite check.
pub use crate::cpu::reduce;

/// Matrix products, with transposes expressed as strides.
pub use crate::cpu::gemm::{MatRef, gemm_batched, product};

/// Convolution: its options, its geometry, and the plan that runs it.
pub use crate::cpu::conv::{Conv2dOptions, ConvPlan, Window};

/// Pooling over windows.
pub use crate::cpu::pool;

/// Batch and layer normalisation.
pub use crate::cpu::norm::{self, ChannelLayout};

/// Scaled dot-product attention per (batch, head).
pub use crate::cpu::attention::{self, AttentionShape, Hidden, Placement};
