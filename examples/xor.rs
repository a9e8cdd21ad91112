//! XOR with a 2-2-1 sigmoid network, from the tensor engine alone: forward pass,
//! squared error, backward pass, gradient-descent update — the whole of backprop
//! in one screen.
//!
//! Run: `cargo run --release --example xor`

use nabla::Tensor;

/// The four XOR cases and their targets.
pub fn xor_data() -> (Tensor<f32>, Tensor<f32>) {
    let inputs = Tensor::from_vec(vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0], &[4, 2]);
    let targets = Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0], &[4, 1]);
    (inputs, targets)
}

/// A 2-2-1 network with sigmoid units.
pub struct XorNet {
    /// Hidden weights `[2, 2]`.
    pub w1: Tensor<f32>,
    /// Hidden biases `[2]`.
    pub b1: Tensor<f32>,
    /// Output weights `[2, 1]`.
    pub w2: Tensor<f32>,
    /// Output bias `[1]`.
    pub b2: Tensor<f32>,
}

impl XorNet {
    /// Weights drawn uniformly from ±1 with a fixed seed.
    pub fn new(seed: u64) -> Self {
        let mut rng = nabla::rng(seed);
        let mut param =
            |shape: &[usize]| Tensor::rand_uniform(shape, -1.0, 1.0, &mut rng).requires_grad(true);
        XorNet {
            w1: param(&[2, 2]),
            b1: param(&[2]),
            w2: param(&[2, 1]),
            b2: param(&[1]),
        }
    }

    /// Forward propagation: hidden = σ(x·W₁ + b₁), output = σ(hidden·W₂ + b₂).
    pub fn forward(&self, x: &Tensor<f32>) -> Tensor<f32> {
        let hidden = (x.matmul(&self.w1) + &self.b1).sigmoid();
        (hidden.matmul(&self.w2) + &self.b2).sigmoid()
    }

    /// One full-batch gradient-descent step; returns the loss before it.
    pub fn step(&self, x: &Tensor<f32>, y: &Tensor<f32>, learning_rate: f32) -> f32 {
        let loss = (self.forward(x) - y).square().mean();
        loss.backward();
        for p in [&self.w1, &self.b1, &self.w2, &self.b2] {
            let grad = p.grad().expect("every parameter is used");
            p.update_data(|w| {
                w.iter_mut()
                    .zip(grad.data().iter())
                    .for_each(|(w, g)| *w -= learning_rate * g)
            });
            p.zero_grad();
        }
        loss.item()
    }
}

/// Trains from `seed` for `steps` steps; returns the network and the loss curve.
pub fn train(seed: u64, steps: usize, learning_rate: f32) -> (XorNet, Vec<f32>) {
    let (x, y) = xor_data();
    let net = XorNet::new(seed);
    let losses = (0..steps)
        .map(|_| net.step(&x, &y, learning_rate))
        .collect();
    (net, losses)
}

#[allow(dead_code)] // also compiled into tests/xor.rs, which has its own main
fn main() {
    let (net, losses) = train(0, 5000, 2.0);
    for (step, loss) in losses.iter().enumerate().filter(|(s, _)| s % 1000 == 0) {
        println!("step {step:>4}  loss {loss:.6}");
    }
    let (x, _) = xor_data();
    let prediction = {
        let _guard = nabla::no_grad();
        net.forward(&x)
    };
    println!("loss after training: {:.6}", losses.last().unwrap());
    println!("inputs:\n{x}\npredictions (targets 0, 1, 1, 0):\n{prediction}");
}
