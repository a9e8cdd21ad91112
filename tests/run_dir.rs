//! A run directory is a model that stands on its own: once trained, `predict`, `eval
//! --data` and `generate` read only the run, so they print the same after the training
//! data is moved away; `eval --data` scores every sample of the file it is given with
//! the run's preprocessing and classes; a run written before `preprocessing.json`
//! existed still opens.

mod common;

use std::path::{Path, PathBuf};

use common::{nabla, shapes_folder, temp_dir, text};
use nabla::autograd::no_grad;
use nabla::data::{DataLoader, make_batch};
use nabla::nn::Module;
use nabla::run::SavedRun;

/// Runs `nabla args…`, asserts it succeeded, and returns its standard output.
fn stdout_of(args: &[&str]) -> String {
    let out = nabla(args);
    assert!(out.status.success(), "nabla {args:?}\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn train(config: &Path, run: &Path) {
    stdout_of(&[
        "train",
        config.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
}

/// Three classes with string labels, two features: the class is the quadrant
/// band of `x + 2y` (a rule a small MLP learns).
fn write_table(path: &Path) {
    let mut csv = String::from("x,y,animal\n");
    for i in 0..300 {
        let x = ((i * 37) % 100) as f32 / 25.0 - 2.0;
        let y = ((i * 53) % 100) as f32 / 25.0 - 2.0;
        let animal = match x + 2.0 * y {
            s if s < -1.5 => "cat",
            s if s < 1.5 => "dog",
            _ => "eel",
        };
        csv.push_str(&format!("{x},{y},{animal}\n"));
    }
    std::fs::write(path, csv).unwrap();
}

const TABLE_CONFIG: &str = r#"
[data]
kind = "csv"
path = "TABLE"
label_column = "animal"
batch_size = 16

[model]
layers = [
  { type = "linear", out = 16 },
  { type = "tanh" },
  { type = "linear", out = "classes" },
]

[train]
epochs = 30
seed = 3
optimizer = { kind = "adam", lr = 0.02 }
"#;

/// Trains the table model in `dir`; returns (run, training file).
fn table_run(dir: &Path) -> (PathBuf, PathBuf) {
    let table = dir.join("animals.csv");
    write_table(&table);
    let config = dir.join("animals.toml");
    let body = TABLE_CONFIG.replace("TABLE", table.to_str().unwrap());
    std::fs::write(&config, body).unwrap();
    let run = dir.join("run");
    train(&config, &run);
    (run, table)
}

/// Rows of the training file without the class `eel`, columns reordered and one
/// extra column: what a user might score the model on.
fn write_subset(table: &Path, subset: &Path) -> usize {
    let text = std::fs::read_to_string(table).unwrap();
    let mut out = String::from("animal,note,y,x\n");
    let mut rows = 0;
    for line in text.lines().skip(1).filter(|l| !l.ends_with("eel")) {
        let fields: Vec<&str> = line.split(',').collect();
        out.push_str(&format!(
            "{},n{rows},{},{}\n",
            fields[2], fields[1], fields[0]
        ));
        rows += 1;
    }
    std::fs::write(subset, out).unwrap();
    rows
}

/// The top class of each `predict` line (`FILE row N: dog 93.1%, …`).
fn predicted_classes(printed: &str) -> Vec<String> {
    printed
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|ranked| ranked.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn a_table_model_is_used_without_its_training_data() {
    let dir = temp_dir("run-dir-table");
    let (run, table) = table_run(&dir);
    let subset = dir.join("no-eels.csv");
    let rows = write_subset(&table, &subset);
    let (run_arg, subset_arg) = (run.to_str().unwrap(), subset.to_str().unwrap());
    let predicted = stdout_of(&["predict", run_arg, subset_arg, "--top", "3"]);
    let evaluated = stdout_of(&["eval", run_arg, "--data", subset_arg]);

    std::fs::rename(&table, dir.join("moved.csv")).unwrap();
    assert_eq!(
        stdout_of(&["predict", run_arg, subset_arg, "--top", "3"]),
        predicted
    );
    assert_eq!(
        stdout_of(&["eval", run_arg, "--data", subset_arg]),
        evaluated
    );
    // without --data the test split is gone with the data: the error says what to do
    let out = nabla(&["eval", run_arg]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--data FILE"), "{}", text(&out));

    // every row is scored, with the run's class numbering: the accuracy is that of
    // predict's top classes against the labels, over all rows
    let labels: Vec<String> = std::fs::read_to_string(&subset)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let classes = predicted_classes(&predicted);
    assert_eq!(classes.len(), rows);
    let correct = classes.iter().zip(&labels).filter(|(p, l)| p == l).count();
    assert!(
        evaluated.contains(&format!("test samples {rows} ")),
        "{evaluated}"
    );
    let accuracy = format!("accuracy {:.2}%", 100.0 * correct as f64 / rows as f64);
    assert!(evaluated.contains(&accuracy), "{accuracy}\n{evaluated}");
    assert!(
        correct as f64 > 0.8 * rows as f64,
        "the model learnt the rule: {correct}/{rows}"
    );
}

/// In the library: `labelled_data` gives each row's features as `inputs` does, and the
/// labels by the run's class names (an absent class shifts nothing).
#[test]
fn labelled_rows_and_inputs_agree_row_by_row() {
    let dir = temp_dir("run-dir-rows");
    let (run, table) = table_run(&dir);
    let subset = dir.join("no-eels.csv");
    let rows = write_subset(&table, &subset);
    let saved = SavedRun::open(&run).unwrap();
    assert!(saved.notes.is_empty(), "{:?}", saved.notes);
    let labelled = saved.labelled_data(&subset).unwrap();
    let (names, inputs) = saved.inputs(&subset, false).unwrap();
    assert_eq!((labelled.len(), names.len()), (rows, rows));
    let batch = make_batch(labelled.as_ref(), &(0..rows).collect::<Vec<_>>());
    assert_eq!(*batch.inputs.data(), *inputs.data());
    let names = &saved.preprocessing.class_names;
    assert_eq!(names, &["cat", "dog", "eel"]);
    let text = std::fs::read_to_string(&subset).unwrap();
    for (label, line) in batch.labels.iter().zip(text.lines().skip(1)) {
        assert!(line.starts_with(&format!("{},", names[*label])), "{line}");
    }
    // a label the model never saw is an error naming it, the line and the file
    let strange = dir.join("strange.csv");
    std::fs::write(&strange, "x,y,animal\n0,0,dog\n1,1,yak\n").unwrap();
    let error = saved.labelled_data(&strange).err().unwrap().to_string();
    assert!(
        error.contains("strange.csv") && error.contains("line 3") && error.contains("`yak`"),
        "{error}"
    );
    // and skipping is for characters of a text, not for classes
    let skip = nabla::data::text::Unknown::Skip;
    let error = saved
        .labelled_data_with(&strange, skip)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("for text models"), "{error}");
    // a missing feature column is named
    std::fs::write(&strange, "x,animal\n0,dog\n").unwrap();
    let error = saved.inputs(&strange, false).err().unwrap().to_string();
    assert!(error.contains("feature column `y`"), "{error}");
}

/// A `preprocessing.json` that does not hold together (edited by hand, cut short, or
/// from a newer nabla) is an error naming the file and what is wrong, never a panic.
#[test]
fn a_broken_preprocessing_json_is_a_clear_error() {
    let dir = temp_dir("run-dir-broken");
    let (run, _) = table_run(&dir);
    let path = run.join("preprocessing.json");
    let good = std::fs::read_to_string(&path).unwrap();
    for (broken, expected) in [
        (
            good.replace("\"x\",", ""),
            "1 feature columns for an input of 2 values",
        ),
        (
            good.replacen("\"format\": 1", "\"format\": 99", 1),
            "format 99",
        ),
        (
            good[..good.len() / 2].to_string(),
            "not the preprocessing written by nabla",
        ),
        (
            good.replace("\"kind\": \"table\"", "\"kind\": \"sound\""),
            "unknown variant `sound`",
        ),
    ] {
        std::fs::write(&path, &broken).unwrap();
        let error = SavedRun::open(&run).err().expect("refused").to_string();
        assert!(
            error.contains("preprocessing.json") && error.contains(expected),
            "expected `{expected}` in: {error}"
        );
    }
}

#[test]
fn a_run_without_preprocessing_json_falls_back_to_its_data_with_a_note() {
    let dir = temp_dir("run-dir-old");
    let (run, table) = table_run(&dir);
    let subset = dir.join("no-eels.csv");
    write_subset(&table, &subset);
    let (run_arg, subset_arg) = (run.to_str().unwrap(), subset.to_str().unwrap());
    let predicted = stdout_of(&["predict", run_arg, subset_arg]);
    std::fs::remove_file(run.join("preprocessing.json")).unwrap();
    let out = nabla(&["predict", run_arg, subset_arg]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), predicted);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("note:") && said.contains("preprocessing.json"),
        "{said}"
    );
}

const SHAPES_CONFIG: &str = r#"
[data]
kind = "image_folder"
path = "SHAPES"
batch_size = 8

[model]
layers = [
  { type = "conv2d", out_channels = 4, kernel = 3, padding = 1 },
  { type = "relu" },
  { type = "global_avg_pool" },
  { type = "linear", out = "classes" },
]

[train]
epochs = 15
seed = 1
optimizer = { kind = "adam", lr = 0.05 }
"#;

#[test]
fn an_image_model_is_used_without_its_training_data() {
    let dir = temp_dir("run-dir-images");
    let shapes = dir.join("shapes");
    let sample = shapes_folder(&shapes);
    let config = dir.join("shapes.toml");
    std::fs::write(
        &config,
        SHAPES_CONFIG.replace("SHAPES", shapes.to_str().unwrap()),
    )
    .unwrap();
    let run = dir.join("run");
    train(&config, &run);
    // a copy of the pictures to score, away from the training folder
    let copy = dir.join("new-pictures");
    for class in ["left", "top"] {
        std::fs::create_dir_all(copy.join(class)).unwrap();
        for entry in std::fs::read_dir(shapes.join("test").join(class)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, copy.join(class).join(path.file_name().unwrap())).unwrap();
        }
    }
    let image = dir.join("one.png");
    std::fs::copy(&sample, &image).unwrap();
    let (run_arg, copy_arg, image_arg) = (
        run.to_str().unwrap(),
        copy.to_str().unwrap(),
        image.to_str().unwrap(),
    );
    let predicted = stdout_of(&["predict", run_arg, image_arg]);
    let evaluated = stdout_of(&["eval", run_arg, "--data", copy_arg]);
    assert!(predicted.contains(": top "), "{predicted}");
    assert!(evaluated.contains("test samples 8 "), "{evaluated}");

    std::fs::rename(&shapes, dir.join("moved")).unwrap();
    assert_eq!(stdout_of(&["predict", run_arg, image_arg]), predicted);
    assert_eq!(stdout_of(&["eval", run_arg, "--data", copy_arg]), evaluated);
    // a class folder the model never saw is named
    std::fs::create_dir_all(copy.join("round")).unwrap();
    std::fs::copy(&image, copy.join("round/a.png")).unwrap();
    let out = nabla(&["eval", run_arg, "--data", copy_arg]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("round") && text(&out).contains("not trained on"),
        "{}",
        text(&out)
    );
}

const SMALL_GPT: &str = r#"
[data]
kind = "text"
path = "TEXT"
block_size = 16
batch_size = 8
val_fraction = 0.1

[model]
layers = [
  { type = "embedding", dim = 16, init = "gpt" },
  { type = "positional_embedding", init = "gpt" },
  { type = "transformer_block", heads = 2 },
  { type = "layer_norm" },
  { type = "linear", out = "vocab", bias = false, init = "gpt" },
]

[train]
max_steps = 40
eval_every = 20
optimizer = { kind = "adamw", lr = 3e-3 }
"#;

#[test]
fn a_text_model_is_used_without_its_training_data() {
    let dir = temp_dir("run-dir-text");
    let corpus = dir.join("fox.txt");
    std::fs::write(
        &corpus,
        "the quick brown fox jumps over the lazy dog.\n".repeat(60),
    )
    .unwrap();
    let other = dir.join("dog.txt");
    std::fs::write(
        &other,
        "the lazy dog jumps over the quick brown fox.\n".repeat(4),
    )
    .unwrap();
    let config = dir.join("gpt.toml");
    std::fs::write(&config, SMALL_GPT.replace("TEXT", corpus.to_str().unwrap())).unwrap();
    let run = dir.join("run");
    train(&config, &run);
    let (run_arg, other_arg) = (run.to_str().unwrap(), other.to_str().unwrap());
    let generate = [
        "generate", run_arg, "--prompt", "the ", "--tokens", "40", "--seed", "7",
    ];
    let written = stdout_of(&generate);
    let evaluated = stdout_of(&["eval", run_arg, "--data", other_arg]);
    assert!(evaluated.contains("perplexity"), "{evaluated}");

    std::fs::rename(&corpus, dir.join("moved.txt")).unwrap();
    assert_eq!(stdout_of(&generate), written);
    assert_eq!(
        stdout_of(&["eval", run_arg, "--data", other_arg]),
        evaluated
    );
}

/// The same numbers through the library as through `eval --data`: the run opened
/// by [`SavedRun`] scores a file as `nabla eval` does.
#[test]
fn the_library_scores_a_file_as_eval_does() {
    let dir = temp_dir("run-dir-library");
    let (run, table) = table_run(&dir);
    let saved = SavedRun::open(&run).unwrap();
    let data = saved.labelled_data(&table).unwrap();
    let _no_graph = no_grad();
    let loader = DataLoader::new(data.as_ref(), 1000);
    let mut correct = 0;
    for batch in loader.epoch(0) {
        let logits = saved.model.forward(&batch.inputs);
        correct += nabla::metrics::correct_count(&logits, &batch.labels);
    }
    let evaluated = stdout_of(&[
        "eval",
        run.to_str().unwrap(),
        "--data",
        table.to_str().unwrap(),
    ]);
    let accuracy = format!(
        "accuracy {:.2}%",
        100.0 * correct as f64 / data.len() as f64
    );
    assert!(evaluated.contains(&accuracy), "{accuracy}\n{evaluated}");
}

/// `nabla dashboard RUN` draws from the run alone: after the data is moved away, the
/// saved run still shows its network, its points and decision regions — the same
/// points the live page drew (`samples.safetensors`).
#[test]
fn a_saved_run_shows_its_pictures_without_its_data() {
    use nabla::dashboard::disk;
    use nabla::dashboard::samples::SavedSamples;
    let dir = temp_dir("run-dir-dashboard");
    let (run, table) = table_run(&dir);
    std::fs::rename(&table, dir.join("moved.csv")).unwrap();
    let saved = SavedSamples::load(&run)
        .unwrap()
        .expect("the run saved its samples");
    assert_eq!(saved.class_names, ["cat", "dog", "eel"]);
    assert_eq!(
        (saved.train.shape.as_slice(), saved.image_shape),
        (&[2][..], None)
    );
    // the table has 300 rows, a fifth of them held out: every point is kept
    assert_eq!(saved.train.labels.len() + saved.test.labels.len(), 300);

    let state = disk::open(&run, "run").unwrap();
    disk::watch(state.clone(), run.clone());
    let started = std::time::Instant::now();
    loop {
        {
            let state = state.lock().unwrap();
            if let (Some(network), false) = (&state.network, state.regions.is_empty()) {
                let plane = state.plane.as_ref().expect("the points are drawn");
                assert_eq!(plane.xy.len(), 300);
                assert_eq!(network.input_shape, [2]);
                assert_eq!(network.layers.len(), 3);
                break;
            }
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the saved run's pictures never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
