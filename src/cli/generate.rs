//! `nabla generate`: a trained language model writes text, streamed to the
//! terminal as it is sampled; and the pieces `nabla eval` needs to test such a
//! model on another text file.

use std::io::Write;
use std::path::Path;

use crate::data::Dataset;
use crate::data::text::Tokenizer;
use crate::error::{Error, Result};
use crate::experiment;
use crate::generate::{Sampling, generate};
use crate::run::SavedRun;

/// Opens a run directory of a text model.
fn open_language_model(dir: &Path) -> Result<SavedRun> {
    let run = super::inspect::open(dir, None)?;
    if !run.is_language_model() {
        return Err(Error::Config(format!(
            "{} is not a language model's run: its data kind is not \"text\"",
            dir.display()
        )));
    }
    Ok(run)
}

/// `nabla generate RUN_DIR --prompt P --tokens N`: prints the prompt, then each
/// sampled token as soon as it is drawn.
pub fn run(dir: &Path, prompt: &str, tokens: usize, sampling: Sampling) -> Result<()> {
    let lm = open_language_model(dir)?;
    let vocabulary = lm.vocabulary.as_ref().expect("a language model has one");
    if prompt.is_empty() {
        return Err(Error::Config(
            "--prompt: give at least one character to start from".into(),
        ));
    }
    let ids = vocabulary
        .encode(prompt)
        .map_err(|why| Error::Config(format!("--prompt: {why}")))?;
    let mut out = std::io::stdout().lock();
    let mut pending = Vec::new(); // bytes of a character not yet complete
    let _ = write!(out, "{prompt}");
    generate(
        &lm.model,
        &ids,
        tokens,
        lm.block_size(),
        sampling,
        true,
        |id| {
            match vocabulary.tokenizer {
                Tokenizer::Char => {
                    let _ = write!(out, "{}", vocabulary.decode(&[id]));
                }
                Tokenizer::Byte => {
                    pending.push(id as u8);
                    if let Ok(text) = std::str::from_utf8(&pending) {
                        let _ = write!(out, "{text}");
                        pending.clear();
                    } else if pending.len() >= 4 {
                        let _ = write!(out, "{}", String::from_utf8_lossy(&pending));
                        pending.clear();
                    }
                }
            }
            let _ = out.flush();
        },
    );
    let _ = writeln!(out);
    Ok(())
}

/// `nabla eval` of a language model: the mean loss in nats per token (and the
/// perplexity) over `windows` (consecutive windows of a text).
pub fn report_text_eval(run: &SavedRun, windows: &dyn Dataset, source: &str) -> Result<()> {
    let loss = experiment::build_loss(&run.config.train);
    let loader = crate::data::DataLoader::new(windows, 32);
    let result = crate::train::evaluate_with(&run.model, &loader, &loss, |_, _| {});
    outln!(
        "{source}: {} windows of {} tokens ({} predictions)",
        windows.len(),
        run.block_size(),
        result.samples
    );
    outln!(
        "loss {:.4} nats/token  perplexity {:.3}  next-token accuracy {:.2}%",
        result.loss,
        result.loss.exp(),
        100.0 * result.accuracy
    );
    Ok(())
}
