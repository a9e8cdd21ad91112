//! The `mlp` workload of the PyTorch reference benchmark, exactly: 784-256-128-10
//! with ReLU, PyTorch's default initialisation, cross-entropy, SGD with learning
//! rate 0.05 and momentum 0.9, batch 128 (last partial batch kept), 5 epochs.
//!
//! Run: `cargo run --release --example mnist_mlp`

use nabla::data::{DataLoader, load_mnist};
use nabla::loss::{CrossEntropyOptions, cross_entropy};
use nabla::nn::Module;
use nabla::optim::Sgd;
use nabla::train::{Control, Event, FitOptions, fit};

fn main() -> nabla::Result<()> {
    let (train, test) = load_mnist("data/mnist")?;
    let (train, test) = (train.flattened(), test.flattened());
    let mut rng = nabla::rng(0);
    let model = nabla::nn::zoo::mnist_mlp::<f32>(&mut rng);
    println!("{}", model.summary(&[1, 784]));
    let mut optimizer = Sgd::new(model.named_parameters(), 0.05).momentum(0.9);
    let train_loader = DataLoader::new(&train, 128).shuffle(0);
    let test_loader = DataLoader::new(&test, 1000);
    let loss = |logits: &nabla::Tensor, labels: &[usize]| {
        cross_entropy(logits, labels, &CrossEntropyOptions::default())
    };
    let options = FitOptions {
        epochs: 5,
        ..Default::default()
    };
    fit(
        &model,
        &mut optimizer,
        &train_loader,
        Some(&test_loader),
        &loss,
        &options,
        &mut |event| {
            if let Event::EpochEnd { metrics: m, .. } = event {
                println!(
                    "epoch {}  train loss {:.4}  train accuracy {:.2}%  test accuracy {:.2}%  ({:.2} s)",
                    m.epoch,
                    m.train_loss,
                    100.0 * m.train_accuracy,
                    100.0 * m.test_accuracy.unwrap_or(0.0),
                    m.seconds
                );
            }
            Control::Continue
        },
    )?;
    Ok(())
}
