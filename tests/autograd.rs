//! The graph walk: literal gradients with their derivation, accumulation over
//! diamonds and reuse, detach, no_grad, and that the graph is freed.

use nabla::{Tensor, live_nodes, no_grad};

fn leaf(values: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(values.to_vec(), &[values.len()]).requires_grad(true)
}

fn grad_of(t: &Tensor<f64>) -> Vec<f64> {
    t.grad().expect("a gradient was computed").to_vec()
}

#[test]
fn polynomial() {
    // y = x² + 5x + 4, dy/dx = 2x + 5 = 9 at x = 2
    let x = leaf(&[2.0]);
    let y = (&x * &x + &x * 5.0 + 4.0).sum();
    y.backward();
    assert_eq!(y.item(), 18.0);
    assert_eq!(grad_of(&x), vec![9.0]);
}

#[test]
fn chain_rule_through_functions() {
    // y = exp(2x)·x, dy/dx = exp(2x)·(2x + 1) = 3e² at x = 1
    let x = leaf(&[1.0]);
    (&(&x * 2.0).exp() * &x).sum().backward();
    let expected = (2.0f64).exp() * 3.0;
    assert!((grad_of(&x)[0] - expected).abs() < 1e-12);
}

#[test]
fn diamond_sums_both_paths() {
    // a = 2x, b = 3x, y = a·b = 6x², dy/dx = 12x = 36 at x = 3
    let x = leaf(&[3.0]);
    let a = &x * 2.0;
    let b = &x * 3.0;
    (&a * &b).sum().backward();
    assert_eq!(grad_of(&x), vec![36.0]);
}

#[test]
fn reuse_of_one_tensor() {
    // y = x + x + x·x, dy/dx = 2 + 2x = 10 at x = 4; add hands the same gradient
    // to both of its inputs, so accumulating in place must not corrupt it
    let x = leaf(&[4.0, -1.0]);
    (&x + &x + &x * &x).sum().backward();
    assert_eq!(grad_of(&x), vec![10.0, 0.0]);
}

#[test]
fn gradients_accumulate_until_zeroed() {
    // Like PyTorch, a second backward adds to the leaf's gradient.
    let x = leaf(&[1.0, 2.0]);
    (&x * 3.0).sum().backward();
    (&x * 3.0).sum().backward();
    assert_eq!(grad_of(&x), vec![6.0, 6.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
    (&x * 3.0).sum().backward();
    assert_eq!(grad_of(&x), vec![3.0, 3.0]);
}

#[test]
fn detach_blocks_the_gradient() {
    // y = x · stop(x): only the first factor carries gradient, dy/dx = x
    let x = leaf(&[5.0]);
    (&x * &x.detach()).sum().backward();
    assert_eq!(grad_of(&x), vec![5.0]);
}

#[test]
fn backward_with_a_given_gradient() {
    // y = 3x (non-scalar); with dL/dy = [1, 2], dL/dx = [3, 6]
    let x = leaf(&[1.0, 1.0]);
    let y = &x * 3.0;
    y.backward_with(Tensor::from_vec(vec![1.0, 2.0], &[2]));
    assert_eq!(grad_of(&x), vec![3.0, 6.0]);
}

#[test]
fn retained_intermediate_gradient() {
    // h = 2x, y = h², dy/dh = 2h = 8 at x = 2
    let x = leaf(&[2.0]);
    let h = &x * 2.0;
    h.retain_grad();
    h.square().sum().backward();
    assert_eq!(grad_of(&h), vec![8.0]);
    assert_eq!(grad_of(&x), vec![16.0]);
}

#[test]
fn frozen_leaves_get_no_gradient() {
    let w = leaf(&[1.0]);
    let frozen = leaf(&[2.0]);
    frozen.set_requires_grad(false);
    (&w * &frozen).sum().backward();
    assert_eq!(grad_of(&w), vec![2.0]);
    assert!(frozen.grad().is_none());
}

#[test]
fn no_grad_records_nothing() {
    let x = leaf(&[1.0, 2.0]);
    let before = live_nodes();
    let y = {
        let _guard = no_grad();
        (&x * 2.0).exp().sum()
    };
    assert!(!y.tracks_grad());
    assert_eq!(live_nodes(), before);
    // recording resumes after the guard
    assert!((&x * 2.0).tracks_grad());
}

#[test]
fn graph_is_freed_by_backward() {
    let x = leaf(&[1.0, 2.0, 3.0]);
    let before = live_nodes();
    let loss = (&x.sigmoid() * &x).mean();
    assert!(live_nodes() > before);
    loss.backward();
    assert_eq!(live_nodes(), before, "backward must free every node");
}

#[test]
#[should_panic(expected = "already freed")]
fn second_backward_through_a_freed_graph_panics() {
    let x = leaf(&[1.0]);
    let h = &x * 2.0;
    let loss = h.square().sum();
    loss.backward();
    // `h`'s node is gone; a new loss through it cannot reach x
    (&h * 1.0).sum().backward();
}

#[test]
#[should_panic(expected = "only be set on leaf tensors")]
fn requires_grad_on_a_non_leaf_panics() {
    let x = leaf(&[1.0]);
    let _ = (&x * 2.0).requires_grad(true);
}

#[test]
#[should_panic(expected = "use backward_with")]
fn backward_from_a_non_scalar_panics() {
    let x = leaf(&[1.0, 2.0]);
    (&x * 2.0).backward();
}

/// A long training loop on a small net keeps a flat node count and flat memory.
#[test]
fn training_loop_memory_is_flat() {
    let mut rng = nabla::rng(3);
    let w1 = Tensor::<f32>::randn(&[4, 16], 0.0, 0.5, &mut rng).requires_grad(true);
    let w2 = Tensor::<f32>::randn(&[16, 1], 0.0, 0.5, &mut rng).requires_grad(true);
    let x = Tensor::<f32>::randn(&[8, 4], 0.0, 1.0, &mut rng);
    let y = Tensor::<f32>::randn(&[8, 1], 0.0, 1.0, &mut rng);
    let baseline = live_nodes();
    let mut rss_after_warmup = 0;
    for step in 0..20_000 {
        let loss = (x.matmul(&w1).relu().matmul(&w2) - &y).square().mean();
        loss.backward();
        for w in [&w1, &w2] {
            let grad = w.grad().unwrap();
            w.update_data(|v| {
                v.iter_mut()
                    .zip(grad.data().iter())
                    .for_each(|(v, g)| *v -= 0.01 * g)
            });
            w.zero_grad();
        }
        assert_eq!(live_nodes(), baseline, "nodes leaked at step {step}");
        if step == 1_000 {
            rss_after_warmup = resident_kib();
        }
    }
    let growth = resident_kib().saturating_sub(rss_after_warmup);
    assert!(
        growth < 2048,
        "resident memory grew by {growth} KiB over 19,000 steps"
    );
}

/// Resident set size of this process, from /proc (0 where unavailable).
fn resident_kib() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4)
}

#[test]
fn shape_errors_name_both_shapes() {
    let message = |f: fn()| {
        let err = std::panic::catch_unwind(f).expect_err("should panic");
        err.downcast_ref::<String>().cloned().unwrap_or_default()
    };
    let matmul = message(|| {
        let _ = Tensor::<f32>::zeros(&[2, 3]).matmul(&Tensor::zeros(&[4, 5]));
    });
    assert!(
        matmul.contains("[2, 3]") && matmul.contains("[4, 5]"),
        "{matmul}"
    );
    let add = message(|| {
        let _ = Tensor::<f32>::zeros(&[2, 3]) + Tensor::zeros(&[4]);
    });
    assert!(add.contains("[2, 3]") && add.contains("[4]"), "{add}");
    let conv = message(|| {
        let _ = Tensor::<f32>::zeros(&[1, 3, 5, 5]).conv2d(
            &Tensor::zeros(&[2, 2, 3, 3]),
            None,
            Default::default(),
        );
    });
    assert!(
        conv.contains("[1, 3, 5, 5]") && conv.contains("[2, 2, 3, 3]"),
        "{conv}"
    );
    let reshape = message(|| {
        let _ = Tensor::<f32>::zeros(&[2, 3]).reshape(&[4]);
    });
    assert!(
        reshape.contains("[2, 3]") && reshape.contains("[4]"),
        "{reshape}"
    );
    let select = message(|| {
        let _ = Tensor::<f32>::zeros(&[2, 3]).index_select(1, &[5]);
    });
    assert!(
        select.contains("index 5") && select.contains("[2, 3]"),
        "{select}"
    );
}

#[test]
fn try_from_vec_reports_the_mismatch() {
    let err = Tensor::<f32>::try_from_vec(vec![1.0; 5], &[2, 3]).unwrap_err();
    assert!(
        err.to_string()
            .contains("needs 6 elements, but the data has 5"),
        "{err}"
    );
}
