//! `nabla explain`: one forward pass, one backward pass and one update of a tiny
//! network, with every number printed — the chain rule, executable.
//!
//! The engine computes every number: the network is built from tensors, its weighted
//! sums z and activations a are kept (`retain_grad`), and one `backward()` gives each
//! δ = dL/dz and each gradient. This file only writes the textbook formula beside
//! each number, and the numerical derivative beside each gradient. For any other
//! model, see `explain_model`.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::experiment::{Config, LayerConfig};
use crate::gradcheck::{DEFAULT_EPS, central_difference};
use crate::tensor::Tensor;

/// An activation as the explanation names it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Activation {
    Identity,
    Sigmoid,
    Tanh,
    Relu,
}

impl Activation {
    /// f'(z), by the op's own backward rule (`ops/activation.rs`): the gradient of
    /// f at z for an incoming gradient of 1.
    fn derivative(self, z: f64) -> f64 {
        let z = Tensor::from_vec(vec![z], &[1]).requires_grad(true);
        self.tensor(&z).sum().backward();
        z.grad().map_or(0.0, |grad| grad.item())
    }

    fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Sigmoid => "σ",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
        }
    }

    fn derivative_formula(self) -> &'static str {
        match self {
            Activation::Identity => "1",
            Activation::Sigmoid => "a(1 − a)",
            Activation::Tanh => "1 − a²",
            Activation::Relu => "(1 if z > 0 else 0)",
        }
    }

    fn tensor(self, z: &Tensor<f64>) -> Tensor<f64> {
        match self {
            Activation::Identity => z.clone(),
            Activation::Sigmoid => z.sigmoid(),
            Activation::Tanh => z.tanh(),
            Activation::Relu => z.relu(),
        }
    }
}

/// A dense layer: `weights[j][i]` connects input i to neuron j.
#[derive(Clone, Debug)]
struct Dense {
    weights: Vec<Vec<f64>>,
    bias: Vec<f64>,
    activation: Activation,
}

/// The default lesson: a 2-2-1 sigmoid network with fixed weights, input (1, 0), target 1.
fn default_network() -> Vec<Dense> {
    vec![
        Dense {
            weights: vec![vec![0.15, 0.20], vec![0.25, 0.30]],
            bias: vec![0.35, 0.35],
            activation: Activation::Sigmoid,
        },
        Dense {
            weights: vec![vec![0.40, 0.45]],
            bias: vec![0.60],
            activation: Activation::Sigmoid,
        },
    ]
}

/// Dense layers from a config made of linear layers, each optionally followed by
/// sigmoid/tanh/relu; weights drawn as nabla would initialise them. `out =
/// "classes"` means as many outputs as the target has values.
fn network_from_config(config: &Config, inputs: usize, targets: usize) -> Result<Vec<Dense>> {
    let mut rng = crate::rng(config.train.seed);
    let mut layers: Vec<Dense> = Vec::new();
    let mut width = inputs;
    for (index, layer) in config.model.layers.iter().enumerate() {
        let activation = match layer {
            LayerConfig::Linear { out, .. } => {
                let out = &out.resolve(targets);
                let linear = crate::nn::Linear::<f64>::new(width, *out, &mut rng);
                let w = linear.weight.to_vec();
                let weights = (0..*out)
                    .map(|j| w[j * width..(j + 1) * width].to_vec())
                    .collect();
                let bias = linear
                    .bias
                    .as_ref()
                    .map_or_else(|| vec![0.0; *out], Tensor::to_vec);
                layers.push(Dense {
                    weights,
                    bias,
                    activation: Activation::Identity,
                });
                width = *out;
                continue;
            }
            LayerConfig::Sigmoid => Activation::Sigmoid,
            LayerConfig::Tanh => Activation::Tanh,
            LayerConfig::Relu => Activation::Relu,
            _ => {
                return Err(Error::Config(format!(
                    "explain works with linear layers and sigmoid/tanh/relu; layer {index} is `{}`",
                    layer.kind()
                )));
            }
        };
        match layers.last_mut() {
            Some(last) if last.activation == Activation::Identity => last.activation = activation,
            _ => {
                return Err(Error::Config(format!(
                    "layer {index}: an activation must follow a linear layer"
                )));
            }
        }
    }
    if layers.is_empty() {
        return Err(Error::Config(
            "the model has no linear layer to explain".into(),
        ));
    }
    Ok(layers)
}

/// Everything one forward pass computed, read from the engine's tensors.
struct Forward {
    /// activations[0] is the input; activations[l + 1] the output of layer l.
    activations: Vec<Vec<f64>>,
    sums: Vec<Vec<f64>>,
    loss: f64,
}

/// What the engine's backward pass left: δ = dL/dz per layer, dL/dW and dL/db.
struct Backward {
    deltas: Vec<Vec<f64>>,
    weight_grads: Vec<Vec<Vec<f64>>>,
    bias_grads: Vec<Vec<f64>>,
}

/// One step run by the engine: the network built from tensors, the weighted sums z
/// and activations a kept (`retain_grad`), one `backward()`. Every number the
/// lesson prints comes from these tensors; the text only names the formulas.
fn record(layers: &[Dense], x: &[f64], t: &[f64]) -> (Forward, Backward) {
    let graph = engine_graph(layers, x, t);
    for (z, a) in &graph.layers {
        z.retain_grad();
        a.retain_grad();
    }
    graph.loss.backward();
    let grad_of = |tensor: &Tensor<f64>| {
        tensor
            .grad()
            .map_or_else(|| vec![0.0; tensor.numel()], |g| g.to_vec())
    };
    let mut activations = vec![x.to_vec()];
    activations.extend(graph.layers.iter().map(|(_, a)| a.to_vec()));
    let forward = Forward {
        activations,
        sums: graph.layers.iter().map(|(z, _)| z.to_vec()).collect(),
        loss: graph.loss.item(),
    };
    let weight_grads = graph
        .params
        .chunks(2)
        .zip(layers)
        .map(|(pair, layer)| {
            grad_of(&pair[0])
                .chunks(layer.weights[0].len())
                .map(<[f64]>::to_vec)
                .collect()
        })
        .collect();
    let backward = Backward {
        deltas: graph.layers.iter().map(|(z, _)| grad_of(z)).collect(),
        weight_grads,
        bias_grads: graph
            .params
            .chunks(2)
            .map(|pair| grad_of(&pair[1]))
            .collect(),
    };
    (forward, backward)
}

/// The loss alone, without recording a graph.
fn engine_loss(layers: &[Dense], x: &[f64], t: &[f64]) -> f64 {
    let _guard = crate::autograd::no_grad();
    engine_graph(layers, x, t).loss.item()
}

/// The central difference of the loss in one weight (`bias` selects b over W).
fn numerical(
    layers: &[Dense],
    x: &[f64],
    target: &[f64],
    l: usize,
    j: usize,
    i: Option<usize>,
) -> f64 {
    let weight = match i {
        Some(i) => layers[l].weights[j][i],
        None => layers[l].bias[j],
    };
    central_difference(weight, DEFAULT_EPS, |moved| {
        let mut copy = layers.to_vec();
        match i {
            Some(i) => copy[l].weights[j][i] = moved,
            None => copy[l].bias[j] = moved,
        }
        engine_loss(&copy, x, target)
    })
}

fn parse_values(text: &str, what: &str) -> Result<Vec<f64>> {
    text.split(',')
        .map(|v| {
            v.trim().parse::<f64>().map_err(|_| {
                Error::Config(format!(
                    "--{what}: expected comma-separated numbers, found `{v}`"
                ))
            })
        })
        .collect()
}

/// Runs `nabla explain`.
pub fn run(
    config: Option<&Path>,
    sample: Option<usize>,
    input: Option<&str>,
    target: Option<&str>,
    lr: Option<f64>,
    dot: Option<&Path>,
) -> Result<()> {
    if let Some(lr) = lr.filter(|lr| lr.is_nan() || *lr <= 0.0) {
        return Err(Error::Config(format!("--lr must be positive, found {lr}")));
    }
    let x = input.map_or(Ok(vec![1.0, 0.0]), |s| parse_values(s, "input"))?;
    let t = target.map_or(Ok(vec![1.0]), |s| parse_values(s, "target"))?;
    let layers = match (config, sample) {
        (Some(path), Some(sample)) => {
            outprint!(
                "{}",
                super::explain_model::explain_config(path, sample, lr)?
            );
            return Ok(());
        }
        // no input of the user's: take the config's first training sample
        (Some(path), None) if input.is_none() && target.is_none() => {
            outprint!("{}", super::explain_model::explain_config(path, 0, lr)?);
            return Ok(());
        }
        (Some(path), None) => network_from_config(&Config::load(path)?, x.len(), t.len())?,
        (None, Some(_)) => {
            return Err(Error::Config(
                "--sample needs a config whose data to take the sample from".into(),
            ));
        }
        (None, None) => default_network(),
    };
    if layers[0].weights[0].len() != x.len() {
        return Err(Error::Config(format!(
            "--input has {} values, but the network takes {}",
            x.len(),
            layers[0].weights[0].len()
        )));
    }
    if layers.last().expect("non-empty").bias.len() != t.len() {
        return Err(Error::Config(format!(
            "--target has {} values, but the network outputs {}",
            t.len(),
            layers.last().unwrap().bias.len()
        )));
    }
    // the hand-sized lesson's rate, unless told
    let lr = lr.unwrap_or(0.5);
    outprint!("{}", explain_text(&layers, &x, &t, lr)?);
    if let Some(path) = dot {
        let text = graph_dot(&layers, &x, &t);
        std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
        outln!(
            "\nwrote the computation graph to {} (render: dot -Tpng {} -o graph.png)",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Six decimals; a value that rounds to zero prints as 0.000000, never -0.000000.
fn f(v: f64) -> String {
    let text = format!("{v:.6}");
    if text == "-0.000000" {
        "0.000000".to_string()
    } else {
        text
    }
}

/// The whole lesson as text.
fn explain_text(layers: &[Dense], x: &[f64], t: &[f64], lr: f64) -> Result<String> {
    let (fwd, bwd) = record(layers, x, t);
    let count = layers.len();
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "A network of {count} layers: {}", describe(layers));
    let _ = writeln!(
        w,
        "input x = [{}], target t = [{}], loss L = ½·Σ(y − t)², learning rate η = {lr}\n",
        join(x),
        join(t)
    );

    let _ = writeln!(
        w,
        "FORWARD PROPAGATION: each neuron j computes z_j = Σ_i W[j][i]·x_i + b_j, then a_j = f(z_j)"
    );
    for (l, layer) in layers.iter().enumerate() {
        let n = l + 1;
        let _ = writeln!(
            w,
            "\nlayer {n} ({} → {}, activation {}):",
            layer.weights[0].len(),
            layer.bias.len(),
            layer.activation.name()
        );
        for j in 0..layer.bias.len() {
            let terms: Vec<String> = layer.weights[j]
                .iter()
                .zip(&fwd.activations[l])
                .map(|(wv, a)| format!("{}·{}", f(*wv), f(*a)))
                .collect();
            let _ = writeln!(
                w,
                "  z{n}[{j}] = {} + {} = {}",
                terms.join(" + "),
                f(layer.bias[j]),
                f(fwd.sums[l][j])
            );
            let _ = writeln!(
                w,
                "  a{n}[{j}] = {}({}) = {}",
                layer.activation.name(),
                f(fwd.sums[l][j]),
                f(fwd.activations[n][j])
            );
        }
    }
    let y = &fwd.activations[count];
    let _ = writeln!(w, "\nprediction y = [{}]", join(y));
    let squares: Vec<String> = y
        .iter()
        .zip(t)
        .map(|(a, b)| format!("({} − {})²", f(*a), f(*b)))
        .collect();
    let _ = writeln!(w, "loss L = ½·[{}] = {}", squares.join(" + "), f(fwd.loss));

    let _ = writeln!(
        w,
        "\nBACKWARD PROPAGATION: the chain rule, from the output back; δ = dL/dz"
    );
    for l in (0..count).rev() {
        let n = l + 1;
        let layer = &layers[l];
        let _ = writeln!(w, "\nlayer {n}:");
        for j in 0..layer.bias.len() {
            let a = fwd.activations[n][j];
            let local = layer.activation.derivative(fwd.sums[l][j]);
            if l == count - 1 {
                let _ = writeln!(
                    w,
                    "  δ{n}[{j}] = (y[{j}] − t[{j}])·f'(z) = ({} − {})·{} = {}·{} = {}",
                    f(a),
                    f(t[j]),
                    layer.activation.derivative_formula(),
                    f(a - t[j]),
                    f(local),
                    f(bwd.deltas[l][j])
                );
            } else {
                let next = &layers[l + 1];
                let terms: Vec<String> = next
                    .weights
                    .iter()
                    .zip(&bwd.deltas[l + 1])
                    .map(|(row, d)| format!("{}·{}", f(row[j]), f(*d)))
                    .collect();
                let back: f64 = next
                    .weights
                    .iter()
                    .zip(&bwd.deltas[l + 1])
                    .map(|(row, d)| row[j] * d)
                    .sum();
                let _ = writeln!(
                    w,
                    "  δ{n}[{j}] = (Σ_k W{}[k][{j}]·δ{}[k])·f'(z) = ({})·{} = {}·{} = {}",
                    n + 1,
                    n + 1,
                    terms.join(" + "),
                    layer.activation.derivative_formula(),
                    f(back),
                    f(local),
                    f(bwd.deltas[l][j])
                );
            }
        }
        for j in 0..layer.bias.len() {
            for i in 0..layer.weights[j].len() {
                let _ = writeln!(
                    w,
                    "  dL/dW{n}[{j}][{i}] = δ{n}[{j}]·a{l}[{i}] = {}·{} = {}   (numerical: {})",
                    f(bwd.deltas[l][j]),
                    f(fwd.activations[l][i]),
                    f(bwd.weight_grads[l][j][i]),
                    f(numerical(layers, x, t, l, j, Some(i)))
                );
            }
            let _ = writeln!(
                w,
                "  dL/db{n}[{j}] = δ{n}[{j}] = {}   (numerical: {})",
                f(bwd.bias_grads[l][j]),
                f(numerical(layers, x, t, l, j, None))
            );
        }
    }
    let _ = writeln!(w, "\n(a0 is the input x.)\n\nUPDATE: w ← w − η·dL/dw");
    let mut updated = layers.to_vec();
    for (l, layer) in layers.iter().enumerate() {
        let n = l + 1;
        for j in 0..layer.bias.len() {
            for i in 0..layer.weights[j].len() {
                let new = layer.weights[j][i] - lr * bwd.weight_grads[l][j][i];
                updated[l].weights[j][i] = new;
                let _ = writeln!(
                    w,
                    "  W{n}[{j}][{i}] = {} − {lr}·{} = {}",
                    f(layer.weights[j][i]),
                    f(bwd.weight_grads[l][j][i]),
                    f(new)
                );
            }
            let new = layer.bias[j] - lr * bwd.bias_grads[l][j];
            updated[l].bias[j] = new;
            let _ = writeln!(
                w,
                "  b{n}[{j}] = {} − {lr}·{} = {}",
                f(layer.bias[j]),
                f(bwd.bias_grads[l][j]),
                f(new)
            );
        }
    }
    let after_loss = engine_loss(&updated, x, t);
    let verdict = if after_loss < fwd.loss {
        "lower"
    } else {
        "not lower: try a smaller --lr"
    };
    let _ = writeln!(
        w,
        "\nloss after the step: {} (before: {}) — {verdict}",
        f(after_loss),
        f(fwd.loss)
    );
    Ok(out)
}

fn join(values: &[f64]) -> String {
    values.iter().map(|v| f(*v)).collect::<Vec<_>>().join(", ")
}

fn describe(layers: &[Dense]) -> String {
    let mut sizes = vec![layers[0].weights[0].len().to_string()];
    sizes.extend(
        layers
            .iter()
            .map(|l| format!("{} ({})", l.bias.len(), l.activation.name())),
    );
    sizes.join(" → ")
}

/// The engine's tensors for the network: parameters (W, b per layer), each
/// layer's (z, a), and the loss L = ½·Σ(a − t)².
struct EngineGraph {
    params: Vec<Tensor<f64>>,
    layers: Vec<(Tensor<f64>, Tensor<f64>)>,
    loss: Tensor<f64>,
}

fn engine_graph(layers: &[Dense], x: &[f64], t: &[f64]) -> EngineGraph {
    let mut params = Vec::new();
    let mut recorded = Vec::new();
    let mut a = Tensor::from_vec(x.to_vec(), &[1, x.len()]);
    for layer in layers {
        let (out, inp) = (layer.bias.len(), layer.weights[0].len());
        let w = Tensor::from_vec(layer.weights.concat(), &[out, inp]).requires_grad(true);
        let b = Tensor::from_vec(layer.bias.clone(), &[out]).requires_grad(true);
        // z = a·Wᵀ + b, then a = f(z)
        let z = a.matmul_t(&w) + &b;
        a = layer.activation.tensor(&z);
        recorded.push((z, a.clone()));
        params.push(w);
        params.push(b);
    }
    let target = Tensor::from_vec(t.to_vec(), &[1, t.len()]);
    let loss = (a - target).square().sum() * 0.5;
    EngineGraph {
        params,
        layers: recorded,
        loss,
    }
}

/// The computation graph (values and gradients on each node) in Graphviz's dot language.
fn graph_dot(layers: &[Dense], x: &[f64], t: &[f64]) -> String {
    let EngineGraph { params, loss, .. } = engine_graph(layers, x, t);
    // the engine's own view of the graph, read before backward frees it
    let view = crate::autograd::graph_view(&loss);
    for node in view.iter().filter(|node| node.op.is_some()) {
        node.tensor.retain_grad();
    }
    loss.backward();
    let param_ids: Vec<usize> = params.iter().map(Tensor::id).collect();
    let mut out = String::from(
        "digraph backprop {\n  rankdir=LR;\n  node [shape=record, fontname=\"Helvetica\"];\n",
    );
    for graph_node in &view {
        let (node, id) = (&graph_node.tensor, graph_node.tensor.id());
        let kind = match (param_ids.iter().position(|&q| q == id), graph_node.op) {
            (Some(p), _) => format!("{}{}", if p % 2 == 0 { "W" } else { "b" }, p / 2 + 1),
            (None, None) => "input".to_string(),
            (None, Some(op)) => op.to_string(),
        };
        let values = node
            .to_vec()
            .iter()
            .map(|v| format!("{v:.4}"))
            .collect::<Vec<_>>()
            .join(" ");
        let grads = node.grad().map_or_else(
            || "-".to_string(),
            |g| {
                g.to_vec()
                    .iter()
                    .map(|v| format!("{v:.4}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
        );
        let _ = writeln!(
            out,
            "  n{id} [label=\"{{{kind}|value: {values}|grad: {grads}}}\"];"
        );
    }
    for graph_node in &view {
        for &input in &graph_node.inputs {
            let (from, to) = (view[input].tensor.id(), graph_node.tensor.id());
            let _ = writeln!(out, "  n{from} -> n{to};");
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_lesson_lowers_the_loss() {
        let text = explain_text(&default_network(), &[1.0, 0.0], &[1.0], 0.5).unwrap();
        assert!(text.contains("— lower"), "{text}");
        // z1[0] = 0.15·1 + 0.20·0 + 0.35 = 0.5
        assert!(
            text.contains("z1[0] = 0.150000·1.000000 + 0.200000·0.000000 + 0.350000 = 0.500000"),
            "{text}"
        );
    }

    #[test]
    fn the_dot_graph_has_values_and_gradients() {
        let dot = graph_dot(&default_network(), &[1.0, 0.0], &[1.0]);
        assert!(dot.starts_with("digraph"));
        assert!(
            dot.contains("W1|value: 0.1500 0.2000 0.2500 0.3000|grad:"),
            "{dot}"
        );
        assert!(dot.contains("sigmoid"));
    }
}
