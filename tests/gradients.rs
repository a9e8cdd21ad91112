//! Every differentiable op, checked against central finite differences in f64 on
//! random inputs and shapes (including broadcast and batched cases): relative
//! error below 1e-6.

mod common;

use common::*;
use nabla::{Conv2dOptions, Tensor};
use proptest::prelude::*;

proptest! {
    #![proptest_config(config())]

    // ------------------------------------------------ elementwise, broadcasting

    #[test]
    fn add_sub_mul_broadcast((a_shape, b_shape) in broadcast_pair(), seed in any::<u64>()) {
        let inputs = [randn(&a_shape, seed), randn(&b_shape, seed ^ 1)];
        assert_gradients("add", |t| &t[0] + &t[1], &inputs);
        assert_gradients("sub", |t| &t[0] - &t[1], &inputs);
        assert_gradients("mul", |t| &t[0] * &t[1], &inputs);
    }

    #[test]
    fn div_broadcast((a_shape, b_shape) in broadcast_pair(), seed in any::<u64>()) {
        let inputs = [randn(&a_shape, seed), positive(&b_shape, seed ^ 1)];
        assert_gradients("div", |t| &t[0] / &t[1], &inputs);
    }

    #[test]
    fn maximum_minimum_broadcast((a_shape, b_shape) in broadcast_pair(), seed in any::<u64>()) {
        // Shift b so no pair is within the finite-difference step of a tie.
        let a = randn(&a_shape, seed).map(|v| (v * 4.0).round() / 4.0);
        let b = randn(&b_shape, seed ^ 1).map(|v| (v * 4.0).round() / 4.0 + 0.125);
        let inputs = [a, b];
        assert_gradients("maximum", |t| t[0].maximum(&t[1]), &inputs);
        assert_gradients("minimum", |t| t[0].minimum(&t[1]), &inputs);
    }

    #[test]
    fn scalar_arithmetic(shape in shape_strategy(3), seed in any::<u64>()) {
        let x = [positive(&shape, seed)];
        assert_gradients("x + c", |t| &t[0] + 1.5, &x);
        assert_gradients("x - c", |t| &t[0] - 1.5, &x);
        assert_gradients("x * c", |t| &t[0] * -2.5, &x);
        assert_gradients("x / c", |t| &t[0] / 3.0, &x);
        assert_gradients("c - x", |t| 2.0 - &t[0], &x);
        assert_gradients("c / x", |t| 2.0 / &t[0], &x);
        assert_gradients("neg", |t| -&t[0], &x);
        assert_gradients("square", |t| t[0].square(), &x);
    }

    #[test]
    fn math_functions(shape in shape_strategy(3), seed in any::<u64>()) {
        let positive_x = [positive(&shape, seed)];
        let any_x = [randn(&shape, seed)];
        let kinked_x = [away_from_zero(&shape, seed, 0.05)];
        assert_gradients("pow 2.5", |t| t[0].pow(2.5), &positive_x);
        assert_gradients("pow -1.5", |t| t[0].pow(-1.5), &positive_x);
        assert_gradients("exp", |t| t[0].exp(), &any_x);
        assert_gradients("log", |t| t[0].log(), &positive_x);
        assert_gradients("sqrt", |t| t[0].sqrt(), &positive_x);
        assert_gradients("abs", |t| t[0].abs(), &kinked_x);
        // clamp bounds ±0.5 kept away from the data
        let clamp_x = [randn(&shape, seed).map(|v| if (v.abs() - 0.5).abs() < 0.05 { v * 1.3 } else { v })];
        assert_gradients("clamp", |t| t[0].clamp(-0.5, 0.5), &clamp_x);
    }

    // ------------------------------------------------------------ activations

    #[test]
    fn activations(shape in shape_strategy(3), seed in any::<u64>()) {
        let x = [randn(&shape, seed).map(|v| v * 3.0)];
        let kinked_x = [away_from_zero(&shape, seed, 0.05)];
        assert_gradients("relu", |t| t[0].relu(), &kinked_x);
        assert_gradients("leaky_relu", |t| t[0].leaky_relu(0.1), &kinked_x);
        assert_gradients("sigmoid", |t| t[0].sigmoid(), &x);
        assert_gradients("tanh", |t| t[0].tanh(), &x);
        assert_gradients("gelu", |t| t[0].gelu(), &x);
        assert_gradients("gelu_tanh", |t| t[0].gelu_tanh(), &x);
        assert_gradients("softplus", |t| t[0].softplus(), &x);
        assert_gradients("silu", |t| t[0].silu(), &x);
        assert_gradients("softsign", |t| t[0].softsign(), &kinked_x);
    }

    // ------------------------------------------------------------- reductions

    #[test]
    fn sums_and_means(shape in shape_strategy(4), seed in any::<u64>(), axis_bits in 1u32..16) {
        let x = [randn(&shape, seed)];
        let axes: Vec<isize> = (0..shape.len() as isize).filter(|a| axis_bits >> a & 1 == 1).collect();
        let axes = if axes.is_empty() { vec![-1] } else { axes };
        assert_gradients("sum", |t| t[0].sum(), &x);
        assert_gradients("mean", |t| t[0].mean(), &x);
        assert_gradients("sum_axes keepdim", |t| t[0].sum_axes(&axes, true), &x);
        assert_gradients("sum_axes", |t| t[0].sum_axes(&axes, false), &x);
        assert_gradients("mean_axes", |t| t[0].mean_axes(&axes, false), &x);
    }

    #[test]
    fn max_min_var(shape in shape_strategy(4), seed in any::<u64>(), axis_bits in 1u32..16) {
        // Distinct values (a shuffled grid), so the arg-max is unique and stable under ±ε.
        let n: usize = shape.iter().product();
        let mut values: Vec<f64> = (0..n).map(|i| i as f64 * 0.37 - 1.0).collect();
        let mut rng = nabla::rng(seed);
        for i in (1..n).rev() {
            let j = rand::RngExt::random_range(&mut rng, 0..=i);
            values.swap(i, j);
        }
        let x = [Tensor::from_vec(values, &shape)];
        let axes: Vec<isize> = (0..shape.len() as isize).filter(|a| axis_bits >> a & 1 == 1).collect();
        let axes = if axes.is_empty() { vec![0] } else { axes };
        assert_gradients("max", |t| t[0].max(), &x);
        assert_gradients("min", |t| t[0].min(), &x);
        assert_gradients("max_axes", |t| t[0].max_axes(&axes, false), &x);
        assert_gradients("min_axes keepdim", |t| t[0].min_axes(&axes, true), &x);
        if n > 1 {
            assert_gradients("var", |t| t[0].var(1), &x);
        }
        assert_gradients("var_axes", |t| t[0].var_axes(&axes, 0, true), &x);
    }

    #[test]
    fn softmax_family(shape in shape_strategy(3), seed in any::<u64>(), axis in 0isize..3) {
        let axis = axis % shape.len() as isize;
        let x = [randn(&shape, seed).map(|v| v * 2.0)];
        assert_gradients("softmax", |t| t[0].softmax(axis), &x);
        assert_gradients("log_softmax", |t| t[0].log_softmax(axis), &x);
        assert_gradients("logsumexp", |t| t[0].logsumexp(axis, false), &x);
    }

    // ---------------------------------------------------------------- matmul

    #[test]
    fn matmul_2d(m in 1usize..6, k in 1usize..6, n in 1usize..6, seed in any::<u64>()) {
        let inputs = [randn(&[m, k], seed), randn(&[k, n], seed ^ 1)];
        assert_gradients("matmul", |t| t[0].matmul(&t[1]), &inputs);
        let inputs = [randn(&[m, k], seed), randn(&[n, k], seed ^ 1)];
        assert_gradients("matmul_t", |t| t[0].matmul_t(&t[1]), &inputs);
        let inputs = [randn(&[m, k], seed), randn(&[n, k], seed ^ 1), randn(&[n], seed ^ 2)];
        assert_gradients("linear", |t| t[0].linear(&t[1], Some(&t[2])), &inputs);
        assert_gradients("linear, no bias", |t| t[0].linear(&t[1], None), &inputs[..2]);
        // the fused op equals its composition
        let fused = inputs[0].linear(&inputs[1], Some(&inputs[2])).to_vec();
        let composed = (inputs[0].matmul_t(&inputs[1]) + &inputs[2]).to_vec();
        for (a, b) in fused.iter().zip(&composed) {
            prop_assert!((a - b).abs() < 1e-12);
        }
        // without a bias too: its output buffer comes back from the pool holding the
        // values just computed above, which must not leak in
        let fused = inputs[0].linear(&inputs[1], None).to_vec();
        prop_assert_eq!(fused, inputs[0].matmul_t(&inputs[1]).to_vec());
    }

    #[test]
    fn matmul_batched_broadcast(batch in 1usize..4, m in 1usize..4, k in 1usize..4, n in 1usize..4, seed in any::<u64>()) {
        // [batch, 1, m, k] · [2, k, n] → [batch, 2, m, n], and a 2-D operand against a batch
        let inputs = [randn(&[batch, 1, m, k], seed), randn(&[2, k, n], seed ^ 1)];
        assert_gradients("batched matmul", |t| t[0].matmul(&t[1]), &inputs);
        let inputs = [randn(&[batch, m, k], seed), randn(&[k, n], seed ^ 2)];
        assert_gradients("batch · matrix", |t| t[0].matmul(&t[1]), &inputs);
    }

    // ----------------------------------------------------------------- shape

    #[test]
    fn shape_ops(shape in shape_strategy(3), seed in any::<u64>()) {
        let x = [randn(&shape, seed)];
        let n: usize = shape.iter().product();
        let rank = shape.len();
        let reversed: Vec<usize> = (0..rank).rev().collect();
        assert_gradients("reshape", |t| t[0].reshape(&[n]), &x);
        assert_gradients("flatten", |t| t[0].flatten(0, -1), &x);
        assert_gradients("unsqueeze", |t| t[0].unsqueeze(1), &x);
        assert_gradients("squeeze", |t| t[0].unsqueeze(0).squeeze(0), &x);
        assert_gradients("permute", |t| t[0].permute(&reversed), &x);
        assert_gradients("transpose", |t| t[0].transpose(0, -1), &x);
        let mut big = vec![2];
        big.extend(shape.iter().map(|&s| if s == 1 { 3 } else { s }));
        let target = big.clone();
        let ones: Vec<usize> = shape.iter().map(|&s| if s == 1 { 1 } else { s }).collect();
        assert_gradients("broadcast_to", |t| t[0].reshape(&ones).broadcast_to(&target), &x);
        let last = shape[rank - 1];
        assert_gradients("narrow", |t| t[0].narrow(-1, last / 2, last - last / 2), &x);
        let padding: Vec<(usize, usize)> = (0..rank).map(|a| (a % 2, 1)).collect();
        assert_gradients("pad", |t| t[0].pad(&padding, 0.5), &x);
    }

    #[test]
    fn concat_stack(shape in shape_strategy(3), extra in 1usize..4, seed in any::<u64>()) {
        let mut other_shape = shape.clone();
        other_shape[0] = extra;
        let inputs = [randn(&shape, seed), randn(&other_shape, seed ^ 1)];
        assert_gradients("concat", |t| Tensor::concat(&[&t[0], &t[1], &t[0]], 0), &inputs);
        let inputs = [randn(&shape, seed), randn(&shape, seed ^ 2)];
        assert_gradients("stack", |t| Tensor::stack(&[&t[0], &t[1]], -1), &inputs);
    }

    #[test]
    fn selection(rows in 1usize..5, cols in 1usize..5, seed in any::<u64>()) {
        let x = [randn(&[rows, cols], seed)];
        // repeated indices collect gradient twice
        let picks: Vec<usize> = (0..cols + 2).map(|i| (i * 7 + seed as usize) % cols).collect();
        assert_gradients("index_select", |t| t[0].index_select(1, &picks), &x);
        let targets: Vec<usize> = (0..rows).map(|r| (r * 3 + seed as usize) % cols).collect();
        assert_gradients("gather", |t| t[0].gather(1, &targets, &[rows, 1]), &x);
    }
}

// ------------------------------------------------------------- convolution

fn conv_case(
    name: &str,
    input: [usize; 4],
    out_channels: usize,
    kernel: (usize, usize),
    options: Conv2dOptions,
) {
    let group_channels = input[1] / options.groups;
    let inputs = [
        randn(&input, 1),
        randn(&[out_channels, group_channels, kernel.0, kernel.1], 2),
        randn(&[out_channels], 3),
    ];
    assert_gradients(name, |t| t[0].conv2d(&t[1], Some(&t[2]), options), &inputs);
}

#[test]
fn conv2d_plain() {
    // 3·3·3 = 27 taps per output: the direct path
    conv_case("conv2d", [2, 3, 5, 5], 4, (3, 3), Conv2dOptions::default());
    // 4·3·3 = 36 taps: im2col + GEMM
    conv_case(
        "conv2d im2col",
        [2, 4, 5, 5],
        3,
        (3, 3),
        Conv2dOptions::default(),
    );
    let padded = Conv2dOptions::default().padding(1);
    conv_case("conv2d im2col padded", [1, 5, 4, 4], 2, (3, 3), padded);
    // more images than one partial weight-gradient sum holds (4)
    conv_case("conv2d 9 images", [9, 4, 4, 4], 2, (3, 3), padded);
}

#[test]
fn conv2d_tiled() {
    // stride 1, 16 to 128 channels on both sides, 8+ images: the tiled kernels
    // (partial tiles of channels, outputs and weight-gradient columns: 17 · 9 = 153)
    let padded = Conv2dOptions::default().padding(1);
    conv_case("conv2d tiled", [9, 17, 3, 4], 18, (3, 3), padded);
}

#[test]
fn conv2d_pointwise() {
    // 1×1 at stride 1: the image is its own columns, no im2col (over 32 channels,
    // so not the direct kernel)
    let plain = Conv2dOptions::default();
    conv_case("conv2d 1x1 wide", [5, 40, 2, 2], 3, (1, 1), plain);
    conv_case("conv2d 1x1", [6, 5, 3, 3], 3, (1, 1), plain);
    conv_case(
        "conv2d 1x1 groups",
        [2, 4, 3, 2],
        6,
        (1, 1),
        plain.groups(2),
    );
    // ResNet's projection shortcut: 1×1 at stride 2
    conv_case(
        "conv2d 1x1 stride 2",
        [5, 4, 5, 5],
        3,
        (1, 1),
        plain.stride(2),
    );
}

#[test]
fn conv2d_stride_padding() {
    conv_case(
        "conv2d stride 2 pad 1",
        [2, 2, 6, 5],
        3,
        (3, 2),
        Conv2dOptions::default().stride(2).padding(1),
    );
    let asymmetric = Conv2dOptions {
        stride: (1, 2),
        padding: (2, 0),
        ..Default::default()
    };
    conv_case("conv2d asymmetric", [1, 2, 4, 7], 2, (3, 3), asymmetric);
}

#[test]
fn conv2d_dilation_groups() {
    conv_case(
        "conv2d dilation 2",
        [1, 2, 7, 7],
        2,
        (3, 3),
        Conv2dOptions::default().dilation(2).padding(1),
    );
    conv_case(
        "conv2d groups 2",
        [2, 4, 5, 5],
        6,
        (3, 3),
        Conv2dOptions::default().groups(2),
    );
    conv_case(
        "conv2d depthwise",
        [1, 3, 4, 4],
        3,
        (2, 2),
        Conv2dOptions::default().groups(3).padding(1),
    );
}

#[test]
fn pooling() {
    // A shuffled grid of distinct values keeps every window's max unique.
    let n = 2 * 3 * 6 * 6;
    let values: Vec<f64> = (0..n).map(|i| ((i * 37) % n) as f64 * 0.1).collect();
    let x = [Tensor::from_vec(values, &[2, 3, 6, 6])];
    assert_gradients(
        "max_pool2d 2x2",
        |t| t[0].max_pool2d((2, 2), (2, 2), (0, 0)),
        &x,
    );
    assert_gradients(
        "max_pool2d overlap pad",
        |t| t[0].max_pool2d((3, 3), (2, 2), (1, 1)),
        &x,
    );
    assert_gradients(
        "max_pool2d unpadded 3x2 stride (1, 2)",
        |t| t[0].max_pool2d((3, 2), (1, 2), (0, 0)),
        &x,
    );
    assert_gradients(
        "avg_pool2d 2x2",
        |t| t[0].avg_pool2d((2, 2), (2, 2), (0, 0)),
        &x,
    );
    // 6 → 4: windows of 2 that overlap by one (rows 0-1, 1-2, 3-4, 4-5)
    assert_gradients(
        "adaptive_avg_pool2d 6x6 to 4x3",
        |t| t[0].adaptive_avg_pool2d((4, 3)),
        &x,
    );
    assert_gradients("global_avg_pool2d", |t| t[0].global_avg_pool2d(), &x);
    assert_gradients(
        "avg_pool2d overlap pad",
        |t| t[0].avg_pool2d((3, 2), (1, 2), (1, 1)),
        &x,
    );
}

// ------------------------------------------------------------- batch norm

/// The fused op's gradient for inputs, γ and β: y = γ·(x − μ)/√(σ² + ε) + β with
/// batch statistics, so dL/dx carries the paths through μ and σ² too.
#[test]
fn batch_norm_fused() {
    for (name, shape) in [
        ("batch_norm [N, C]", vec![5, 3]),
        ("batch_norm [N, C, L]", vec![3, 2, 4]),
        ("batch_norm [N, C, H, W]", vec![2, 3, 3, 3]),
        ("batch_norm long runs", vec![2, 2, 9, 9]),
    ] {
        let channels = shape[1];
        let inputs = [
            randn(&shape, 11),
            randn(&[channels], 12),
            randn(&[channels], 13),
        ];
        assert_gradients(name, |t| t[0].batch_norm(&t[1], &t[2], 1e-5, None), &inputs);
    }
    // far from zero: the centred sums must not cancel
    let offset = [
        &randn(&[4, 2, 3, 3], 14) + 1e3,
        randn(&[2], 15),
        randn(&[2], 16),
    ];
    assert_gradients(
        "batch_norm offset 1000",
        |t| t[0].batch_norm(&t[1], &t[2], 1e-5, None),
        &offset,
    );
}

/// The fused op computes what its definition composed of elementwise ops computes,
/// values and gradients, in f32 with a large mean (where one-pass formulas lose digits).
#[test]
fn batch_norm_fused_matches_composed() {
    let mut rng = nabla::rng(3);
    let x = (Tensor::<f32>::randn(&[8, 4, 6, 6], 0.0, 1.0, &mut rng) + 300.0).requires_grad(true);
    let gamma = Tensor::<f32>::randn(&[4], 1.0, 0.5, &mut rng).requires_grad(true);
    let beta = Tensor::<f32>::randn(&[4], 0.0, 0.5, &mut rng).requires_grad(true);
    let upstream = Tensor::<f32>::randn(&[8, 4, 6, 6], 0.0, 1.0, &mut rng);
    let run = |fused: bool| {
        for t in [&x, &gamma, &beta] {
            t.zero_grad();
        }
        let y = if fused {
            x.batch_norm(&gamma, &beta, 1e-5, None)
        } else {
            let mean = x.mean_axes(&[0, 2, 3], true);
            let var = x.var_axes(&[0, 2, 3], 0, true);
            let normalized = (&x - &mean) / &(var + 1e-5).sqrt();
            normalized * gamma.reshape(&[1, 4, 1, 1]) + beta.reshape(&[1, 4, 1, 1])
        };
        (&y * &upstream).sum().backward();
        let grads: Vec<Vec<f32>> = [&x, &gamma, &beta]
            .iter()
            .map(|t| t.grad().unwrap().to_vec())
            .collect();
        (y.to_vec(), grads)
    };
    let (fused, fused_grads) = run(true);
    let (composed, composed_grads) = run(false);
    let close = |a: &[f32], b: &[f32], what: &str, bound: f32| {
        let worst = a
            .iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(
            worst < bound,
            "{what}: fused and composed differ by {worst}"
        );
    };
    close(&fused, &composed, "output", 1e-4);
    for (what, (f, c)) in ["dx", "dγ", "dβ"]
        .iter()
        .zip(fused_grads.iter().zip(&composed_grads))
    {
        close(f, c, what, 2e-3);
    }
}

// ------------------------------------------------------------- layer norm

/// The fused op's gradients for the input, γ and β: every x of a row moves its
/// row's mean and variance, so dL/dx has the paths through μ and σ² too.
#[test]
fn layer_norm_fused() {
    for (name, shape, normalized) in [
        ("layer_norm [N, D]", vec![5, 4], vec![4]),
        ("layer_norm [B, T, D]", vec![2, 3, 6], vec![6]),
        ("layer_norm over two axes", vec![3, 2, 5], vec![2, 5]),
    ] {
        let inputs = [
            randn(&shape, 21),
            randn(&normalized, 22),
            randn(&normalized, 23),
        ];
        assert_gradients(name, |t| t[0].layer_norm(&t[1], &t[2], 1e-5), &inputs);
    }
    // many rows (several parallel tasks), far from zero
    let offset = [
        &randn(&[300, 8], 24) + 1e3,
        randn(&[8], 25),
        randn(&[8], 26),
    ];
    assert_gradients(
        "layer_norm offset 1000",
        |t| t[0].layer_norm(&t[1], &t[2], 1e-5),
        &offset,
    );
}

/// The fused op equals its definition composed of elementwise ops, values and
/// gradients, in f32 at a transformer's size (4096 rows of 128).
#[test]
fn layer_norm_fused_matches_composed() {
    let mut rng = nabla::rng(4);
    let x = (Tensor::<f32>::randn(&[32, 128, 128], 0.0, 1.0, &mut rng) + 3.0).requires_grad(true);
    let gamma = Tensor::<f32>::randn(&[128], 1.0, 0.5, &mut rng).requires_grad(true);
    let beta = Tensor::<f32>::randn(&[128], 0.0, 0.5, &mut rng).requires_grad(true);
    let upstream = Tensor::<f32>::randn(&[32, 128, 128], 0.0, 1.0, &mut rng);
    let run = |fused: bool| {
        for t in [&x, &gamma, &beta] {
            t.zero_grad();
        }
        let y = if fused {
            x.layer_norm(&gamma, &beta, 1e-5)
        } else {
            let mean = x.mean_axes(&[-1], true);
            let var = x.var_axes(&[-1], 0, true);
            (&x - &mean) / &(var + 1e-5).sqrt() * &gamma + &beta
        };
        (&y * &upstream).sum().backward();
        let grads: Vec<Vec<f32>> = [&x, &gamma, &beta]
            .iter()
            .map(|t| t.grad().unwrap().to_vec())
            .collect();
        (y.to_vec(), grads)
    };
    let (fused, fused_grads) = run(true);
    let (composed, composed_grads) = run(false);
    let worst = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs() / q.abs().max(1.0))
            .fold(0.0, f32::max)
    };
    assert!(worst(&fused, &composed) < 1e-5, "values");
    for (i, (a, b)) in fused_grads.iter().zip(&composed_grads).enumerate() {
        // dγ and dβ sum 4096 rows: allow for the summation order
        let bound = if i == 0 { 1e-5 } else { 1e-4 };
        assert!(worst(a, b) < bound, "gradient {i}: {}", worst(a, b));
    }
}
