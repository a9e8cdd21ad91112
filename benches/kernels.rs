//! Kernel micro-benchmarks: GEMM at square sizes and at the MNIST MLP's shapes
//! (forward and both transposed-gradient products), conv2d at LeNet's and
//! ResNet-20's shapes, batch norm at ResNet-20's, attention at the reference GPT's
//! (fused, packed and composed), and the cost of recording one op on a small tensor.
//!
//! Run: `cargo bench --bench kernels` (throughput "elem/s" is FLOP/s for GEMM and
//! convolutions, bytes/s for batch norm).

// criterion_group! defines an undocumented public function
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nabla::Tensor;
use nabla::cpu::gemm::{MatRef, gemm};
use std::hint::black_box;

fn random(len: usize, seed: u64) -> Vec<f32> {
    Tensor::<f32>::randn(&[len], 0.0, 1.0, &mut nabla::rng(seed)).to_vec()
}

/// `C[m×n] = op(A)·op(B)` with the transposes given as strides.
fn bench_gemm(
    c: &mut Criterion,
    group_name: &str,
    cases: &[(&str, usize, usize, usize, bool, bool)],
) {
    let mut group = c.benchmark_group(group_name);
    for &(label, m, k, n, transpose_a, transpose_b) in cases {
        let a = random(m * k, 1);
        let b = random(k * n, 2);
        let mut out = vec![0.0f32; m * n];
        let (a_rows, a_cols) = if transpose_a { (k, m) } else { (m, k) };
        let (b_rows, b_cols) = if transpose_b { (n, k) } else { (k, n) };
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(BenchmarkId::from_parameter(label), |bench| {
            bench.iter(|| {
                let lhs = MatRef::row_major(&a, a_rows, a_cols).t_if(transpose_a);
                let rhs = MatRef::row_major(&b, b_rows, b_cols).t_if(transpose_b);
                gemm(lhs, rhs, &mut out, false);
                black_box(&out);
            })
        });
    }
    group.finish();
}

fn matmul(c: &mut Criterion) {
    bench_gemm(
        c,
        "matmul_square",
        &[
            ("256", 256, 256, 256, false, false),
            ("512", 512, 512, 512, false, false),
            ("1024", 1024, 1024, 1024, false, false),
        ],
    );
    // The first layer of the MNIST MLP at batch 128: forward X·W, then backward
    // dW = Xᵀ·G and dX = G·Wᵀ with transposes passed as strides.
    bench_gemm(
        c,
        "matmul_mlp",
        &[
            ("forward 128x784*784x256", 128, 784, 256, false, false),
            ("grad_w (784x128)T*128x256", 784, 128, 256, true, false),
            ("grad_x 128x256*(784x256)T", 128, 256, 784, false, true),
        ],
    );
}

/// A convolution case: label, input `[N, C, H, W]`, weight `[O, C, kh, kw]`, stride, padding.
type ConvCase = (&'static str, [usize; 4], [usize; 4], usize, usize);

/// Forward, and forward + backward, of each case. With `input_grad` the input
/// needs a gradient too (then backward does 2× the forward's FLOPs, else 1×).
fn bench_convs(c: &mut Criterion, group_name: &str, cases: &[ConvCase], input_grad: bool) {
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    for &(label, input, weight, stride, padding) in cases {
        let options = nabla::Conv2dOptions::default()
            .stride(stride)
            .padding(padding);
        let x =
            Tensor::<f32>::randn(&input, 0.0, 1.0, &mut nabla::rng(1)).requires_grad(input_grad);
        let w = Tensor::<f32>::randn(&weight, 0.0, 0.1, &mut nabla::rng(2)).requires_grad(true);
        let out_size = (input[2] + 2 * padding - weight[2]) / stride + 1;
        let flops =
            2 * input[0] * weight[0] * out_size * out_size * weight[1] * weight[2] * weight[3];
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function(BenchmarkId::new("forward", label), |bench| {
            let _guard = nabla::no_grad();
            bench.iter(|| black_box(x.conv2d(&w, None, options)))
        });
        let passes = if input_grad { 3 } else { 2 };
        group.throughput(Throughput::Elements(passes * flops as u64));
        group.bench_function(BenchmarkId::new("forward+backward", label), |bench| {
            bench.iter(|| {
                x.conv2d(&w, None, options).sum().backward();
                x.zero_grad();
                w.zero_grad();
            })
        });
    }
    group.finish();
}

/// LeNet's convolutions at batch 64 (the first layer's input needs no gradient).
fn conv2d(c: &mut Criterion) {
    let cases = [
        (
            "conv1 64x1x28x28 6@5x5 pad2",
            [64, 1, 28, 28],
            [6, 1, 5, 5],
            1,
            2,
        ),
        (
            "conv2 64x6x14x14 16@5x5",
            [64, 6, 14, 14],
            [16, 6, 5, 5],
            1,
            0,
        ),
    ];
    bench_convs(c, "conv2d_lenet", &cases, false);
}

/// ResNet-20's convolutions at batch 128 (CIFAR, 32×32), with both gradients.
fn conv2d_resnet(c: &mut Criterion) {
    let cases = [
        ("stage1 3x3 16->16", [128, 16, 32, 32], [16, 16, 3, 3], 1, 1),
        (
            "stage2 3x3 s2 16->32",
            [128, 16, 32, 32],
            [32, 16, 3, 3],
            2,
            1,
        ),
        ("stage2 3x3 32->32", [128, 32, 16, 16], [32, 32, 3, 3], 1, 1),
        (
            "shortcut 1x1 s2 16->32",
            [128, 16, 32, 32],
            [32, 16, 1, 1],
            2,
            0,
        ),
        ("stage3 3x3 64->64", [128, 64, 8, 8], [64, 64, 3, 3], 1, 1),
    ];
    bench_convs(c, "conv2d_resnet20", &cases, true);
}

/// BatchNorm2d in training mode on ResNet-20's largest activation, [128, 16, 32, 32];
/// throughput counts the bytes of the input read and the output written once.
fn batch_norm(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_norm2d_resnet20");
    group.sample_size(20);
    let shape = [128, 16, 32, 32];
    let x = Tensor::<f32>::randn(&shape, 0.0, 1.0, &mut nabla::rng(1)).requires_grad(true);
    let gamma = Tensor::<f32>::ones(&[16]).requires_grad(true);
    let beta = Tensor::<f32>::zeros(&[16]).requires_grad(true);
    let bytes = 2 * 4 * x.numel() as u64;
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("forward", |bench| {
        let _guard = nabla::no_grad();
        bench.iter(|| black_box(x.batch_norm(&gamma, &beta, 1e-5, None)))
    });
    group.throughput(Throughput::Bytes(3 * bytes));
    group.bench_function("forward+backward", |bench| {
        bench.iter(|| {
            x.batch_norm(&gamma, &beta, 1e-5, None).sum().backward();
            for t in [&x, &gamma, &beta] {
                t.zero_grad();
            }
        })
    });
    group.finish();
}

/// Attention at the reference GPT's size (batch 32, 4 heads of 32, 128 positions,
/// causal), forward and backward: the fused op, the packed op (q, k, v read in
/// place from [batch, time, 3·dim]) and the composed definition.
fn attention(c: &mut Criterion) {
    use nabla::ops::attention::{AttentionMask, composed_attention};
    let (batch, heads, time, head_dim) = (32, 4, 128, 32);
    let mut rng = nabla::rng(7);
    let qkv = Tensor::<f32>::randn(&[batch, time, 3 * heads * head_dim], 0.0, 1.0, &mut rng)
        .requires_grad(true);
    let [q, k, v] = [0, 1, 2].map(|_| {
        Tensor::<f32>::randn(&[batch, heads, time, head_dim], 0.0, 1.0, &mut rng)
            .requires_grad(true)
    });
    let mut group = c.benchmark_group("attention_gpt");
    group.sample_size(20);
    group.bench_function("fused", |bench| {
        bench.iter(|| {
            let out = q.scaled_dot_product_attention(&k, &v, AttentionMask::Causal);
            out.sum().backward();
        })
    });
    group.bench_function("packed", |bench| {
        bench.iter(|| {
            qkv.multi_head_attention(heads, AttentionMask::Causal)
                .sum()
                .backward()
        })
    });
    group.bench_function("composed", |bench| {
        bench.iter(|| {
            composed_attention(&q, &k, &v, AttentionMask::Causal)
                .sum()
                .backward()
        })
    });
    group.finish();
}

fn op_overhead(c: &mut Criterion) {
    // Recording one op on a 4-element tensor that takes part in a graph.
    let x = Tensor::<f32>::ones(&[4]).requires_grad(true);
    let y = Tensor::<f32>::ones(&[4]);
    c.bench_function("record_small_mul", |bench| {
        bench.iter(|| black_box(&x * &y))
    });
    c.bench_function("small_mul_no_grad", |bench| {
        let _guard = nabla::no_grad();
        bench.iter(|| black_box(&x * &y))
    });
}

criterion_group!(
    benches,
    matmul,
    conv2d,
    conv2d_resnet,
    batch_norm,
    attention,
    op_overhead
);
criterion_main!(benches);
