//! Language models end to end: text as windows and next-token labels, training a
//! small GPT from a config by steps, generation with and without the KV cache,
//! evaluation on another file, and the errors bad text gets.

mod common;

use common::{nabla, temp_dir, text};
use nabla::Tensor;
use nabla::data::text::{TextCorpus, TextWindows, Tokenizer, Vocabulary};
use nabla::data::{DataLoader, Dataset, make_batch};
use nabla::experiment::Config;
use nabla::generate::{Sampling, generate, next_token_logits};
use nabla::nn::zoo::{GptShape, gpt};
use nabla::nn::{KvCache, Module};

#[test]
fn bad_text_gets_clear_errors() {
    let load = |bytes: &[u8], tokenizer| {
        TextCorpus::from_bytes(bytes, tokenizer, 0.1, 8)
            .err()
            .unwrap_or_default()
    };
    assert!(load(b"", Tokenizer::Char).contains("empty"));
    let invalid = load(b"abcdefghij\xff\xfeklmnopqrstuvwxyz", Tokenizer::Char);
    assert!(invalid.contains("not valid UTF-8 at byte 10"), "{invalid}");
    assert!(invalid.contains("tokenizer = \"byte\""), "{invalid}");
    let short = load(b"too short", Tokenizer::Char);
    assert!(short.contains("block_size + 1 = 9"), "{short}");
    // bytes are fine for the byte tokenizer
    let corpus = TextCorpus::from_bytes(&[0xff; 200], Tokenizer::Byte, 0.1, 8).unwrap();
    assert_eq!((corpus.train.len(), corpus.validation.len()), (180, 20));
    assert_eq!(corpus.vocabulary.len(), 256);
}

/// Window i is tokens i..i+T; its labels are tokens i+1..i+T+1 (each position's
/// next token); consecutive windows tile the text.
#[test]
fn windows_and_next_token_labels() {
    let tokens: Vec<u32> = (0..20).collect();
    let every = TextWindows::every(tokens.clone(), 4, 20);
    assert_eq!(every.len(), 16); // starts 0..=15: the last needs tokens 15..=19
    let batch = make_batch(&every, &[0, 15]);
    assert_eq!(batch.inputs.shape(), &[2, 4]);
    assert_eq!(batch.inputs.to_vec(), [0., 1., 2., 3., 15., 16., 17., 18.]);
    assert_eq!(batch.labels, [1, 2, 3, 4, 16, 17, 18, 19]);
    let consecutive = TextWindows::consecutive(tokens, 4, 20);
    assert_eq!(consecutive.len(), 4); // starts 0, 4, 8, 12 (16 would need token 20)
    assert_eq!(make_batch(&consecutive, &[3]).labels, [13, 14, 15, 16]);

    // random windows per step: the same for the same seed and epoch, new each epoch
    let loader = DataLoader::new(&every, 4).shuffle(7).samples_per_epoch(12);
    assert_eq!(loader.num_batches(), 3);
    assert_eq!(loader.order(2), loader.order(2));
    assert_ne!(loader.order(2), loader.order(3));
    assert!(loader.order(0).iter().all(|&i| i < 16));
}

#[test]
fn vocabulary_round_trip_and_unknown_characters() {
    let vocabulary = Vocabulary::of_chars("ROMEO: but soft!\n");
    let ids = vocabulary.encode("soft ROMEO").unwrap();
    assert_eq!(vocabulary.decode(&ids), "soft ROMEO");
    let error = vocabulary.encode("JULIET").unwrap_err();
    assert!(
        error.contains("'J'") && error.contains("at character 0"),
        "{error}"
    );
}

/// `max_steps` and `eval_every` go together and must divide; text needs a block size.
#[test]
fn step_settings_are_checked() {
    let config = |data: &str, train: &str| {
        let text = format!(
            "[data]\n{data}\n[model]\nlayers = [{{ type = \"embedding\", dim = 8 }}, {{ type = \"linear\", out = \"vocab\" }}]\n[train]\n{train}\noptimizer = {{ kind = \"adam\", lr = 0.01 }}\n"
        );
        Config::parse(&text, "lm.toml".as_ref())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let text = "kind = \"text\"\npath = \"data/shakespeare.txt\"\nblock_size = 16";
    assert_eq!(config(text, "max_steps = 100\neval_every = 25"), "");
    assert!(config(text, "epochs = 2\nmax_steps = 100").contains("not both"));
    assert!(config(text, "max_steps = 100\neval_every = 30").contains("must divide"));
    assert!(config(text, "").contains("max_steps"));
    let no_block = "kind = \"text\"\npath = \"data/shakespeare.txt\"";
    assert!(config(no_block, "max_steps = 10").contains("block_size"));
}

const SMALL_GPT: &str = r#"
[data]
kind = "text"
path = "TEXT"
block_size = 32
batch_size = 16
val_fraction = 0.1

[model]
layers = [
  { type = "embedding", dim = 32, init = "gpt" },
  { type = "positional_embedding", init = "gpt" },
  { type = "transformer_block", heads = 2 },
  { type = "transformer_block", heads = 2 },
  { type = "layer_norm" },
  { type = "linear", out = "vocab", bias = false, init = "gpt" },
]

[train]
max_steps = 150
eval_every = 50
optimizer = { kind = "adamw", lr = 3e-3, weight_decay = 0.1, decay_matrices_only = true }
clip_grad_norm = 1.0
"#;

/// A small GPT learns a repetitive text from a config (the validation loss falls
/// below 0.5 nats per character from ln(vocabulary) ≈ 3.3), then writes it back
/// and is evaluated on another file; bad prompts and files get clear errors.
#[test]
fn train_a_small_gpt_then_generate_and_evaluate() {
    let dir = temp_dir("small-gpt");
    let line = "the quick brown fox jumps over the lazy dog.\n";
    let corpus = dir.join("fox.txt");
    std::fs::write(&corpus, line.repeat(250)).unwrap();
    let config = dir.join("gpt.toml");
    let body = SMALL_GPT.replace("TEXT", &corpus.to_string_lossy());
    std::fs::write(&config, body).unwrap();
    let run = dir.join("run");
    let out = nabla(&[
        "train",
        &config.to_string_lossy(),
        "--out",
        &run.to_string_lossy(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("step 150/150"), "{}", text(&out));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let losses: Vec<f64> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["test_loss"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(losses.len(), 3, "one evaluation every 50 steps");
    let steps: Vec<u64> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, [50, 100, 150]);
    // accuracy counts characters predicted right among characters seen
    for line in metrics.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let accuracy = value["train_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy), "{line}");
    }
    assert!(
        losses[2] < losses[0] && losses[2] < 0.5,
        "validation losses {losses:?}"
    );
    assert!(run.join("vocab.json").is_file());

    let run_dir = run.to_string_lossy().into_owned();
    let written = nabla(&[
        "generate",
        &run_dir,
        "--prompt",
        "the quick",
        "--tokens",
        "40",
        "--temperature",
        "0",
    ]);
    assert!(written.status.success(), "{}", text(&written));
    let written = String::from_utf8_lossy(&written.stdout).into_owned();
    assert!(
        written.starts_with("the quick brown fox jumps"),
        "{written}"
    );
    // from the command line: --top-k 1 leaves only the likeliest token, so even a
    // wild temperature writes the greedy text; a seed gives the same text again
    let generate = |options: &[&str]| {
        let args = [
            &[
                "generate",
                run_dir.as_str(),
                "--prompt",
                "the quick",
                "--tokens",
                "40",
            ],
            options,
        ]
        .concat();
        let out = nabla(&args);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(generate(&["--temperature", "3", "--top-k", "1"]), written);
    let wild = |seed: &str| generate(&["--temperature", "3", "--seed", seed]);
    assert_eq!(wild("5"), wild("5"));
    assert_ne!(wild("5"), wild("6"), "another seed, another text");

    let other = dir.join("other.txt");
    std::fs::write(
        &other,
        "the lazy dog jumps over the quick brown fox.\n".repeat(4),
    )
    .unwrap();
    let evaluated = nabla(&["eval", &run_dir, "--data", &other.to_string_lossy()]);
    assert!(evaluated.status.success(), "{}", text(&evaluated));
    assert!(
        text(&evaluated).contains("nats/token"),
        "{}",
        text(&evaluated)
    );

    let unknown = dir.join("unknown.txt");
    std::fs::write(&unknown, format!("{}\nthe Quick", line.repeat(3))).unwrap();
    let refused = nabla(&["eval", &run_dir, "--data", &unknown.to_string_lossy()]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("line 5, column 5: character 'Q'"),
        "{}",
        text(&refused)
    );
    // --unknown skip: scored as the text with those characters taken out
    let stray = dir.join("stray.txt");
    std::fs::write(&stray, format!("{}\nthe Quick{{{{", line.repeat(3))).unwrap();
    let cleaned = dir.join("cleaned.txt");
    std::fs::write(&cleaned, format!("{}\nthe uick", line.repeat(3))).unwrap();
    let skipping = nabla(&[
        "eval",
        &run_dir,
        "--data",
        &stray.to_string_lossy(),
        "--unknown",
        "skip",
    ]);
    assert!(skipping.status.success(), "{}", text(&skipping));
    assert!(
        text(&skipping).contains(
            "skipped 3 characters outside the model's vocabulary: 'Q' ×1 (first at line 5, column 5) '{' ×2 (first at line 5, column 10)"
        ),
        "{}",
        text(&skipping)
    );
    let clean = nabla(&["eval", &run_dir, "--data", &cleaned.to_string_lossy()]);
    let scores = |output: &std::process::Output| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find(|line| line.starts_with("loss "))
            .map(str::to_owned)
    };
    assert!(scores(&clean).is_some(), "{}", text(&clean));
    assert_eq!(scores(&skipping), scores(&clean));
    let bad_prompt = nabla(&["generate", &run_dir, "--prompt", "THE"]);
    assert!(!bad_prompt.status.success());
    assert!(
        text(&bad_prompt).contains("--prompt: character 'T'"),
        "{}",
        text(&bad_prompt)
    );
    let predicted = nabla(&["predict", &run_dir, &other.to_string_lossy()]);
    assert!(!predicted.status.success());
    assert!(
        text(&predicted).contains("is a language model"),
        "{}",
        text(&predicted)
    );
    let explained = nabla(&["explain", &config.to_string_lossy()]);
    assert!(explained.status.success(), "{}", text(&explained));
    assert!(
        text(&explained).contains("mean over 32 positions"),
        "{}",
        text(&explained)
    );
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let refused = nabla(&["eval", &run_dir, "--data", &empty.to_string_lossy()]);
    // the path itself says "empty": the message must say what is wrong with the file
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("empty.txt: the file is empty"),
        "{}",
        text(&refused)
    );
}

fn small_model() -> nabla::nn::Sequential {
    let shape = GptShape {
        vocab: 11,
        block_size: 16,
        dim: 16,
        heads: 2,
        layers: 2,
        mlp_ratio: 4,
    };
    gpt(shape, &mut nabla::rng(9))
}

/// Generating with the KV cache draws the same tokens as recomputing the whole
/// window for every token — across several restarts of the 16-token window — and
/// each cached step's logits equal a full forward of the same context to 1e-5.
#[test]
fn kv_cache_generation_equals_recomputing() {
    let model = small_model();
    let sampling = Sampling {
        temperature: 1.0,
        top_k: None,
        seed: 3,
    };
    let cached = generate(&model, &[1, 2, 3], 100, 16, sampling, true, |_| {});
    let recomputed = generate(&model, &[1, 2, 3], 100, 16, sampling, false, |_| {});
    assert_eq!(cached, recomputed);

    let ids: Vec<usize> = (0..16).map(|i| (i * 5 + 1) % 11).collect();
    let mut cache = KvCache::new();
    for t in 0..ids.len() {
        let input = Tensor::from_vec(vec![ids[t] as f32], &[1, 1]);
        let step = model.forward_cached(&input, &mut cache).to_vec();
        cache.advance(1);
        let full = next_token_logits(&model, &ids[..=t]);
        for (a, b) in step.iter().zip(&full) {
            assert!((a - b).abs() < 1e-5, "position {t}: cached {a} vs full {b}");
        }
    }
}

/// A text run stopped by Ctrl-C after its first period and resumed ends with the
/// weights of a run never stopped: the random windows of every step come back.
#[test]
fn interrupted_text_run_resumes_exactly() {
    let dir = temp_dir("gpt-resume");
    let corpus = dir.join("fox.txt");
    std::fs::write(
        &corpus,
        "the quick brown fox jumps over the lazy dog.\n".repeat(100),
    )
    .unwrap();
    let body = SMALL_GPT
        .replace("TEXT", &corpus.to_string_lossy())
        .replace("max_steps = 150", "max_steps = 300");
    let config = dir.join("gpt.toml");
    std::fs::write(&config, body).unwrap();
    let config = config.to_string_lossy().into_owned();
    let straight = dir.join("straight");
    assert!(
        nabla(&["train", &config, "--out", &straight.to_string_lossy()])
            .status
            .success()
    );

    let interrupted = dir.join("interrupted");
    let metrics = interrupted.join("metrics.jsonl");
    common::interrupt_after_first_line(
        &["train", &config, "--out", &interrupted.to_string_lossy()],
        &metrics,
        6,
    );
    let out = nabla(&["train", "--resume", &interrupted.to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out));
    let a = nabla::checkpoint::load_tensors::<f32>(straight.join("model.safetensors")).unwrap();
    let b = nabla::checkpoint::load_tensors::<f32>(interrupted.join("model.safetensors")).unwrap();
    for ((name, x), (_, y)) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(x.to_vec(), y.to_vec(), "{name} differs after resuming");
    }
    let periods = std::fs::read_to_string(&metrics).unwrap().lines().count();
    assert_eq!(periods, 6, "one metrics line per 50 steps");
}
