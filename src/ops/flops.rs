//! How much arithmetic a training step does: the floating-point operations of its
//! matrix products, counted from the graph its forward pass recorded — each product
//! op's count written once, here.
//!
//! Counted: `linear`, `matmul`, `conv2d` and `attention`, a multiply-add being two
//! operations. Left out, as is usual: elementwise ops, norms, pooling, softmax and the
//! optimizer's update, whose cost grows with their size, not with a product of sizes
//! (they are bound by memory, not by the arithmetic a GEMM peak measures).

use crate::autograd::graph_view;
use crate::element::Float;
use crate::tensor::Tensor;

/// One op's forward floating-point operations, from its name and shapes (the inputs
/// and the output, batch axes included); 0 for an op that is not a product.
///
/// ```
/// // x [32, 784] · Wᵀ with W [256, 784]: 32·256 outputs of 784 multiply-adds
/// let flops = nabla::ops::flops::forward("linear", &[&[32, 784], &[256, 784]], &[32, 256]);
/// assert_eq!(flops, 2 * 32 * 256 * 784);
/// ```
pub fn forward(op: &str, inputs: &[&[usize]], output: &[usize]) -> u64 {
    let count = |shape: &[usize]| shape.iter().map(|&d| d as u64).product::<u64>();
    let outputs = count(output);
    match (op, inputs) {
        // y = x·Wᵀ + b: each output sums `in` products
        ("linear", [_, weight, ..]) => 2 * outputs * weight[1] as u64,
        // each output sums (C_in/groups)·kh·kw products: one weight row per output channel
        ("conv2d", [_, weight, ..]) => 2 * outputs * count(&weight[1..]),
        // C = op(A)·op(B): numel(A)·numel(B)/numel(C) = k² times the batch the
        // operands share (a broadcast operand has none)
        ("matmul" | "matmul_t", [a, b]) if a.len() >= 2 && b.len() >= 2 && output.len() >= 2 => {
            let batch = |s: &[usize]| count(&s[..s.len() - 2]);
            let shared = (count(a) * count(b)) as f64 * batch(output) as f64
                / (outputs.max(1) as f64 * (batch(a) * batch(b)).max(1) as f64);
            2 * outputs * shared.sqrt().round() as u64
        }
        // softmax(q·kᵀ)·v over [batch, time, dim]: time² scores of `dim` products
        // (all heads together), and as many for the weighted sum of values
        ("attention", _) if output.len() == 3 => 4 * outputs * output[1] as u64,
        _ => 0,
    }
}

/// A training step's product arithmetic (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepFlops {
    /// The forward pass.
    pub forward: u64,
    /// The backward pass: for each product, one product of the same size per
    /// operand that needs a gradient (dL/dX = G·W, dL/dW = Gᵀ·X); attention's
    /// four (through scores and values) are twice its forward two.
    pub backward: u64,
}

impl StepFlops {
    /// Forward and backward together.
    pub fn total(&self) -> u64 {
        self.forward + self.backward
    }
}

/// The product arithmetic of a step whose loss is `loss`, read from its graph
/// (call it before `backward`, which frees the graph).
pub fn step<T: Float>(loss: &Tensor<T>) -> StepFlops {
    let view = graph_view(loss);
    let mut flops = StepFlops::default();
    for node in &view {
        let Some(op) = node.op else { continue };
        let inputs: Vec<&[usize]> = node
            .inputs
            .iter()
            .map(|&i| view[i].tensor.shape())
            .collect();
        let forward = forward(op, &inputs, node.tensor.shape());
        if forward == 0 {
            continue;
        }
        let needs_grad = |i: usize| {
            node.inputs
                .get(i)
                .is_some_and(|&i| view[i].tensor.tracks_grad())
        };
        let gradients = match op {
            // one packed source (or q, k, v): all four backward products if any needs one
            "attention" => 2 * u64::from((0..node.inputs.len()).any(needs_grad)),
            _ => u64::from(needs_grad(0)) + u64::from(needs_grad(1)),
        };
        flops.forward += forward;
        flops.backward += gradients * forward;
    }
    flops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Conv2d, Linear, Module, Relu, Sequential};

    #[test]
    fn an_mlp_step_counts_each_product_and_the_gradients_it_needs() {
        let mut rng = crate::rng(0);
        let mlp = Sequential::<f32>::new()
            .layer(Linear::new(20, 8, &mut rng))
            .layer(Relu)
            .layer(Linear::new(8, 3, &mut rng));
        let x = Tensor::ones(&[4, 20]); // data: no gradient wanted
        let flops = step(&mlp.forward(&x).sum());
        let (first, second) = (2 * 4 * 20 * 8, 2 * 4 * 8 * 3);
        assert_eq!(flops.forward, first + second);
        // the first layer needs dL/dW only; the second dL/dx and dL/dW
        assert_eq!(flops.backward, first + 2 * second);
    }

    #[test]
    fn a_convolution_counts_its_window_of_products_per_output() {
        let mut rng = crate::rng(0);
        let options = crate::ops::conv::Conv2dOptions::default()
            .padding(1)
            .groups(2);
        let conv = Conv2d::<f32>::with_init(
            4,
            6,
            (3, 3),
            options,
            true,
            crate::nn::init::Init::PyTorchDefault,
            &mut rng,
        );
        let x = Tensor::ones(&[2, 4, 5, 5]).requires_grad(true);
        let flops = step(&conv.forward(&x).sum());
        // 2·6·5·5 outputs, each over (4/2)·3·3 inputs
        let forward = 2 * (2 * 6 * 5 * 5) * (2 * 3 * 3);
        assert_eq!(
            flops,
            StepFlops {
                forward,
                backward: 2 * forward
            }
        );
    }

    #[test]
    fn matrix_products_find_their_shared_axis_through_broadcasting() {
        // [3, 5, 7]·[7, 2] (the right operand broadcast over the batch of 3)
        assert_eq!(
            forward("matmul", &[&[3, 5, 7], &[7, 2]], &[3, 5, 2]),
            2 * 3 * 5 * 2 * 7
        );
        // [3, 5, 7]·[3, 7, 2]
        assert_eq!(
            forward("matmul", &[&[3, 5, 7], &[3, 7, 2]], &[3, 5, 2]),
            2 * 3 * 5 * 2 * 7
        );
        // a·bᵀ with b [2, 7]
        assert_eq!(
            forward("matmul_t", &[&[5, 7], &[2, 7]], &[5, 2]),
            2 * 5 * 2 * 7
        );
        assert_eq!(forward("relu", &[&[5, 7]], &[5, 7]), 0);
    }

    #[test]
    fn attention_counts_scores_and_weighted_values() {
        // batch 2, time 6, 8 features: 2·6·6·8 multiply-adds for the scores, as many after
        assert_eq!(
            forward("attention", &[&[2, 6, 24]], &[2, 6, 8]),
            2 * 2 * (2 * 6 * 6 * 8)
        );
    }
}
