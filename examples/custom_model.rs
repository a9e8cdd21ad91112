//! Your own network in Rust, trained with everything `nabla train` gives a config:
//! the run directory (metrics, steps, the model, checkpoints), the progress bar, an
//! exact resume after Ctrl-C or a kill, and the live dashboard.
//!
//! ```sh
//! cargo run --release --example custom_model -- --out runs/custom
//! cargo run --release --example custom_model -- --out runs/custom --resume
//! cargo run --release --example custom_model -- --out runs/custom --dashboard
//! ```
//! (`--help` lists the rest: `--epochs N`, `--steps N` an epoch, `--checkpoint-every N`,
//! `--tensorboard [DIR]`.)

use nabla::cli::{RunArgs, fit_model};
use nabla::data::{DataLoader, load_mnist};
use nabla::loss::cross_entropy;
use nabla::nn::{Linear, Module, prefixed};
use nabla::{Tensor, optim::Sgd, train::FitOptions};

/// A two-layer perceptron, 784 → 128 → 10: the forward pass is plain Rust, and
/// the parameters are named as PyTorch names a module's attributes.
struct TwoLayer {
    hidden: Linear,
    output: Linear,
}

impl Module for TwoLayer {
    fn forward(&self, images: &Tensor) -> Tensor {
        self.output.forward(&self.hidden.forward(images).relu())
    }
    fn describe(&self) -> String {
        "TwoLayer(784 → 128 → ReLU → 10)".into()
    }
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut named = prefixed("hidden", self.hidden.named_parameters());
        named.extend(prefixed("output", self.output.named_parameters()));
        named
    }
    fn children(&self) -> Vec<&dyn Module> {
        vec![&self.hidden, &self.output]
    }
}

fn main() -> nabla::Result<()> {
    let args = RunArgs::from_command_line();
    let (train, test) = load_mnist("data/mnist")?;
    let (train, test) = (train.flattened(), test.flattened());
    let mut rng = nabla::rng(0);
    let model = TwoLayer {
        hidden: Linear::new(784, 128, &mut rng),
        output: Linear::new(128, 10, &mut rng),
    };
    let mut optimizer = Sgd::new(model.named_parameters(), 0.05).momentum(0.9);
    let train_loader = DataLoader::new(&train, 64).shuffle(0);
    let test_loader = DataLoader::new(&test, 1000);
    let loss =
        |logits: &Tensor, labels: &[usize]| cross_entropy(logits, labels, &Default::default());
    let options = FitOptions {
        epochs: 3,
        ..Default::default()
    };
    let images = Some([1, 28, 28]); // what the dashboard draws a sample as
    fit_model(
        &model,
        &mut optimizer,
        &train_loader,
        &test_loader,
        &loss,
        options,
        images,
        &args,
    )?;
    Ok(())
}
