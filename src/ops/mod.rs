//! The differentiable operations, one family per file. In each, an op computes its
//! output with a CPU kernel and, right beside it, states its backward rule: how the
//! gradient of the loss with respect to the output becomes the gradient with
//! respect to each input.

pub mod activation;
pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod flops;
pub mod linear;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod shape;
pub mod softmax;

/// An op's math as `nabla explain` and the dashboard's step view show it: the
/// forward formula and the backward rule, each in one line, written beside the op's
/// code in its family's file. `y` is the output, `G = dL/dy` the gradient arriving
/// from the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rule {
    /// The op's name, as the graph records it (`relu`, `conv2d`).
    pub op: &'static str,
    /// What it computes.
    pub forward: &'static str,
    /// How `G` becomes the gradient of each input (the chain rule's local step).
    pub backward: &'static str,
}

/// Every family's rules.
const FAMILIES: [&[Rule]; 12] = [
    activation::RULES,
    attention::RULES,
    conv::RULES,
    elementwise::RULES,
    linear::RULES,
    matmul::RULES,
    norm::RULES,
    pool::RULES,
    reduce::RULES,
    shape::RULES,
    softmax::RULES,
    crate::loss::RULES,
];

/// The rule of the op the graph calls `op`, if it has one written.
///
/// ```
/// let rule = nabla::ops::rule("tanh").unwrap();
/// assert_eq!(rule.backward, "dL/dx = G·(1 − y²)");
/// ```
pub fn rule(op: &str) -> Option<&'static Rule> {
    FAMILIES
        .iter()
        .flat_map(|family| family.iter())
        .find(|rule| rule.op == op)
}
