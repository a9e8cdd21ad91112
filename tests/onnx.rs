//! ONNX export without the runtime: what the graph holds, and the errors. (ONNX
//! Runtime's agreement with nabla is tests/onnx_runtime.rs.)

use nabla::experiment::{LayerConfig, Width, build_model};
use nabla::nn::{Linear, Module, Relu, Sequential};
use nabla::onnx::{Attribute, InputKind, export_network};
use nabla::{Error, Tensor};

/// A layer of a user's own, with no ONNX form.
struct Doubling;

impl Module for Doubling {
    fn forward(&self, input: &Tensor) -> Tensor {
        input * 2.0
    }
    fn describe(&self) -> String {
        "Doubling()".into()
    }
}

#[test]
fn a_layer_without_an_onnx_form_is_an_error_naming_it() {
    let mut rng = nabla::rng(0);
    let model = Sequential::<f32>::new()
        .layer(Linear::new(4, 4, &mut rng))
        .layer(Doubling)
        .layer(Relu);
    let Err(Error::Config(message)) = export_network(&model, &[4], InputKind::Features, 17) else {
        panic!("exported a layer ONNX cannot express")
    };
    assert!(
        message.contains("layer 1 (Doubling())") && message.contains("has no ONNX form"),
        "{message}"
    );
}

#[test]
fn only_the_operator_sets_nabla_writes_are_accepted() {
    let model = Sequential::<f32>::new().layer(Relu);
    for opset in [16, 22] {
        let Err(Error::Config(message)) = export_network(&model, &[3], InputKind::Features, opset)
        else {
            panic!("wrote opset {opset}")
        };
        assert!(message.contains("choose 17 to 21"), "{message}");
    }
    assert!(export_network(&model, &[3], InputKind::Features, 21).is_ok());
}

#[test]
fn initializers_are_the_state_dict_by_name_and_value() {
    // a residual CNN with batch norm: nested names (`1.layers.0.weight`) and the
    // running statistics, which an inference graph needs
    let layers: Vec<LayerConfig> = toml::from_str::<toml::Table>(
        r#"layers = [
            { type = "conv2d", out_channels = 4, kernel = 3, padding = 1, bias = false },
            { type = "residual", layers = [ { type = "conv2d", out_channels = 4, kernel = 3, padding = 1 }, { type = "batch_norm" } ],
              shortcut = [ { type = "conv2d", out_channels = 4, kernel = 1, bias = false } ] },
            { type = "global_avg_pool" },
            { type = "linear", out = "classes" },
        ]"#,
    )
    .unwrap()["layers"]
        .clone()
        .try_into()
        .unwrap();
    let (model, _) = build_model::<f32>(&layers, &[1, 8, 8], 3, &mut nabla::rng(1)).unwrap();
    let exported = export_network(&model, &[1, 8, 8], InputKind::Features, 17).unwrap();
    let initializers = &exported.graph.initializers;
    for (name, tensor) in model.state_dict() {
        if name.ends_with("num_batches_tracked") {
            continue; // a training counter, not part of the computation
        }
        let found = initializers
            .iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("no initializer {name}"));
        let dims: Vec<i64> = tensor.shape().iter().map(|&d| d as i64).collect();
        assert_eq!(found.dims, dims, "{name}");
        assert_eq!(
            found.values,
            nabla::onnx::Values::Float(tensor.to_vec()),
            "{name}"
        );
    }
    // the graph: the batch axis free, the rest fixed; the output named logits
    let input = &exported.graph.inputs[0];
    assert_eq!(input.dims[0], nabla::onnx::Dim::Named("batch".into()));
    assert_eq!(exported.graph.outputs[0].name, "logits");
    assert_eq!(exported.graph.nodes.last().unwrap().outputs, ["logits"]);
}

#[test]
fn convolution_attributes_say_what_the_layer_does() {
    let layers = [LayerConfig::Conv2d {
        out_channels: 6,
        kernel: 3,
        stride: 2,
        padding: 1,
        dilation: 2,
        groups: 3,
        bias: true,
    }];
    let mut model = Sequential::<f32>::new();
    let (built, _) = build_model::<f32>(
        &[
            layers[0].clone(),
            LayerConfig::Flatten,
            LayerConfig::Linear {
                out: Width::Classes,
                bias: true,
                init: None,
            },
        ],
        &[3, 9, 9],
        2,
        &mut nabla::rng(0),
    )
    .unwrap();
    model.push(Box::new(built));
    let exported = export_network(&model, &[3, 9, 9], InputKind::Features, 17).unwrap();
    let conv = exported
        .graph
        .nodes
        .iter()
        .find(|n| n.op_type == "Conv")
        .unwrap();
    assert_eq!(conv.inputs[1..], ["0.0.weight", "0.0.bias"]);
    assert_eq!(
        conv.attribute("strides"),
        Some(&Attribute::Ints(vec![2, 2]))
    );
    assert_eq!(
        conv.attribute("pads"),
        Some(&Attribute::Ints(vec![1, 1, 1, 1]))
    );
    assert_eq!(
        conv.attribute("dilations"),
        Some(&Attribute::Ints(vec![2, 2]))
    );
    assert_eq!(conv.attribute("group"), Some(&Attribute::Int(3)));
}
