//! ONNX export without the runtime: what the graph holds, and the errors. (ONNX
//! Runtime's agreement with nabla is tests/onnx_runtime.rs.)

mod common;

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
    // dropout has no inference form: an identity (p = 0) takes its place, so that
    // the layers after it keep their names
    assert_eq!(imported.layers.len(), 7);
    assert_eq!(imported.layers[3], LayerConfig::Dropout { p: 0.0 });
    assert_eq!(
        imported.layers[5],
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

/// The networks PyTorch exported (tests/reference/make_onnx_reference.py) import
/// into nabla networks that compute PyTorch's outputs.
#[test]
fn pytorch_exports_import_with_pytorchs_outputs() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/onnx");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/onnx.json")).unwrap())
            .unwrap();
    let tensor = |entry: &serde_json::Value| {
        let shape: Vec<usize> = serde_json::from_value(entry["shape"].clone()).unwrap();
        let values: Vec<f32> = serde_json::from_value(entry["values"].clone()).unwrap();
        Tensor::from_vec(values, &shape)
    };
    for name in ["table", "mlp", "cnn", "residual"] {
        let path = format!("{dir}/{name}.onnx");
        let imported = nabla::onnx::import(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|why| panic!("{name}: {why}"));
        let model = imported.model(path.as_ref()).unwrap();
        let case = &reference["cases"][name];
        let _no_graph = nabla::no_grad();
        let got = model.forward(&tensor(&case["input"]));
        let want = tensor(&case["output"]);
        assert_eq!(got.shape(), want.shape(), "{name}");
        for (g, w) in got.to_vec().iter().zip(want.to_vec()) {
            assert!(
                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{name}: nabla {g}, PyTorch {w}"
            );
        }
        // weights PyTorch did not fold keep PyTorch's names
        for (nabla_name, source) in &imported.sources {
            if !source.starts_with("onnx::") && !source.is_empty() {
                assert_eq!(nabla_name, source, "{name}");
            }
        }
    }
}

/// A small exported MLP, as a model to break.
fn small_model() -> nabla::onnx::Model {
    let mut rng = nabla::rng(0);
    let mlp = Sequential::<f32>::new()
        .layer(Linear::new(4, 8, &mut rng))
        .layer(Relu)
        .layer(Linear::new(8, 3, &mut rng));
    export_network(&mlp, &[4], InputKind::Features, 17).unwrap()
}

fn import_error(model: &nabla::onnx::Model) -> String {
    nabla::onnx::import(&model.encode()).expect_err("a broken model imported")
}

#[test]
fn malformed_onnx_files_get_errors_that_say_what_is_wrong() {
    let bytes = small_model().encode();
    // cut short anywhere: an error, never a panic
    for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(nabla::onnx::import(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let message = nabla::onnx::import(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(message.contains("not an ONNX model"), "{message}");

    // an op nabla does not import: the node, its op and the list of those it does
    let mut model = small_model();
    model.graph.nodes[1].op_type = "Celu".into();
    let message = import_error(&model);
    assert!(
        message.contains(&model.graph.nodes[1].name)
            && message.contains("`Celu`")
            && message.contains("it imports Conv, Gemm"),
        "{message}"
    );

    // a missing initializer
    let mut model = small_model();
    model.graph.initializers.retain(|t| t.name != "2.weight");
    let message = import_error(&model);
    assert!(
        message.contains("reads `2.weight`, which no node, initializer or graph input provides"),
        "{message}"
    );

    // a cycle: the first node reads the last node's output
    let mut model = small_model();
    model.graph.nodes[0].inputs[0] = "logits".into();
    let message = import_error(&model);
    assert!(
        message.contains("before the node that computes it: the graph has a cycle"),
        "{message}"
    );

    // wrong types: an attribute of the wrong kind, and weights of a type nabla does not read
    let mut model = small_model();
    model.graph.nodes[0].attributes = vec![("transB".into(), Attribute::Float(1.0))];
    let message = import_error(&model);
    assert!(
        message.contains("attribute transB is Float(1.0), not an integer"),
        "{message}"
    );
    let mut tensor = nabla::protobuf::Message::new();
    tensor.int(1, 2).int(2, 2).string(8, "w").bytes(9, &[1, 2]); // uint8 [2]
    let mut graph = nabla::protobuf::Message::new();
    graph.message(5, &tensor);
    let mut file = nabla::protobuf::Message::new();
    file.message(7, &graph);
    let message = nabla::onnx::import(&file.into_bytes()).unwrap_err();
    assert!(message.contains("tensor `w` holds uint8"), "{message}");

    // an opset before the ops' current meanings
    let mut model = small_model();
    model.opset = 11;
    assert!(import_error(&model).contains("nabla imports opset 13 and later"));

    // a transformer: not imported, and the error says which node stopped it
    let layers: Vec<LayerConfig> = toml::from_str::<toml::Table>(
        r#"layers = [{ type = "embedding", dim = 8 }, { type = "positional_embedding" },
                     { type = "transformer_block", heads = 2 }, { type = "linear", out = "classes" }]"#,
    )
    .unwrap()["layers"]
        .clone()
        .try_into()
        .unwrap();
    let (gpt, _) = build_model::<f32>(&layers, &[6], 5, &mut nabla::rng(0)).unwrap();
    let bytes = export_network(&gpt, &[6], InputKind::TokenIds, 17)
        .unwrap()
        .encode();
    let message = nabla::onnx::import(&bytes).unwrap_err();
    assert!(
        message.contains("nabla does not import the op `Shape`"),
        "{message}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 500, ..common::config() })]

    /// Random bytes, and a real model with random bytes changed: an error or a
    /// model, never a panic (a panic in the release binary is an abort).
    #[test]
    fn the_importer_never_panics(noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
                                 edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..8)) {
        let _ = nabla::onnx::import(&noise);
        let mut bytes = small_model().encode();
        for (at, value) in edits {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        if let Ok(imported) = nabla::onnx::import(&bytes) {
            let _ = imported.model("fuzzed.onnx".as_ref());
        }
    }
}

/// `nabla import` of a PyTorch model, then what a user does with it: predict on CSV
/// rows (PyTorch's classes), export it again, and train it further on their data.
#[test]
fn an_imported_pytorch_model_predicts_exports_and_trains_from_the_command_line() {
    let dir = common::temp_dir("onnx-import-cli");
    let run = dir.join("run");
    let model = format!("{}/tests/reference/onnx/table.onnx", common::ROOT);
    let out = common::nabla(&["import", &model, "--out", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::text(&out));
    assert!(common::text(&out).contains("Linear(in=5, out=16)"));

    // a directory that holds something is never written over
    let again = common::nabla(&["import", &model, "--out", run.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        common::text(&again).contains("already holds files"),
        "{}",
        common::text(&again)
    );

    // predict: CSV columns x0 … x4 fed as they are; the top class is PyTorch's argmax
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/tests/reference/onnx/onnx.json", common::ROOT))
            .unwrap(),
    )
    .unwrap();
    let case = &reference["cases"]["table"];
    let inputs: Vec<f64> = serde_json::from_value(case["input"]["values"].clone()).unwrap();
    let outputs: Vec<f64> = serde_json::from_value(case["output"]["values"].clone()).unwrap();
    let mut csv = String::from("x0,x1,x2,x3,x4\n");
    for row in inputs.chunks(5) {
        let row: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
        csv.push_str(&(row.join(",") + "\n"));
    }
    let rows = dir.join("rows.csv");
    std::fs::write(&rows, csv).unwrap();
    let out = common::nabla(&[
        "predict",
        run.to_str().unwrap(),
        rows.to_str().unwrap(),
        "--top",
        "1",
    ]);
    assert!(out.status.success(), "{}", common::text(&out));
    let printed = common::text(&out);
    for (row, scores) in outputs.chunks(3).enumerate() {
        let best = (0..3)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        let line = printed
            .lines()
            .find(|l| l.contains(&format!("row {}:", row + 1)))
            .unwrap();
        assert!(
            line.contains(&format!(": {best} ")),
            "row {}: PyTorch says {best}: {line}",
            row + 1
        );
    }

    // export again
    let again = dir.join("again.onnx");
    let out = common::nabla(&[
        "export",
        run.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", common::text(&out));
    assert!(nabla::onnx::import(&std::fs::read(&again).unwrap()).is_ok());

    // train further: the config's [data] pointed at a CSV of the same columns
    let mut data = String::from("x0,x1,x2,x3,x4,label\n");
    let values = Tensor::<f32>::rand_uniform(&[120, 5], -1.0, 1.0, &mut nabla::rng(5)).to_vec();
    for x in values.chunks(5) {
        let label = usize::from(x[0] > 0.0) + usize::from(x[1] > 0.0);
        let x: Vec<String> = x.iter().map(f32::to_string).collect();
        data.push_str(&format!("{},{label}\n", x.join(",")));
    }
    std::fs::write(dir.join("data.csv"), data).unwrap();
    let config = std::fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .replace("your-data.csv", dir.join("data.csv").to_str().unwrap());
    assert!(
        config.contains("init = "),
        "training starts from the imported weights"
    );
    std::fs::write(dir.join("train.toml"), config).unwrap();
    let trained = dir.join("trained");
    let out = common::nabla(&[
        "train",
        dir.join("train.toml").to_str().unwrap(),
        "--out",
        trained.to_str().unwrap(),
        "--epochs",
        "2",
    ]);
    assert!(out.status.success(), "{}", common::text(&out));
    assert!(trained.join("model.safetensors").is_file());
}

/// `.npy` bytes of a float32 array, as `np.save` writes them.
fn npy(values: &[f32], shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    bytes
}

/// An imported image model predicts on arrays already prepared as the network takes
/// them (a `.npy` from NumPy): PyTorch's classes; an array of the wrong shape is an
/// error that says the shape wanted.
#[test]
fn an_imported_model_predicts_on_numpy_arrays() {
    let dir = common::temp_dir("onnx-npy");
    let run = dir.join("run");
    let model = format!("{}/tests/reference/onnx/cnn.onnx", common::ROOT);
    let out = common::nabla(&["import", &model, "--out", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::text(&out));
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/tests/reference/onnx/onnx.json", common::ROOT))
            .unwrap(),
    )
    .unwrap();
    let case = &reference["cases"]["cnn"];
    let inputs: Vec<f32> = serde_json::from_value(case["input"]["values"].clone()).unwrap();
    let shape: Vec<usize> = serde_json::from_value(case["input"]["shape"].clone()).unwrap();
    let outputs: Vec<f64> = serde_json::from_value(case["output"]["values"].clone()).unwrap();
    let arrays = dir.join("inputs.npy");
    std::fs::write(&arrays, npy(&inputs, &shape)).unwrap();
    let out = common::nabla(&[
        "predict",
        run.to_str().unwrap(),
        arrays.to_str().unwrap(),
        "--top",
        "1",
    ]);
    assert!(out.status.success(), "{}", common::text(&out));
    let printed = common::text(&out);
    let samples = shape[0];
    for (i, scores) in outputs.chunks(outputs.len() / samples).enumerate() {
        let best = (0..scores.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        let line = printed
            .lines()
            .find(|l| l.contains(&format!("[{i}]:")))
            .unwrap();
        assert!(
            line.contains(&format!(": {best} ")),
            "sample {i}: PyTorch says {best}: {line}"
        );
    }
    let wrong = dir.join("wrong.npy");
    std::fs::write(&wrong, npy(&inputs[..128], &[2, 64])).unwrap();
    let out = common::nabla(&["predict", run.to_str().unwrap(), wrong.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        common::text(&out).contains("the network takes [count, 1, 8, 8]"),
        "{}",
        common::text(&out)
    );
}

/// Identity nodes (which exporters may leave for `nn.Identity`) are passed through:
/// the network and its outputs are those without the node.
#[test]
fn identity_nodes_are_passed_through() {
    let mut model = small_model();
    // 0: Gemm → Identity → Relu → Gemm
    let gemm_output = model.graph.nodes[0].outputs[0].clone();
    model.graph.nodes[1].inputs[0] = "passed".into();
    model.graph.nodes.insert(
        1,
        nabla::onnx::Node {
            name: "/extra/Identity".into(),
            op_type: "Identity".into(),
            inputs: vec![gemm_output],
            outputs: vec!["passed".into()],
            attributes: Vec::new(),
        },
    );
    let imported = nabla::onnx::import(&model.encode()).unwrap();
    let kinds: Vec<String> = imported.layers.iter().map(LayerConfig::kind).collect();
    assert_eq!(kinds, ["linear", "relu", "linear"]);
    let back = imported.model("identity.onnx".as_ref()).unwrap();
    let x = Tensor::randn(&[3, 4], 0.0, 1.0, &mut nabla::rng(2));
    let mut rng = nabla::rng(0);
    let original = Sequential::<f32>::new()
        .layer(Linear::new(4, 8, &mut rng))
        .layer(Relu)
        .layer(Linear::new(8, 3, &mut rng));
    let _no_graph = nabla::no_grad();
    assert_eq!(back.forward(&x).to_vec(), original.forward(&x).to_vec());
}
