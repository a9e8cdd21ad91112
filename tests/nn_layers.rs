//! Every layer's and loss's gradient by gradcheck (f64), and the Module API.

mod common;

use common::*;
use nabla::loss::{self, CrossEntropyOptions, Reduction};
use nabla::nn::*;
use nabla::{Conv2dOptions, Tensor, gradcheck_module};

fn check_layer(name: &str, layer: &dyn Module<f64>, input: Tensor<f64>) {
    let report = gradcheck_module(layer, &input);
    assert!(report.passed(TOLERANCE), "{name}:\n{report}");
    assert_eq!(report.inputs.len(), 1 + layer.parameters().len());
}

#[test]
fn linear_and_conv_gradients() {
    let mut rng = nabla::rng(1);
    check_layer("linear", &Linear::new(4, 3, &mut rng), randn(&[5, 4], 2));
    check_layer(
        "linear 3-D input",
        &Linear::new(4, 2, &mut rng),
        randn(&[2, 3, 4], 3),
    );
    let options = Conv2dOptions::default().padding(1).stride(2);
    check_layer(
        "conv2d",
        &Conv2d::new(2, 3, 3, options, &mut rng),
        randn(&[2, 2, 5, 5], 4),
    );
}

#[test]
fn norm_and_embedding_gradients() {
    check_layer("batch_norm1d", &BatchNorm1d::new(3), randn(&[6, 3], 5));
    check_layer(
        "batch_norm1d [N, C, L]",
        &BatchNorm1d::new(2),
        randn(&[3, 2, 4], 6),
    );
    check_layer(
        "batch_norm2d",
        &BatchNorm2d::new(2),
        randn(&[3, 2, 3, 3], 7),
    );
    let eval_norm = BatchNorm2d::new(2);
    eval_norm.eval();
    check_layer("batch_norm2d eval", &eval_norm, randn(&[2, 2, 3, 3], 8));
    check_layer("layer_norm", &LayerNorm::new(&[4]), randn(&[3, 4], 9));
}

#[test]
fn embedding_gradient_counts_each_use_of_a_row() {
    // y = Σ rows[1, 4, 1]: dy/drow₁ = 2 (used twice), dy/drow₄ = 1, other rows 0
    let embedding = Embedding::<f64>::new(5, 2, &mut nabla::rng(10));
    let y = embedding.forward(&Tensor::from_vec(vec![1.0, 4.0, 1.0], &[3]));
    assert_eq!(y.shape(), &[3, 2]);
    y.sum().backward();
    let grad = embedding.weight.grad().unwrap().to_vec();
    assert_eq!(grad, vec![0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn activation_layers_and_a_whole_network() {
    let mut rng = nabla::rng(11);
    let net = Sequential::new()
        .layer(Linear::new(3, 5, &mut rng))
        .layer(Tanh)
        .layer(Linear::new(5, 5, &mut rng))
        .layer(Gelu::default())
        .layer(Linear::new(5, 4, &mut rng))
        .layer(Silu)
        .layer(Linear::new(4, 3, &mut rng))
        .layer(Sigmoid)
        .layer(Softmax::default());
    check_layer("mlp", &net, randn(&[4, 3], 12));
    let kinked = Sequential::new()
        .layer(Linear::new(3, 4, &mut rng))
        .layer(LeakyRelu::default())
        .layer(Relu);
    check_layer("relu net", &kinked, away_from_zero(&[2, 3], 13, 0.1));
}

#[test]
fn loss_gradients() {
    let (prediction, target) = (randn(&[4, 3], 20), randn(&[4, 3], 21));
    let logits = randn(&[5, 4], 22);
    let labels = [0usize, 3, 1, 1, 2];
    let bce_target = Tensor::<f64>::rand_uniform(&[4, 3], 0.0, 1.0, &mut nabla::rng(23));
    let inputs = [prediction, target];
    assert_gradients(
        "mse",
        |t| loss::mse_loss(&t[0], &t[1], Reduction::Mean),
        &inputs,
    );
    assert_gradients(
        "l1",
        |t| loss::l1_loss(&t[0], &t[1], Reduction::Sum),
        &inputs,
    );
    assert_gradients(
        "huber",
        |t| loss::huber_loss(&t[0], &t[1], 0.5, Reduction::Mean),
        &inputs,
    );
    assert_gradients(
        "bce_with_logits",
        |t| loss::binary_cross_entropy_with_logits(&t[0], &t[1], Reduction::Mean),
        &[inputs[0].clone(), bce_target],
    );
    let options = CrossEntropyOptions {
        label_smoothing: 0.1,
        class_weights: Some(vec![1.0, 2.0, 0.5, 1.5]),
        ..Default::default()
    };
    assert_gradients(
        "cross_entropy",
        |t| loss::cross_entropy(&t[0], &labels, &options),
        std::slice::from_ref(&logits),
    );
    assert_gradients(
        "nll",
        |t| loss::nll_loss(&t[0].log_softmax(-1), &labels, None, Reduction::Sum),
        &[logits],
    );
}

#[test]
fn fused_cross_entropy_equals_the_composed_one() {
    // −mean(log_softmax(z)[i, yᵢ]) composed from primitives, against the fused op
    let logits = randn(&[6, 5], 30).map(|v| v * 3.0);
    let labels = [4usize, 0, 2, 2, 1, 3];
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let fused = |t: &[Tensor<f64>]| {
            loss::cross_entropy(
                &t[0],
                &labels,
                &CrossEntropyOptions {
                    reduction,
                    ..Default::default()
                },
            )
        };
        let composed =
            |t: &[Tensor<f64>]| loss::nll_loss(&t[0].log_softmax(-1), &labels, None, reduction);
        let inputs = std::slice::from_ref(&logits);
        assert!((fused(inputs).item() - composed(inputs).item()).abs() < 1e-12);
        assert_gradients("fused cross_entropy", fused, inputs);
        let (a, b) = (
            logits.detach().requires_grad(true),
            logits.detach().requires_grad(true),
        );
        fused(std::slice::from_ref(&a)).backward();
        composed(std::slice::from_ref(&b)).backward();
        for (x, y) in a
            .grad()
            .unwrap()
            .to_vec()
            .iter()
            .zip(b.grad().unwrap().to_vec())
        {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
    }
}

#[test]
fn bce_with_logits_gradient_is_sigmoid_minus_target_even_at_zero() {
    // dℓ/dx = σ(x) − y; at x = 0 that is 0.5 − y
    let x = Tensor::<f64>::zeros(&[2]).requires_grad(true);
    let y = Tensor::from_vec(vec![1.0, 0.0], &[2]);
    loss::binary_cross_entropy_with_logits(&x, &y, Reduction::Sum).backward();
    assert_eq!(x.grad().unwrap().to_vec(), vec![-0.5, 0.5]);
}

#[test]
fn dropout_zeroes_and_rescales_in_training_only() {
    let dropout = Dropout::new(0.25, 7);
    let x = Tensor::<f64>::ones(&[10_000]).requires_grad(true);
    let y = dropout.forward(&x);
    let values = y.to_vec();
    let dropped = values.iter().filter(|&&v| v == 0.0).count() as f64 / values.len() as f64;
    assert!((dropped - 0.25).abs() < 0.02, "dropped {dropped}");
    assert!(
        values
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-12)
    );
    // gradient: the same mask and scale
    y.sum().backward();
    assert_eq!(x.grad().unwrap().to_vec(), values);
    Module::<f64>::eval(&dropout);
    assert_eq!(dropout.forward(&x).to_vec(), x.to_vec());
}

#[test]
fn module_api() {
    let mut rng = nabla::rng(0);
    let inner = Sequential::<f32>::new()
        .layer(Linear::new(4, 3, &mut rng))
        .layer(Relu);
    let model = Sequential::new()
        .layer(inner)
        .layer(BatchNorm1d::new(3))
        .layer(Dropout::new(0.5, 1))
        .layer(Linear::with_init(
            3,
            2,
            false,
            init::Init::XavierUniform,
            &mut rng,
        ));
    let names: Vec<String> = model.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "0.0.weight",
            "0.0.bias",
            "1.weight",
            "1.bias",
            "3.weight",
            "1.running_mean",
            "1.running_var",
            "1.num_batches_tracked"
        ]
    );
    assert_eq!(model.num_parameters(), (4 * 3 + 3) + (3 + 3) + 3 * 2);
    let summary = model.summary(&[2, 4]);
    assert!(
        summary.contains("Linear(in=3, out=2, bias=false)") && summary.contains("[2, 2]"),
        "{summary}"
    );
    assert!(summary.contains("Total params: 27"), "{summary}");
    // freezing: no gradient reaches frozen parameters
    model.set_requires_grad(false);
    model.layers()[3].set_requires_grad(true);
    assert!(summary.contains("Trainable params: 27"));
    let out = model.forward(&Tensor::ones(&[2, 4]));
    out.sum().backward();
    assert!(model.layers()[0].parameters()[0].grad().is_none());
    assert!(model.layers()[3].parameters()[0].grad().is_some());
    assert!(model.summary(&[2, 4]).contains("Trainable params: 6"));
}

/// What a layer says its output shape is (`output_shape`, used to build models
/// from configs) is what its forward pass produces, for every layer kind; and an
/// input it cannot take is refused with the shape named.
#[test]
fn output_shape_agrees_with_forward() {
    let mut rng = nabla::rng(4);
    let options = Conv2dOptions::default().stride(2).padding(1).dilation(2);
    let grouped = Conv2dOptions::default().groups(2);
    let pool = MaxPool2d {
        kernel: (3, 3),
        stride: (2, 2),
        padding: (1, 1),
    };
    let layers: Vec<(Box<dyn Module<f64>>, Vec<usize>)> = vec![
        (Box::new(Linear::new(6, 3, &mut rng)), vec![6]),
        (Box::new(Linear::new(6, 3, &mut rng)), vec![4, 6]),
        (
            Box::new(Conv2d::new(2, 4, 3, options, &mut rng)),
            vec![2, 9, 8],
        ),
        (
            Box::new(Conv2d::new(4, 6, 1, grouped, &mut rng)),
            vec![4, 5, 5],
        ),
        (Box::new(pool), vec![3, 7, 6]),
        (Box::new(AvgPool2d::new(2)), vec![3, 7, 6]),
        (Box::new(Flatten), vec![3, 4, 5]),
        (Box::new(BatchNorm2d::new(3)), vec![3, 4, 4]),
        (Box::new(BatchNorm1d::new(5)), vec![5]),
        (Box::new(LayerNorm::new(&[4, 5])), vec![4, 5]),
        (Box::new(Relu), vec![7]),
        (Box::new(Embedding::new(10, 4, &mut rng)), vec![6]),
    ];
    for (layer, sample) in &layers {
        let batch: Vec<usize> = [&[2][..], sample].concat();
        let input = if layer.describe().starts_with("Embedding") {
            Tensor::from_vec(vec![1.0; batch.iter().product()], &batch)
        } else {
            randn(&batch, 5)
        };
        let output = layer.forward(&input);
        let expected = layer.output_shape(sample).unwrap();
        assert_eq!(output.shape()[1..], expected[..], "{}", layer.describe());
    }
    let linear: &dyn Module<f64> = &Linear::new(6, 3, &mut rng);
    let message = linear.output_shape(&[5]).unwrap_err();
    assert!(
        message.contains("6 features") && message.contains("[5]"),
        "{message}"
    );
    let conv: &dyn Module<f64> = &Conv2d::new(2, 4, 5, Conv2dOptions::default(), &mut rng);
    let message = conv.output_shape(&[2, 3, 3]).unwrap_err();
    assert!(
        message.contains("does not fit") && message.contains("[2, 3, 3]"),
        "{message}"
    );
    assert!(
        conv.output_shape(&[3, 8, 8])
            .unwrap_err()
            .contains("2 input channels")
    );
}

/// A layer kind is one registry entry: `{ type = "softsign" }` in a config builds
/// the Softsign module between the layers around it.
#[cfg(feature = "experiment")]
#[test]
fn config_layers_come_from_the_registry() {
    let text = r#"
[data]
kind = "csv"
path = "data/xor.csv"
label_column = "label"

[model]
layers = [{ type = "linear", out = 8 }, { type = "softsign" }, { type = "linear", out = 2 }]

[train]
epochs = 1
optimizer = { kind = "sgd", lr = 0.1 }
"#;
    let config = nabla::experiment::Config::parse(text, "softsign.toml".as_ref()).unwrap();
    assert_eq!(config.model.layers[1].kind(), "softsign");
    let (model, shapes) =
        nabla::experiment::build_model::<f64>(&config.model.layers, &[2], 2, &mut nabla::rng(0))
            .unwrap();
    assert_eq!(shapes, [vec![8], vec![8], vec![2]]);
    assert_eq!(model.layers()[1].describe(), "Softsign()");
}

/// Adaptive average pooling picks PyTorch's windows: these values are what PyTorch
/// 2.15's `F.adaptive_avg_pool2d(torch.arange(35.).reshape(1, 1, 5, 7), size)` prints.
#[test]
fn adaptive_avg_pool2d_windows_match_pytorch() {
    let x = Tensor::<f64>::arange(0.0, 35.0, 1.0).reshape(&[1, 1, 5, 7]);
    let pooled = AdaptiveAvgPool2d { out: (3, 2) }.forward(&x);
    assert_eq!(pooled.shape(), &[1, 1, 3, 2]);
    assert_eq!(pooled.to_vec(), [5.0, 8.0, 15.5, 18.5, 26.0, 29.0]);
    let pooled = x.adaptive_avg_pool2d((4, 5));
    assert_eq!(
        pooled.to_vec(),
        [
            4.0, 5.0, 6.5, 8.0, 9.0, 11.0, 12.0, 13.5, 15.0, 16.0, 18.0, 19.0, 20.5, 22.0, 23.0,
            25.0, 26.0, 27.5, 29.0, 30.0
        ]
    );
    // the whole plane: the global average
    let whole = x.adaptive_avg_pool2d((1, 1)).to_vec();
    assert_eq!(whole, x.global_avg_pool2d().to_vec());
}
