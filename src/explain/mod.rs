//! One training step told in full: every node of the graph the forward pass
//! records, the loss, every node's gradient on the way back, every parameter's
//! gradient beside its numerical derivative, and the optimizer's update with the
//! loss before and after — for any [`Sequential`] model, on one example.
//!
//! The engine computes every number: the model runs in f64 layer by layer, each
//! node of the real autograd graph ([`graph_view`]) keeps its gradient
//! (`retain_grad`), one `backward()` fills them in, and the optimizer takes its own
//! step. A [`StepTrace`] is plain data: `nabla explain` prints it ([`StepTrace::text`]),
//! the dashboard's step view draws it (as JSON), so both show the same numbers.
//!
//! ```
//! use nabla::nn::{Linear, Sequential, Tanh};
//! use nabla::optim::Sgd;
//! let model = Sequential::new()
//!     .layer(Linear::<f64>::new(2, 3, &mut nabla::rng(0)))
//!     .layer(Tanh)
//!     .layer(Linear::<f64>::new(3, 2, &mut nabla::rng(1)));
//! let mut sgd = Sgd::new(nabla::nn::Module::named_parameters(&model), 0.1);
//! let x = nabla::Tensor::from_vec(vec![0.5, -1.0], &[1, 2]);
//! let trace = nabla::explain::trace_step(&model, &x, &[1], &mut sgd, nabla::explain::CHECKED);
//! assert!(trace.update.loss_after < trace.update.loss_before);
//! assert!(trace.worst_check() < 1e-6); // every gradient agrees with its finite difference
//! ```

pub mod summary;
mod text;

#[cfg(feature = "experiment")]
pub mod source;

use std::collections::HashMap;

use serde::Serialize;

use crate::autograd::{graph_view, no_grad};
use crate::gradcheck::{DEFAULT_EPS, central_difference_at};
use crate::loss::{CrossEntropyOptions, cross_entropy};
use crate::nn::{Module, Sequential};
use crate::ops::Rule;
use crate::optim::Optimizer;
use crate::tensor::Tensor;
pub use summary::Summary;

/// Entries of each parameter checked against finite differences (and shown updated).
pub const CHECKED: usize = 6;

/// Everything one training step computed, node by node.
#[derive(Clone, Debug, Serialize)]
pub struct StepTrace {
    /// What is explained, in words (`Sample 0 of examples/mnist-cnn.toml (class 5)`).
    pub title: String,
    /// How many training examples there are to choose from (0 when not known).
    pub examples: usize,
    /// The example as the model reads it.
    pub input: Summary,
    /// The layers, in order, each with the graph nodes it made.
    pub layers: Vec<LayerTrace>,
    /// The graph, inputs before the ops that use them (the loss last).
    pub nodes: Vec<NodeTrace>,
    /// The loss.
    pub loss: LossTrace,
    /// Each parameter's gradient checked against central differences.
    pub parameters: Vec<ParameterTrace>,
    /// The optimizer's step and its effect on the loss.
    pub update: UpdateTrace,
}

/// One layer of the model and the part of the graph it made.
#[derive(Clone, Debug, Serialize)]
pub struct LayerTrace {
    /// Its position in the model.
    pub index: usize,
    /// What it is (`Conv2d(1, 6, kernel 5)`).
    pub description: String,
    /// The node it read (`None`: the first layer reads the example, which is no
    /// node of the graph when no gradient flows to it, as for token ids).
    pub input: Option<usize>,
    /// The node it returned.
    pub output: usize,
    /// Every node it recorded (its parameters included), in graph order.
    pub nodes: Vec<usize>,
}

/// One tensor of the graph.
#[derive(Clone, Debug, Serialize)]
pub struct NodeTrace {
    /// Its position in [`StepTrace::nodes`].
    pub index: usize,
    /// The op that made it, or for leaves `input` (the example), `parameter`, or
    /// `constant` (a buffer such as batch norm's running statistics).
    pub op: String,
    /// A parameter's name (`0.weight`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The layer that recorded it (`None`: the example, or the loss's own nodes).
    pub layer: Option<usize>,
    /// The nodes it was computed from.
    pub inputs: Vec<usize>,
    /// The op's forward formula and backward rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static Rule>,
    /// Its value.
    pub value: Summary,
    /// dL/d(this tensor).
    pub grad: Option<Summary>,
}

/// The loss of the example.
#[derive(Clone, Debug, Serialize)]
pub struct LossTrace {
    /// Its node (the graph's last).
    pub node: usize,
    /// The loss in words and numbers (`p(class 5) = 0.101, L = −log p = 2.29`).
    pub text: String,
    /// L.
    pub value: f64,
    /// The target of each prediction (one for a classifier, one per position for a
    /// sequence model).
    pub labels: Vec<usize>,
    /// softmax(logits) for a single prediction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<f64>>,
}

/// A parameter's gradient and its finite-difference check.
#[derive(Clone, Debug, Serialize)]
pub struct ParameterTrace {
    /// Its name (`0.weight`).
    pub name: String,
    /// Its node.
    pub node: usize,
    /// A few entries, spread over it: dL/dw from backward beside (L(w+ε) − L(w−ε))/2ε.
    pub checks: Vec<Check>,
    /// The worst relative difference of the checks.
    pub worst: f64,
    /// Its values after the update.
    pub after: Summary,
}

/// One entry's analytic and numerical derivative.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Check {
    /// The entry (row-major).
    pub index: usize,
    /// dL/dw from backpropagation.
    pub analytic: f64,
    /// From central differences of the loss, ε = 1e-6.
    pub numerical: f64,
}

/// The optimizer's step.
#[derive(Clone, Debug, Serialize)]
pub struct UpdateTrace {
    /// Its rule with its settings ([`Optimizer::rule`]).
    pub rule: String,
    /// The learning rate η.
    pub lr: f64,
    /// L on the example before the step.
    pub loss_before: f64,
    /// L on the same example after it.
    pub loss_after: f64,
    /// The checked entries of every parameter, before and after, with the state the
    /// optimizer keeps for them (momentum, Adam's moments).
    pub entries: Vec<UpdateEntry>,
}

/// One weight moved by the optimizer.
#[derive(Clone, Debug, Serialize)]
pub struct UpdateEntry {
    /// The parameter.
    pub parameter: String,
    /// The entry.
    pub index: usize,
    /// w before.
    pub before: f64,
    /// dL/dw.
    pub grad: f64,
    /// w after.
    pub after: f64,
    /// The optimizer's buffers at this entry after the step (`exp_avg` = m …).
    pub state: Vec<(String, f64)>,
}

impl StepTrace {
    /// The worst relative difference between a backpropagated gradient and its
    /// finite difference, over every checked entry.
    pub fn worst_check(&self) -> f64 {
        self.parameters.iter().map(|p| p.worst).fold(0.0, f64::max)
    }

    /// The same trace without the nodes' values and pictures (shapes, norms and the
    /// one-line summaries stay): the overview a page loads first, small even for a
    /// GPT's thousands of nodes.
    pub fn overview(&self) -> StepTrace {
        let brief = |node: &NodeTrace| NodeTrace {
            value: node.value.brief(),
            grad: node.grad.as_ref().map(Summary::brief),
            ..node.clone()
        };
        StepTrace {
            nodes: self.nodes.iter().map(brief).collect(),
            parameters: self
                .parameters
                .iter()
                .map(|p| ParameterTrace {
                    after: p.after.brief(),
                    ..p.clone()
                })
                .collect(),
            ..self.clone()
        }
    }
}

/// The cross-entropy of `logits` against `labels` (one row per label: a sequence
/// model's `[batch, positions, classes]` is flattened).
fn loss_of(logits: &Tensor<f64>, labels: &[usize]) -> Tensor<f64> {
    let rows = if logits.ndim() > 2 {
        logits.flatten(0, -2)
    } else {
        logits.clone()
    };
    cross_entropy(&rows, labels, &CrossEntropyOptions::default())
}

/// Runs one training step of `model` on one example (`input` with a batch axis of 1,
/// `labels` its target or targets) and records every number: forward layer by layer,
/// the cross-entropy loss, backward through the recorded graph, a finite-difference
/// check of `checked` entries of each parameter (at most, spread over it: [`CHECKED`]
/// is what `nabla explain` checks), and `optimizer`'s step (it must hold
/// the model's parameters), after which the loss is measured again.
///
/// The model is put in evaluation mode (dropout off, batch norm on its running
/// statistics), so the loss is a plain function of the weights and the finite
/// differences mean something; the step changes the model's weights.
pub fn trace_step(
    model: &Sequential<f64>,
    input: &Tensor<f64>,
    labels: &[usize],
    optimizer: &mut dyn Optimizer<f64>,
    checked: usize,
) -> StepTrace {
    model.eval();
    optimizer.zero_grad();
    let input = input.detach().requires_grad(true);
    let mut outputs = Vec::new();
    let mut x = input.clone();
    for layer in model.layers() {
        x = layer.forward(&x);
        outputs.push(x.clone());
    }
    let loss = loss_of(&x, labels);
    let view = graph_view(&loss);
    for node in view.iter().filter(|node| node.op.is_some()) {
        node.tensor.retain_grad();
    }
    let position: HashMap<usize, usize> = view
        .iter()
        .enumerate()
        .map(|(index, node)| (node.tensor.id(), index))
        .collect();
    let input_node = position.get(&input.id()).copied();
    let layer_of = layers_of_nodes(&view, &outputs, &position, input_node);
    let names: HashMap<usize, String> = model
        .named_parameters()
        .into_iter()
        .map(|(name, parameter)| (parameter.id(), name))
        .collect();

    let loss_value = loss.item();
    let probabilities = (labels.len() == 1).then(|| x.softmax(-1).to_vec());
    loss.backward();

    let nodes: Vec<NodeTrace> = view
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let tensor = &node.tensor;
            let name = names.get(&tensor.id()).cloned();
            let op = match (node.op, &name) {
                (Some(op), _) => op.to_string(),
                (None, Some(_)) => "parameter".into(),
                (None, None) if Some(index) == input_node => "input".into(),
                // a leaf no gradient is wanted for: batch norm's running statistics
                (None, None) => "constant".into(),
            };
            NodeTrace {
                index,
                rule: node.op.and_then(crate::ops::rule),
                op,
                name,
                layer: layer_of[index],
                inputs: node.inputs.clone(),
                value: Summary::of(&tensor.to_vec(), tensor.shape()),
                grad: tensor
                    .grad()
                    .map(|grad| Summary::of(&grad.to_vec(), grad.shape())),
            }
        })
        .collect();
    let layers = model
        .layers()
        .iter()
        .enumerate()
        .map(|(index, layer)| LayerTrace {
            index,
            description: layer.describe(),
            input: match index {
                0 => input_node,
                _ => position.get(&outputs[index - 1].id()).copied(),
            },
            output: position[&outputs[index].id()],
            nodes: (0..nodes.len())
                .filter(|&node| layer_of[node] == Some(index))
                .collect(),
        })
        .collect();

    let objective = || {
        let _guard = no_grad();
        loss_of(&model.forward(&input), labels).item()
    };
    // each parameter before the step: its values and gradient, and the checks
    let before: Vec<_> = model
        .named_parameters()
        .into_iter()
        .map(|(name, parameter)| {
            let grad = parameter
                .grad()
                .map_or_else(|| vec![0.0; parameter.numel()], |g| g.to_vec());
            let checks: Vec<Check> = checked_entries(parameter.numel(), checked)
                .map(|index| Check {
                    index,
                    analytic: grad[index],
                    numerical: central_difference_at(&parameter, index, DEFAULT_EPS, objective),
                })
                .collect();
            (name, parameter.to_vec(), grad, checks, parameter)
        })
        .collect();

    let loss_before = loss_value;
    optimizer.step();
    let loss_after = objective();
    let state = optimizer.state();
    let mut parameters = Vec::new();
    let mut entries = Vec::new();
    for (name, old, grad, checks, parameter) in before {
        let new = parameter.to_vec();
        for index in checked_entries(new.len(), CHECKED) {
            let buffers = state
                .iter()
                .filter_map(|(key, values)| {
                    let buffer = key.strip_prefix(&name)?.strip_prefix('.')?;
                    (buffer != "step").then(|| (buffer.to_string(), values.data()[index]))
                })
                .collect();
            entries.push(UpdateEntry {
                parameter: name.clone(),
                index,
                before: old[index],
                grad: grad[index],
                after: new[index],
                state: buffers,
            });
        }
        let worst = checks
            .iter()
            .map(|check| {
                let scale = check.analytic.abs().max(check.numerical.abs()).max(1.0);
                (check.analytic - check.numerical).abs() / scale
            })
            .fold(0.0, f64::max);
        parameters.push(ParameterTrace {
            node: position[&parameter.id()],
            name,
            checks,
            worst,
            after: Summary::of(&new, parameter.shape()),
        });
    }
    let loss_text = match &probabilities {
        Some(p) => format!(
            "p(class {}) = {:.6}, L = −log p = {loss_before:.6}",
            labels[0], p[labels[0]]
        ),
        None => format!(
            "L = mean over {} positions of −log p(the next token) = {loss_before:.6}",
            labels.len()
        ),
    };
    StepTrace {
        title: String::new(),
        examples: 0,
        input: Summary::of(&input.to_vec(), input.shape()),
        layers,
        loss: LossTrace {
            node: nodes.len() - 1,
            text: loss_text,
            value: loss_before,
            labels: labels.to_vec(),
            probabilities,
        },
        nodes,
        parameters,
        update: UpdateTrace {
            rule: optimizer.rule(),
            lr: optimizer.lr(),
            loss_before,
            loss_after,
            entries,
        },
    }
}

/// The entries of a parameter of `count` elements that are checked: up to
/// `checked` of them, spread evenly.
fn checked_entries(count: usize, checked: usize) -> impl Iterator<Item = usize> {
    let step = (count / checked.min(count).max(1)).max(1);
    (0..count).step_by(step).take(checked)
}

/// Which layer recorded each node of `view`: layer k owns the nodes its output
/// depends on that no earlier layer's output does. The example itself and the
/// loss's own nodes belong to none.
fn layers_of_nodes(
    view: &[crate::autograd::GraphNode<f64>],
    outputs: &[Tensor<f64>],
    position: &HashMap<usize, usize>,
    input: Option<usize>,
) -> Vec<Option<usize>> {
    let mut layer_of = vec![None; view.len()];
    let mut claimed = vec![false; view.len()];
    if let Some(input) = input {
        claimed[input] = true;
    }
    for (layer, output) in outputs.iter().enumerate() {
        let mut stack = vec![position[&output.id()]];
        while let Some(node) = stack.pop() {
            if claimed[node] {
                continue;
            }
            claimed[node] = true;
            layer_of[node] = Some(layer);
            stack.extend(&view[node].inputs);
        }
    }
    layer_of
}
