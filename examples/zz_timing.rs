use nabla::{Conv2dOptions, Tensor};
use std::time::Instant;
fn time(name: &str, reps: usize, mut f: impl FnMut()) {
    for _ in 0..3 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e3 / reps as f64);
    }
    println!("{name:30} {best:8.3} ms");
}
fn main() {
    let mut rng = nabla::rng(0);
    let x = Tensor::<f32>::rand_uniform(&[64, 1, 28, 28], 0.0, 1.0, &mut rng);
    let w1 = Tensor::<f32>::rand_uniform(&[6, 1, 5, 5], -0.2, 0.2, &mut rng).requires_grad(true);
    let b1 = Tensor::<f32>::zeros(&[6]).requires_grad(true);
    let h1 = Tensor::<f32>::rand_uniform(&[64, 6, 14, 14], 0.0, 1.0, &mut rng).requires_grad(true);
    let w2 = Tensor::<f32>::rand_uniform(&[16, 6, 5, 5], -0.2, 0.2, &mut rng).requires_grad(true);
    let b2 = Tensor::<f32>::zeros(&[16]).requires_grad(true);
    let a1 = Tensor::<f32>::rand_uniform(&[64, 6, 28, 28], -1.0, 1.0, &mut rng).requires_grad(true);
    let a2 =
        Tensor::<f32>::rand_uniform(&[64, 16, 10, 10], -1.0, 1.0, &mut rng).requires_grad(true);
    let o = Conv2dOptions::default();
    time("conv1 fwd", 30, || {
        let _g = nabla::no_grad();
        let _y = x.conv2d(&w1, Some(&b1), o.padding(2));
    });
    time("conv1 fwd+bwd", 30, || {
        let y = x.conv2d(&w1, Some(&b1), o.padding(2));
        y.sum().backward();
        w1.zero_grad();
        b1.zero_grad();
    });
    time("conv2 fwd", 30, || {
        let _g = nabla::no_grad();
        let _y = h1.conv2d(&w2, Some(&b2), o);
    });
    time("conv2 fwd+bwd", 30, || {
        let y = h1.conv2d(&w2, Some(&b2), o);
        y.sum().backward();
        w2.zero_grad();
        b2.zero_grad();
        h1.zero_grad();
    });
    time("relu a1 fwd+bwd", 30, || {
        let y = a1.relu();
        y.sum().backward();
        a1.zero_grad();
    });
    time("pool a1 fwd+bwd", 30, || {
        let y = a1.max_pool2d((2, 2), (2, 2), (0, 0));
        y.sum().backward();
        a1.zero_grad();
    });
    time("pool a2 fwd+bwd", 30, || {
        let y = a2.max_pool2d((2, 2), (2, 2), (0, 0));
        y.sum().backward();
        a2.zero_grad();
    });
    time("sum a1 fwd+bwd", 30, || {
        let y = a1.sum();
        y.backward();
        a1.zero_grad();
    });
}
