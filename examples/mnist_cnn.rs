//! The `cnn` workload of the PyTorch reference benchmark: LeNet-5 (conv 6@5×5 pad 2,
//! max-pool, conv 16@5×5, max-pool, 120, 84, 10 with ReLU), cross-entropy, Adam
//! with learning rate 1e-3, batch 64, 2 epochs.
//!
//! Run: `cargo run --release --example mnist_cnn`

use nabla::data::{DataLoader, load_mnist};
use nabla::loss::{CrossEntropyOptions, cross_entropy};
use nabla::nn::Module;
use nabla::optim::Adam;
use nabla::train::{Control, Event, FitOptions, fit};

fn main() -> nabla::Result<()> {
    let (train, test) = load_mnist("data/mnist")?;
    let mut rng = nabla::rng(0);
    let model = nabla::nn::zoo::lenet5::<f32>(&mut rng);
    println!("{}", model.summary(&[1, 1, 28, 28]));
    let mut optimizer = Adam::new(model.named_parameters(), 1e-3);
    let train_loader = DataLoader::new(&train, 64).shuffle(0);
    let test_loader = DataLoader::new(&test, 1000);
    let loss = |logits: &nabla::Tensor, labels: &[usize]| {
        cross_entropy(logits, labels, &CrossEntropyOptions::default())
    };
    let options = FitOptions {
        epochs: 2,
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
