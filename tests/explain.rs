//! The library's step explanation (`nabla::explain`) on the example configs: every
//! node of the recorded graph belongs to the layer that made it and carries its op's
//! rule, backpropagation agrees with finite differences, and the dashboard's step
//! API answers with the same trace `nabla explain` prints.
#![cfg(feature = "dashboard")]

use std::io::{Read, Write};
use std::path::Path;

use nabla::dashboard::step::StepView;
use nabla::dashboard::{Dashboard, RunState};
use nabla::explain::source::StepSource;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn source(config: &str) -> StepSource {
    StepSource::config(&Path::new(ROOT).join(config)).unwrap()
}

#[test]
fn every_node_has_its_layer_and_its_rule_and_every_gradient_checks_out() {
    std::env::set_current_dir(ROOT).unwrap();
    for config in [
        "examples/spirals.toml",
        "examples/mnist-cnn.toml",
        "examples/mnist-resnet.toml",
        "examples/shakespeare-char.toml",
    ] {
        let trace = source(config).trace_checking(0, 2).unwrap();
        for node in &trace.nodes {
            match node.op.as_str() {
                "input" => assert_eq!(node.layer, None, "{config}: the example is no layer's"),
                "parameter" => assert!(node.name.is_some() && node.layer.is_some(), "{config}"),
                "constant" => assert!(node.grad.is_none(), "{config}: a constant has no gradient"),
                op => assert!(
                    node.rule.is_some_and(|rule| rule.op == op),
                    "{config}: the op `{op}` has no rule written beside it"
                ),
            }
        }
        for layer in &trace.layers {
            assert!(
                layer.nodes.contains(&layer.output) || Some(layer.output) == layer.input,
                "{config}: layer {} does not own its output",
                layer.index
            );
        }
        // the loss node is last and is the loss's own, not a layer's
        let last = trace.nodes.last().unwrap();
        assert_eq!((last.op.as_str(), last.layer), ("cross_entropy", None));
        assert!(
            trace.worst_check() < 1e-6,
            "{config}: {}",
            trace.worst_check()
        );
        assert!(
            trace.update.loss_after < trace.update.loss_before,
            "{config}: the optimizer's step should lower the loss on its own example"
        );
    }
}

#[test]
fn a_linear_weights_gradient_is_delta_times_activation() {
    std::env::set_current_dir(ROOT).unwrap();
    // dL/dW[j][i] = δ_j · a_i, with δ the gradient at the layer's output and a its input
    let trace = source("examples/spirals.toml").trace(0).unwrap();
    let layer = &trace.layers[2];
    let weight = layer
        .nodes
        .iter()
        .map(|&n| &trace.nodes[n])
        .find(|n| n.name.as_deref() == Some("2.weight"))
        .unwrap();
    let a = trace.nodes[layer.input.unwrap()]
        .value
        .values
        .clone()
        .unwrap();
    let delta = trace.nodes[layer.output]
        .grad
        .as_ref()
        .unwrap()
        .values
        .clone()
        .unwrap();
    let grad = weight.grad.as_ref().unwrap().values.clone().unwrap();
    assert_eq!((delta.len(), a.len(), grad.len()), (64, 64, 64 * 64));
    for (j, d) in delta.iter().enumerate() {
        for (i, a_i) in a.iter().enumerate() {
            assert!((grad[j * a.len() + i] - d * a_i).abs() < 1e-15);
        }
    }
}

fn get(address: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn the_dashboard_serves_the_trace_nabla_explain_prints() {
    std::env::set_current_dir(ROOT).unwrap();
    let source = source("examples/mnist-cnn.toml");
    let printed = source.trace(3).unwrap().text();
    let mut run = RunState::new("lenet", "examples/mnist-cnn.toml", "");
    run.step = Some(StepView::new(source));
    let dashboard = Dashboard::serve("127.0.0.1:0", vec![run.shared()]).unwrap();
    let (status, body) = get(dashboard.address(), "/api/runs/lenet/step?sample=3");
    assert!(status.contains("200"), "{status}: {body}");
    let overview: serde_json::Value = serde_json::from_str(&body).unwrap();
    // each layer's output, as the page shows it, is the line nabla explain prints
    for layer in overview["layers"].as_array().unwrap() {
        let output = layer["output"].as_u64().unwrap() as usize;
        let text = overview["nodes"][output]["value"]["text"].as_str().unwrap();
        assert!(
            printed.contains(&format!("out {text}\n")),
            "{text} not in\n{printed}"
        );
        assert!(overview["nodes"][output]["value"].get("values").is_none());
    }
    let (_, body) = get(
        dashboard.address(),
        "/api/runs/lenet/step/node?sample=3&node=3",
    );
    let node: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(node["node"]["op"], "conv2d");
    assert_eq!(
        node["node"]["value"]["picture"]["tiles"], 6,
        "six feature maps"
    );
    let (_, body) = get(dashboard.address(), "/api/runs/lenet/step/checks?sample=3");
    let checks: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(checks["parameters"].as_array().unwrap().len(), 10);
    assert!(checks["worst"].as_f64().unwrap() < 1e-6);
    let (status, body) = get(dashboard.address(), "/api/runs/lenet/step?sample=60000");
    assert!(status.contains("422"), "{status}");
    assert!(body.contains("60000 samples"), "{body}");
    let (status, _) = get(dashboard.address(), "/api/runs/lenet/step/node?node=x");
    assert!(status.contains("404"), "{status}");
}
