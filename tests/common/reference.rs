//! Reading the values PyTorch computed (the JSON files of tests/reference/).

use nabla::Tensor;
use nabla::nn::Module;
use serde_json::Value;

/// The parsed file `tests/reference/<name>`.
pub fn reference(name: &str) -> Value {
    let path = format!("{}/tests/reference/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A JSON array of numbers.
pub fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The `shape` of a `{shape, values}` entry.
pub fn shape(v: &Value) -> Vec<usize> {
    v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// A `{shape, values}` entry as a tensor.
pub fn tensor<T: nabla::Float>(v: &Value) -> Tensor<T> {
    Tensor::from_vec(
        numbers(&v["values"]).into_iter().map(T::cast).collect(),
        &shape(v),
    )
}

/// Copies the reference state (PyTorch names) into the module, checking that the
/// names are the same, no more and no fewer, and the shapes too.
pub fn load_state<T: nabla::Float>(module: &dyn Module<T>, state: &Value) {
    let ours = module.state_dict();
    assert_eq!(
        ours.len(),
        state.as_object().unwrap().len(),
        "state names differ"
    );
    for (name, t) in ours {
        let stored = &state[&name];
        assert!(!stored.is_null(), "PyTorch has no tensor named {name}");
        assert_eq!(t.shape(), shape(stored).as_slice(), "{name}");
        t.copy_from_slice(&tensor::<T>(stored).to_vec());
    }
}

/// `|actual − expected| ≤ tolerance · max(1, |expected|)` elementwise.
pub fn assert_close(name: &str, actual: &[f64], expected: &[f64], tolerance: f64) {
    assert_eq!(actual.len(), expected.len(), "{name}: lengths");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let scale = 1f64.max(e.abs());
        assert!(
            (a - e).abs() <= tolerance * scale,
            "{name}[{i}]: nabla {a} vs PyTorch {e}"
        );
    }
}
