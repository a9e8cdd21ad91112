//! Training end to end: a small MNIST run learns, checkpoints round-trip, and a
//! resumed run ends with exactly the weights of an uninterrupted one.

mod common;

use std::collections::BTreeMap;

use common::temp_dir;
use nabla::checkpoint::{load_model, load_optimizer, save_model, save_optimizer, save_tensors};
use nabla::data::{DataLoader, ImageDataset, load_mnist};
use nabla::loss::{CrossEntropyOptions, cross_entropy};
use nabla::nn::{BatchNorm1d, Linear, Module, Relu, Sequential};
use nabla::optim::{Adam, Optimizer, Sgd};
use nabla::train::{Control, FitOptions, fit};
use nabla::{Error, Tensor};

fn mnist(train_count: usize, test_count: usize) -> (ImageDataset, ImageDataset) {
    let (train, test) = load_mnist(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))
        .expect("MNIST is committed in data/mnist");
    (
        train.truncate(train_count).flattened(),
        test.truncate(test_count).flattened(),
    )
}

fn mlp(seed: u64) -> Sequential {
    let mut rng = nabla::rng(seed);
    Sequential::new()
        .layer(Linear::new(784, 64, &mut rng))
        .layer(BatchNorm1d::new(64))
        .layer(Relu)
        .layer(Linear::new(64, 10, &mut rng))
}

fn ce(logits: &Tensor, labels: &[usize]) -> Tensor {
    cross_entropy(logits, labels, &CrossEntropyOptions::default())
}

#[test]
fn mnist_subset_learns() {
    let (train, test) = mnist(6000, 1000);
    let model = mlp(0);
    let mut optimizer = Sgd::new(model.named_parameters(), 0.05).momentum(0.9);
    let train_loader = DataLoader::new(&train, 64).shuffle(0);
    let test_loader = DataLoader::new(&test, 500);
    let options = FitOptions {
        epochs: 3,
        ..Default::default()
    };
    let history = fit(
        &model,
        &mut optimizer,
        &train_loader,
        Some(&test_loader),
        &ce,
        &options,
        &mut |_| Control::Continue,
    )
    .unwrap();
    assert_eq!(history.len(), 3);
    assert!(
        history[2].train_loss < history[0].train_loss * 0.6,
        "{history:?}"
    );
    let accuracy = history[2].test_accuracy.unwrap();
    assert!(accuracy >= 0.90, "test accuracy {accuracy}");
}

#[test]
fn checkpoint_round_trip_gives_identical_outputs() {
    let dir = temp_dir("roundtrip");
    let path = dir.join("model.safetensors");
    let model = mlp(1);
    // a training-mode forward moves batch norm's running statistics off their defaults
    model.forward(&Tensor::randn(&[8, 784], 0.5, 2.0, &mut nabla::rng(2)));
    model.eval();
    let metadata = BTreeMap::from([("epoch".to_string(), "3".to_string())]);
    save_model(&path, &model, &metadata).unwrap();
    let fresh = mlp(99);
    fresh.eval();
    let x = Tensor::randn(&[4, 784], 0.0, 1.0, &mut nabla::rng(3));
    assert_ne!(fresh.forward(&x).to_vec(), model.forward(&x).to_vec());
    let loaded_metadata = load_model(&path, &fresh).unwrap();
    assert_eq!(loaded_metadata["epoch"], "3");
    assert_eq!(fresh.forward(&x).to_vec(), model.forward(&x).to_vec());
    // no temporary file is left beside the checkpoint
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["model.safetensors"]);
}

/// The same tensors and metadata give the same bytes: the metadata map is written
/// in key order, not in hash order (which changes from process to process and map
/// to map), so a checksum identifies a model.
#[test]
fn saving_twice_gives_identical_bytes_with_sorted_metadata() {
    let dir = temp_dir("bytes");
    let model = mlp(1);
    let metadata: BTreeMap<String, String> = (0..12)
        .map(|i| (format!("key{i:02}"), i.to_string()))
        .collect();
    let files: Vec<Vec<u8>> = ["a", "b"]
        .iter()
        .map(|name| {
            let path = dir.join(format!("{name}.safetensors"));
            save_model(&path, &model, &metadata).unwrap();
            std::fs::read(path).unwrap()
        })
        .collect();
    assert!(files[0] == files[1], "two saves of one model differ");
    let header = String::from_utf8_lossy(&files[0][8..512]);
    let positions: Vec<usize> = metadata
        .keys()
        .map(|k| header.find(k.as_str()).unwrap())
        .collect();
    assert!(
        positions.is_sorted(),
        "metadata keys out of order: {header}"
    );
}

#[test]
fn loading_names_the_mismatched_tensor() {
    let dir = temp_dir("mismatch");
    let path = dir.join("model.safetensors");
    save_model(&path, &mlp(1), &BTreeMap::new()).unwrap();
    let mut rng = nabla::rng(0);
    let wider = Sequential::<f32>::new()
        .layer(Linear::new(784, 32, &mut rng))
        .layer(BatchNorm1d::new(32))
        .layer(Relu)
        .layer(Linear::new(32, 10, &mut rng));
    let err = load_model(&path, &wider).unwrap_err().to_string();
    assert!(
        err.contains("tensor `0.weight`") && err.contains("[32, 784]") && err.contains("[64, 784]"),
        "{err}"
    );
    let smaller = Sequential::<f32>::new().layer(Linear::new(784, 64, &mut rng));
    let err = load_model(&path, &smaller).unwrap_err().to_string();
    assert!(
        err.contains("`1.weight`") && err.contains("`3.bias`") && err.contains("does not have"),
        "{err}"
    );
    let larger = mlp(0).layer(Relu).layer(Linear::new(10, 2, &mut rng));
    let err = load_model(&path, &larger).unwrap_err().to_string();
    assert!(
        err.contains("`5.weight`") && err.contains("missing"),
        "{err}"
    );
    // a failed load changes nothing
    let before = wider.state_dict()[0].1.to_vec();
    let _ = load_model(&path, &wider);
    assert_eq!(wider.state_dict()[0].1.to_vec(), before);
}

#[test]
fn broken_checkpoints_get_clear_errors() {
    let dir = temp_dir("broken");
    let path = dir.join("truncated.safetensors");
    save_tensors(
        &path,
        &[("w".to_string(), Tensor::<f32>::ones(&[10]))],
        &BTreeMap::new(),
    )
    .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
    let err = nabla::checkpoint::load_tensors::<f32>(&path).err().unwrap();
    assert!(matches!(err, Error::Format { .. }), "{err}");
    assert!(err.to_string().contains("truncated.safetensors"), "{err}");
    let missing = nabla::checkpoint::load_tensors::<f32>(dir.join("nope.safetensors"))
        .err()
        .unwrap();
    assert!(
        missing.to_string().contains("nope.safetensors"),
        "{missing}"
    );
}

/// Trains `epochs` (a range, so a resumed run can start past 0) with no test set.
fn train_epochs(
    model: &Sequential,
    optimizer: &mut dyn Optimizer<f32>,
    loader: &DataLoader<'_, ImageDataset>,
    epochs: std::ops::Range<usize>,
) {
    let options = FitOptions {
        start_epoch: epochs.start,
        epochs: epochs.end,
        ..Default::default()
    };
    let no_test = None::<&DataLoader<'_, ImageDataset>>;
    fit(
        model,
        optimizer,
        loader,
        no_test,
        &ce,
        &options,
        &mut |_| Control::Continue,
    )
    .unwrap();
}

/// Two epochs in one go, or one epoch, a checkpoint, a fresh process-like restart
/// from the files and one more epoch: the same weights, bit for bit.
#[test]
fn resuming_from_a_checkpoint_matches_not_stopping() {
    let (train, _) = mnist(1500, 0);
    let loader = DataLoader::new(&train, 100).shuffle(7);

    let straight = mlp(5);
    let mut optimizer = Adam::new(straight.named_parameters(), 1e-3);
    train_epochs(&straight, &mut optimizer, &loader, 0..2);

    let dir = temp_dir("resume");
    let first = mlp(5);
    let mut optimizer = Adam::new(first.named_parameters(), 1e-3);
    train_epochs(&first, &mut optimizer, &loader, 0..1);
    save_model(dir.join("model.safetensors"), &first, &BTreeMap::new()).unwrap();
    save_optimizer(
        dir.join("optimizer.safetensors"),
        &optimizer,
        &BTreeMap::new(),
    )
    .unwrap();

    let resumed = mlp(77);
    load_model(dir.join("model.safetensors"), &resumed).unwrap();
    let mut optimizer = Adam::new(resumed.named_parameters(), 1e-3);
    load_optimizer(dir.join("optimizer.safetensors"), &mut optimizer).unwrap();
    assert!(!optimizer.state().is_empty());
    train_epochs(&resumed, &mut optimizer, &loader, 1..2);

    for ((name, a), (_, b)) in straight.state_dict().iter().zip(resumed.state_dict()) {
        assert_eq!(a.to_vec(), b.to_vec(), "{name} differs after resuming");
    }
}

#[test]
fn divergence_stops_before_the_bad_step() {
    let (train, _) = mnist(256, 0);
    let loader = DataLoader::new(&train, 64);
    let model = mlp(3);
    let mut optimizer = Sgd::new(model.named_parameters(), 1e6);
    let options = FitOptions {
        epochs: 50,
        ..Default::default()
    };
    let err = fit(
        &model,
        &mut optimizer,
        &loader,
        None::<&DataLoader<'_, ImageDataset>>,
        &ce,
        &options,
        &mut |_| Control::Continue,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Diverged(_)), "{err}");
    assert!(err.to_string().contains("at epoch"), "{err}");
}

#[test]
fn early_stopping_and_schedules_in_the_loop() {
    let (train, test) = mnist(512, 256);
    let loader = DataLoader::new(&train, 128);
    let test_loader = DataLoader::new(&test, 256);
    let model = mlp(4);
    // lr 0: the test loss never improves, so with patience 2 the run stops after 3 epochs
    let mut optimizer = Sgd::new(model.named_parameters(), 0.0);
    let options = FitOptions {
        epochs: 10,
        early_stopping: Some(nabla::train::EarlyStopping {
            patience: 2,
            min_delta: 0.0,
        }),
        ..Default::default()
    };
    let history = fit(
        &model,
        &mut optimizer,
        &loader,
        Some(&test_loader),
        &ce,
        &options,
        &mut |_| Control::Continue,
    )
    .unwrap();
    assert_eq!(history.len(), 3);
    // a step schedule halves the rate every epoch, recorded in the metrics
    let mut optimizer = Sgd::new(model.named_parameters(), 0.1);
    let options = FitOptions {
        epochs: 3,
        schedule: nabla::optim::Schedule::Step {
            step_size: 1,
            gamma: 0.5,
        },
        ..Default::default()
    };
    let history = fit(
        &model,
        &mut optimizer,
        &loader,
        None::<&DataLoader<'_, ImageDataset>>,
        &ce,
        &options,
        &mut |_| Control::Continue,
    )
    .unwrap();
    let rates: Vec<f64> = history.iter().map(|m| m.lr).collect();
    assert_eq!(rates, vec![0.1, 0.05, 0.025]);
    // a callback can stop the run: after an epoch (its metrics are kept) or in the
    // middle of one (that epoch's metrics are not)
    let mut optimizer = Sgd::new(model.named_parameters(), 0.1);
    let no_test = None::<&DataLoader<'_, ImageDataset>>;
    let history = fit(
        &model,
        &mut optimizer,
        &loader,
        no_test,
        &ce,
        &options,
        &mut |event| match event {
            nabla::train::Event::EpochEnd { .. } => Control::Stop,
            _ => Control::Continue,
        },
    )
    .unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].train_loss.is_finite());
    let history = fit(
        &model,
        &mut optimizer,
        &loader,
        no_test,
        &ce,
        &options,
        &mut |event| match event {
            nabla::train::Event::BatchEnd { batch: 2, .. } => Control::Stop,
            _ => Control::Continue,
        },
    )
    .unwrap();
    assert!(history.is_empty());
}
