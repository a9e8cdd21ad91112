//! A 2-2-1 sigmoid network learns XOR with the engine alone.

#[path = "../examples/xor.rs"]
mod xor;

#[test]
fn sigmoid_network_learns_xor() {
    let (net, losses) = xor::train(0, 5000, 2.0);
    assert!(losses[0] > 0.2, "starts near chance: {}", losses[0]);
    assert!(
        *losses.last().unwrap() < 0.01,
        "final loss {}",
        losses.last().unwrap()
    );
    let (x, y) = xor::xor_data();
    let prediction = net.forward(&x).to_vec();
    for (p, target) in prediction.iter().zip(y.to_vec()) {
        assert!(
            (p - target).abs() < 0.15,
            "prediction {p} for target {target}"
        );
    }
}
