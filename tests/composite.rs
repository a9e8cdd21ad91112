//! Whole networks: the gradient of every weight of a 3-layer MLP with softmax
//! cross-entropy, and of a small conv net, against finite differences.

mod common;

use common::*;
use nabla::{Conv2dOptions, Tensor};

/// Mean cross-entropy of `logits` ([batch, classes]) against class indices:
/// −mean(log softmax(logits)[i, yᵢ]).
fn cross_entropy(logits: &Tensor<f64>, labels: &[usize]) -> Tensor<f64> {
    let picked = logits.log_softmax(-1).gather(1, labels, &[labels.len(), 1]);
    -picked.mean()
}

#[test]
fn three_layer_mlp_with_softmax_cross_entropy() {
    let (batch, inputs, hidden, classes) = (5, 6, 7, 4);
    let x = randn(&[batch, inputs], 1);
    let labels = [0, 3, 1, 1, 2];
    let params = [
        randn(&[inputs, hidden], 2),
        randn(&[hidden], 3),
        randn(&[hidden, hidden], 4),
        randn(&[hidden], 5),
        randn(&[hidden, classes], 6),
        randn(&[classes], 7),
    ];
    let network = |p: &[Tensor<f64>]| {
        let h1 = (x.matmul(&p[0]) + &p[1]).tanh();
        let h2 = (h1.matmul(&p[2]) + &p[3]).sigmoid();
        let logits = h2.matmul(&p[4]) + &p[5];
        cross_entropy(&logits, &labels)
    };
    assert_gradients("mlp", network, &params);
}

#[test]
fn small_conv_net() {
    // conv2d → relu → max_pool → flatten → linear → cross-entropy
    let x = randn(&[2, 1, 6, 6], 11);
    let labels = [1, 0];
    let params = [
        randn(&[3, 1, 3, 3], 12),
        randn(&[3], 13),
        randn(&[3 * 3 * 3, 2], 14),
        randn(&[2], 15),
    ];
    let network = |p: &[Tensor<f64>]| {
        let features = x
            .conv2d(&p[0], Some(&p[1]), Conv2dOptions::default().padding(1))
            .relu()
            .max_pool2d((2, 2), (2, 2), (0, 0))
            .flatten(1, -1);
        let logits = features.matmul(&p[2]) + &p[3];
        cross_entropy(&logits, &labels)
    };
    assert_gradients("conv net", network, &params);
}
