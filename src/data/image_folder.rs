//! Image folders, the way torchvision's `ImageFolder` and Keras'
//! `image_dataset_from_directory` read them: one folder per class, PNG or JPEG files
//! inside. Either `train/` and `test/` (or `val/`) each hold the class folders, or
//! the class folders sit directly in the directory and a seeded, stratified
//! fraction of each class is held out for testing.
//!
//! Class names, sorted as strings, give the label indices. Images are decoded once
//! and kept as bytes (`[C, H, W]` per image); they become `f32` a batch at a time.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::image_set::{ImageSet, channel_statistics};
use crate::error::{Error, Result};

/// What to do with a file that does not decode as an image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BadImage {
    /// Stop, naming the file (the default).
    #[default]
    Error,
    /// Leave it out and count it.
    Skip,
}

/// How to read an image folder.
#[derive(Clone, Debug, Default)]
pub struct ImageFolderOptions {
    /// Resize every image to `(height, width)` (stretching; the aspect ratio is not
    /// kept, as torchvision's `Resize((h, w))`). Without it every image must have the
    /// same size.
    pub image_size: Option<(usize, usize)>,
    /// 1 (grey) or 3 (RGB); default: 3 if any image has colour, else 1.
    /// Images of the other kind are converted, and the notes say how many.
    pub channels: Option<usize>,
    /// Per-channel `(x − mean)/std` on `[0, 1]` pixels: `Some(None)` computes mean and
    /// std on the training split, `Some(Some((mean, std)))` gives them, `None` keeps
    /// `x/255`.
    pub normalize: Option<Option<(Vec<f32>, Vec<f32>)>>,
    /// Without `train/`: the fraction of each class held out for testing.
    pub test_fraction: f64,
    /// Seeds the held-out split.
    pub seed: u64,
    /// Unreadable files: stop or skip.
    pub on_bad_image: BadImage,
}

/// A loaded image folder: both splits, the class names and what the loader
/// noticed (conversions, skipped files) in plain words.
pub struct ImageFolder {
    /// The training split.
    pub train: ImageSet,
    /// The test split.
    pub test: ImageSet,
    /// Class names, sorted; label `i` is `class_names[i]`.
    pub class_names: Vec<String>,
    /// Things worth telling the user.
    pub notes: Vec<String>,
}

/// One decoded image before it joins a split.
struct Decoded {
    image: image::DynamicImage,
    label: usize,
    path: PathBuf,
}

/// Reads an image folder (see the module docs for the layout).
pub fn load_image_folder(root: &Path, options: &ImageFolderOptions) -> Result<ImageFolder> {
    if !root.is_dir() {
        return Err(Error::format(
            root,
            "not a directory: an image folder holds one folder per class (or train/ and test/)",
        ));
    }
    let (train_dir, test_dir) = if root.join("train").is_dir() {
        let test = ["test", "val"]
            .iter()
            .map(|name| root.join(name))
            .find(|dir| dir.is_dir())
            .ok_or_else(|| {
                Error::format(root, "has train/ but neither test/ nor val/ next to it")
            })?;
        (root.join("train"), Some(test))
    } else {
        (root.to_path_buf(), None)
    };
    let class_names = class_folders(&train_dir, 2)?;
    let mut notes = Vec::new();
    let mut skipped = Vec::new();
    let mut train = decode_split(&train_dir, &class_names, options, &mut skipped)?;
    let mut test = match &test_dir {
        Some(dir) => {
            let test_classes = class_folders(dir, 1)?;
            if let Some(unknown) = test_classes.iter().find(|c| !class_names.contains(c)) {
                return Err(Error::format(
                    dir,
                    format!(
                        "has a class folder `{unknown}` that {} does not have",
                        train_dir.display()
                    ),
                ));
            }
            decode_split(dir, &class_names, options, &mut skipped)?
        }
        None => Vec::new(),
    };
    if test_dir.is_none() {
        (train, test) = stratified_split(train, class_names.len(), options)?;
    }
    if train.is_empty() {
        return Err(Error::format(
            &train_dir,
            "no readable training images (all were skipped)",
        ));
    }
    if !skipped.is_empty() {
        notes.push(format!(
            "skipped {} unreadable image{} (on_bad_image = \"skip\"), the first: {}",
            skipped.len(),
            if skipped.len() == 1 { "" } else { "s" },
            skipped[0]
        ));
    }
    let channels = match options.channels {
        Some(c @ (1 | 3)) => c,
        Some(other) => {
            return Err(Error::Config(format!(
                "image channels must be 1 or 3, found {other}"
            )));
        }
        None if train
            .iter()
            .chain(&test)
            .any(|d| d.image.color().has_color()) =>
        {
            3
        }
        None => 1,
    };
    let converted = train
        .iter()
        .chain(&test)
        .filter(|d| d.image.color().has_color() != (channels == 3))
        .count();
    if converted > 0 {
        notes.push(format!(
            "converted {converted} image{} to {}",
            if converted == 1 { "" } else { "s" },
            if channels == 3 { "RGB" } else { "greyscale" }
        ));
    }
    let (height, width) = match options.image_size {
        Some(size) => size,
        None => {
            let first = &train[0].image;
            (first.height() as usize, first.width() as usize)
        }
    };
    let shape = [channels, height, width];
    let train_pixels = to_bytes(&train, shape, options.image_size.is_some(), &train[0].path)?;
    let test_pixels = to_bytes(&test, shape, options.image_size.is_some(), &train[0].path)?;
    let normalization = match &options.normalize {
        None => None,
        Some(Some(given)) => Some(given.clone()),
        Some(None) => Some(channel_statistics(&train_pixels, shape)),
    };
    let train_labels = train.iter().map(|d| d.label).collect();
    let test_labels = test.iter().map(|d| d.label).collect();
    let classes = class_names.len();
    let train = ImageSet::new(
        train_pixels,
        train_labels,
        shape,
        classes,
        normalization.clone(),
    )?;
    let test = ImageSet::new(test_pixels, test_labels, shape, classes, normalization)?;
    Ok(ImageFolder {
        train,
        test,
        class_names,
        notes,
    })
}

/// Every image of an image folder as a trained model takes it: resized and converted
/// to `shape` (`[C, H, W]`), labelled by the model's `class_names` (a class folder the
/// model does not know is an error naming it). A folder with `train/` and `test/`
/// (or `val/`) gives its test split; any other folder, every class folder in it.
/// Returns the images as planar bytes, their labels, and the folder they came from.
pub fn read_images_as(
    root: &Path,
    class_names: &[String],
    shape: [usize; 3],
    on_bad_image: BadImage,
) -> Result<(Vec<u8>, Vec<usize>, PathBuf)> {
    if !root.is_dir() {
        return Err(Error::format(
            root,
            "not a directory: an image folder holds one folder per class (or train/ and test/)",
        ));
    }
    let dir = ["test", "val"]
        .iter()
        .map(|name| root.join(name))
        .find(|dir| root.join("train").is_dir() && dir.is_dir())
        .unwrap_or_else(|| root.to_path_buf());
    for folder in class_folders(&dir, 1)? {
        if !class_names.contains(&folder) {
            return Err(Error::format(
                &dir.join(&folder),
                format!(
                    "is a class the model was not trained on (its classes: {})",
                    class_names.join(", ")
                ),
            ));
        }
    }
    let options = ImageFolderOptions {
        on_bad_image,
        ..ImageFolderOptions::default()
    };
    let mut skipped = Vec::new();
    let images = decode_split(&dir, class_names, &options, &mut skipped)?;
    if images.is_empty() {
        return Err(Error::format(&dir, "no readable images"));
    }
    let pixels = to_bytes(&images, shape, true, &images[0].path)?;
    let labels = images.iter().map(|d| d.label).collect();
    Ok((pixels, labels, dir))
}

/// The class folders of a split directory, sorted by name; at least `least`.
fn class_folders(dir: &Path, least: usize) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    if names.len() < least {
        return Err(Error::format(
            dir,
            format!(
                "expected one folder per class (at least {least}), found {}",
                names.len()
            ),
        ));
    }
    Ok(names)
}

fn is_image(path: &Path) -> bool {
    let extension = path.extension().map(|e| e.to_string_lossy().to_lowercase());
    matches!(extension.as_deref(), Some("png" | "jpg" | "jpeg"))
}

/// Decodes every image of every class folder of one split, in sorted file order.
fn decode_split(
    dir: &Path,
    class_names: &[String],
    options: &ImageFolderOptions,
    skipped: &mut Vec<String>,
) -> Result<Vec<Decoded>> {
    let mut decoded = Vec::new();
    for (label, class) in class_names.iter().enumerate() {
        let folder = dir.join(class);
        if !folder.is_dir() {
            continue; // a test split may lack a class
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map_err(|e| Error::io(&folder, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.is_file() && is_image(path))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::format(
                &folder,
                "the class folder has no images (.png, .jpg or .jpeg files)",
            ));
        }
        for path in files {
            match image::open(&path) {
                Ok(image) => decoded.push(Decoded { image, label, path }),
                Err(e) if options.on_bad_image == BadImage::Skip => {
                    skipped.push(format!("{}: {e}", path.display()))
                }
                Err(e) => {
                    return Err(Error::format(
                        &path,
                        format!(
                            "not a readable PNG/JPEG image: {e} (set on_bad_image = \"skip\" to leave such files out)"
                        ),
                    ));
                }
            }
        }
    }
    Ok(decoded)
}

/// Holds out `test_fraction` of each class (at least one image of a class with two
/// or more), chosen by a seeded shuffle.
fn stratified_split(
    images: Vec<Decoded>,
    classes: usize,
    options: &ImageFolderOptions,
) -> Result<(Vec<Decoded>, Vec<Decoded>)> {
    if !(0.0..1.0).contains(&options.test_fraction) {
        return Err(Error::Config(format!(
            "test_fraction must be in [0, 1), found {}",
            options.test_fraction
        )));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let mut by_class: Vec<Vec<Decoded>> = (0..classes).map(|_| Vec::new()).collect();
    for image in images {
        by_class[image.label].push(image);
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for mut class in by_class {
        class.shuffle(&mut rng);
        let held = (class.len() as f64 * options.test_fraction).round() as usize;
        let held = if options.test_fraction > 0.0 && class.len() >= 2 {
            held.max(1)
        } else {
            held
        };
        let rest = class.split_off(held);
        test.extend(class);
        train.extend(rest);
    }
    Ok((train, test))
}

/// The images as `[C, H, W]` bytes, resized if asked; without resizing, an image of
/// another size than the first is an error naming both.
fn to_bytes(images: &[Decoded], shape: [usize; 3], resize: bool, first: &Path) -> Result<Vec<u8>> {
    let [channels, height, width] = shape;
    let mut out = Vec::with_capacity(images.len() * channels * height * width);
    for decoded in images {
        let image = &decoded.image;
        if !resize && (image.height() as usize, image.width() as usize) != (height, width) {
            return Err(Error::format(
                &decoded.path,
                format!(
                    "is {}×{} (height × width), but {} is {height}×{width}: set image_size = [h, w] to resize them all",
                    image.height(),
                    image.width(),
                    first.display()
                ),
            ));
        }
        planar_bytes(image, shape, &mut out);
    }
    Ok(out)
}

/// One image as `[C, H, W]` bytes appended to `out`: resized to `H × W` (exactly,
/// stretching) if it is another size, converted to grey (C = 1) or RGB (C = 3).
/// Training images and the images `nabla predict` is given go through this one path.
pub fn planar_bytes(
    image: &image::DynamicImage,
    [channels, height, width]: [usize; 3],
    out: &mut Vec<u8>,
) {
    let resized;
    let image = if (image.height() as usize, image.width() as usize) != (height, width) {
        let filter = image::imageops::FilterType::Triangle;
        resized = image.resize_exact(width as u32, height as u32, filter);
        &resized
    } else {
        image
    };
    if channels == 1 {
        out.extend_from_slice(image.to_luma8().as_raw());
    } else {
        let rgb = image.to_rgb8();
        for c in 0..3 {
            out.extend(rgb.as_raw().iter().skip(c).step_by(3));
        }
    }
}
