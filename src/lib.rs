//! # nabla — neural networks by forward propagation and backpropagation
//!
//! A tensor engine with reverse-mode automatic differentiation, written to be read:
//! every op states its forward rule and, a few lines below, its backward rule.
//!
//! ```
//! use nabla::Tensor;
//!
//! // A single sigmoid neuron, one step of gradient descent on a squared error.
//! let mut rng = nabla::rng(0);
//! let w = Tensor::<f32>::randn(&[2, 1], 0.0, 1.0, &mut rng).requires_grad(true);
//! let b = Tensor::<f32>::zeros(&[1]).requires_grad(true);
//! let x = Tensor::from_vec(vec![1.0, 0.0], &[1, 2]);
//! let target = Tensor::from_vec(vec![1.0], &[1, 1]);
//!
//! // forward: z = x·W + b, a = σ(z), L = (a − y)²
//! let prediction = (x.matmul(&w) + &b).sigmoid();
//! let loss = (&prediction - &target).square().mean();
//!
//! // backward: dL/dW and dL/db by the chain rule
//! loss.backward();
//! let learning_rate = 0.5;
//! for p in [&w, &b] {
//!     let grad = p.grad().unwrap();
//!     p.update_data(|v| v.iter_mut().zip(grad.data().iter()).for_each(|(v, g)| *v -= learning_rate * g));
//!     p.zero_grad();
//! }
//! let new_loss = ((x.matmul(&w) + &b).sigmoid() - &target).square().mean();
//! assert!(new_loss.item() < loss.item());
//! ```
//!
//! Where things are: [`Tensor`] (creation, queries), the ops in [`ops`] (one file per
//! family), the graph walk in [`autograd`], numerical checks in [`gradcheck()`].

/// `println!` / `print!` for what the `nabla` command and the dashboard print to
/// standard output (see [`write_stdout`]).
#[cfg(any(feature = "cli", feature = "dashboard"))]
macro_rules! outln {
    () => { $crate::write_stdout(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*), true) };
}
#[cfg(any(feature = "cli", feature = "dashboard"))]
macro_rules! outprint {
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*), false) };
}

/// Writes to standard output (and a newline when `newline`). If the reader has gone —
/// `nabla train … | head` — the process ends quietly with status 0, as Unix tools do,
/// instead of panicking as `println!` would; any other write error is reported on
/// stderr and ends the process with status 1. Checkpoints are written atomically, so
/// nothing is left half-written.
#[cfg(any(feature = "cli", feature = "dashboard"))]
#[doc(hidden)]
pub fn write_stdout(text: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(text)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("error: cannot write to standard output: {error}");
            std::process::exit(1);
        }
    }
}

pub mod autograd;
pub mod checkpoint;
#[cfg(feature = "cli")]
pub mod cli;
pub mod cpu;
#[cfg(feature = "dashboard")]
pub mod dashboard;
pub mod data;
pub mod device;
pub mod distributed;
pub mod element;
pub mod error;
#[cfg(feature = "experiment")]
pub mod experiment;
pub mod explain;
pub mod generate;
pub mod gradcheck;
pub mod loss;
pub mod memory;
pub mod metrics;
pub mod nn;
pub mod onnx;
pub mod ops;
pub mod optim;
pub mod protobuf;
#[cfg(feature = "experiment")]
pub mod run;
mod special;
pub mod tensor;
#[cfg(feature = "tensorboard")]
pub mod tensorboard;
pub mod threads;
pub mod train;

pub use autograd::{BackwardCtx, InputGrads, is_grad_enabled, live_nodes, no_grad};
pub use element::Float;
pub use error::{Error, Result};
pub use gradcheck::{
    GradcheckReport, InputReport, gradcheck, gradcheck_module, gradcheck_with_eps,
};
pub use ops::conv::Conv2dOptions;
pub use tensor::storage::Device;
pub use tensor::{Tensor, rng};
pub use threads::{num_threads, set_num_threads};
