//! Runs of elementwise nodes recognised as the activation they compute: PyTorch's
//! opset-17 GELU is `Div`, `Erf`, `Add`, `Mul`, `Mul`, SiLU `Sigmoid` and `Mul`,
//! softsign `Abs`, `Add`, `Div` — evaluated at a few points and compared with each
//! activation nabla has.

use std::collections::{HashMap, HashSet};

use super::graph::Reader;
use crate::experiment::LayerConfig;
use crate::onnx::model::{Node, Values};

/// Ops that act on each value alone (with scalar constants): runs of them are
/// recognised as activations by what they compute.
const ELEMENTWISE: &[&str] = &[
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Neg", "Exp", "Abs", "Erf", "Relu", "Sigmoid",
    "Tanh", "Softsign",
];

impl Reader<'_> {
    /// A run of elementwise nodes from `x` that computes one of nabla's activations:
    /// the longest such run, as a layer, and the value after it.
    pub(super) fn activation(
        &self,
        x: &str,
        to: &str,
        allowed: &HashSet<usize>,
    ) -> Result<Option<(Option<LayerConfig>, String)>, String> {
        // stretches of elementwise nodes, each ending where its uses come together
        let mut stretches: Vec<(Vec<usize>, String)> = Vec::new();
        let mut value = x.to_string();
        while value != to && stretches.len() < 16 {
            let Ok((region, merge)) = self.region(&value, allowed) else {
                break;
            };
            if !region.iter().all(|&i| self.is_elementwise(&self.nodes[i])) {
                break;
            }
            value = self.nodes[merge].outputs[0].clone();
            stretches.push((region, value.clone()));
        }
        for count in (1..=stretches.len()).rev() {
            let nodes: Vec<usize> = stretches[..count]
                .iter()
                .flat_map(|(r, _)| r.clone())
                .collect();
            let f = |t: f64| self.evaluate(&nodes, x, t);
            if let Some(layer) = recognise(f) {
                return Ok(Some((Some(layer), stretches[count - 1].1.clone())));
            }
        }
        Ok(None)
    }

    /// Whether `node` acts on each value alone: an elementwise op whose other inputs
    /// are single constants.
    pub(super) fn is_elementwise(&self, node: &Node) -> bool {
        let arity = match node.op_type.as_str() {
            "Add" | "Sub" | "Mul" | "Div" | "Pow" => 2,
            _ => 1,
        };
        ELEMENTWISE.contains(&node.op_type.as_str())
            && node.inputs.len() == arity
            && node.inputs.iter().all(|input| match self.constant(input) {
                Some(tensor) => tensor.dims.iter().product::<i64>() == 1,
                None => true,
            })
    }

    /// The value the elementwise `nodes` compute from `x = t`.
    pub(super) fn evaluate(&self, nodes: &[usize], x: &str, t: f64) -> f64 {
        let mut values: HashMap<&str, f64> = HashMap::from([(x, t)]);
        let mut last = t;
        for &index in nodes {
            let node = &self.nodes[index];
            let arg = |i: usize| -> f64 {
                let name = node.inputs[i].as_str();
                match self.constant(name) {
                    Some(tensor) => match &tensor.values {
                        Values::Float(v) => v[0] as f64,
                        Values::Int64(v) => v[0] as f64,
                    },
                    None => values.get(name).copied().unwrap_or(f64::NAN),
                }
            };
            let a = arg(0);
            last = match node.op_type.as_str() {
                "Add" => a + arg(1),
                "Sub" => a - arg(1),
                "Mul" => a * arg(1),
                "Div" => a / arg(1),
                "Pow" => a.powf(arg(1)),
                "Sqrt" => a.sqrt(),
                "Neg" => -a,
                "Exp" => a.exp(),
                "Abs" => a.abs(),
                "Erf" => libm::erf(a),
                "Relu" => a.max(0.0),
                "Sigmoid" => 1.0 / (1.0 + (-a).exp()),
                "Tanh" => a.tanh(),
                "Softsign" => a / (1.0 + a.abs()),
                _ => f64::NAN,
            };
            values.insert(&node.outputs[0], last);
        }
        last
    }
}

/// The activation nabla has that `f` computes, if any: compared at points spread
/// over where activations differ, to 1e-6.
fn recognise(f: impl Fn(f64) -> f64) -> Option<LayerConfig> {
    const POINTS: [f64; 10] = [-4.0, -2.5, -1.3, -0.7, -0.2, 0.0, 0.3, 0.9, 1.7, 3.1];
    let gelu = |t: f64| 0.5 * t * (1.0 + libm::erf(t / std::f64::consts::SQRT_2));
    let gelu_tanh = |t: f64| {
        let inner = (2.0 / std::f64::consts::PI).sqrt() * (t + 0.044715 * t * t * t);
        0.5 * t * (1.0 + inner.tanh())
    };
    let sigmoid = |t: f64| 1.0 / (1.0 + (-t).exp());
    let candidates: [(LayerConfig, &dyn Fn(f64) -> f64); 7] = [
        (LayerConfig::Relu, &|t: f64| t.max(0.0)),
        (LayerConfig::Sigmoid, &sigmoid),
        (LayerConfig::Tanh, &|t: f64| t.tanh()),
        (LayerConfig::Softsign, &|t: f64| t / (1.0 + t.abs())),
        (LayerConfig::Silu, &|t: f64| t * sigmoid(t)),
        (
            LayerConfig::Gelu {
                tanh_approximation: false,
            },
            &gelu,
        ),
        (
            LayerConfig::Gelu {
                tanh_approximation: true,
            },
            &gelu_tanh,
        ),
    ];
    candidates.into_iter().find_map(|(layer, g)| {
        POINTS
            .iter()
            .all(|&t| (f(t) - g(t)).abs() <= 1e-6 * (1.0 + g(t).abs()))
            .then_some(layer)
    })
}
