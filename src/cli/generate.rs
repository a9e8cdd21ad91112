//! `nabla generate`: a trained language model writes text, streamed to the
//! terminal as it is sampled; and the pieces `nabla eval` needs to test such a
//! model on another text file.

use std::io::Write;
use std::path::Path;

use crate::checkpoint::load_model;
use crate::data::Dataset;
use crate::data::text::{TextCorpus, TextWindows, Tokenizer, Vocabulary, encode_file};
use crate::error::{Error, Result};
use crate::experiment::{self, Config, DataKind};
use crate::generate::{Sampling, generate};
use crate::nn::{Module, Sequential};

/// A language model's run: its config, vocabulary and trained network.
pub struct LanguageModel {
    /// The run's config.
    pub config: Config,
    /// The tokens it reads and writes (the run's vocab.json).
    pub vocabulary: Vocabulary,
    /// The network, trained weights loaded, in evaluation mode.
    pub model: Sequential,
    /// Its context length.
    pub block_size: usize,
}

/// Opens a run directory of a text model: config.toml, vocab.json, model.safetensors.
pub fn open_language_model(dir: &Path) -> Result<LanguageModel> {
    let config = Config::load(&dir.join("config.toml"))?;
    let (DataKind::Text, Some(block_size)) = (config.data.kind, config.data.block_size) else {
        return Err(Error::Config(format!(
            "{} is not a language model's run: its data kind is not \"text\"",
            dir.display()
        )));
    };
    let vocab_path = dir.join("vocab.json");
    let json = std::fs::read_to_string(&vocab_path).map_err(|e| Error::io(&vocab_path, e))?;
    let vocabulary: Vocabulary = serde_json::from_str(&json).map_err(|e| {
        Error::format(
            &vocab_path,
            format!("not a vocabulary written by nabla: {e}"),
        )
    })?;
    let (model, _) = experiment::build_model(
        &config.model.layers,
        &[block_size],
        vocabulary.len(),
        &mut crate::rng(0),
    )?;
    load_model(dir.join("model.safetensors"), &model)?;
    model.eval();
    Ok(LanguageModel {
        config,
        vocabulary,
        model,
        block_size,
    })
}

impl LanguageModel {
    /// Consecutive windows covering the text file at `path`, in this model's
    /// vocabulary (a character it lacks is an error naming its line and column).
    pub fn windows_of(&self, path: &Path) -> Result<TextWindows> {
        let tokens = encode_file(path, &self.vocabulary)?;
        if tokens.len() <= self.block_size {
            return Err(Error::format(
                path,
                format!(
                    "{} tokens are too few for one window of block_size + 1 = {}",
                    tokens.len(),
                    self.block_size + 1
                ),
            ));
        }
        Ok(TextWindows::consecutive(
            tokens,
            self.block_size,
            self.vocabulary.len(),
        ))
    }
}

/// `nabla generate RUN_DIR --prompt P --tokens N`: prints the prompt, then each
/// sampled token as soon as it is drawn.
pub fn run(dir: &Path, prompt: &str, tokens: usize, sampling: Sampling) -> Result<()> {
    let lm = open_language_model(dir)?;
    if prompt.is_empty() {
        return Err(Error::Config(
            "--prompt: give at least one character to start from".into(),
        ));
    }
    let ids = lm
        .vocabulary
        .encode(prompt)
        .map_err(|why| Error::Config(format!("--prompt: {why}")))?;
    let mut out = std::io::stdout().lock();
    let mut pending = Vec::new(); // bytes of a character not yet complete
    let _ = write!(out, "{prompt}");
    generate(
        &lm.model,
        &ids,
        tokens,
        lm.block_size,
        sampling,
        true,
        |id| {
            match lm.vocabulary.tokenizer {
                Tokenizer::Char => {
                    let _ = write!(out, "{}", lm.vocabulary.decode(&[id]));
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
/// perplexity) over consecutive windows of its validation text, or of `data`.
pub fn eval(dir: &Path, data: Option<&Path>) -> Result<()> {
    let lm = open_language_model(dir)?;
    let (windows, source) = match data {
        Some(path) => (lm.windows_of(path)?, path.display().to_string()),
        None => {
            let data = &lm.config.data;
            let corpus =
                TextCorpus::load(&data.path, data.tokenizer, data.val_fraction, lm.block_size)?;
            if corpus.vocabulary != lm.vocabulary {
                return Err(Error::Config(format!(
                    "{} has changed since training: its vocabulary is not the run's vocab.json; give --data",
                    data.path.display()
                )));
            }
            let windows =
                TextWindows::consecutive(corpus.validation, lm.block_size, lm.vocabulary.len());
            (
                windows,
                format!("{} (validation part)", data.path.display()),
            )
        }
    };
    let loss = experiment::build_loss(&lm.config.train);
    let loader = crate::data::DataLoader::new(&windows, 32);
    let result = crate::train::evaluate_with(&lm.model, &loader, &loss, |_, _| {});
    outln!(
        "{source}: {} windows of {} tokens ({} predictions)",
        windows.len(),
        lm.block_size,
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
