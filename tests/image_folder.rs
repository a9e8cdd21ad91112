//! Image folders as data: the two layouts, class names, the held-out split,
//! normalisation, every bad-input case with its message, and train → eval → predict
//! through the binary with class names.

mod common;

use std::path::Path;

use common::*;
use nabla::data::Dataset;
use nabla::data::image_folder::{BadImage, ImageFolderOptions, load_image_folder};

/// An RGB image whose pixel (y, x) is (r + y, g + x, b).
fn rgb(path: &Path, size: (u32, u32), [r, g, b]: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let image = image::RgbImage::from_fn(size.1, size.0, |x, y| {
        image::Rgb([r + y as u8, g + x as u8, b])
    });
    image.save(path).unwrap();
}

fn grey(path: &Path, size: (u32, u32), value: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_pixel(size.1, size.0, image::Luma([value]))
        .save(path)
        .unwrap();
}

fn raw() -> ImageFolderOptions {
    ImageFolderOptions {
        test_fraction: 0.2,
        ..Default::default()
    }
}

fn error(root: &Path, options: &ImageFolderOptions) -> String {
    match load_image_folder(root, options) {
        Ok(_) => panic!("{} loaded, but should not have", root.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn train_and_test_folders_in_sorted_class_order() {
    let root = temp_dir("images-layout");
    rgb(&root.join("train/dog/1.png"), (2, 3), [10, 20, 30]);
    rgb(&root.join("train/cat/1.png"), (2, 3), [50, 60, 70]);
    rgb(&root.join("train/cat/2.jpg"), (2, 3), [90, 100, 110]);
    rgb(&root.join("test/dog/9.png"), (2, 3), [1, 2, 3]);
    std::fs::write(root.join("train/cat/notes.txt"), "not an image").unwrap();
    let folder = load_image_folder(&root, &raw()).unwrap();
    assert_eq!(folder.class_names, ["cat", "dog"]);
    assert_eq!(folder.train.len(), 3);
    assert_eq!(folder.test.len(), 1);
    assert_eq!(folder.train.feature_shape(), &[3, 2, 3]);
    // sorted classes, then sorted files: cat/1.png, cat/2.jpg, dog/1.png
    let labels: Vec<usize> = (0..3).map(|i| folder.train.label(i)).collect();
    assert_eq!(labels, [0, 0, 1]);
    // planar [C, H, W], x/255: the red plane of dog/1.png is 10 + y
    let mut features = vec![0.0; 18];
    folder.train.write_features(2, &mut features);
    let expected_red = [10.0, 10.0, 10.0, 11.0, 11.0, 11.0].map(|v: f32| v / 255.0);
    assert_eq!(features[..6], expected_red);
    assert_eq!(features[6..9], [20.0, 21.0, 22.0].map(|v: f32| v / 255.0));
    // a val/ folder stands in for test/
    std::fs::rename(root.join("test"), root.join("val")).unwrap();
    assert_eq!(load_image_folder(&root, &raw()).unwrap().test.len(), 1);
}

#[test]
fn one_level_is_split_per_class_from_the_seed() {
    let root = temp_dir("images-split");
    for i in 0..10u8 {
        grey(&root.join(format!("a/{i}.png")), (2, 2), i);
        grey(&root.join(format!("b/{i}.png")), (2, 2), 100 + i);
    }
    let options = ImageFolderOptions { seed: 3, ..raw() };
    let folder = load_image_folder(&root, &options).unwrap();
    let test_labels: Vec<usize> = (0..folder.test.len())
        .map(|i| folder.test.label(i))
        .collect();
    assert_eq!(test_labels, [0, 0, 1, 1], "20% of each class held out");
    assert_eq!(folder.train.len(), 16);
    let pixels = |set: &dyn Dataset| -> Vec<f32> {
        let mut out = vec![0.0; 4 * set.len()];
        set.write_batch(&(0..set.len()).collect::<Vec<_>>(), &mut out);
        out
    };
    let again = load_image_folder(&root, &options).unwrap();
    assert_eq!(
        pixels(&folder.test),
        pixels(&again.test),
        "same seed, same split"
    );
    let other = load_image_folder(&root, &ImageFolderOptions { seed: 4, ..raw() }).unwrap();
    assert_ne!(
        pixels(&folder.test),
        pixels(&other.test),
        "another seed, another split"
    );
}

#[test]
fn normalisation_from_the_training_split() {
    let root = temp_dir("images-normalize");
    grey(&root.join("train/a/1.png"), (2, 2), 0);
    grey(&root.join("train/b/1.png"), (2, 2), 255);
    grey(&root.join("test/a/1.png"), (2, 2), 255);
    let options = ImageFolderOptions {
        normalize: Some(None),
        ..raw()
    };
    let folder = load_image_folder(&root, &options).unwrap();
    // training pixels are half 0, half 1: mean 0.5, std 0.5
    let (mean, std) = folder.train.normalization();
    assert!(
        (mean[0] - 0.5).abs() < 1e-6 && (std[0] - 0.5).abs() < 1e-6,
        "{mean:?} {std:?}"
    );
    let mut features = vec![0.0; 4];
    folder.test.write_features(0, &mut features);
    assert!(
        features.iter().all(|&v| (v - 1.0).abs() < 1e-5),
        "{features:?}"
    );
}

#[test]
fn bad_images_stop_or_are_skipped() {
    let root = temp_dir("images-bad");
    grey(&root.join("a/1.png"), (2, 2), 1);
    grey(&root.join("a/2.png"), (2, 2), 2);
    grey(&root.join("b/1.png"), (2, 2), 3);
    grey(&root.join("b/2.png"), (2, 2), 4);
    let corrupt = root.join("b/broken.png");
    std::fs::write(&corrupt, b"\x89PNG but not really").unwrap();
    let message = error(&root, &raw());
    assert!(
        message.contains(&corrupt.display().to_string())
            && message.contains("not a readable PNG/JPEG image")
            && message.contains("on_bad_image = \"skip\""),
        "{message}"
    );
    let skipping = ImageFolderOptions {
        on_bad_image: BadImage::Skip,
        ..raw()
    };
    let folder = load_image_folder(&root, &skipping).unwrap();
    assert_eq!(folder.train.len() + folder.test.len(), 4);
    assert!(
        folder.notes[0].starts_with("skipped 1 unreadable image")
            && folder.notes[0].contains("broken.png"),
        "{:?}",
        folder.notes
    );
}

#[test]
fn folder_mistakes_have_clear_messages() {
    let root = temp_dir("images-mistakes");
    // not a directory
    let missing = root.join("nowhere");
    assert!(error(&missing, &raw()).contains("not a directory"));
    // one class only
    grey(&root.join("a/1.png"), (2, 2), 1);
    assert!(error(&root, &raw()).contains("at least 2), found 1"));
    // a class folder without images
    std::fs::create_dir_all(root.join("b")).unwrap();
    std::fs::write(root.join("b/readme.txt"), "hi").unwrap();
    let message = error(&root, &raw());
    assert!(
        message.contains(&root.join("b").display().to_string())
            && message.contains("has no images"),
        "{message}"
    );
    // sizes differ without image_size: both files named
    grey(&root.join("b/1.png"), (3, 2), 1);
    let message = error(&root, &raw());
    assert!(
        message.contains("b/1.png")
            && message.contains("is 3×2")
            && message.contains("a/1.png is 2×2")
            && message.contains("image_size"),
        "{message}"
    );
    let resized = ImageFolderOptions {
        image_size: Some((4, 4)),
        ..raw()
    };
    let folder = load_image_folder(&root, &resized).unwrap();
    assert_eq!(folder.train.feature_shape(), &[1, 4, 4]);
    // grey and RGB mixed: RGB, and said so
    rgb(&root.join("b/2.png"), (2, 2), [9, 9, 9]);
    let folder = load_image_folder(&root, &resized).unwrap();
    assert_eq!(folder.train.feature_shape(), &[3, 4, 4]);
    assert!(
        folder
            .notes
            .iter()
            .any(|n| n == "converted 2 images to RGB"),
        "{:?}",
        folder.notes
    );
    // a test class the training split lacks
    let split = temp_dir("images-unknown-class");
    grey(&split.join("train/a/1.png"), (2, 2), 1);
    grey(&split.join("train/b/1.png"), (2, 2), 1);
    grey(&split.join("test/c/1.png"), (2, 2), 1);
    assert!(error(&split, &raw()).contains("has a class folder `c`"));
}

#[test]
fn train_eval_predict_with_class_names() {
    let dir = temp_dir("images-cli");
    let sample = shapes_folder(&dir.join("shapes"));
    let config = dir.join("shapes.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[data]
kind = "image_folder"
path = "{}"
batch_size = 8
augment = {{ random_crop = {{ size = 8, padding = 1 }} }}

[model]
layers = [
  {{ type = "conv2d", out_channels = 4, kernel = 3, padding = 1 }},
  {{ type = "relu" }},
  {{ type = "global_avg_pool" }},
  {{ type = "linear", out = "classes" }},
]

[train]
epochs = 15
seed = 1
optimizer = {{ kind = "adam", lr = 0.05 }}
"#,
            dir.join("shapes").display()
        ),
    )
    .unwrap();
    let run = dir.join("run");
    let out = nabla(&[
        "train",
        config.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let classes: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(run.join("classes.json")).unwrap()).unwrap();
    assert_eq!(classes, ["left", "top"]);
    let out = nabla(&["eval", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    // the overall accuracy, not one class's precision, must be 100%
    assert!(
        text(&out).contains("test samples 8  loss"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("accuracy 100.00%"), "{}", text(&out));
    let out = nabla(&["predict", run.to_str().unwrap(), sample.to_str().unwrap()]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains(": top "), "{printed}");
}

/// Each sample's crop and flip come from (seed, epoch, index): an epoch's batches are
/// the same when rebuilt (as on resume), another epoch draws anew, and every
/// augmented image is the original shifted by at most the padding, black (the fill)
/// where it moved in from outside, perhaps mirrored.
#[test]
fn augmentation_is_seeded_per_sample_and_epoch() {
    use nabla::data::DataLoader;
    use nabla::data::augment::{Augmentation, RandomCrop};
    let root = temp_dir("images-augment");
    for i in 0..4u32 {
        for (class, offset) in [("a", 0u8), ("b", 100)] {
            let path = root.join(format!("train/{class}/{i}.png"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            image::GrayImage::from_fn(6, 6, |x, y| {
                image::Luma([offset + (y * 6 + x) as u8 + i as u8])
            })
            .save(path)
            .unwrap();
        }
        grey(&root.join(format!("test/a/{i}.png")), (6, 6), 1);
    }
    let folder = load_image_folder(&root, &raw()).unwrap();
    let augmentation = Augmentation {
        random_crop: Some(RandomCrop {
            size: 6,
            padding: 2,
        }),
        horizontal_flip: true,
    };
    let fill = -1.0;
    let loader = DataLoader::new(&folder.train, 3)
        .shuffle(1)
        .augment(augmentation.clone(), 5, vec![fill])
        .unwrap();
    let epoch =
        |e: usize| -> Vec<Vec<f32>> { loader.epoch(e).map(|b| b.inputs.to_vec()).collect() };
    assert_eq!(epoch(1), epoch(1), "rebuilt batches are the same");
    assert_ne!(epoch(1), epoch(2), "another epoch, other draws");
    let resumed: Vec<Vec<f32>> = loader.epoch(1).skip(1).map(|b| b.inputs.to_vec()).collect();
    assert_eq!(
        resumed,
        epoch(1)[1..],
        "a batch does not depend on the ones before it"
    );
    // every sample is a shifted, perhaps mirrored, copy of its original
    let order = loader.order(1);
    let samples: Vec<f32> = epoch(1).concat();
    let mut flips = 0;
    for (sample, &index) in samples.chunks_exact(36).zip(&order) {
        let mut original = vec![0.0; 36];
        folder.train.write_features(index, &mut original);
        let shifted = |dy: isize, dx: isize, flip: bool| -> Vec<f32> {
            (0..36)
                .map(|p| {
                    let (y, x) = ((p / 6) as isize, (p % 6) as isize);
                    let x = if flip { 5 - x } else { x };
                    let (sy, sx) = (y + dy, x + dx);
                    if (0..6).contains(&sy) && (0..6).contains(&sx) {
                        original[(sy * 6 + sx) as usize]
                    } else {
                        fill
                    }
                })
                .collect()
        };
        let found = (-2..=2)
            .flat_map(|dy| (-2..=2).flat_map(move |dx| [(dy, dx, false), (dy, dx, true)]))
            .find(|&(dy, dx, flip)| shifted(dy, dx, flip) == sample);
        let (_, _, flip) =
            found.unwrap_or_else(|| panic!("sample {index} is no crop of its image"));
        flips += flip as usize;
    }
    assert!(
        flips > 0 && flips < 8,
        "about half are mirrored: {flips} of 8"
    );
    // shapes it cannot keep are refused with the reason
    let wrong = Augmentation {
        random_crop: Some(RandomCrop {
            size: 4,
            padding: 1,
        }),
        horizontal_flip: false,
    };
    let err = DataLoader::new(&folder.train, 3)
        .augment(wrong, 0, vec![0.0])
        .err()
        .unwrap();
    assert!(
        err.contains("random_crop size 4 must be the image size (6×6)"),
        "{err}"
    );
    let flat = folder.train.clone().flattened();
    let err = DataLoader::new(&flat, 3)
        .augment(augmentation, 0, vec![0.0])
        .err()
        .unwrap();
    assert!(err.contains("augmentation needs images"), "{err}");
}

/// A `[data]` section's image settings reach training and the saved run, and `predict`
/// takes what users have: a PNG or JPEG of any size (resized as in training), `--invert`,
/// a model file with `--config`; an IDX file of the wrong size is refused by name.
/// Training with augmentation gives the same weights on 1 and 2 threads and after an
/// interruption and `--resume`.
#[test]
fn image_settings_from_toml_augmentation_and_predict_on_user_files() {
    let dir = temp_dir("images-settings");
    let data = dir.join("colours");
    // red and cyan squares of mixed sizes (resized to 8×8), a little noise in each
    for i in 0..60u8 {
        let size = if i % 2 == 0 { (8, 8) } else { (12, 10) };
        let split = if i < 50 { "train" } else { "test" };
        let noise = i % 7 * 3;
        rgb(
            &data.join(format!("{split}/red/{i}.png")),
            size,
            [200 + noise, noise, 20],
        );
        rgb(
            &data.join(format!("{split}/cyan/{i}.png")),
            size,
            [noise, 200 + noise, 230],
        );
    }
    std::fs::write(data.join("train/red/broken.png"), b"not a png").unwrap();
    let config = dir.join("colours.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[data]
kind = "image_folder"
path = "{}"
batch_size = 10
image_size = [8, 8]
channels = 3
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]
on_bad_image = "skip"
augment = {{ random_crop = {{ size = 8, padding = 2 }}, horizontal_flip = true }}

[model]
layers = [
  {{ type = "conv2d", out_channels = 4, kernel = 3, padding = 1 }},
  {{ type = "relu" }},
  {{ type = "global_avg_pool" }},
  {{ type = "linear", out = "classes" }},
]

[train]
epochs = 20
seed = 3
optimizer = {{ kind = "adam", lr = 0.05 }}
"#,
            data.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let train = |name: &str, threads: &str| {
        let run = dir.join(name);
        let out = nabla(&[
            "train",
            config,
            "--out",
            run.to_str().unwrap(),
            "--threads",
            threads,
        ]);
        assert!(out.status.success(), "{}", text(&out));
        (run, text(&out))
    };
    let (run, printed) = train("one-thread", "1");
    assert!(
        printed.contains("broken.png"),
        "the skipped file is named: {printed}"
    );
    let preprocessing: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("preprocessing.json")).unwrap())
            .unwrap();
    assert_eq!(preprocessing["input_shape"], serde_json::json!([3, 8, 8]));
    assert_eq!(
        preprocessing["input"]["normalization"],
        serde_json::json!([[0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]),
        "the config's mean and std are the run's"
    );
    let weights = |run: &Path| std::fs::read(run.join("model.safetensors")).unwrap();
    let (two_threads, _) = train("two-threads", "2");
    assert!(
        weights(&run) == weights(&two_threads),
        "1 and 2 threads differ"
    );
    let resumed = dir.join("resumed");
    interrupt_after_first_line(
        &["train", config, "--out", resumed.to_str().unwrap()],
        &resumed.join("metrics.jsonl"),
        20,
    );
    let out = nabla(&["train", "--resume", resumed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        weights(&run) == weights(&resumed),
        "resuming changed the batches"
    );

    // predict: the top class of each file
    let top = |args: &[&str]| {
        let out = nabla(args);
        assert!(out.status.success(), "{}", text(&out));
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        // "FILE: class p%, class p%"
        let (_, classes) = printed.trim_end().rsplit_once(": ").expect("a prediction");
        classes.to_owned()
    };
    let run_dir = run.to_str().unwrap();
    let large_red = dir.join("large-red.jpg");
    image::RgbImage::from_pixel(32, 24, image::Rgb([220, 10, 20]))
        .save(&large_red)
        .unwrap();
    let red_png = data.join("test/red/50.png");
    for file in [&red_png, &large_red] {
        let said = top(&["predict", run_dir, file.to_str().unwrap()]);
        assert!(said.starts_with("red"), "{}: {said}", file.display());
    }
    // inverted, red (220, 10, 20) is (35, 245, 235): cyan
    let said = top(&["predict", run_dir, large_red.to_str().unwrap(), "--invert"]);
    assert!(said.starts_with("cyan"), "{said}");
    // the model file with its config says the same as the run directory
    let model = run.join("model.safetensors");
    let with_config = run.join("config.toml");
    assert_eq!(
        top(&[
            "predict",
            model.to_str().unwrap(),
            "--config",
            with_config.to_str().unwrap(),
            red_png.to_str().unwrap(),
        ]),
        top(&["predict", run_dir, red_png.to_str().unwrap()])
    );
    // an IDX file of 5×5 greyscale images does not fit a 3×8×8 model
    let idx = dir.join("small.idx");
    std::fs::write(&idx, idx_bytes(&[2, 5, 5], &[0; 50])).unwrap();
    let refused = nabla(&["predict", run_dir, idx.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("small.idx")
            && text(&refused).contains("images are 5×5 greyscale, but the model takes 3×8×8"),
        "{}",
        text(&refused)
    );
}
