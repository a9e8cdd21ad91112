//! Residual networks from configs: building, shapes and their errors, PyTorch's
//! parameter names and values (tests/reference/make_residual_reference.py wrote
//! residual.json), gradients, and `out = "classes"`.

use nabla::experiment::{Config, build_model};
use nabla::nn::Module;
use nabla::{Tensor, gradcheck_module};

mod common;

use common::reference::{load_state, numbers, reference, tensor};

/// The network of make_residual_reference.py, as a config.
const RESIDUAL_CNN: &str = r#"
[data]
kind = "mnist"
path = "data/mnist"

[model]
layers = [
  { type = "conv2d", out_channels = 4, kernel = 3, padding = 1, bias = false },
  { type = "batch_norm" },
  { type = "relu" },
  { type = "residual", layers = [
      { type = "conv2d", out_channels = 4, kernel = 3, padding = 1, bias = false },
      { type = "batch_norm" },
      { type = "relu" },
      { type = "conv2d", out_channels = 4, kernel = 3, padding = 1, bias = false },
      { type = "batch_norm" },
  ] },
  { type = "relu" },
  { type = "residual", layers = [
      { type = "conv2d", out_channels = 8, kernel = 3, stride = 2, padding = 1, bias = false },
      { type = "batch_norm" },
      { type = "relu" },
      { type = "conv2d", out_channels = 8, kernel = 3, padding = 1, bias = false },
      { type = "batch_norm" },
    ], shortcut = [
      { type = "conv2d", out_channels = 8, kernel = 1, stride = 2, bias = false },
      { type = "batch_norm" },
  ] },
  { type = "relu" },
  { type = "global_avg_pool" },
  { type = "linear", out = "classes" },
]

[train]
epochs = 1
optimizer = { kind = "sgd", lr = 0.1, momentum = 0.9 }
"#;

fn config(text: &str) -> Config {
    Config::parse(text, "residual.toml".as_ref()).unwrap()
}

/// Values of `{shape, values}` entries, checked to 1e-10 (f64 on both sides).
fn assert_close(what: &str, actual: &[f64], expected: &[f64]) {
    common::reference::assert_close(what, actual, expected, 1e-10);
}

/// Same names as PyTorch's state_dict (no more, no fewer), same outputs in training
/// and evaluation mode, same parameter gradients.
#[test]
fn residual_config_matches_pytorch() {
    let reference = reference("residual.json");
    let layers = &config(RESIDUAL_CNN).model.layers;
    let (model, shapes) = build_model::<f64>(layers, &[3, 8, 8], 3, &mut nabla::rng(0)).unwrap();
    assert_eq!(shapes[3], [4, 8, 8]);
    assert_eq!(shapes[5], [8, 4, 4]);
    load_state(&model, &reference["state"]);
    let x = tensor::<f64>(&reference["input"]);
    model.train();
    let y = model.forward(&x);
    assert_close(
        "train output",
        &y.to_vec(),
        &numbers(&reference["train_output"]["values"]),
    );
    (&y * &tensor::<f64>(&reference["upstream"]))
        .sum()
        .backward();
    for (name, p) in model.named_parameters() {
        let expected = numbers(&reference["grads"][&name]["values"]);
        assert_close(&name, &p.grad().unwrap().to_vec(), &expected);
    }
    model.eval();
    assert_close(
        "eval output",
        &model.forward(&x).to_vec(),
        &numbers(&reference["eval_output"]["values"]),
    );
}

/// Backward through both branches and the addition, against finite differences.
#[test]
fn residual_config_gradients() {
    let layers = &config(RESIDUAL_CNN).model.layers;
    let (model, _) = build_model::<f64>(layers, &[3, 6, 6], 3, &mut nabla::rng(1)).unwrap();
    let x = Tensor::<f64>::randn(&[2, 3, 6, 6], 0.0, 1.0, &mut nabla::rng(2));
    let report = gradcheck_module(&model, &x);
    assert!(report.passed(1e-6), "{report}");
}

#[test]
fn mismatched_branches_name_the_block_and_both_shapes() {
    // the body halves the image, the identity shortcut does not
    let text = RESIDUAL_CNN.replace(
        "], shortcut = [\n      { type = \"conv2d\", out_channels = 8, kernel = 1, stride = 2, bias = false },\n      { type = \"batch_norm\" },\n  ] },",
        "] },",
    );
    let layers = &config(&text).model.layers;
    let err = build_model::<f32>(layers, &[3, 8, 8], 3, &mut nabla::rng(0))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("layer 5 (`residual`)")
            && err.contains("[8, 4, 4]")
            && err.contains("identity shortcut outputs [4, 8, 8]"),
        "{err}"
    );
    // an error inside a branch names the path to it
    let text = RESIDUAL_CNN.replace("kernel = 1, stride = 2", "kernel = 9, stride = 2");
    let err = build_model::<f32>(
        &config(&text).model.layers,
        &[3, 8, 8],
        3,
        &mut nabla::rng(0),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("layer 5 (`residual`): in its shortcut: layer 0 (`conv2d`)"),
        "{err}"
    );
}

#[test]
fn empty_residual_block_is_refused() {
    let text = RESIDUAL_CNN.replace(
        "{ type = \"relu\" },\n  { type = \"global_avg_pool\" }",
        "{ type = \"residual\", layers = [] },\n  { type = \"global_avg_pool\" }",
    );
    let err = Config::parse(&text, "residual.toml".as_ref())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("a residual block needs at least one layer"),
        "{err}"
    );
}

/// `out = "classes"` takes the data's class count; a bias-free conv has no bias.
#[test]
fn classes_width_and_bias_free_convolutions() {
    let layers = &config(RESIDUAL_CNN).model.layers;
    for classes in [2, 7] {
        let (model, shapes) =
            build_model::<f32>(layers, &[3, 8, 8], classes, &mut nabla::rng(0)).unwrap();
        assert_eq!(shapes.last().unwrap(), &[classes]);
        let names: Vec<String> = model
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(names.contains(&"5.shortcut.0.weight".to_string()));
        assert!(
            !names.iter().any(|n| n.ends_with("0.bias")),
            "convolutions with bias = false have no bias: {names:?}"
        );
    }
    let bad = RESIDUAL_CNN.replace("out = \"classes\"", "out = \"labels\"");
    let err = Config::parse(&bad, "residual.toml".as_ref())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("expected a number of outputs, \"classes\" or \"vocab\", found \"labels\""),
        "{err}"
    );
}

/// The library's ResNet-20 is the network of the reference `resnet` workload:
/// PyTorch's ResNet-20 has 272,474 parameters.
#[test]
fn zoo_resnet20() {
    let net = nabla::nn::zoo::resnet20::<f32>(3, 10, &mut nabla::rng(0));
    assert_eq!(net.num_parameters(), 272_474);
    let names: Vec<String> = net.state_dict().into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"9.shortcut.0.weight".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"22.weight".to_string()), "{names:?}");
    let x = Tensor::<f32>::randn(&[2, 3, 32, 32], 0.0, 1.0, &mut nabla::rng(1));
    assert_eq!(net.forward(&x).shape(), &[2, 10]);
}

/// examples/resnet20.toml is the library's ResNet-20, name for name and, from the
/// same seed, weight for weight.
#[test]
fn resnet20_config_is_the_zoo_network() {
    let path = format!("{}/examples/resnet20.toml", env!("CARGO_MANIFEST_DIR"));
    let config = Config::load(path.as_ref()).unwrap();
    let (from_config, _) =
        build_model::<f32>(&config.model.layers, &[3, 32, 32], 10, &mut nabla::rng(7)).unwrap();
    let zoo = nabla::nn::zoo::resnet20::<f32>(3, 10, &mut nabla::rng(7));
    let (ours, theirs) = (from_config.state_dict(), zoo.state_dict());
    assert_eq!(ours.len(), theirs.len());
    for ((name, a), (zoo_name, b)) in ours.iter().zip(&theirs) {
        assert_eq!(name, zoo_name);
        assert_eq!(a.to_vec(), b.to_vec(), "{name}");
    }
}
