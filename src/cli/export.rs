//! `nabla data export`: writes MNIST or Fashion-MNIST as an image folder of PNGs,
//! the layout `kind = "image_folder"` reads (`DIR/train/<class>/<index>.png` and
//! `DIR/test/<class>/<index>.png`), so the image-folder path can be tried on data
//! whose right answers are known.

use std::path::{Path, PathBuf};

use crate::data::read_idx;
use crate::error::{Error, Result};

/// Exports `dataset` (IDX files in `from`, default `data/<dataset>`) into `out`, at
/// most `limit` images per split.
pub fn run(dataset: &str, out: &Path, from: Option<PathBuf>, limit: Option<usize>) -> Result<()> {
    if !matches!(dataset, "mnist" | "fashion-mnist") {
        return Err(Error::Config(format!(
            "unknown dataset `{dataset}`: export knows `mnist` and `fashion-mnist`"
        )));
    }
    let from = from.unwrap_or_else(|| PathBuf::from("data").join(dataset));
    for (split, prefix) in [("train", "train"), ("test", "t10k")] {
        let images_path = idx_file(&from, &format!("{prefix}-images-idx3-ubyte"));
        let images = read_idx(&images_path)?;
        let labels = read_idx(idx_file(&from, &format!("{prefix}-labels-idx1-ubyte")))?;
        let [count, rows, cols] = images.dims[..] else {
            return Err(Error::format(
                &images_path,
                format!(
                    "expected images [count, rows, columns], found dimensions {:?}",
                    images.dims
                ),
            ));
        };
        if labels.data.len() < count {
            return Err(Error::format(
                &images_path,
                format!("{count} images but {} labels", labels.data.len()),
            ));
        }
        let written = count.min(limit.unwrap_or(usize::MAX));
        for index in 0..written {
            let folder = out.join(split).join(labels.data[index].to_string());
            std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
            let pixels = images.data[index * rows * cols..][..rows * cols].to_vec();
            let image = image::GrayImage::from_raw(cols as u32, rows as u32, pixels)
                .expect("rows × columns bytes make an image");
            let path = folder.join(format!("{index:05}.png"));
            image
                .save(&path)
                .map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
        }
        outln!(
            "{split}: {written} images under {}",
            out.join(split).display()
        );
    }
    Ok(())
}

/// The IDX file, gzipped or not.
fn idx_file(dir: &Path, name: &str) -> PathBuf {
    let gz = dir.join(format!("{name}.gz"));
    if gz.exists() { gz } else { dir.join(name) }
}
