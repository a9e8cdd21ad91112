//! Sampling text from a trained language model, one token at a time: the model's
//! logits for the next position, divided by a temperature, cut to the `top_k`
//! likeliest tokens, softmax, one draw — then the drawn token is fed back in.
//!
//! With a [`KvCache`] each new token costs one position of work (its keys and
//! values are appended; earlier positions are not recomputed). When the window
//! reaches the model's `block_size`, the context restarts from the last half of
//! it, so that the learned positions are never exceeded.

use rand::RngExt;

use crate::autograd::no_grad;
use crate::nn::{KvCache, Module};
use crate::tensor::Tensor;

/// How the next token is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Divides the logits: below 1 sharper, above 1 flatter; 0 always takes the
    /// likeliest token.
    pub temperature: f64,
    /// Draw only among the `k` likeliest tokens (`None`: all).
    pub top_k: Option<usize>,
    /// Seeds the draws: same seed, same text.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 1.0,
            top_k: None,
            seed: 0,
        }
    }
}

/// Generates `count` tokens after `prompt` (token ids, at least one) with a model
/// that maps `[1, time]` ids to `[1, time, vocab]` logits over at most
/// `block_size` positions. Each new token is shown to `on_token` as it is drawn
/// (to stream it). `use_cache = false` recomputes the whole window for every token
/// — the same logits, slower; kept to test the cache against.
pub fn generate(
    model: &dyn Module<f32>,
    prompt: &[usize],
    count: usize,
    block_size: usize,
    sampling: Sampling,
    use_cache: bool,
    mut on_token: impl FnMut(usize),
) -> Vec<usize> {
    assert!(
        !prompt.is_empty(),
        "generate: the prompt needs at least one token"
    );
    assert!(block_size > 0, "generate: block_size must be at least 1");
    let _guard = no_grad();
    model.eval();
    let mut rng = crate::rng(sampling.seed);
    let mut ids = prompt.to_vec();
    // the context is ids[start..]; the cache holds ids[start..fed]
    let mut start = ids.len().saturating_sub(block_size);
    let mut cache = KvCache::new();
    let mut fed = start;
    for _ in 0..count {
        if ids.len() - start > block_size {
            start = ids.len() - (block_size / 2).max(1);
            (cache, fed) = (KvCache::new(), start);
        }
        let logits = if use_cache {
            let new = as_input(&ids[fed..]);
            let logits = model.forward_cached(&new, &mut cache);
            cache.advance(ids.len() - fed);
            fed = ids.len();
            logits
        } else {
            model.forward(&as_input(&ids[start..]))
        };
        let next = draw(&last_row(&logits), sampling, &mut rng);
        ids.push(next);
        on_token(next);
    }
    ids.split_off(prompt.len())
}

/// The logits of the next token after `context` (what `generate` samples from),
/// computed over the whole context at once.
pub fn next_token_logits(model: &dyn Module<f32>, context: &[usize]) -> Vec<f32> {
    let _guard = no_grad();
    last_row(&model.forward(&as_input(context)))
}

/// Token ids as the `[1, time]` input an embedding takes.
fn as_input(ids: &[usize]) -> Tensor<f32> {
    Tensor::from_vec(ids.iter().map(|&id| id as f32).collect(), &[1, ids.len()])
}

/// The last position's logits of a `[1, time, vocab]` output.
fn last_row(logits: &Tensor<f32>) -> Vec<f32> {
    let vocab = logits.dim(-1);
    let values = logits.data();
    values[values.len() - vocab..].to_vec()
}

/// One draw from `softmax(logits / temperature)` over the `top_k` likeliest tokens.
fn draw(logits: &[f32], sampling: Sampling, rng: &mut impl rand::Rng) -> usize {
    let likeliest = (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a)))
        .expect("at least one token");
    if sampling.temperature <= 0.0 {
        return likeliest;
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order.truncate(sampling.top_k.unwrap_or(order.len()).max(1));
    // softmax over the kept tokens, in f64, relative to the largest logit
    let top = logits[order[0]] as f64;
    let weights: Vec<f64> = order
        .iter()
        .map(|&id| ((logits[id] as f64 - top) / sampling.temperature).exp())
        .collect();
    let mut threshold = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (&id, &weight) in order.iter().zip(&weights) {
        if threshold < weight {
            return id;
        }
        threshold -= weight;
    }
    *order.last().expect("at least one token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_zero_and_top_1_take_the_likeliest() {
        let logits = [0.1, 2.0, -1.0, 1.9];
        let mut rng = crate::rng(0);
        let greedy = Sampling {
            temperature: 0.0,
            ..Default::default()
        };
        assert_eq!(draw(&logits, greedy, &mut rng), 1);
        let top1 = Sampling {
            top_k: Some(1),
            ..Default::default()
        };
        assert!((0..50).all(|_| draw(&logits, top1, &mut rng) == 1));
    }

    #[test]
    fn draws_follow_the_softmax() {
        // p = softmax([0, ln 3]) = [1/4, 3/4]
        let logits = [0.0, 3f32.ln()];
        let mut rng = crate::rng(1);
        let ones = (0..20_000)
            .filter(|_| draw(&logits, Sampling::default(), &mut rng) == 1)
            .count();
        let share = ones as f64 / 20_000.0;
        assert!((share - 0.75).abs() < 0.015, "{share}");
    }

    #[test]
    fn top_k_never_draws_outside_the_k_likeliest() {
        let logits = [1.0, 0.9, 0.8, 5.0, 0.7];
        let mut rng = crate::rng(2);
        let top2 = Sampling {
            top_k: Some(2),
            temperature: 5.0,
            ..Default::default()
        };
        assert!((0..500).all(|_| [3, 0].contains(&draw(&logits, top2, &mut rng))));
    }
}
