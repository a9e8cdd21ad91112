//! Transformer modules: gradients against finite differences, a small GPT against
//! PyTorch in f64 (tests/reference/make_gpt_reference.py wrote gpt.json), and
//! generation's KV cache against recomputing the whole sequence.

mod common;

use common::randn;
use common::reference::{assert_close, load_state, numbers, reference, tensor};
use nabla::loss::{CrossEntropyOptions, cross_entropy};
use nabla::nn::init::Init;
use nabla::nn::zoo::{GptShape, gpt};
use nabla::nn::{KvCache, Module, MultiHeadAttention, PositionalEmbedding, TransformerBlock};
use nabla::{Tensor, gradcheck_module};

#[test]
fn module_gradients() {
    let mut rng = nabla::rng(1);
    let x = randn(&[2, 5, 8], 2);
    let modules: Vec<(&str, Box<dyn Module<f64>>)> = vec![
        (
            "causal attention",
            Box::new(MultiHeadAttention::new(8, 2, true, &mut rng)),
        ),
        (
            "attention",
            Box::new(MultiHeadAttention::new(8, 4, false, &mut rng)),
        ),
        (
            "positional embedding",
            Box::new(PositionalEmbedding::new(7, 8, &mut rng)),
        ),
        (
            "transformer block",
            Box::new(TransformerBlock::new(
                8,
                2,
                2,
                true,
                Init::Normal(0.3),
                &mut rng,
            )),
        ),
    ];
    for (name, module) in modules {
        let report = gradcheck_module(module.as_ref(), &x);
        assert!(report.passed(common::TOLERANCE), "{name}: {report}");
    }
}

fn small_gpt(reference: &serde_json::Value) -> nabla::nn::Sequential<f64> {
    let size = |key: &str| reference["shape"][key].as_u64().unwrap() as usize;
    let shape = GptShape {
        vocab: size("vocab"),
        block_size: size("block_size"),
        dim: size("dim"),
        heads: size("heads"),
        layers: size("layers"),
        mlp_ratio: 4,
    };
    gpt(shape, &mut nabla::rng(0))
}

/// The same network as PyTorch's, weight for weight (the names map one to one):
/// the same logits, loss and every parameter's gradient, to 1e-10 in f64.
#[test]
fn gpt_matches_pytorch() {
    let reference = reference("gpt.json");
    let model = small_gpt(&reference);
    load_state(&model, &reference["state"]);
    let ids = tensor::<f64>(&reference["ids"]);
    let logits = model.forward(&ids);
    assert_close(
        "logits",
        &logits.to_vec(),
        &numbers(&reference["logits"]["values"]),
        1e-10,
    );
    let vocab = logits.dim(-1);
    let targets: Vec<usize> = numbers(&reference["targets"])
        .iter()
        .map(|&t| t as usize)
        .collect();
    let loss = cross_entropy(
        &logits.reshape(&[targets.len(), vocab]),
        &targets,
        &CrossEntropyOptions::default(),
    );
    let expected_loss = reference["loss"].as_f64().unwrap();
    assert!(
        (loss.item() - expected_loss).abs() < 1e-10,
        "loss {} vs {expected_loss}",
        loss.item()
    );
    loss.backward();
    for (name, p) in model.named_parameters() {
        let expected = numbers(&reference["grads"][&name]["values"]);
        assert_close(
            &format!("grad {name}"),
            &p.grad().unwrap().to_vec(),
            &expected,
            1e-10,
        );
    }
}

/// Feeding a sequence a few tokens at a time through the KV cache gives the logits
/// of the whole sequence at once (each position sees the same earlier positions).
#[test]
fn kv_cache_equals_full_forward() {
    let shape = GptShape {
        vocab: 9,
        block_size: 12,
        dim: 8,
        heads: 2,
        layers: 2,
        mlp_ratio: 4,
    };
    let model = gpt::<f64>(shape, &mut nabla::rng(4));
    let ids: Vec<f64> = (0..10).map(|i| ((i * 7 + 3) % 9) as f64).collect();
    let full = model
        .forward(&Tensor::from_vec(ids.clone(), &[1, 10]))
        .to_vec();
    let mut cache = KvCache::new();
    let mut cached = Vec::new();
    for piece in [&ids[..3], &ids[3..4], &ids[4..8], &ids[8..9], &ids[9..]] {
        let logits = model.forward_cached(
            &Tensor::from_vec(piece.to_vec(), &[1, piece.len()]),
            &mut cache,
        );
        cache.advance(piece.len());
        cached.extend(logits.to_vec());
    }
    assert_eq!(cache.position(), 10);
    assert_close("cached logits", &cached, &full, 1e-12);
}

/// The reference workload's network has torch_gpt.py's parameter count for its
/// 65-character vocabulary: 0.83 M.
#[test]
fn reference_gpt_size() {
    let model = gpt::<f32>(GptShape::reference(65), &mut nabla::rng(0));
    // tokens 65·128 + positions 128·128 + 4 blocks + final norm 2·128 + head 128·65
    let block = 2 * 128
        + (128 * 384 + 384)
        + (128 * 128 + 128)
        + 2 * 128
        + (128 * 512 + 512)
        + (512 * 128 + 128);
    assert_eq!(
        model.num_parameters(),
        65 * 128 + 128 * 128 + 4 * block + 2 * 128 + 128 * 65
    );
    assert!((820_000..840_000).contains(&model.num_parameters()));
}
