//! The samples the dashboard draws from — the points of 2-feature data (decision
//! regions) and the first test images (their predictions) — kept in the run
//! directory (`samples.safetensors`), so that `nabla dashboard RUN` shows them
//! without the training data, and the live page and a saved run draw the same ones.

use std::collections::BTreeMap;
use std::path::Path;

use super::recorder::Probes;
use super::views::{PLANE_POINTS, SAMPLE_IMAGES};
use crate::checkpoint::{load_tensors, save_tensors};
use crate::data::{Dataset, Samples};
use crate::error::{Error, Result};
use crate::experiment::Data;
use crate::run::files::SAMPLES;
use crate::tensor::Tensor;

/// The samples a run's pictures are drawn from.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedSamples {
    /// Training samples (points of the plane; none for images).
    pub train: Samples,
    /// Test samples (points, or the sample images).
    pub test: Samples,
    /// The class names.
    pub class_names: Vec<String>,
    /// A sample's `[C, H, W]` when the samples are images.
    pub image_shape: Option<[usize; 3]>,
}

impl SavedSamples {
    /// What the dashboard draws from `data`: `None` when it draws none (neither two
    /// features nor images).
    pub fn of(data: &Data) -> Option<SavedSamples> {
        let (train, test) = (data.train.as_ref(), data.test.as_ref());
        let (train_count, test_count) = match (train.feature_shape(), data.image_shape) {
            ([2], _) => (PLANE_POINTS, PLANE_POINTS),
            (_, Some(_)) => (0, SAMPLE_IMAGES),
            _ => return None,
        };
        Some(SavedSamples {
            train: Samples::first(train, train_count),
            test: Samples::first(test, test_count),
            class_names: data.class_names.clone(),
            image_shape: data.image_shape,
        })
    }

    /// The probes that draw from them.
    pub fn probes(&self) -> Probes {
        Probes::new(&self.train, &self.test, &self.class_names, self.image_shape)
    }

    /// Writes `samples.safetensors` into the run directory `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut tensors = Vec::new();
        for (split, samples) in [("train", &self.train), ("test", &self.test)] {
            let mut shape = vec![samples.len()];
            shape.extend(&samples.shape);
            let labels = samples.labels.iter().map(|&l| l as f32).collect();
            tensors.push((
                format!("{split}.features"),
                Tensor::from_vec(samples.features.clone(), &shape),
            ));
            tensors.push((
                format!("{split}.labels"),
                Tensor::from_vec(labels, &[samples.len()]),
            ));
        }
        let json = |value: serde_json::Value| value.to_string();
        let metadata = BTreeMap::from([
            ("class_names".into(), json(self.class_names.clone().into())),
            ("classes".into(), self.test.classes.to_string()),
            (
                "image_shape".into(),
                json(serde_json::to_value(self.image_shape).expect("numbers serialise")),
            ),
        ]);
        save_tensors(dir.join(SAMPLES), &tensors, &metadata)
    }

    /// Reads `samples.safetensors` from the run directory `dir`; `None` when the run
    /// has none (an older run, or data the dashboard draws nothing of).
    pub fn load(dir: &Path) -> Result<Option<SavedSamples>> {
        let path = dir.join(SAMPLES);
        if !path.is_file() {
            return Ok(None);
        }
        let loaded = load_tensors::<f32>(&path)?;
        let bad = |what: &str| Error::format(&path, format!("not the samples nabla saves: {what}"));
        let metadata = |key: &str| -> Result<serde_json::Value> {
            let text = loaded.metadata.get(key).ok_or_else(|| bad(key))?;
            serde_json::from_str(text).map_err(|_| bad(key))
        };
        let class_names: Vec<String> =
            serde_json::from_value(metadata("class_names")?).map_err(|_| bad("class_names"))?;
        let image_shape: Option<[usize; 3]> =
            serde_json::from_value(metadata("image_shape")?).map_err(|_| bad("image_shape"))?;
        let classes = metadata("classes")?
            .as_u64()
            .ok_or_else(|| bad("classes"))? as usize;
        let tensor = |name: &str| {
            loaded
                .tensors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| bad(name))
        };
        let samples = |split: &str| -> Result<Samples> {
            let features = tensor(&format!("{split}.features"))?;
            let labels: Vec<usize> = tensor(&format!("{split}.labels"))?
                .to_vec()
                .iter()
                .map(|&l| l as usize)
                .collect();
            let shape = features.shape().get(1..).unwrap_or_default().to_vec();
            if features.shape().first() != Some(&labels.len())
                || labels.iter().any(|&l| l >= classes)
            {
                return Err(bad(&format!("{split}: features and labels disagree")));
            }
            Ok(Samples {
                features: features.to_vec(),
                shape,
                labels,
                classes,
            })
        };
        let (train, test) = (samples("train")?, samples("test")?);
        let width = |samples: &Samples| samples.shape.iter().product::<usize>();
        let fits = |shape: [usize; 3]| shape.iter().product::<usize>() == width(&test);
        if width(&train) != width(&test) || image_shape.is_some_and(|shape| !fits(shape)) {
            return Err(bad("the splits' and the images' shapes disagree"));
        }
        Ok(Some(SavedSamples {
            train,
            test,
            class_names,
            image_shape,
        }))
    }
}
