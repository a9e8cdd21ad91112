//! Forward values against numbers computed by hand or by a naive reference
//! implementation written independently of the kernels.

use nabla::{Conv2dOptions, Tensor};

fn t(values: &[f64], shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(values.to_vec(), shape)
}

fn assert_close(actual: &[f64], expected: &[f64], tolerance: f64) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tolerance,
            "element {i}: {a} vs {e}\n{actual:?}\n{expected:?}"
        );
    }
}

#[test]
fn broadcasting_arithmetic() {
    // [2, 1] + [3] → [2, 3]: row i, column j is a[i] + b[j]
    let sum = t(&[10.0, 20.0], &[2, 1]) + t(&[1.0, 2.0, 3.0], &[3]);
    assert_eq!(sum.shape(), &[2, 3]);
    assert_eq!(sum.to_vec(), vec![11.0, 12.0, 13.0, 21.0, 22.0, 23.0]);
    let quotient = t(&[1.0, 4.0], &[2]) / 2.0;
    assert_eq!(quotient.to_vec(), vec![0.5, 2.0]);
    assert_eq!((1.0 - &t(&[0.25], &[1])).to_vec(), vec![0.75]);
    let larger = t(&[1.0, 5.0], &[2]).maximum(&t(&[3.0], &[1]));
    assert_eq!(larger.to_vec(), vec![3.0, 5.0]);
    let compare = t(&[1.0, 2.0, 3.0], &[3]).gt(&t(&[2.0], &[1]));
    assert_eq!(compare.to_vec(), vec![0.0, 0.0, 1.0]);
}

#[test]
fn activations_are_stable_at_the_extremes() {
    let x = t(&[-1000.0, 0.0, 1000.0], &[3]);
    assert_eq!(x.sigmoid().to_vec(), vec![0.0, 0.5, 1.0]);
    assert_close(&x.softplus().to_vec(), &[0.0, 2f64.ln(), 1000.0], 1e-12);
    assert_close(&x.silu().to_vec(), &[0.0, 0.0, 1000.0], 1e-12);
    // reference values: Φ(1) = 0.8413447460685429; tanh form 0.8411919906082768
    assert_close(
        &t(&[1.0], &[1]).gelu().to_vec(),
        &[0.841_344_746_068_542_9],
        1e-12,
    );
    assert_close(
        &t(&[1.0], &[1]).gelu_tanh().to_vec(),
        &[0.841_191_990_608_276_8],
        1e-12,
    );
    assert_eq!(
        t(&[-2.0, 3.0], &[2]).leaky_relu(0.1).to_vec(),
        vec![-0.2, 3.0]
    );
}

#[test]
fn softmax_values_and_stability() {
    // softmax([1, 2, 3]) = e^k / (e + e² + e³)
    let s = t(&[1.0, 2.0, 3.0], &[1, 3]).softmax(-1).to_vec();
    let total = 1f64.exp() + 2f64.exp() + 3f64.exp();
    assert_close(
        &s,
        &[1f64.exp() / total, 2f64.exp() / total, 3f64.exp() / total],
        1e-15,
    );
    // log_softmax([1000, 1001]) = [−ln(1 + e), −ln(1 + e⁻¹)] without overflow
    let ls = t(&[1000.0, 1001.0], &[2]).log_softmax(0).to_vec();
    assert_close(
        &ls,
        &[-(1.0 + 1f64.exp()).ln(), -(1.0 + (-1f64).exp()).ln()],
        1e-12,
    );
    // along axis 0 of a [2, 2]: each column sums to one
    let columns = t(&[1.0, 5.0, 2.0, 3.0], &[2, 2])
        .softmax(0)
        .sum_axes(&[0], false);
    assert_close(&columns.to_vec(), &[1.0, 1.0], 1e-15);
}

#[test]
fn reductions() {
    let x = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    assert_eq!(x.sum().item(), 21.0);
    assert_eq!(x.sum_axes(&[0], false).to_vec(), vec![5.0, 7.0, 9.0]);
    assert_eq!(x.mean_axes(&[1], true).to_vec(), vec![2.0, 5.0]);
    assert_eq!(x.max_axes(&[1], false).to_vec(), vec![3.0, 6.0]);
    assert_eq!(x.max_axes(&[0, 1], false).item(), 6.0);
    assert_eq!(x.min().item(), 1.0);
    assert_eq!(x.argmax(1), vec![2, 2]);
    // var([1, 2, 3, 4]) = 5/3 (unbiased), 5/4 (population)
    let v = t(&[1.0, 2.0, 3.0, 4.0], &[4]);
    assert_close(
        &[v.var(1).item(), v.var(0).item()],
        &[5.0 / 3.0, 1.25],
        1e-15,
    );
    assert_close(
        &[v.logsumexp(0, false).item()],
        &[(1f64.exp() + 2f64.exp() + 3f64.exp() + 4f64.exp()).ln()],
        1e-12,
    );
}

#[test]
fn matmul_values() {
    // [[1, 2, 3], [4, 5, 6]] · [[7, 8], [9, 10], [11, 12]] = [[58, 64], [139, 154]]
    let a = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let b = t(&[7.0, 8.0, 9.0, 10.0, 11.0, 12.0], &[3, 2]);
    assert_eq!(a.matmul(&b).to_vec(), vec![58.0, 64.0, 139.0, 154.0]);
    // batched with broadcasting: two copies of a against b
    let batch = Tensor::stack(&[&a, &(&a * 2.0)], 0);
    let product = batch.matmul(&b);
    assert_eq!(product.shape(), &[2, 2, 2]);
    assert_eq!(
        product.to_vec(),
        vec![58.0, 64.0, 139.0, 154.0, 116.0, 128.0, 278.0, 308.0]
    );
}

#[test]
fn shape_op_values() {
    let x = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    assert_eq!(x.t().to_vec(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert_eq!(x.narrow(1, 1, 2).to_vec(), vec![2.0, 3.0, 5.0, 6.0]);
    assert_eq!(
        Tensor::concat(&[&x, &x.narrow(0, 0, 1)], 0).to_vec(),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0, 3.0]
    );
    assert_eq!(Tensor::stack(&[&x, &x], 2).shape(), &[2, 3, 2]);
    assert_eq!(
        x.index_select(1, &[2, 0]).to_vec(),
        vec![3.0, 1.0, 6.0, 4.0]
    );
    assert_eq!(x.gather(1, &[1, 2], &[2, 1]).to_vec(), vec![2.0, 6.0]);
    let padded = t(&[1.0, 2.0], &[1, 2]).pad(&[(1, 0), (0, 1)], 9.0);
    assert_eq!(padded.shape(), &[2, 3]);
    assert_eq!(padded.to_vec(), vec![9.0, 9.0, 9.0, 1.0, 2.0, 9.0]);
    assert_eq!(x.reshape(&[3, 2]).unsqueeze(0).shape(), &[1, 3, 2]);
    assert_eq!(x.broadcast_to(&[2, 2, 3]).to_vec()[6..], x.to_vec()[..]);
    assert_eq!(
        Tensor::<f64>::one_hot(&[2, 0], 3).to_vec(),
        vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    );
}

#[test]
fn conv2d_by_hand() {
    // kernel [[1, 0], [0, 1]] adds each pixel to its lower-right neighbour:
    // [[1,2,3],[4,5,6],[7,8,9]] → [[1+5, 2+6], [4+8, 5+9]]
    let x = t(
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        &[1, 1, 3, 3],
    );
    let w = t(&[1.0, 0.0, 0.0, 1.0], &[1, 1, 2, 2]);
    let bias = t(&[0.5], &[1]);
    let y = x.conv2d(&w, Some(&bias), Conv2dOptions::default());
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.to_vec(), vec![6.5, 8.5, 12.5, 14.5]);
}

/// Direct convolution straight from the definition, for comparison.
fn naive_conv2d(x: &Tensor<f64>, w: &Tensor<f64>, o: Conv2dOptions) -> Vec<f64> {
    let (xs, ws) = (x.shape(), w.shape());
    let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let (oc, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let oh = (h + 2 * o.padding.0 - o.dilation.0 * (kh - 1) - 1) / o.stride.0 + 1;
    let ow = (wd + 2 * o.padding.1 - o.dilation.1 * (kw - 1) - 1) / o.stride.1 + 1;
    let (xd, wdat) = (x.to_vec(), w.to_vec());
    let per_group_out = oc / o.groups;
    let mut out = vec![0.0; n * oc * oh * ow];
    for b in 0..n {
        for k in 0..oc {
            let group = k / per_group_out;
            for y in 0..oh {
                for z in 0..ow {
                    let mut acc = 0.0;
                    for ci in 0..cg {
                        let channel = group * cg + ci;
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (y * o.stride.0 + i * o.dilation.0) as isize
                                    - o.padding.0 as isize;
                                let ix = (z * o.stride.1 + j * o.dilation.1) as isize
                                    - o.padding.1 as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    acc += xd
                                        [((b * c + channel) * h + iy as usize) * wd + ix as usize]
                                        * wdat[((k * cg + ci) * kh + i) * kw + j];
                                }
                            }
                        }
                    }
                    out[((b * oc + k) * oh + y) * ow + z] = acc;
                }
            }
        }
    }
    out
}

#[test]
fn conv2d_matches_the_definition() {
    let cases = [
        ([2, 3, 7, 6], [4, 3, 3, 3], Conv2dOptions::default()),
        (
            [1, 2, 8, 8],
            [3, 2, 3, 2],
            Conv2dOptions {
                stride: (2, 1),
                padding: (1, 2),
                ..Default::default()
            },
        ),
        (
            [2, 2, 9, 9],
            [2, 2, 3, 3],
            Conv2dOptions::default().dilation(2).padding(2),
        ),
        (
            [2, 6, 5, 5],
            [4, 3, 2, 2],
            Conv2dOptions::default().groups(2).stride(2),
        ),
    ];
    for (seed, (input, weight, options)) in cases.into_iter().enumerate() {
        let x = Tensor::randn(&input, 0.0, 1.0, &mut nabla::rng(seed as u64));
        let w = Tensor::randn(&weight, 0.0, 1.0, &mut nabla::rng(100 + seed as u64));
        let expected = naive_conv2d(&x, &w, options);
        assert_close(&x.conv2d(&w, None, options).to_vec(), &expected, 1e-12);
    }
}

#[test]
fn pooling_by_hand() {
    // 4×4 grid 1..16, 2×2 windows: max [6, 8, 14, 16], mean [3.5, 5.5, 11.5, 13.5]
    let values: Vec<f64> = (1..=16).map(f64::from).collect();
    let x = t(&values, &[1, 1, 4, 4]);
    assert_eq!(
        x.max_pool2d((2, 2), (2, 2), (0, 0)).to_vec(),
        vec![6.0, 8.0, 14.0, 16.0]
    );
    assert_eq!(
        x.avg_pool2d((2, 2), (2, 2), (0, 0)).to_vec(),
        vec![3.5, 5.5, 11.5, 13.5]
    );
    // padding 1, 3×3 windows stride 2: corners see 4 real pixels of 9 (zeros counted)
    let avg = x.avg_pool2d((3, 3), (2, 2), (1, 1)).to_vec();
    assert_close(&avg[..1], &[(1.0 + 2.0 + 5.0 + 6.0) / 9.0], 1e-15);
    let max = x.max_pool2d((3, 3), (2, 2), (1, 1)).to_vec();
    assert_eq!(max, vec![6.0, 8.0, 14.0, 16.0]);
    // unpadded 3×3 stride 1: the four windows' maxima are 11, 12, 15, 16
    let max = x.max_pool2d((3, 3), (1, 1), (0, 0)).to_vec();
    assert_eq!(max, vec![11.0, 12.0, 15.0, 16.0]);
    // a NaN in a window makes its max NaN (as in PyTorch), in any tap position
    for nan_at in [0, 1, 4, 5] {
        let mut with_nan = values.clone();
        with_nan[nan_at] = f64::NAN;
        let max = t(&with_nan, &[1, 1, 4, 4]).max_pool2d((2, 2), (2, 2), (0, 0));
        let max = max.to_vec();
        assert!(max[0].is_nan() && max[1..] == [8.0, 14.0, 16.0], "{max:?}");
    }
}

#[test]
fn float32_and_float64_agree() {
    let x32 = Tensor::<f32>::from_vec(vec![0.5, -1.5, 2.0], &[3]);
    let x64 = x32.cast::<f64>();
    let y32 = x32.tanh().exp().sum().item() as f64;
    let y64 = x64.tanh().exp().sum().item();
    assert!((y32 - y64).abs() < 1e-5);
}

#[test]
fn creation() {
    assert_eq!(
        Tensor::<f32>::arange(1.0, 2.0, 0.5).to_vec(),
        vec![1.0, 1.5]
    );
    assert_eq!(Tensor::<f32>::full(&[2], 7.0).to_vec(), vec![7.0, 7.0]);
    let u = Tensor::<f64>::rand_uniform(&[1000], -2.0, 3.0, &mut nabla::rng(1));
    assert!(u.to_vec().iter().all(|&v| (-2.0..3.0).contains(&v)));
    let n = Tensor::<f64>::randn(&[20_000], 1.0, 2.0, &mut nabla::rng(2));
    assert!((n.mean().item() - 1.0).abs() < 0.05);
    assert!((n.var(1).item().sqrt() - 2.0).abs() < 0.05);
}

#[test]
fn large_tensors_use_the_parallel_paths_and_agree() {
    // Above the parallel threshold the kernels split work; results must match the
    // small-tensor path element for element.
    let big = Tensor::<f64>::randn(&[300, 257], 0.0, 1.0, &mut nabla::rng(9));
    let row = Tensor::<f64>::randn(&[257], 0.0, 1.0, &mut nabla::rng(10));
    let sum = (&big + &row).to_vec();
    let data = big.to_vec();
    let row_values = row.to_vec();
    for (i, value) in sum.iter().enumerate() {
        assert_eq!(*value, data[i] + row_values[i % 257]);
    }
    let total: f64 = data.iter().sum();
    assert!((big.sum().item() - total).abs() < 1e-9);
    let column_sums = big.sum_axes(&[0], false).to_vec();
    for j in [0, 100, 256] {
        let expected: f64 = (0..300).map(|i| data[i * 257 + j]).sum();
        assert!((column_sums[j] - expected).abs() < 1e-9);
    }
}

/// Every tensor lives on a device behind the storage seam; today that is the CPU,
/// and moving a tensor to where it already is shares its values.
#[test]
fn tensors_live_on_the_cpu() {
    let x = nabla::Tensor::<f32>::from_vec(vec![1.0, 2.0], &[2]);
    assert_eq!(x.device(), nabla::Device::Cpu);
    let moved = x.to(nabla::Device::Cpu);
    assert_eq!(moved.id(), x.id());
    assert_eq!(x.reshape(&[1, 2]).device(), nabla::Device::Cpu);
}

/// softsign(x) = x / (1 + |x|): softsign(3) = 3/4, softsign(−1) = −1/2, softsign(0) = 0;
/// its derivative 1/(1 + |x|)² is 1/16 at 3 and 1/4 at −1.
#[test]
fn softsign_values_and_slopes() {
    let x = nabla::Tensor::<f64>::from_vec(vec![3.0, -1.0, 0.0], &[3]).requires_grad(true);
    let y = x.softsign();
    assert_eq!(y.to_vec(), vec![0.75, -0.5, 0.0]);
    y.sum().backward();
    assert_eq!(x.grad().unwrap().to_vec(), vec![1.0 / 16.0, 0.25, 1.0]);
}
