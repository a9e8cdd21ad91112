//! Layers, losses and optimizers against values PyTorch computed
//! (tests/reference/make_reference.py wrote the JSON files read here).

use nabla::loss::{self, CrossEntropyOptions, Reduction};
use nabla::nn::*;
use nabla::optim::{Adagrad, Adam, AdamW, Optimizer, RmsProp, Sgd};
use nabla::{Conv2dOptions, Tensor};

mod common;

use common::reference::*;

fn check_layer(name: &str, module: &dyn Module<f64>) {
    let cases = reference("layers.json");
    let case = &cases[name];
    load_state(module, &case["state"]);
    let y = module.forward(&tensor(&case["input"]));
    assert_eq!(y.shape(), shape(&case["output"]).as_slice(), "{name} shape");
    assert_close(
        name,
        &y.to_vec(),
        &numbers(&case["output"]["values"]),
        1e-12,
    );
}

#[test]
fn linear_and_conv_layers() {
    let mut rng = nabla::rng(0);
    check_layer("linear", &Linear::new(5, 3, &mut rng));
    check_layer(
        "conv2d",
        &Conv2d::new(
            2,
            4,
            3,
            Conv2dOptions::default().stride(2).padding(1),
            &mut rng,
        ),
    );
    let options = Conv2dOptions {
        padding: (2, 1),
        dilation: (2, 2),
        groups: 2,
        ..Default::default()
    };
    check_layer(
        "conv2d_groups_dilation",
        &Conv2d::with_init(
            4,
            6,
            (3, 2),
            options,
            true,
            init::Init::PyTorchDefault,
            &mut rng,
        ),
    );
}

#[test]
fn pooling_and_norm_layers() {
    check_layer(
        "max_pool2d",
        &MaxPool2d {
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
        },
    );
    check_layer("avg_pool2d", &AvgPool2d::new(2));
    check_layer("layer_norm", &LayerNorm::new(&[3, 4]));
}

#[test]
fn embedding_layer() {
    let cases = reference("layers.json");
    let case = &cases["embedding"];
    let layer = Embedding::<f64>::new(6, 3, &mut nabla::rng(0));
    load_state(&layer, &case["state"]);
    let index_shape: Vec<usize> = case["index_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let y = layer.forward(&Tensor::from_vec(numbers(&case["indices"]), &index_shape));
    assert_close(
        "embedding",
        &y.to_vec(),
        &numbers(&case["output"]["values"]),
        0.0,
    );
}

fn check_batch_norm(name: &str, layer: &dyn Module<f64>) {
    let cases = reference("layers.json");
    let case = &cases[name];
    load_state(layer, &case["state"]);
    let x: Tensor<f64> = tensor(&case["input"]);
    layer.train();
    assert_close(
        name,
        &layer.forward(&x).to_vec(),
        &numbers(&case["train_output"]["values"]),
        1e-12,
    );
    let x2 = &x * 2.0 + 1.0;
    assert_close(
        name,
        &layer.forward(&x2).to_vec(),
        &numbers(&case["train_output_2"]["values"]),
        1e-12,
    );
    // running statistics after two training batches, then evaluation with them
    for (buffer, t) in layer.named_buffers() {
        assert_close(
            &buffer,
            &t.to_vec(),
            &numbers(&case["state_after"][&buffer]["values"]),
            1e-12,
        );
    }
    layer.eval();
    assert_close(
        name,
        &layer.forward(&x).to_vec(),
        &numbers(&case["eval_output"]["values"]),
        1e-12,
    );
}

#[test]
fn batch_norm_layers() {
    check_batch_norm("batch_norm1d", &BatchNorm1d::new(3));
    check_batch_norm("batch_norm2d", &BatchNorm2d::new(2));
}

#[test]
fn activations() {
    let cases = reference("layers.json");
    let case = &cases["activations"];
    let x: Tensor<f64> = tensor(&case["input"]);
    let ours: Vec<(&str, Tensor<f64>)> = vec![
        ("relu", Relu.forward(&x)),
        ("leaky_relu", LeakyRelu::default().forward(&x)),
        ("sigmoid", Sigmoid.forward(&x)),
        ("tanh", Tanh.forward(&x)),
        ("gelu", Gelu::default().forward(&x)),
        (
            "gelu_tanh",
            Gelu {
                tanh_approximation: true,
            }
            .forward(&x),
        ),
        ("silu", Silu.forward(&x)),
        ("softmax", Softmax::default().forward(&x)),
        ("softplus", x.softplus()),
        ("log_softmax", x.log_softmax(-1)),
    ];
    for (name, y) in ours {
        assert_close(
            name,
            &y.to_vec(),
            &numbers(&case["outputs"][name]["values"]),
            1e-12,
        );
    }
}

#[test]
fn losses() {
    let cases = reference("layers.json");
    let case = &cases["losses"];
    let (pred, target): (Tensor<f64>, Tensor<f64>) =
        (tensor(&case["prediction"]), tensor(&case["target"]));
    let logits: Tensor<f64> = tensor(&case["logits"]);
    let labels: Vec<usize> = case["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let weights = numbers(&case["class_weights"]);
    let ce = |smoothing: f64, weighted: bool, reduction: Reduction| {
        let options = CrossEntropyOptions {
            reduction,
            label_smoothing: smoothing,
            class_weights: weighted.then(|| weights.clone()),
        };
        loss::cross_entropy(&logits, &labels, &options).item()
    };
    let ours = [
        (
            "mse",
            loss::mse_loss(&pred, &target, Reduction::Mean).item(),
        ),
        (
            "mse_sum",
            loss::mse_loss(&pred, &target, Reduction::Sum).item(),
        ),
        ("l1", loss::l1_loss(&pred, &target, Reduction::Mean).item()),
        (
            "huber",
            loss::huber_loss(&pred, &target, 0.7, Reduction::Mean).item(),
        ),
        ("cross_entropy", ce(0.0, false, Reduction::Mean)),
        ("cross_entropy_sum", ce(0.0, false, Reduction::Sum)),
        ("cross_entropy_smoothing", ce(0.1, false, Reduction::Mean)),
        ("cross_entropy_weights", ce(0.0, true, Reduction::Mean)),
        (
            "cross_entropy_weights_smoothing",
            ce(0.2, true, Reduction::Mean),
        ),
        (
            "nll",
            loss::nll_loss(&logits.log_softmax(-1), &labels, None, Reduction::Mean).item(),
        ),
        (
            "bce_with_logits",
            loss::binary_cross_entropy_with_logits(
                &pred,
                &tensor(&case["bce_target"]),
                Reduction::Mean,
            )
            .item(),
        ),
    ];
    for (name, value) in ours {
        assert_close(
            name,
            &[value],
            &[case["outputs"][name].as_f64().unwrap()],
            1e-12,
        );
    }
}

// ------------------------------------------------------------------ optimizers

fn make_optimizer(name: &str, params: Vec<(String, Tensor<f32>)>) -> Box<dyn Optimizer<f32>> {
    match name {
        "sgd" => Box::new(Sgd::new(params, 0.1)),
        "sgd_momentum" => Box::new(Sgd::new(params, 0.1).momentum(0.9)),
        "sgd_nesterov_decay" => Box::new(
            Sgd::new(params, 0.05)
                .momentum(0.8)
                .nesterov(true)
                .weight_decay(0.01),
        ),
        "sgd_dampening" => Box::new(Sgd::new(params, 0.05).momentum(0.9).dampening(0.3)),
        "adam" => Box::new(Adam::new(params, 0.01)),
        "adam_decay" => Box::new(Adam::new(params, 0.01).betas(0.8, 0.99).weight_decay(0.1)),
        "adamw" => Box::new(AdamW::new(params, 0.01)),
        "rmsprop" => Box::new(RmsProp::new(params, 0.01)),
        "rmsprop_centered_momentum" => Box::new(
            RmsProp::new(params, 0.01)
                .momentum(0.5)
                .centered(true)
                .weight_decay(0.01),
        ),
        "rmsprop_centered" => Box::new(RmsProp::new(params, 0.01).centered(true)),
        "rmsprop_momentum" => Box::new(RmsProp::new(params, 0.01).momentum(0.9).alpha(0.9)),
        "adagrad" => Box::new(Adagrad::new(params, 0.1)),
        "adagrad_decay" => Box::new(
            Adagrad::new(params, 0.1)
                .lr_decay(0.01)
                .weight_decay(0.05)
                .initial_accumulator_value(0.1),
        ),
        other => panic!("no optimizer setting {other}"),
    }
}

/// f32 updates may differ from PyTorch's in the last bit or two per step (fused
/// multiply-adds in its vectorised kernels): measured at most ~2e-7 relative, bar 1e-6.
const OPTIMIZER_TOLERANCE: f64 = 1e-6;

#[test]
fn optimizers_on_a_quadratic() {
    let reference = reference("optimizers.json");
    let quadratic = &reference["quadratic"];
    let a = Tensor::<f32>::from_vec(
        numbers(&quadratic["a"]).iter().map(|&v| v as f32).collect(),
        &[4],
    );
    let b = Tensor::<f32>::from_vec(
        numbers(&quadratic["b"]).iter().map(|&v| v as f32).collect(),
        &[4],
    );
    for (name, run) in reference["runs"].as_object().unwrap() {
        let w = Tensor::<f32>::from_vec(
            numbers(&quadratic["w0"])
                .iter()
                .map(|&v| v as f32)
                .collect(),
            &[4],
        )
        .requires_grad(true);
        let mut optimizer = make_optimizer(name, vec![("w".into(), w.clone())]);
        for (step, expected) in run["quadratic"].as_array().unwrap().iter().enumerate() {
            optimizer.zero_grad();
            // f(w) = Σ ½·a·w² + b·w, so ∇f = a·w + b
            ((&a * &w * &w * 0.5) + &b * &w).sum().backward();
            optimizer.step();
            let ours: Vec<f64> = w.to_vec().iter().map(|&v| v as f64).collect();
            assert_close(
                &format!("{name} step {}", step + 1),
                &ours,
                &numbers(expected),
                OPTIMIZER_TOLERANCE,
            );
        }
    }
}

#[test]
fn optimizers_on_a_tiny_net() {
    let reference = reference("optimizers.json");
    let net = &reference["net"];
    let (x, y): (Tensor<f32>, Tensor<f32>) = (tensor(&net["x"]), tensor(&net["y"]));
    for (name, run) in reference["runs"].as_object().unwrap() {
        let mut rng = nabla::rng(0);
        let model = Sequential::new()
            .layer(Linear::new(3, 4, &mut rng))
            .layer(Tanh)
            .layer(Linear::new(4, 2, &mut rng));
        load_state(&model, &net["init"]);
        let mut optimizer = make_optimizer(name, model.named_parameters());
        for _ in 0..3 {
            optimizer.zero_grad();
            loss::mse_loss(&model.forward(&x), &y, Reduction::Mean).backward();
            optimizer.step();
        }
        for (param, t) in model.named_parameters() {
            let ours: Vec<f64> = t.to_vec().iter().map(|&v| v as f64).collect();
            assert_close(
                &format!("{name} {param}"),
                &ours,
                &numbers(&run["net"][&param]),
                OPTIMIZER_TOLERANCE,
            );
        }
    }
}

/// Stopping, saving the optimizer's state and restoring it into a new optimizer
/// changes nothing: 2 steps + save + load + 3 steps = 5 steps, to the last bit.
/// Every setting of every optimizer that has a PyTorch run above.
#[test]
fn optimizer_state_round_trips_exactly() {
    let reference = reference("optimizers.json");
    let settings: Vec<String> = reference["runs"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let start = [0.5f32, -1.5, 2.0, 0.25];
    for name in &settings {
        let make = |steps: usize, state: Option<Vec<(String, Tensor<f32>)>>, from: &[f32]| {
            let w = Tensor::<f32>::from_vec(from.to_vec(), &[4]).requires_grad(true);
            let mut optimizer = make_optimizer(name, vec![("w".into(), w.clone())]);
            if let Some(state) = state {
                optimizer.load_state(&state).unwrap();
            }
            for _ in 0..steps {
                optimizer.zero_grad();
                // f(w) = Σ w⁴/4 − w, ∇f = w³ − 1
                ((&w * &w * &w * &w * 0.25) - &w).sum().backward();
                optimizer.step();
            }
            (w.to_vec(), optimizer.state())
        };
        let (straight, _) = make(5, None, &start);
        let (halfway, state) = make(2, None, &start);
        let (resumed, _) = make(3, Some(state), &halfway);
        assert_eq!(
            straight, resumed,
            "{name}: resuming from saved state changed the result"
        );
        assert_ne!(
            straight,
            start.to_vec(),
            "{name}: the optimizer did not move"
        );
    }
}
