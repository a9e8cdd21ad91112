//! The reference benchmark networks, built once for the examples and `nabla bench`.

use rand::Rng;

use super::{Conv2d, Flatten, Linear, MaxPool2d, Relu, Sequential};
use crate::element::Float;
use crate::ops::conv::Conv2dOptions;

/// The reference `mlp`: 784-256-128-10 with ReLU (PyTorch's default init).
pub fn mnist_mlp<T: Float>(rng: &mut impl Rng) -> Sequential<T> {
    Sequential::new()
        .layer(Linear::new(784, 256, rng))
        .layer(Relu)
        .layer(Linear::new(256, 128, rng))
        .layer(Relu)
        .layer(Linear::new(128, 10, rng))
}

/// The reference `cnn`, LeNet-5: conv 6@5×5 pad 2, max-pool, conv 16@5×5, max-pool,
/// 120, 84, 10, with ReLU.
pub fn lenet5<T: Float>(rng: &mut impl Rng) -> Sequential<T> {
    Sequential::new()
        .layer(Conv2d::new(
            1,
            6,
            5,
            Conv2dOptions::default().padding(2),
            rng,
        ))
        .layer(Relu)
        .layer(MaxPool2d::new(2))
        .layer(Conv2d::new(6, 16, 5, Conv2dOptions::default(), rng))
        .layer(Relu)
        .layer(MaxPool2d::new(2))
        .layer(Flatten)
        .layer(Linear::new(400, 120, rng))
        .layer(Relu)
        .layer(Linear::new(120, 84, rng))
        .layer(Relu)
        .layer(Linear::new(84, 10, rng))
}
