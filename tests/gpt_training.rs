//! Same learning as PyTorch: from PyTorch's initial weights and on the windows its
//! generator drew, 20 AdamW steps of the reference `gpt` recipe give the losses
//! PyTorch recorded, to 1e-4 (tests/reference/make_gpt_training_reference.py
//! wrote the weights and the numbers; float32 on both sides).

mod common;

use common::reference::{numbers, reference};
use nabla::checkpoint::load_model;
use nabla::data::text::{TextCorpus, Tokenizer, windows};
use nabla::loss::{CrossEntropyOptions, cross_entropy};
use nabla::nn::Module;
use nabla::nn::zoo::{GptShape, gpt, gpt_optimizer};
use nabla::train::step;

#[test]
fn twenty_steps_match_pytorch() {
    let reference = reference("gpt_training.json");
    let size = |key: &str| reference["shape"][key].as_u64().unwrap() as usize;
    let (block, batch) = (size("block_size"), size("batch"));
    let shape = GptShape {
        vocab: size("vocab"),
        block_size: block,
        dim: size("dim"),
        heads: size("heads"),
        layers: size("layers"),
        mlp_ratio: 4,
    };
    let model = gpt::<f32>(shape, &mut nabla::rng(1));
    let init = format!(
        "{}/tests/reference/gpt_training_init.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    load_model(&init, &model).unwrap();
    let text = format!("{}/data/shakespeare.txt", env!("CARGO_MANIFEST_DIR"));
    let corpus = TextCorpus::load(text.as_ref(), Tokenizer::Char, 0.1, block).unwrap();
    assert_eq!(corpus.vocabulary.len(), shape.vocab);
    let mut optimizer = gpt_optimizer(model.named_parameters());
    let options = CrossEntropyOptions::default();
    let expected = numbers(&reference["losses"]);
    for (index, offsets) in reference["offsets"].as_array().unwrap().iter().enumerate() {
        let offsets: Vec<usize> = numbers(offsets).iter().map(|&o| o as usize).collect();
        let batch_windows = windows(&corpus.train, &offsets, block);
        let loss_of = |logits: &nabla::Tensor| {
            let rows = logits.reshape(&[batch * block, shape.vocab]);
            cross_entropy(&rows, &batch_windows.targets, &options)
        };
        let taken = step(
            &model,
            &mut optimizer,
            &batch_windows.inputs,
            loss_of,
            Some(1.0),
        )
        .unwrap();
        assert!(
            (taken.loss - expected[index]).abs() < 1e-4,
            "step {}: nabla {} vs PyTorch {}",
            index + 1,
            taken.loss,
            expected[index]
        );
    }
}
