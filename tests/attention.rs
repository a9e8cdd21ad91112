//! Attention: `masked_fill`, the fused scaled dot-product attention op and the
//! composed one it must equal, checked against finite differences in f64.

mod common;

use common::*;
use nabla::Tensor;
use nabla::ops::attention::{AttentionMask, Mask, composed_attention};

/// masked_fill passes the gradient where the input was kept and none where it was
/// replaced: d/dx = 1 − mask.
#[test]
fn masked_fill_gradient() {
    let mask = Mask::new(vec![true, false, false, true, false, true], &[2, 3]);
    let inputs = [randn(&[4, 2, 3], 1)];
    assert_gradients("masked_fill", |t| t[0].masked_fill(&mask, -7.0), &inputs);
    let filled = inputs[0].masked_fill(&mask, -7.0);
    for (n, (&y, &x)) in filled.to_vec().iter().zip(&inputs[0].to_vec()).enumerate() {
        let expected = if mask.hidden()[n % 6] { -7.0 } else { x };
        assert_eq!(y, expected, "element {n}");
    }
}

/// softmax after a −∞ fill: hidden positions get probability 0 and no gradient,
/// the others the gradient of the softmax over the visible ones only.
#[test]
fn masked_softmax_gradient() {
    let mask = Mask::causal(4, 4);
    let inputs = [randn(&[2, 4, 4], 2)];
    assert_gradients(
        "masked_fill(−∞) + softmax",
        |t| t[0].masked_fill(&mask, f64::NEG_INFINITY).softmax(-1),
        &inputs,
    );
    let p = inputs[0]
        .masked_fill(&mask, f64::NEG_INFINITY)
        .softmax(-1)
        .to_vec();
    assert_eq!(p[1], 0.0, "query 0 cannot see key 1");
    assert_eq!(p[0], 1.0, "query 0 sees only key 0");
}

fn qkv(batch: &[usize], queries: usize, keys: usize, dim: usize, seed: u64) -> [Tensor<f64>; 3] {
    let shape = |rows: usize| [batch, &[rows, dim]].concat();
    [
        randn(&shape(queries), seed),
        randn(&shape(keys), seed + 1),
        randn(&shape(keys), seed + 2),
    ]
}

/// The fused op's dQ, dK, dV against finite differences, for every kind of mask,
/// more keys than queries (a decoder reading a cache) and a mask that broadcasts
/// over heads.
#[test]
fn fused_attention_gradients() {
    let padding = Mask::new(vec![false, false, true, false, true, false], &[2, 1, 1, 3]);
    let cases: [(&str, [Tensor<f64>; 3], AttentionMask); 5] = [
        ("no mask", qkv(&[2, 2], 3, 3, 4, 10), AttentionMask::None),
        ("causal", qkv(&[2, 2], 4, 4, 3, 20), AttentionMask::Causal),
        (
            "causal, 2 queries over 5 keys",
            qkv(&[3], 2, 5, 3, 30),
            AttentionMask::Causal,
        ),
        (
            "padding mask [2,1,1,3]",
            qkv(&[2, 2], 3, 3, 2, 40),
            AttentionMask::Hide(&padding),
        ),
        ("one matrix", qkv(&[], 5, 5, 4, 50), AttentionMask::Causal),
    ];
    for (name, inputs, mask) in cases {
        assert_gradients(
            name,
            |t| t[0].scaled_dot_product_attention(&t[1], &t[2], mask),
            &inputs,
        );
    }
}

/// The composed definition's gradients too (the two are then compared).
#[test]
fn composed_attention_gradients() {
    let inputs = qkv(&[2, 2], 4, 4, 3, 60);
    assert_gradients(
        "composed causal attention",
        |t| composed_attention(&t[0], &t[1], &t[2], AttentionMask::Causal),
        &inputs,
    );
}

/// fused = composed, values and all three gradients: to rounding in f64, and to
/// f32 rounding at a GPT block's size (4 heads of 32 over 64 positions, in
/// parallel tasks).
#[test]
fn fused_attention_equals_composed() {
    let padding = Mask::new(
        (0..2 * 6).map(|n| n % 5 == 4).collect::<Vec<_>>(),
        &[2, 1, 1, 6],
    );
    for (mask, name) in [
        (AttentionMask::None, "none"),
        (AttentionMask::Causal, "causal"),
        (AttentionMask::Hide(&padding), "padding"),
    ] {
        let [q, k, v] = qkv(&[2, 3], 6, 6, 5, 70).map(|t| t.requires_grad(true));
        let upstream = randn(&[2, 3, 6, 5], 73);
        let run = |fused: bool| {
            for t in [&q, &k, &v] {
                t.zero_grad();
            }
            let out = if fused {
                q.scaled_dot_product_attention(&k, &v, mask)
            } else {
                composed_attention(&q, &k, &v, mask)
            };
            (&out * &upstream).sum().backward();
            let grads: Vec<Vec<f64>> = [&q, &k, &v].map(|t| t.grad().unwrap().to_vec()).into();
            (out.to_vec(), grads)
        };
        let (fused, fused_grads) = run(true);
        let (composed, composed_grads) = run(false);
        assert_close(&fused, &composed, 1e-13, &format!("{name}: output"));
        for (i, (a, b)) in fused_grads.iter().zip(&composed_grads).enumerate() {
            assert_close(a, b, 1e-13, &format!("{name}: gradient of input {i}"));
        }
    }

    let mut rng = nabla::rng(5);
    let [q, k, v] = [0, 1, 2]
        .map(|_| Tensor::<f32>::randn(&[8, 4, 64, 32], 0.0, 1.0, &mut rng).requires_grad(true));
    let fused = q.scaled_dot_product_attention(&k, &v, AttentionMask::Causal);
    let composed = composed_attention(&q, &k, &v, AttentionMask::Causal);
    let worst = fused
        .to_vec()
        .iter()
        .zip(composed.to_vec())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        worst < 1e-5,
        "f32 fused vs composed: max difference {worst}"
    );
}

/// A query with every key hidden attends to nothing: output 0, no gradient (the
/// composed form would give 0/0).
#[test]
fn fully_hidden_query_gives_zero() {
    let mask = Mask::new(vec![true, true, false, false], &[2, 2]);
    let [q, k, v] = qkv(&[], 2, 2, 3, 80).map(|t| t.requires_grad(true));
    let out = q.scaled_dot_product_attention(&k, &v, AttentionMask::Hide(&mask));
    assert_eq!(&out.to_vec()[..3], &[0.0, 0.0, 0.0]);
    out.sum().backward();
    assert_eq!(&q.grad().unwrap().to_vec()[..3], &[0.0, 0.0, 0.0]);
    assert!(out.to_vec()[3..].iter().all(|x| x.is_finite()));
}

/// The causal mask aligns the last query with the last key: one query over a
/// 4-key cache sees all four; the first of four queries sees only key 0.
#[test]
fn causal_mask_alignment() {
    assert_eq!(Mask::causal(1, 4).hidden(), &[false; 4]);
    let square = Mask::causal(3, 3);
    assert_eq!(
        square.hidden(),
        &[false, true, true, false, false, true, false, false, false]
    );
    // the last two rows of the square mask are the mask of 2 queries over 3 keys
    assert_eq!(Mask::causal(2, 3).hidden(), &square.hidden()[3..]);
}

fn assert_close(a: &[f64], b: &[f64], tolerance: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let scale = 1.0f64.max(x.abs()).max(y.abs());
        assert!(
            (x - y).abs() <= tolerance * scale,
            "{what}: element {i}: {x} vs {y}"
        );
    }
}

/// The packed op's gradient (one tensor holding q, k and v of every head).
#[test]
fn packed_attention_gradients() {
    let padding = Mask::new(
        vec![false, false, true, true, false, false, false, false],
        &[2, 1, 1, 4],
    );
    for (name, mask) in [
        ("packed, causal", AttentionMask::Causal),
        ("packed, no mask", AttentionMask::None),
        ("packed, padding mask", AttentionMask::Hide(&padding)),
    ] {
        let inputs = [randn(&[2, 4, 3 * 6], 90)];
        assert_gradients(name, |t| t[0].multi_head_attention(3, mask), &inputs);
    }
}

/// Packed attention is the textbook sequence — split the projections into q, k, v,
/// permute each to [batch, heads, time, head_dim], attend, permute back and merge
/// the heads — values and gradient.
#[test]
fn packed_attention_equals_split_permute_attend_merge() {
    let (batch, time, heads, head_dim) = (2, 5, 3, 4);
    let dim = heads * head_dim;
    let qkv = randn(&[batch, time, 3 * dim], 91).requires_grad(true);
    let upstream = randn(&[batch, time, dim], 92);
    let run = |packed: bool| {
        qkv.zero_grad();
        let out = if packed {
            qkv.multi_head_attention(heads, AttentionMask::Causal)
        } else {
            let split = qkv
                .reshape(&[batch, time, 3, heads, head_dim])
                .permute(&[2, 0, 3, 1, 4]);
            let part = |i: usize| split.narrow(0, i, 1).squeeze(0);
            part(0)
                .scaled_dot_product_attention(&part(1), &part(2), AttentionMask::Causal)
                .permute(&[0, 2, 1, 3])
                .reshape(&[batch, time, dim])
        };
        (&out * &upstream).sum().backward();
        (out.to_vec(), qkv.grad().unwrap().to_vec())
    };
    let (packed, packed_grad) = run(true);
    let (split, split_grad) = run(false);
    assert_close(&packed, &split, 1e-13, "output");
    assert_close(&packed_grad, &split_grad, 1e-13, "gradient");
}
