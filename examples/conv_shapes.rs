//! Times one convolution, forward and both gradients, at shapes from the field's
//! networks — the measurements behind `ConvPlan::tiled`'s choice of path.
//!
//! ```text
//! cargo run --release --example conv_shapes
//! ```
//! Prints the median of 7 runs per shape (ms) and the GFLOP/s it reaches
//! (3 passes of 2·N·O·P·C·kh·kw each). Build it on two commits to compare.

use std::time::Instant;

use nabla::{Conv2dOptions, Tensor};

/// Label, input `[N, C, H, W]`, weight `[O, C, kh, kw]`, stride, padding.
type Case = (&'static str, [usize; 4], [usize; 4], usize, usize);

const CASES: [Case; 10] = [
    (
        "ResNet-20 3x3 16@32 b128",
        [128, 16, 32, 32],
        [16, 16, 3, 3],
        1,
        1,
    ),
    (
        "ResNet-20 3x3 64@8 b128",
        [128, 64, 8, 8],
        [64, 64, 3, 3],
        1,
        1,
    ),
    ("VGG 3x3 64@56 b8", [8, 64, 56, 56], [64, 64, 3, 3], 1, 1),
    (
        "ResNet-50 3x3 128@28 b8",
        [8, 128, 28, 28],
        [128, 128, 3, 3],
        1,
        1,
    ),
    (
        "ResNet-50 3x3 256@14 b16",
        [16, 256, 14, 14],
        [256, 256, 3, 3],
        1,
        1,
    ),
    (
        "ResNet-50 3x3 512@7 b32",
        [32, 512, 7, 7],
        [512, 512, 3, 3],
        1,
        1,
    ),
    (
        "1x1 256->64 @14 b16",
        [16, 256, 14, 14],
        [64, 256, 1, 1],
        1,
        0,
    ),
    ("1x1 64->256 @56 b4", [4, 64, 56, 56], [256, 64, 1, 1], 1, 0),
    ("batch 1 3x3 64@56", [1, 64, 56, 56], [64, 64, 3, 3], 1, 1),
    ("5x5 32@28 b32", [32, 32, 28, 28], [32, 32, 5, 5], 1, 2),
];

fn main() {
    nabla::set_num_threads(2).expect("a thread pool");
    for (label, input, weight, stride, padding) in CASES {
        let options = Conv2dOptions::default().stride(stride).padding(padding);
        let x = Tensor::<f32>::randn(&input, 0.0, 1.0, &mut nabla::rng(1)).requires_grad(true);
        let w = Tensor::<f32>::randn(&weight, 0.0, 0.1, &mut nabla::rng(2)).requires_grad(true);
        let mut millis: Vec<f64> = (0..7)
            .map(|_| {
                let start = Instant::now();
                x.conv2d(&w, None, options).sum().backward();
                x.zero_grad();
                w.zero_grad();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        millis.sort_by(f64::total_cmp);
        let out = (input[2] + 2 * padding - weight[2]) / stride + 1;
        let macs = input[0] * weight.iter().product::<usize>() * out * out;
        let gflops = 3.0 * 2.0 * macs as f64 / millis[3] / 1e6;
        println!("{label:26} {:8.2} ms {gflops:7.1} GFLOP/s", millis[3]);
    }
}
