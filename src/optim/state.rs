//! What every optimizer keeps, written once: the parameters by name, the learning
//! rate, each parameter's step count and its named buffers (momentum, moment
//! estimates …), and how that state is saved and restored.

use crate::cpu;
use crate::element::Float;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The parameters an optimizer moves and the state it keeps for each of them.
///
/// Buffers are created on a parameter's first step, so a model whose parameters
/// never get a gradient costs no optimizer memory. Saved state is named
/// `"<param>.<buffer>"` (`"0.weight.exp_avg"`) and `"<param>.step"`, as PyTorch's
/// optimizers name their state.
#[derive(Clone, Debug)]
pub struct ParamState<T: Float> {
    params: Vec<(String, Tensor<T>)>,
    lr: f64,
    steps: Vec<u64>,
    buffers: Vec<NamedBuffer<T>>,
    /// The buffer names the optimizer uses, so restored state can be checked.
    buffer_names: &'static [&'static str],
}

/// One kind of per-parameter buffer: a values vector per parameter, once created.
#[derive(Clone, Debug)]
struct NamedBuffer<T> {
    name: &'static str,
    per_param: Vec<Option<Vec<T>>>,
}

impl<T: Float> ParamState<T> {
    /// State for `params` (as the model's `named_parameters` gives them) at rate
    /// `lr`, for an optimizer that keeps the buffers named `buffer_names`.
    pub fn new(
        params: Vec<(String, Tensor<T>)>,
        lr: f64,
        buffer_names: &'static [&'static str],
    ) -> Self {
        let steps = vec![0; params.len()];
        ParamState {
            params,
            lr,
            steps,
            buffers: Vec::new(),
            buffer_names,
        }
    }

    /// The parameters, by name.
    pub fn params(&self) -> &[(String, Tensor<T>)] {
        &self.params
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Changes the learning rate.
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// One optimizer step: for every parameter that has a gradient, counts the step
    /// and applies `rule(&mut weight, &mut [buffer values], gradient)` to each of its
    /// weights (through the parallel kernel [`cpu::update::apply`]). `rule_for(t,
    /// shape)` makes the rule for the `t`-th step (t counts from 1) of a parameter of
    /// that shape, so rules can use bias corrections, decayed rates or treat biases
    /// differently from weights. The buffers named in `buffers` start
    /// filled with `initial`.
    pub fn update<const N: usize, R>(
        &mut self,
        buffers: [&'static str; N],
        initial: T,
        rule_for: impl Fn(u64, &[usize]) -> R,
    ) where
        R: Fn(&mut T, &mut [T; N], T) + Sync + Copy,
    {
        let indices = buffers.map(|name| self.buffer_index(name));
        let mut named = self
            .buffers
            .get_disjoint_mut(indices)
            .expect("an optimizer names each buffer once");
        for (index, (_, param)) in self.params.iter().enumerate() {
            let Some(grad) = param.grad() else { continue };
            self.steps[index] += 1;
            let rule = rule_for(self.steps[index], param.shape());
            let grad = grad.data();
            param.update_data(|weights| {
                let states = named.each_mut().map(|buffer| {
                    buffer.per_param[index]
                        .get_or_insert_with(|| vec![initial; weights.len()])
                        .as_mut_slice()
                });
                cpu::update::apply(weights, states, &grad, rule);
            });
        }
    }

    fn buffer_index(&mut self, name: &'static str) -> usize {
        match self.buffers.iter().position(|b| b.name == name) {
            Some(index) => index,
            None => {
                self.buffers.push(NamedBuffer {
                    name,
                    per_param: vec![None; self.params.len()],
                });
                self.buffers.len() - 1
            }
        }
    }

    /// The state as named tensors: each parameter's step count (once it has taken a
    /// step) and every buffer created so far.
    pub fn export(&self) -> Vec<(String, Tensor<T>)> {
        let mut out = Vec::new();
        for ((name, _), &step) in self.params.iter().zip(&self.steps) {
            if step > 0 {
                out.push((format!("{name}.step"), Tensor::scalar(T::cast(step as f64))));
            }
        }
        for buffer in &self.buffers {
            for ((name, param), values) in self.params.iter().zip(&buffer.per_param) {
                if let Some(values) = values {
                    let key = format!("{name}.{}", buffer.name);
                    out.push((key, Tensor::from_vec(values.clone(), param.shape())));
                }
            }
        }
        out
    }

    /// Restores state saved by [`ParamState::export`]. A key that names no
    /// parameter's step or buffer of this optimizer, or a buffer whose shape is not
    /// its parameter's, is an error.
    pub fn import(&mut self, state: &[(String, Tensor<T>)]) -> Result<()> {
        for (key, value) in state {
            let found = self
                .params
                .iter()
                .enumerate()
                .find_map(|(index, (name, _))| {
                    let suffix = key.strip_prefix(name.as_str())?.strip_prefix('.')?;
                    let buffer = self.buffer_names.iter().find(|&&b| b == suffix);
                    (suffix == "step" || buffer.is_some()).then_some((index, buffer.copied()))
                });
            let Some((index, buffer)) = found else {
                return Err(unknown(key));
            };
            let Some(buffer) = buffer else {
                self.steps[index] = value.item().as_f64() as u64;
                continue;
            };
            let (param_name, param) = &self.params[index];
            if value.shape() != param.shape() {
                return Err(Error::Shape(format!(
                    "optimizer state `{key}` has shape {:?}, but parameter `{param_name}` has shape {:?}",
                    value.shape(),
                    param.shape()
                )));
            }
            let at = self.buffer_index(buffer);
            self.buffers[at].per_param[index] = Some(value.to_vec());
        }
        Ok(())
    }
}

fn unknown(key: &str) -> Error {
    Error::Shape(format!(
        "optimizer state `{key}` does not belong to any parameter of this optimizer"
    ))
}
