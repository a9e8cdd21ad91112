//! Text for language models: a file turned into token ids (one per character or
//! per byte), split into training text and the held-out tail, and cut into
//! windows: the inputs are `block_size` tokens, the targets the same tokens one
//! position later (each position predicts the next token).

use std::path::Path;

use rand::RngExt;

use super::Dataset;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// How text becomes tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tokenizer {
    /// One token per Unicode character of a UTF-8 file; the vocabulary is the
    /// sorted set of characters of the file.
    Char,
    /// One token per byte (256 tokens), for any file.
    Byte,
}

/// The tokens a model knows and their ids.
///
/// ```
/// use nabla::data::text::Vocabulary;
/// let vocabulary = Vocabulary::of_chars("hello");
/// assert_eq!(vocabulary.len(), 4); // e h l o
/// assert_eq!(vocabulary.encode("hole").unwrap(), vec![1, 3, 2, 0]);
/// assert_eq!(vocabulary.decode(&[1, 0, 2, 2, 3]), "hello");
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Vocabulary {
    /// How text is split.
    pub tokenizer: Tokenizer,
    /// For `Char`: the characters, id = position. Empty for `Byte`.
    #[serde(default)]
    pub chars: Vec<char>,
}

impl Vocabulary {
    /// The sorted distinct characters of `text`.
    pub fn of_chars(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Vocabulary {
            tokenizer: Tokenizer::Char,
            chars,
        }
    }

    /// All 256 bytes.
    pub fn bytes() -> Self {
        Vocabulary {
            tokenizer: Tokenizer::Byte,
            chars: Vec::new(),
        }
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        match self.tokenizer {
            Tokenizer::Char => self.chars.len(),
            Tokenizer::Byte => 256,
        }
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of `text`, or an error naming the first character the vocabulary
    /// lacks and where it is.
    pub fn encode(&self, text: &str) -> std::result::Result<Vec<usize>, String> {
        match self.tokenizer {
            Tokenizer::Byte => Ok(text.bytes().map(usize::from).collect()),
            Tokenizer::Char => text
                .chars()
                .enumerate()
                .map(|(at, c)| {
                    self.chars.binary_search(&c).map_err(|_| {
                        format!(
                            "character {c:?} (at character {at}) is not in the model's vocabulary of {} characters",
                            self.chars.len()
                        )
                    })
                })
                .collect(),
        }
    }

    /// The text of `ids` (bytes that are not UTF-8 show as U+FFFD).
    pub fn decode(&self, ids: &[usize]) -> String {
        match self.tokenizer {
            Tokenizer::Char => ids.iter().map(|&id| self.chars[id]).collect(),
            Tokenizer::Byte => {
                let bytes: Vec<u8> = ids.iter().map(|&id| id as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }
}

/// A text file as token ids, split into training text and validation tail.
pub struct TextCorpus {
    /// The vocabulary (built from the whole file for `Char`).
    pub vocabulary: Vocabulary,
    /// The first `1 − val_fraction` of the file's tokens.
    pub train: Vec<u32>,
    /// The last `val_fraction` of them.
    pub validation: Vec<u32>,
}

impl TextCorpus {
    /// Reads `path` with `tokenizer` and holds out the last `val_fraction` of its
    /// tokens. Errors name the file and what is wrong: empty, not UTF-8 (for
    /// `Char`, with the byte offset), or a split too short for one window of
    /// `block_size` tokens plus its target.
    pub fn load(
        path: &Path,
        tokenizer: Tokenizer,
        val_fraction: f64,
        block_size: usize,
    ) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, tokenizer, val_fraction, block_size).map_err(|message| {
            Error::Format {
                path: path.to_path_buf(),
                message,
            }
        })
    }

    /// [`TextCorpus::load`] on bytes in memory; the error says what is wrong.
    pub fn from_bytes(
        bytes: &[u8],
        tokenizer: Tokenizer,
        val_fraction: f64,
        block_size: usize,
    ) -> std::result::Result<Self, String> {
        if bytes.is_empty() {
            return Err("the file is empty: a language model needs text to learn from".into());
        }
        if !(0.0..1.0).contains(&val_fraction) {
            return Err(format!("val_fraction {val_fraction} is not in [0, 1)"));
        }
        let (vocabulary, ids): (Vocabulary, Vec<u32>) = match tokenizer {
            Tokenizer::Byte => (
                Vocabulary::bytes(),
                bytes.iter().map(|&b| b as u32).collect(),
            ),
            Tokenizer::Char => {
                let text = std::str::from_utf8(bytes).map_err(|e| {
                    format!(
                        "not valid UTF-8 at byte {} (tokenizer = \"char\" reads UTF-8; use tokenizer = \"byte\" for other files)",
                        e.valid_up_to()
                    )
                })?;
                let vocabulary = Vocabulary::of_chars(text);
                let ids = vocabulary
                    .encode(text)
                    .expect("every character is in its own vocabulary");
                (vocabulary, ids.into_iter().map(|id| id as u32).collect())
            }
        };
        let held_out = (ids.len() as f64 * val_fraction).round() as usize;
        let split = ids.len() - held_out;
        let needed = block_size + 1;
        if split < needed || (held_out > 0 && held_out < needed) {
            return Err(format!(
                "{} tokens ({split} for training, {held_out} held out) are too few: each part needs at least block_size + 1 = {needed}",
                ids.len()
            ));
        }
        let (train, validation) = ids.split_at(split);
        Ok(TextCorpus {
            vocabulary,
            train: train.to_vec(),
            validation: validation.to_vec(),
        })
    }
}

/// Windows of a token sequence as a [`Dataset`]: sample i is the window starting
/// at its i-th start, its features the window's `block_size` token ids, its labels
/// the next token of every position. Training text offers every start (drawn at
/// random per step, see [`crate::data::DataLoader::samples_per_epoch`]);
/// validation text is cut into consecutive windows, so evaluation covers all of it
/// once.
pub struct TextWindows {
    tokens: Vec<u32>,
    block_size: usize,
    stride: usize,
    vocabulary_len: usize,
    shape: [usize; 1],
}

impl TextWindows {
    /// Every window of `tokens` (starts 0, 1, 2, …).
    pub fn every(tokens: Vec<u32>, block_size: usize, vocabulary_len: usize) -> Self {
        Self::strided(tokens, block_size, 1, vocabulary_len)
    }

    /// Consecutive windows, each starting where the previous one ended.
    pub fn consecutive(tokens: Vec<u32>, block_size: usize, vocabulary_len: usize) -> Self {
        Self::strided(tokens, block_size, block_size, vocabulary_len)
    }

    fn strided(tokens: Vec<u32>, block_size: usize, stride: usize, vocabulary_len: usize) -> Self {
        TextWindows {
            tokens,
            block_size,
            stride,
            vocabulary_len,
            shape: [block_size],
        }
    }

    /// The first `windows` windows only (quick runs).
    pub fn truncate(mut self, windows: usize) -> Self {
        let keep = windows.min(self.len());
        if keep > 0 {
            self.tokens
                .truncate((keep - 1) * self.stride + self.block_size + 1);
        }
        self
    }

    /// The tokens.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    fn window(&self, index: usize) -> &[u32] {
        let start = index * self.stride;
        &self.tokens[start..start + self.block_size + 1]
    }
}

impl Dataset for TextWindows {
    fn len(&self) -> usize {
        // a window needs block_size tokens and one more for its last target
        (self.tokens.len().saturating_sub(self.block_size + 1)) / self.stride
            + usize::from(self.tokens.len() > self.block_size)
    }

    fn feature_shape(&self) -> &[usize] {
        &self.shape
    }

    fn num_classes(&self) -> usize {
        self.vocabulary_len
    }

    fn write_features(&self, index: usize, out: &mut [f32]) {
        let window = self.window(index);
        for (o, &token) in out.iter_mut().zip(&window[..self.block_size]) {
            *o = token as f32;
        }
    }

    fn label(&self, index: usize) -> usize {
        self.window(index)[self.block_size] as usize
    }

    fn labels_per_sample(&self) -> usize {
        self.block_size
    }

    fn write_labels(&self, index: usize, out: &mut Vec<usize>) {
        out.extend(self.window(index)[1..].iter().map(|&t| t as usize));
    }
}

/// What to do with a character a trained model's vocabulary lacks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unknown {
    /// Stop with an error naming it, its line and column.
    #[default]
    Error,
    /// Leave it out (the text closes over it) and count it in [`Skipped`].
    Skip,
}

/// The characters left out of a text under [`Unknown::Skip`]: for each, how often
/// it was met and where first (line and column, from 1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Character → (times met, (line, column) of the first).
    pub characters: std::collections::BTreeMap<char, (usize, (usize, usize))>,
}

impl Skipped {
    /// How many characters were left out.
    pub fn count(&self) -> usize {
        self.characters.values().map(|(times, _)| times).sum()
    }
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} characters outside the model's vocabulary:",
            self.count()
        )?;
        for (c, (times, (line, column))) in &self.characters {
            write!(f, " {c:?} ×{times} (first at line {line}, column {column})")?;
        }
        Ok(())
    }
}

/// The tokens of the file at `path` in an existing vocabulary (a trained model's):
/// errors name the file and what is wrong — empty, not UTF-8, or (under
/// [`Unknown::Error`]) a character the vocabulary lacks, with its line and column.
pub fn encode_file(
    path: &Path,
    vocabulary: &Vocabulary,
    unknown: Unknown,
) -> Result<(Vec<u32>, Skipped)> {
    let fail = |message: String| Error::Format {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.is_empty() {
        return Err(fail("the file is empty".into()));
    }
    let mut skipped = Skipped::default();
    if vocabulary.tokenizer == Tokenizer::Byte {
        return Ok((bytes.iter().map(|&b| b as u32).collect(), skipped));
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        fail(format!(
            "not valid UTF-8 at byte {} (the model reads characters of UTF-8 text)",
            e.valid_up_to()
        ))
    })?;
    let mut ids = Vec::with_capacity(text.len());
    for (number, line) in text.split_inclusive('\n').enumerate() {
        for (column, c) in line.chars().enumerate() {
            let at = (number + 1, column + 1);
            match (vocabulary.chars.binary_search(&c), unknown) {
                (Ok(id), _) => ids.push(id as u32),
                (Err(_), Unknown::Skip) => skipped.characters.entry(c).or_insert((0, at)).0 += 1,
                (Err(_), Unknown::Error) => {
                    return Err(fail(format!(
                        "line {}, column {}: character {c:?} is not in the model's vocabulary of {} characters (`--unknown skip` leaves such characters out)",
                        at.0,
                        at.1,
                        vocabulary.chars.len()
                    )));
                }
            }
        }
    }
    Ok((ids, skipped))
}

/// A batch of windows: inputs `[windows, block_size]` (token ids as floats, what
/// an embedding takes) and the targets, the next token of every position, row by row.
pub struct Windows {
    /// `[windows, block_size]`.
    pub inputs: Tensor<f32>,
    /// `windows · block_size` next-token ids.
    pub targets: Vec<usize>,
}

/// The windows of `tokens` starting at `offsets`: `tokens[o..o + block_size]`
/// and, as targets, `tokens[o + 1..o + block_size + 1]`.
pub fn windows(tokens: &[u32], offsets: &[usize], block_size: usize) -> Windows {
    let mut inputs = Vec::with_capacity(offsets.len() * block_size);
    let mut targets = Vec::with_capacity(offsets.len() * block_size);
    for &offset in offsets {
        let window = &tokens[offset..offset + block_size + 1];
        inputs.extend(window[..block_size].iter().map(|&t| t as f32));
        targets.extend(window[1..].iter().map(|&t| t as usize));
    }
    Windows {
        inputs: Tensor::from_vec(inputs, &[offsets.len(), block_size]),
        targets,
    }
}

/// `count` random window starts in `tokens_len` tokens for training step `step`,
/// drawn from a generator seeded by (`seed`, `step`): any step's batch can be made
/// again, so a resumed run sees the windows it would have seen.
pub fn random_offsets(
    seed: u64,
    step: usize,
    count: usize,
    tokens_len: usize,
    block_size: usize,
) -> Vec<usize> {
    let mut rng = crate::rng(seed ^ (step as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let starts = tokens_len - block_size; // the last start leaves room for one target
    (0..count).map(|_| rng.random_range(0..starts)).collect()
}

/// `count` evenly spaced window starts over `tokens_len` tokens, the first at 0
/// and the last at the end: `i · (len − block_size − 1) / count`, as the reference
/// workload picks its validation windows.
pub fn spaced_offsets(count: usize, tokens_len: usize, block_size: usize) -> Vec<usize> {
    let room = tokens_len - block_size - 1;
    (0..count).map(|i| i * room / count).collect()
}
