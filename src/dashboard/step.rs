//! The step view's server side: one training step of the run's model on the example
//! the page asks for, traced by the library ([`crate::explain`], the same numbers
//! `nabla explain` prints) and kept for the page's next questions.
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/runs/<id>/step?sample=N` | the step's overview: every node's op, rule, shape and one-line summaries, the loss, the update (no finite-difference checks: a GPT's take seconds) |
//! | `GET /api/runs/<id>/step/checks?sample=N` | every parameter's finite-difference checks |
//! | `GET /api/runs/<id>/step/node?sample=N&node=K` | node K in full: every value and gradient (up to 4096), pictures |

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::explain::StepTrace;
use crate::explain::source::StepSource;

/// Traces kept (the examples a page visited last).
const KEPT: usize = 4;

/// What the page asks about one example's step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepRequest {
    /// The overview.
    Overview {
        /// The training example.
        sample: usize,
    },
    /// The finite-difference checks.
    Checks {
        /// The training example.
        sample: usize,
    },
    /// One node in full.
    Node {
        /// The training example.
        sample: usize,
        /// The node's position in the graph.
        node: usize,
    },
}

impl StepRequest {
    /// Reads `rest` of `/api/runs/<id>/step…` (`""`, `"/checks"`, `"/node"`) and the
    /// query string; `None` for anything else.
    pub fn parse(rest: &str, query: &str) -> Option<StepRequest> {
        // Some(None): not given; None: given but not a number
        let number = |key: &str| -> Option<Option<usize>> {
            match query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| *name == key)
            {
                None => Some(None),
                Some((_, value)) => value.parse::<usize>().ok().map(Some),
            }
        };
        let sample = number("sample")?.unwrap_or(0);
        match rest {
            "" => Some(StepRequest::Overview { sample }),
            "/checks" => Some(StepRequest::Checks { sample }),
            "/node" => Some(StepRequest::Node {
                sample,
                node: number("node")??,
            }),
            _ => None,
        }
    }
}

/// A run's model, ready to be explained one step at a time.
#[derive(Debug)]
pub struct StepView {
    source: StepSource,
    /// Recent traces: (sample, weights' version, checked, trace).
    kept: Mutex<Vec<Kept>>,
}

#[derive(Debug)]
struct Kept {
    sample: usize,
    version: Option<SystemTime>,
    checked: bool,
    trace: Arc<StepTrace>,
}

impl StepView {
    /// The step view of `source`'s model.
    pub fn new(source: StepSource) -> Arc<StepView> {
        Arc::new(StepView {
            source,
            kept: Mutex::new(Vec::new()),
        })
    }

    /// The answer to `request`, as JSON.
    pub fn answer(&self, request: StepRequest) -> Result<Value> {
        match request {
            StepRequest::Overview { sample } => {
                let trace = self.trace(sample, false)?;
                Ok(serde_json::to_value(trace.overview()).expect("plain data serialises"))
            }
            StepRequest::Checks { sample } => {
                let trace = self.trace(sample, true)?;
                Ok(json!({
                    "parameters": trace.parameters.iter().map(|p| json!({
                        "name": p.name, "checks": p.checks, "worst": p.worst,
                    })).collect::<Vec<_>>(),
                    "worst": trace.worst_check(),
                }))
            }
            StepRequest::Node { sample, node } => {
                let trace = self.trace(sample, false)?;
                let found = trace.nodes.get(node).ok_or_else(|| {
                    Error::Config(format!(
                        "node {node}: the graph has {} nodes",
                        trace.nodes.len()
                    ))
                })?;
                let after = trace
                    .parameters
                    .iter()
                    .find(|p| p.node == node)
                    .map(|p| &p.after);
                Ok(json!({ "node": found, "after": after }))
            }
        }
    }

    /// The trace of `sample` at the current weights, from those kept when it is
    /// there (`checked`: with the finite-difference checks).
    fn trace(&self, sample: usize, checked: bool) -> Result<Arc<StepTrace>> {
        let version = self.source.weights_version();
        {
            let kept = self.kept.lock().expect("the step view's lock");
            let found = kept
                .iter()
                .find(|k| k.sample == sample && k.version == version && (k.checked || !checked));
            if let Some(found) = found {
                return Ok(Arc::clone(&found.trace));
            }
        }
        let count = if checked { crate::explain::CHECKED } else { 0 };
        let trace = Arc::new(self.source.trace_checking(sample, count)?);
        let mut kept = self.kept.lock().expect("the step view's lock");
        kept.retain(|k| !(k.sample == sample && k.version == version));
        kept.push(Kept {
            sample,
            version,
            checked,
            trace: Arc::clone(&trace),
        });
        if kept.len() > KEPT {
            kept.remove(0);
        }
        Ok(trace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_the_example_and_the_node() {
        assert_eq!(
            StepRequest::parse("", "sample=7"),
            Some(StepRequest::Overview { sample: 7 })
        );
        assert_eq!(
            StepRequest::parse("", ""),
            Some(StepRequest::Overview { sample: 0 })
        );
        assert_eq!(
            StepRequest::parse("/node", "node=12&sample=3"),
            Some(StepRequest::Node {
                sample: 3,
                node: 12
            })
        );
        assert_eq!(StepRequest::parse("/node", "sample=3"), None);
        assert_eq!(StepRequest::parse("/checks", "sample=x"), None);
        assert_eq!(StepRequest::parse("/other", ""), None);
    }
}
