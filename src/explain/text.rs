//! A [`StepTrace`] as the text `nabla explain CONFIG --sample N` prints: forward
//! layer by layer, the loss, δ per layer going back, each parameter's gradient with
//! its numerical check, and the update.

use std::fmt::Write;

use super::StepTrace;
use crate::gradcheck::DEFAULT_EPS;

impl StepTrace {
    /// The explanation as text, every number from the trace (so it equals what the
    /// dashboard's step view shows, digit for digit).
    pub fn text(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(
            w,
            "{}, through {} layers; loss L = cross-entropy of softmax(logits)",
            self.title,
            self.layers.len()
        );
        let _ = writeln!(
            w,
            "\nFORWARD PROPAGATION: each layer's output for this sample"
        );
        let _ = writeln!(w, "  input  {}", self.input.text);
        for layer in &self.layers {
            let output = &self.nodes[layer.output];
            let _ = writeln!(w, "  {}: {}", layer.index, layer.description);
            let _ = writeln!(w, "       out {}", output.value.text);
        }
        let _ = writeln!(w, "\n  {}", self.loss.text);

        let _ = writeln!(
            w,
            "\nBACKWARD PROPAGATION: δ = ∂L/∂(layer output), last layer first (the chain rule, one op at a time)"
        );
        let _ = writeln!(
            w,
            "  at the logits δ = softmax − onehot(y): the fused cross-entropy's rule"
        );
        for layer in self.layers.iter().rev() {
            let delta = self.nodes[layer.output]
                .grad
                .as_ref()
                .map_or("(no gradient)", |grad| grad.text.as_str());
            let _ = writeln!(w, "  δ{} ({})  {delta}", layer.index, layer.description);
        }

        let _ = writeln!(
            w,
            "\nGRADIENTS: ∂L/∂θ for every parameter, checked against (L(θ+ε) − L(θ−ε)) / 2ε, ε = {DEFAULT_EPS:e}"
        );
        for parameter in &self.parameters {
            let grad = self.nodes[parameter.node]
                .grad
                .as_ref()
                .map_or("(no gradient)", |grad| grad.text.as_str());
            let _ = writeln!(w, "  {:<12} {grad}", parameter.name);
            let _ = writeln!(
                w,
                "  {:<12} numerical check of {} entries: worst relative error {:.1e}",
                "",
                parameter.checks.len(),
                parameter.worst
            );
        }

        let update = &self.update;
        let _ = writeln!(w, "\nUPDATE: {}", update.rule);
        for parameter in &self.parameters {
            if let Some(entry) = update
                .entries
                .iter()
                .find(|entry| entry.parameter == parameter.name)
            {
                let _ = writeln!(
                    w,
                    "  {}[{}]: {:.6} → {:.6}  (∂L/∂w = {:.6})",
                    entry.parameter, entry.index, entry.before, entry.after, entry.grad
                );
            }
        }
        let _ = writeln!(
            w,
            "  L: {:.6} → {:.6} ({})",
            update.loss_before,
            update.loss_after,
            if update.loss_after < update.loss_before {
                "lower"
            } else {
                "not lower: η is too large for this step"
            }
        );
        let _ = writeln!(
            w,
            "\nevery analytic gradient agrees with its numerical estimate to {:.1e} (relative)",
            self.worst_check()
        );
        out
    }
}
