//! Readers and the loader: MNIST IDX (gz and raw), CIFAR-10 batches, CSV tables,
//! batching, shuffling.

mod common;

use std::path::{Path, PathBuf};

use common::{gzip, idx_bytes, temp_dir};
use nabla::data::{
    CsvOptions, DataLoader, Dataset, ImageDataset, read_csv, read_idx, train_validation_split,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn committed_mnist_has_the_standard_sizes() {
    let (train, test) =
        nabla::data::load_mnist(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist")).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(train.feature_shape(), &[1, 28, 28]);
    // normalised like the reference: (p/255 − 0.1307)/0.3081, so a black pixel is −0.4242
    let mut features = vec![0.0; 784];
    train.write_features(0, &mut features);
    assert!((features[0] - (-0.1307f32 / 0.3081)).abs() < 1e-6);
    assert_eq!(train.label(0), 5);

    // A shuffled batch (gathered in parallel, rows touched ahead) holds exactly
    // each sample's features, in order; also for the flattened view.
    let train = train.flattened();
    let order = DataLoader::new(&train, 300).shuffle(3).order(0);
    let indices = &order[..300];
    let batch = nabla::data::make_batch(&train, indices);
    assert_eq!(batch.inputs.shape(), &[300, 784]);
    let values = batch.inputs.to_vec();
    for (row, &index) in values.chunks(784).zip(indices) {
        train.write_features(index, &mut features);
        assert_eq!(row, &features[..], "sample {index}");
    }
    let exact: Vec<f32> = train
        .pixels(indices[7])
        .iter()
        .map(|&p| (p as f32 / 255.0 - 0.1307) / 0.3081)
        .collect();
    assert_eq!(&values[7 * 784..8 * 784], &exact[..]);
}

#[test]
fn idx_gz_and_raw_read_the_same() {
    let dir = temp_dir("idx");
    let bytes = idx_bytes(&[2, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]);
    let raw = read_idx(write(&dir, "a.idx", &bytes)).unwrap();
    let gz = read_idx(write(&dir, "a.idx.gz", &gzip(&bytes))).unwrap();
    assert_eq!(raw, gz);
    assert_eq!(raw.dims, vec![2, 2, 3]);
    let labels = write(&dir, "labels.idx", &idx_bytes(&[2], &[3, 7]));
    let images = write(&dir, "images.idx", &bytes);
    let dataset = ImageDataset::from_idx(&images, &labels)
        .unwrap()
        .with_normalization(0.0, 1.0);
    let mut features = vec![0.0; 6];
    dataset.write_features(1, &mut features);
    assert_eq!(features[5], 1.0); // pixel 255 → 1.0
    assert_eq!(dataset.label(1), 7);
}

#[test]
fn broken_idx_files_get_clear_errors() {
    let dir = temp_dir("idx-broken");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "magic.idx",
            vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 5],
            "expected the IDX magic number 00 00 08 xx",
        ),
        ("short.idx", vec![0, 0], "expected a 4-byte IDX header"),
        (
            "dims.idx",
            vec![0, 0, 8, 9],
            "expected 1 to 4 dimensions, found 9",
        ),
        (
            "truncated.idx",
            idx_bytes(&[3, 2], &[1, 2, 3]),
            "promise 6 values, but the file holds 3",
        ),
        (
            "huge.idx",
            idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[1]),
            "promise",
        ),
        (
            "notgzip.idx.gz",
            vec![0x1f, 0x8b, 1, 2, 3],
            "not a valid gzip stream",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = write(&dir, name, &bytes);
        let err = read_idx(&path).unwrap_err().to_string();
        assert!(
            err.contains(name) && err.contains(expected),
            "{name}: {err}"
        );
    }
    let cut = gzip(&idx_bytes(&[100], &[7; 100]));
    let path = write(&dir, "cut.idx.gz", &cut[..cut.len() / 2]);
    assert!(
        read_idx(&path)
            .unwrap_err()
            .to_string()
            .contains("not a valid gzip stream")
    );
    let images = write(&dir, "i.idx", &idx_bytes(&[3, 1, 1], &[1, 2, 3]));
    let labels = write(&dir, "l.idx", &idx_bytes(&[2], &[0, 1]));
    let err = ImageDataset::from_idx(&images, &labels)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("holds 2 labels, but") && err.contains("holds 3 images"),
        "{err}"
    );
}

#[test]
fn csv_tables_with_string_and_integer_labels() {
    let dir = temp_dir("csv");
    let path = write(
        &dir,
        "flowers.csv",
        b"petal,sepal,species\n1.0,2.0,setosa\n3.5,-1,virginica\n0,0,setosa\n",
    );
    let table = read_csv(
        &path,
        &CsvOptions {
            label_column: "species".into(),
        },
    )
    .unwrap();
    assert_eq!(table.len(), 3);
    assert_eq!(table.feature_names, ["petal", "sepal"]);
    assert_eq!(table.class_names, ["setosa", "virginica"]);
    assert_eq!((table.label(0), table.label(1)), (0, 1));
    let mut row = vec![0.0; 2];
    table.write_features(1, &mut row);
    assert_eq!(row, vec![3.5, -1.0]);
    let path = write(&dir, "digits.csv", b"label,x\n2,0.5\n0,1.5\n");
    let table = read_csv(
        &path,
        &CsvOptions {
            label_column: "label".into(),
        },
    )
    .unwrap();
    assert_eq!((table.num_classes(), table.label(0)), (3, 2));
    // standardisation with statistics of the chosen rows only
    let mut table = table;
    let standardizer = table.fit_standardizer(&[0, 1]);
    assert_eq!(standardizer.mean, vec![1.0]);
    table.standardize(&standardizer);
    table.write_features(0, &mut row[..1]);
    assert_eq!(row[0], -1.0);
}

#[test]
fn broken_csv_files_get_clear_errors() {
    let dir = temp_dir("csv-broken");
    let options = CsvOptions {
        label_column: "y".into(),
    };
    let cases: Vec<(&str, &[u8], &str)> = vec![
        (
            "ragged.csv",
            b"a,b,y\n1,2,0\n3,1\n",
            "line 3: expected 3 fields like the header, found 2",
        ),
        (
            "text.csv",
            b"a,y\n1,0\nhello,1\n",
            "line 3, column `a`: expected a number, found `hello`",
        ),
        ("empty.csv", b"", "expected a header row"),
        (
            "nolabel.csv",
            b"a,b\n1,2\n",
            "expected a label column named `y`, found columns [\"a\", \"b\"]",
        ),
        (
            "nan.csv",
            b"a,y\nNaN,0\n1,1\n",
            "line 2, column `a`: expected a finite number, found `NaN`",
        ),
        (
            "inf.csv",
            b"a,y\n1,0\ninf,1\n",
            "expected a finite number, found `inf`",
        ),
        (
            "oneclass.csv",
            b"a,y\n1,cat\n2,cat\n",
            "expected at least two classes, found only `cat`",
        ),
        ("header_only.csv", b"a,y\n", "at least one data row"),
    ];
    for (name, bytes, expected) in cases {
        let path = write(&dir, name, bytes);
        let err = read_csv(&path, &options).unwrap_err().to_string();
        assert!(
            err.contains(name) && err.contains(expected),
            "{name}: {err}"
        );
    }
}

#[test]
fn loader_batches_shuffles_and_drops() {
    let table = nabla::data::TableDataset::from_vec(
        (0..10).map(|v| v as f32).collect(),
        1,
        (0..10).map(|v| v % 2).collect(),
    );
    let loader = DataLoader::new(&table, 4);
    let sizes: Vec<usize> = loader.epoch(0).map(|b| b.labels.len()).collect();
    assert_eq!(sizes, vec![4, 4, 2]);
    let first = loader.epoch(0).next().unwrap();
    assert_eq!(first.inputs.shape(), &[4, 1]);
    assert_eq!(first.inputs.to_vec(), vec![0.0, 1.0, 2.0, 3.0]);
    assert_eq!(DataLoader::new(&table, 4).drop_last(true).num_batches(), 2);
    // shuffling: every sample once per epoch, a different order per epoch, the same
    // order for the same seed and epoch
    let shuffled = DataLoader::new(&table, 4).shuffle(3);
    let mut order = shuffled.order(0);
    assert_ne!(order, shuffled.order(1));
    assert_eq!(order, DataLoader::new(&table, 4).shuffle(3).order(0));
    order.sort();
    assert_eq!(order, (0..10).collect::<Vec<_>>());
    let (train, validation) = train_validation_split(10, 0.2, 1);
    assert_eq!((train.len(), validation.len()), (8, 2));
    let mut all: Vec<usize> = train.iter().chain(&validation).copied().collect();
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
}

/// CIFAR-10's binary batches: records of a label byte and three 32×32 planes.
#[test]
fn cifar10_binary_batches() {
    use nabla::data::cifar::load_cifar10;
    let dir = temp_dir("cifar");
    let record = |label: u8, shade: u8| -> Vec<u8> {
        let mut bytes = vec![label];
        bytes.extend((0..3 * 1024).map(|p| shade.wrapping_add((p / 1024) as u8 * 10)));
        bytes
    };
    for batch in 1..=5u8 {
        let bytes = [record(batch, batch), record(9, 200)].concat();
        std::fs::write(dir.join(format!("data_batch_{batch}.bin")), bytes).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), record(3, 7)).unwrap();
    let (train, test, classes) = load_cifar10(&dir, false).unwrap();
    assert_eq!((train.len(), test.len()), (10, 1));
    assert_eq!(train.feature_shape(), &[3, 32, 32]);
    assert_eq!(classes[0], "airplane");
    let labels: Vec<usize> = (0..10).map(|i| train.label(i)).collect();
    assert_eq!(labels, [1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
    let mut features = vec![0.0; 3 * 1024];
    test.write_features(0, &mut features);
    // planes in order: red 7, green 17, blue 27
    for (plane, shade) in [(0, 7.0), (1, 17.0), (2, 27.0)] {
        assert!(
            (features[plane * 1024] - shade / 255.0).abs() < 1e-6,
            "{plane}"
        );
    }
    // class names from batches.meta.txt when present
    std::fs::write(
        dir.join("batches.meta.txt"),
        "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n",
    )
    .unwrap();
    assert_eq!(load_cifar10(&dir, true).unwrap().2[9], "j");
    // mistakes name the file
    std::fs::write(
        dir.join("test_batch.bin"),
        [record(3, 7), vec![1, 2]].concat(),
    )
    .unwrap();
    let err = load_cifar10(&dir, false).err().unwrap().to_string();
    assert!(
        err.contains("test_batch.bin") && err.contains("not a whole number of 3073-byte records"),
        "{err}"
    );
    std::fs::write(dir.join("test_batch.bin"), record(12, 7)).unwrap();
    let err = load_cifar10(&dir, false).err().unwrap().to_string();
    assert!(err.contains("label 12, expected 0–9"), "{err}");
    std::fs::remove_file(dir.join("data_batch_3.bin")).unwrap();
    let err = load_cifar10(&dir, false).err().unwrap().to_string();
    assert!(
        err.contains("data_batch_3.bin") && err.contains("missing"),
        "{err}"
    );
}

/// CIFAR-100's binary files: records of a coarse and a fine label byte, then the
/// planes; the fine label is the class.
#[test]
fn cifar100_binary_files_use_the_fine_label() {
    use nabla::data::cifar::{Cifar, load_cifar};
    let dir = temp_dir("cifar100");
    let record = |coarse: u8, fine: u8, shade: u8| -> Vec<u8> {
        let mut bytes = vec![coarse, fine];
        bytes.extend(std::iter::repeat_n(shade, 3 * 1024));
        bytes
    };
    let train = [record(0, 99, 1), record(19, 4, 2), record(3, 57, 3)].concat();
    std::fs::write(dir.join("train.bin"), train).unwrap();
    std::fs::write(dir.join("test.bin"), record(7, 42, 9)).unwrap();
    let (train, test, classes) = load_cifar(&dir, Cifar::Hundred, false).unwrap();
    assert_eq!((train.len(), test.len(), train.num_classes()), (3, 1, 100));
    let labels: Vec<usize> = (0..3).map(|i| train.label(i)).collect();
    assert_eq!(labels, [99, 4, 57]);
    assert_eq!(test.label(0), 42);
    let mut features = vec![0.0; 3 * 1024];
    test.write_features(0, &mut features);
    assert!(
        (features[2047] - 9.0 / 255.0).abs() < 1e-6,
        "the pixels follow both label bytes"
    );
    assert_eq!(
        classes[42], "42",
        "numbered classes without fine_label_names.txt"
    );

    let names: String = (0..100).map(|i| format!("class{i}\n")).collect();
    std::fs::write(dir.join("fine_label_names.txt"), names).unwrap();
    assert_eq!(
        load_cifar(&dir, Cifar::Hundred, false).unwrap().2[57],
        "class57"
    );
    // a record cut short is a 3074-byte-record error naming the file
    std::fs::write(
        dir.join("test.bin"),
        [record(7, 42, 9), vec![0; 3073]].concat(),
    )
    .unwrap();
    let err = load_cifar(&dir, Cifar::Hundred, false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("test.bin") && err.contains("3074-byte records"),
        "{err}"
    );
    std::fs::write(dir.join("test.bin"), record(7, 100, 9)).unwrap();
    let err = load_cifar(&dir, Cifar::Hundred, false)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("label 100, expected 0–99"), "{err}");
}
