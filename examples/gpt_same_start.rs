//! The reference `gpt` workload from PyTorch's start: the initial weights and the
//! window offsets that `bench/gpt_same_start.py` wrote, trained by nabla, so the
//! validation losses after the same steps can be compared (see the README).
//!
//!   python bench/gpt_same_start.py /tmp/same-start 1000
//!   cargo run --release --example gpt_same_start -- /tmp/same-start

use nabla::autograd::no_grad;
use nabla::checkpoint::load_model;
use nabla::data::text::{TextCorpus, Tokenizer, spaced_offsets, windows};
use nabla::loss::{CrossEntropyOptions, cross_entropy};
use nabla::nn::Module;
use nabla::nn::zoo::{GptShape, gpt, gpt_optimizer};
use nabla::train::step;

fn main() -> nabla::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or("/tmp/same-start".into()));
    let (block, batch) = (128, 32);
    let corpus = TextCorpus::load("data/shakespeare.txt".as_ref(), Tokenizer::Char, 0.1, block)?;
    let vocab = corpus.vocabulary.len();
    let model = gpt::<f32>(GptShape::reference(vocab), &mut nabla::rng(0));
    load_model(dir.join("init.safetensors"), &model)?;
    let offsets_path = dir.join("offsets.json");
    let text =
        std::fs::read_to_string(&offsets_path).map_err(|e| nabla::Error::io(&offsets_path, e))?;
    let offsets: Vec<Vec<usize>> = serde_json::from_str(&text)
        .map_err(|e| nabla::Error::format(&offsets_path, e.to_string()))?;
    let mut optimizer = gpt_optimizer(model.named_parameters());
    let options = CrossEntropyOptions::default();
    let loss_of = |logits: &nabla::Tensor, targets: &[usize]| {
        let rows = logits.reshape(&[targets.len(), vocab]);
        cross_entropy(&rows, targets, &options)
    };
    for (index, step_offsets) in offsets.iter().enumerate() {
        let batch_windows = windows(&corpus.train, step_offsets, block);
        assert_eq!(batch_windows.targets.len(), batch * block);
        let taken = step(
            &model,
            &mut optimizer,
            &batch_windows.inputs,
            |logits| loss_of(logits, &batch_windows.targets),
            Some(1.0),
        )
        .map_err(|bad| bad.into_error(&format!("step {}", index + 1)))?;
        if (index + 1) % 100 == 0 {
            println!("step {:5}  train loss {:.4}", index + 1, taken.loss);
        }
    }
    let _guard = no_grad();
    model.eval();
    let val = windows(
        &corpus.validation,
        &spaced_offsets(20, corpus.validation.len(), block),
        block,
    );
    let val_loss = loss_of(&model.forward(&val.inputs), &val.targets).item();
    println!(
        "nabla: validation loss after {} steps {val_loss:.4}",
        offsets.len()
    );
    Ok(())
}
