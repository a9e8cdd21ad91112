//! The differentiable operations, one family per file. In each, an op computes its
//! output with a CPU kernel and, right beside it, states its backward rule: how the
//! gradient of the loss with respect to the output becomes the gradient with
//! respect to each input.

pub mod activation;
pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod flops;
pub mod linear;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod shape;
pub mod softmax;
