//! The thread pool is sized once, before the first parallel kernel. (Its own test binary, so no other test starts the pool first.)

use nabla::Tensor;

#[test]
fn pool_size_is_set_once_and_results_are_unchanged() {
    let x = Tensor::<f32>::randn(&[512, 300], 0.0, 1.0, &mut nabla::rng(4));
    assert!(
        nabla::set_num_threads(0).is_err(),
        "zero threads is refused"
    );
    nabla::set_num_threads(1).expect("first call sizes the pool");
    assert_eq!(nabla::num_threads(), 1);
    let err = nabla::set_num_threads(2).unwrap_err();
    assert!(
        err.to_string().contains("before the first parallel kernel"),
        "{err}"
    );

    // A sum large enough for the parallel path agrees with an f64 reference.
    let reference: f64 = x.to_vec().iter().map(|&v| v as f64).sum();
    let total = x.sum().item() as f64;
    assert!((total - reference).abs() < 1e-2, "{total} vs {reference}");
}
