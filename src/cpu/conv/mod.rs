//! Convolution kernels on NCHW tensors, one job per file:
//!
//! - [`window`]: the geometry — [`Conv2dOptions`] as a user gives them, [`Window`] sizes;
//! - [`plan`]: [`ConvPlan`], which path one convolution takes, forward and backward;
//! - [`im2col`]: the im2col + GEMM path's copies (receptive fields into columns and back);
//! - [`wide`]: the padded "wide" layout stride-1 kernels share ([`Padded`]);
//! - [`direct`]: the direct kernel of small stride-1 layers;
//! - [`tiled`]: stride-1 convolution in register tiles of FMAs (AVX-512).
//!
//! Pooling is [`crate::cpu::pool`].

pub mod direct;
pub mod im2col;
pub mod plan;
pub mod tiled;
pub mod wide;
pub mod window;

pub(crate) use crate::cpu::parallel::for_each_chunk;
pub use direct::{conv_direct, conv_direct_grad_weight};
pub use im2col::{col2im_add, im2col};
pub use plan::ConvPlan;
pub use wide::Padded;
pub use window::{Conv2dOptions, Window};
