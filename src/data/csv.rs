//! CSV tables for classification: a header row, numeric feature columns and one
//! label column (integers or strings).

use std::path::{Path, PathBuf};

use super::Dataset;
use crate::error::{Error, Result};

/// How to read a CSV table.
#[derive(Clone, Debug)]
pub struct CsvOptions {
    /// The name of the column holding the class labels.
    pub label_column: String,
}

/// A table of `f32` features with class labels.
#[derive(Clone, Debug)]
pub struct TableDataset {
    features: Vec<f32>,
    labels: Vec<usize>,
    shape: [usize; 1],
    /// Feature column names, in order.
    pub feature_names: Vec<String>,
    /// The original label of each class index (integer labels keep their own value).
    pub class_names: Vec<String>,
}

/// Per-feature mean and standard deviation, fitted on training rows and applied to
/// every split (so no test statistics leak into training).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standardizer {
    /// Each feature's mean over the fitted rows.
    pub mean: Vec<f32>,
    /// Each feature's standard deviation over the fitted rows.
    pub std: Vec<f32>,
}

impl Standardizer {
    /// `(x − mean)/std` for every feature of the rows in `rows` (row-major, one
    /// feature per mean/std entry).
    pub fn apply(&self, rows: &mut [f32]) {
        for row in rows.chunks_mut(self.mean.len().max(1)) {
            for ((v, mean), std) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - mean) / std;
            }
        }
    }
}

/// What a trained model knows of the table it was trained on: the feature columns it
/// reads, in order, and the label column. New files are read through it
/// ([`read_csv_as`], [`read_features_as`]), so that columns are found by name.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableSchema {
    /// The feature columns, in the order the model takes them.
    pub feature_names: Vec<String>,
    /// The column holding the class labels.
    pub label_column: String,
}

/// Reads every row of a CSV file as the model of `schema` takes it: each feature
/// column found by name (in any order, other columns left out), each label turned
/// into its index in `class_names` (the training run's numbering). A missing column,
/// or a label the model never saw, is an error naming it and the file.
pub fn read_csv_as(
    path: impl AsRef<Path>,
    schema: &TableSchema,
    class_names: &[String],
) -> Result<TableDataset> {
    let path = path.as_ref();
    let (features, labels) = read_by_schema(path, schema, Some(class_names))?;
    Ok(TableDataset {
        features,
        labels: labels.expect("labels were required"),
        shape: [schema.feature_names.len()],
        feature_names: schema.feature_names.clone(),
        class_names: class_names.to_vec(),
    })
}

/// The feature values of every row of a CSV file, as [`read_csv_as`] reads them
/// (row-major, `schema.feature_names.len()` per row); the label column may be absent.
pub fn read_features_as(path: impl AsRef<Path>, schema: &TableSchema) -> Result<Vec<f32>> {
    read_by_schema(path.as_ref(), schema, None).map(|(features, _)| features)
}

/// Features by `schema`, and with `class_names` the labels as their indices there.
fn read_by_schema(
    path: &Path,
    schema: &TableSchema,
    class_names: Option<&[String]>,
) -> Result<(Vec<f32>, Option<Vec<usize>>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    crate::memory::ensure_fits(path, size.saturating_mul(2))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(file);
    let headers = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let mut columns = Vec::with_capacity(schema.feature_names.len());
    for name in &schema.feature_names {
        let found = column(name).ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "line 1: the model reads a feature column `{name}`, which this file lacks (its columns: {:?})",
                    headers.iter().collect::<Vec<_>>()
                ),
            )
        })?;
        columns.push(found);
    }
    let label_index = column(&schema.label_column).filter(|_| class_names.is_some());
    if class_names.is_some() && label_index.is_none() {
        return Err(Error::format(
            path,
            format!(
                "line 1: expected the label column `{}` to score the model against, found columns {:?}",
                schema.label_column,
                headers.iter().collect::<Vec<_>>()
            ),
        ));
    }
    let mut features = Vec::new();
    let mut labels = label_index.map(|_| Vec::new());
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record.position().map_or(0, |p| p.line());
        for (&index, name) in columns.iter().zip(&schema.feature_names) {
            features.push(parse_feature(path, line, name, &record[index])?);
        }
        if let (Some(index), Some(labels), Some(names)) = (label_index, &mut labels, class_names) {
            labels.push(class_index(
                path,
                line,
                &schema.label_column,
                names,
                &record[index],
            )?);
        }
    }
    if columns.is_empty() || features.is_empty() {
        return Err(Error::format(
            path,
            "expected at least one data row after the header, found none",
        ));
    }
    Ok((features, labels))
}

/// A finite number, or an error naming the line and column.
fn parse_feature(path: &Path, line: u64, column: &str, field: &str) -> Result<f32> {
    match field.parse::<f32>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(Error::format(
            path,
            format!("line {line}, column `{column}`: expected a finite number, found `{field}`"),
        )),
    }
}

/// The training run's class index of a label as written in a file.
fn class_index(
    path: &Path,
    line: u64,
    label_column: &str,
    class_names: &[String],
    label: &str,
) -> Result<usize> {
    class_names
        .iter()
        .position(|name| name == label)
        .ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "line {line}, column `{label_column}`: the label `{label}` is not a class the model was trained on ({})",
                    class_names.join(", ")
                ),
            )
        })
}

/// Reads a CSV file with a header; every column but the label column must be numeric.
pub fn read_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<TableDataset> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // parsed row by row; the table it builds is at most ~2× the text (4-byte floats
    // from numbers of at least one digit and a comma)
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    crate::memory::ensure_fits(path, size.saturating_mul(2))?;
    parse_csv(path, file, options)
}

/// Reads a CSV table from any reader (streaming, row by row); `path` names it in errors.
pub fn parse_csv(
    path: &Path,
    source: impl std::io::Read,
    options: &CsvOptions,
) -> Result<TableDataset> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(source);
    let headers = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    if headers.is_empty() || headers.iter().all(str::is_empty) {
        return Err(Error::format(
            path,
            "line 1: expected a header row naming the columns, found an empty file",
        ));
    }
    let Some(label_index) = headers.iter().position(|h| h == options.label_column) else {
        let names: Vec<&str> = headers.iter().collect();
        return Err(Error::format(
            path,
            format!(
                "line 1: expected a label column named `{}`, found columns {names:?}",
                options.label_column
            ),
        ));
    };
    let feature_names: Vec<String> = headers
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != label_index)
        .map(|(_, h)| h.to_string())
        .collect();
    let mut features = Vec::new();
    let mut raw_labels = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record.position().map_or(0, |p| p.line());
        for (column, field) in record.iter().enumerate() {
            if column == label_index {
                raw_labels.push(field.to_string());
                continue;
            }
            let value: f32 = field.parse().map_err(|_| {
                Error::format(
                    path,
                    format!(
                        "line {line}, column `{}`: expected a number, found `{field}`",
                        &headers[column]
                    ),
                )
            })?;
            if !value.is_finite() {
                return Err(Error::format(
                    path,
                    format!(
                        "line {line}, column `{}`: expected a finite number, found `{field}`",
                        &headers[column]
                    ),
                ));
            }
            features.push(value);
        }
    }
    if raw_labels.is_empty() {
        return Err(Error::format(
            path,
            "expected at least one data row after the header, found none",
        ));
    }
    let (labels, class_names) = encode_labels(&raw_labels);
    if class_names.len() < 2 {
        return Err(Error::format(
            path,
            format!(
                "column `{}`: expected at least two classes, found only `{}`",
                options.label_column, class_names[0]
            ),
        ));
    }
    Ok(TableDataset {
        features,
        labels,
        shape: [feature_names.len()],
        feature_names,
        class_names,
    })
}

fn csv_error(path: &Path, error: csv::Error) -> Error {
    let place = error
        .position()
        .map(|p| format!("line {}: ", p.line()))
        .unwrap_or_default();
    let message = match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("expected {expected_len} fields like the header, found {len}")
        }
        _ => error.to_string(),
    };
    Error::Format {
        path: PathBuf::from(path),
        message: format!("{place}{message}"),
    }
}

/// Integer labels keep their value as the class index (classes = max + 1); any
/// other labels are numbered in sorted order.
fn encode_labels(raw: &[String]) -> (Vec<usize>, Vec<String>) {
    let integers: Option<Vec<usize>> = raw.iter().map(|s| s.parse::<usize>().ok()).collect();
    match integers {
        Some(values) if values.iter().max().is_some_and(|&m| m < 100_000) => {
            let classes = values.iter().max().map_or(0, |m| m + 1);
            (values, (0..classes).map(|c| c.to_string()).collect())
        }
        _ => {
            let mut names: Vec<String> = raw.to_vec();
            names.sort();
            names.dedup();
            let labels = raw
                .iter()
                .map(|s| names.binary_search(s).expect("name is in the list"))
                .collect();
            (labels, names)
        }
    }
}

impl TableDataset {
    /// A table from values in memory (`rows × width` features, one label per row).
    pub fn from_vec(features: Vec<f32>, width: usize, labels: Vec<usize>) -> Self {
        assert_eq!(
            features.len(),
            labels.len() * width,
            "TableDataset: {} values for {} rows of {width}",
            features.len(),
            labels.len()
        );
        let classes = labels.iter().max().map_or(0, |m| m + 1);
        TableDataset {
            features,
            labels,
            shape: [width],
            feature_names: (0..width).map(|i| format!("x{i}")).collect(),
            class_names: (0..classes).map(|c| c.to_string()).collect(),
        }
    }

    /// The rows at `indices`, in that order, as a new table.
    pub fn select(&self, indices: &[usize]) -> TableDataset {
        let width = self.shape[0];
        let mut features = Vec::with_capacity(indices.len() * width);
        for &i in indices {
            features.extend_from_slice(&self.features[i * width..(i + 1) * width]);
        }
        TableDataset {
            features,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
            feature_names: self.feature_names.clone(),
            class_names: self.class_names.clone(),
        }
    }

    /// The schema a model trained on this table reads new files by.
    pub fn schema(&self, label_column: &str) -> TableSchema {
        TableSchema {
            feature_names: self.feature_names.clone(),
            label_column: label_column.to_string(),
        }
    }

    /// Fits a standardizer on the given rows.
    pub fn fit_standardizer(&self, rows: &[usize]) -> Standardizer {
        let width = self.shape[0];
        let count = rows.len().max(1) as f64;
        let mut mean = vec![0.0f64; width];
        let mut sq = vec![0.0f64; width];
        for &r in rows {
            for (j, &v) in self.features[r * width..(r + 1) * width].iter().enumerate() {
                mean[j] += v as f64;
                sq[j] += (v as f64) * (v as f64);
            }
        }
        let mean: Vec<f64> = mean.iter().map(|m| m / count).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / count - m * m).max(0.0).sqrt()).max(1e-12) as f32)
            .collect();
        Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }

    /// Applies `(x − mean)/std` to every row.
    pub fn standardize(&mut self, standardizer: &Standardizer) {
        standardizer.apply(&mut self.features);
    }
}

impl Dataset for TableDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn feature_shape(&self) -> &[usize] {
        &self.shape
    }

    fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    fn write_features(&self, index: usize, out: &mut [f32]) {
        let width = self.shape[0];
        out.copy_from_slice(&self.features[index * width..(index + 1) * width]);
    }

    fn label(&self, index: usize) -> usize {
        self.labels[index]
    }
}
