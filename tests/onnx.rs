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

/// Builds `layers` for `input_shape`, exports, imports, and checks that the
/// imported network computes the same logits on a random batch.
fn round_trip(layers: &str, input_shape: &[usize], classes: usize) -> nabla::onnx::Imported {
    let layers: Vec<LayerConfig> = toml::from_str::<toml::Table>(&format!("layers = [{layers}]"))
        .unwrap()["layers"]
        .clone()
        .try_into()
        .unwrap();
    let (model, _) = build_model::<f32>(&layers, input_shape, classes, &mut nabla::rng(3)).unwrap();
    // batch-norm statistics that are not the defaults, so that using them shows
    for (name, tensor) in model.named_buffers() {
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            tensor.update_data(|v| {
                v.iter_mut()
                    .enumerate()
                    .for_each(|(i, x)| *x = 0.5 + 0.1 * i as f32)
            });
        }
    }
    model.eval();
    let bytes = export_network(&model, input_shape, InputKind::Features, 17)
        .unwrap()
        .encode();
    let imported = nabla::onnx::import(&bytes).unwrap();
    assert_eq!(imported.input_shape, input_shape);
    let back = imported.model("exported.onnx".as_ref()).unwrap();
    let batch = Tensor::randn(&[&[5], input_shape].concat(), 0.0, 1.0, &mut nabla::rng(9));
    let _no_graph = nabla::no_grad();
    let (want, got) = (
        model.forward(&batch).to_vec(),
        back.forward(&batch).to_vec(),
    );
    // the same layers with the same weights: the same numbers, to the last bit
    assert_eq!(got, want, "{layers:?}");
    imported
}

#[test]
fn exported_networks_import_back_to_the_same_layers_and_logits() {
    let imported = round_trip(
        r#"{ type = "flatten" }, { type = "linear", out = 32 }, { type = "relu" }, { type = "dropout", p = 0.2 },
           { type = "linear", out = 16, bias = false }, { type = "gelu" }, { type = "linear", out = "classes" }"#,
        &[1, 6, 6],
        4,
    );
    // dropout has no inference form, so it does not come back
    assert_eq!(imported.layers.len(), 6);
    assert_eq!(
        imported.layers[4],
        LayerConfig::Gelu {
            tanh_approximation: false
        }
    );
    round_trip(
        r#"{ type = "conv2d", out_channels = 6, kernel = 5, padding = 2 }, { type = "relu" }, { type = "max_pool2d", kernel = 2 },
           { type = "conv2d", out_channels = 8, kernel = 3 }, { type = "tanh" }, { type = "avg_pool2d", kernel = 2 },
           { type = "flatten" }, { type = "linear", out = 20 }, { type = "sigmoid" }, { type = "linear", out = "classes" }"#,
        &[1, 12, 12],
        3,
    );
    let imported = round_trip(
        r#"{ type = "conv2d", out_channels = 6, kernel = 3, stride = 2, padding = 1, bias = false }, { type = "batch_norm" },
           { type = "leaky_relu", slope = 0.2 },
           { type = "residual", layers = [ { type = "conv2d", out_channels = 6, kernel = 3, padding = 2, dilation = 2, groups = 3 }, { type = "batch_norm" }, { type = "silu" } ] },
           { type = "residual", layers = [ { type = "conv2d", out_channels = 8, kernel = 3, stride = 2, padding = 1 }, { type = "softsign" } ],
             shortcut = [ { type = "conv2d", out_channels = 8, kernel = 1, stride = 2, bias = false }, { type = "batch_norm" } ] },
           { type = "layer_norm", over = "sample" }, { type = "global_avg_pool" },
           { type = "batch_norm" }, { type = "linear", out = 12 }, { type = "layer_norm" }, { type = "gelu", tanh_approximation = true },
           { type = "linear", out = "classes" }"#,
        &[3, 9, 9],
        5,
    );
    let LayerConfig::Residual {
        shortcut: Some(shortcut),
        ..
    } = &imported.layers[4]
    else {
        panic!("the projection block came back as {:?}", imported.layers[4])
    };
    assert_eq!(shortcut.len(), 2);
    // every weight keeps the name it was exported under
    for (name, source) in &imported.sources {
        assert!(source.is_empty() || name == source, "{name} ← {source}");
    }
}

#[test]
fn adaptive_pooling_with_unequal_windows_imports_as_an_error() {
    // its export is made of slices, which nabla writes but does not read back
    let layers: Vec<LayerConfig> = toml::from_str::<toml::Table>(
        r#"layers = [{ type = "adaptive_avg_pool2d", out = [2, 2] }, { type = "flatten" }, { type = "linear", out = "classes" }]"#,
    )
    .unwrap()["layers"]
        .clone()
        .try_into()
        .unwrap();
    let (model, _) = build_model::<f32>(&layers, &[1, 5, 5], 2, &mut nabla::rng(0)).unwrap();
    let bytes = export_network(&model, &[1, 5, 5], InputKind::Features, 17)
        .unwrap()
        .encode();
    let message = nabla::onnx::import(&bytes).unwrap_err();
    assert!(message.contains("Slice"), "{message}");
}
