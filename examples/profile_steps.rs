//! Runs a fixed number of training steps of the `mlp` or `cnn` benchmark workload on
//! random inputs, for profilers (callgrind, perf) that need a short, steady run.
//!
//! Run: `cargo run --release --example profile_steps -- cnn 50`

use nabla::loss::{CrossEntropyOptions, cross_entropy};
use nabla::nn::Module;
use nabla::optim::{Adam, Optimizer, Sgd};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workload = args.get(1).map(String::as_str).unwrap_or("cnn");
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    nabla::threads::set_num_threads_using_this_thread(None).unwrap();
    let mut rng = nabla::rng(0);
    let (model, mut optimizer, input_shape): (_, Box<dyn Optimizer<f32>>, Vec<usize>) =
        if workload == "mlp" {
            let model = nabla::nn::zoo::mnist_mlp::<f32>(&mut rng);
            let sgd = Sgd::new(model.named_parameters(), 0.05).momentum(0.9);
            (model, Box::new(sgd), vec![128, 784])
        } else {
            let model = nabla::nn::zoo::lenet5::<f32>(&mut rng);
            let adam = Adam::new(model.named_parameters(), 1e-3);
            (model, Box::new(adam), vec![64, 1, 28, 28])
        };
    let inputs = nabla::Tensor::rand_uniform(&input_shape, 0.0, 1.0, &mut rng);
    let labels: Vec<usize> = (0..input_shape[0]).map(|i| i % 10).collect();
    let options = CrossEntropyOptions::default();
    // Ten blocks of steps; the machine may be shared, so report the fastest block
    // and the median one.
    let mut block_ms = Vec::new();
    for _ in 0..10 {
        let started = std::time::Instant::now();
        for _ in 0..steps.div_ceil(10) {
            // the step training takes: forward, loss, backward, finite check, update
            let loss_of = |logits: &nabla::Tensor| cross_entropy(logits, &labels, &options);
            nabla::train::step(&model, optimizer.as_mut(), &inputs, loss_of, None)
                .expect("random inputs keep the loss finite");
        }
        block_ms.push(started.elapsed().as_secs_f64() * 1e3 / steps.div_ceil(10) as f64);
    }
    block_ms.sort_by(f64::total_cmp);
    println!(
        "{workload}: {:.3} ms/step fastest, {:.3} median",
        block_ms[0], block_ms[5]
    );
}
