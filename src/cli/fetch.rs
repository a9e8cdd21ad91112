//! `nabla data fetch`: downloads MNIST or Fashion-MNIST from the usual public
//! mirrors, verifies each file's published checksum, and writes it atomically; or
//! CIFAR-10/100's binary archive from its authors' site, verified by its published
//! size and MD5, of which only the expected data files are unpacked (atomically).

use std::io::Read;
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A file of a dataset and its expected digest.
struct Resource {
    name: &'static str,
    digest: Checksum,
}

#[derive(Clone, Copy)]
enum Checksum {
    Sha256(&'static str),
    Md5(&'static str),
}

impl Checksum {
    fn matches(self, bytes: &[u8]) -> (bool, String) {
        let (expected, actual) = match self {
            Checksum::Sha256(expected) => (expected, hex(&Sha256::digest(bytes))),
            Checksum::Md5(expected) => (expected, hex(&Md5::digest(bytes))),
        };
        (expected == actual, actual)
    }

    fn expected(self) -> &'static str {
        match self {
            Checksum::Sha256(e) | Checksum::Md5(e) => e,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MNIST: SHA-256 of the canonical gzipped files (as committed in data/mnist).
const MNIST: [Resource; 4] = [
    Resource {
        name: "train-images-idx3-ubyte.gz",
        digest: Checksum::Sha256(
            "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
        ),
    },
    Resource {
        name: "train-labels-idx1-ubyte.gz",
        digest: Checksum::Sha256(
            "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
        ),
    },
    Resource {
        name: "t10k-images-idx3-ubyte.gz",
        digest: Checksum::Sha256(
            "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
        ),
    },
    Resource {
        name: "t10k-labels-idx1-ubyte.gz",
        digest: Checksum::Sha256(
            "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
        ),
    },
];

/// Fashion-MNIST: the MD5 sums its authors publish.
const FASHION_MNIST: [Resource; 4] = [
    Resource {
        name: "train-images-idx3-ubyte.gz",
        digest: Checksum::Md5("8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    },
    Resource {
        name: "train-labels-idx1-ubyte.gz",
        digest: Checksum::Md5("25c81989df183df01b3e8a0aad5dffbe"),
    },
    Resource {
        name: "t10k-images-idx3-ubyte.gz",
        digest: Checksum::Md5("bef4ecab320f06d8554ea6380940ec79"),
    },
    Resource {
        name: "t10k-labels-idx1-ubyte.gz",
        digest: Checksum::Md5("bb300cfdad3c16e7a12a480ee83cd310"),
    },
];

const MNIST_MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];
const FASHION_MIRRORS: [&str; 2] = [
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
];

/// A dataset published as one archive: its size and MD5 (as its authors publish
/// them), and the members kept (unpacked flat into the target directory).
struct Archive {
    name: &'static str,
    bytes: usize,
    md5: &'static str,
    members: &'static [&'static str],
    /// The directory the configs point at, under data/.
    default_dir: &'static str,
}

const CIFAR10: Archive = Archive {
    name: "cifar-10-binary.tar.gz",
    bytes: 170_052_171,
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    members: &[
        "cifar-10-batches-bin/data_batch_1.bin",
        "cifar-10-batches-bin/data_batch_2.bin",
        "cifar-10-batches-bin/data_batch_3.bin",
        "cifar-10-batches-bin/data_batch_4.bin",
        "cifar-10-batches-bin/data_batch_5.bin",
        "cifar-10-batches-bin/test_batch.bin",
        "cifar-10-batches-bin/batches.meta.txt",
    ],
    default_dir: "cifar-10-batches-bin",
};

const CIFAR100: Archive = Archive {
    name: "cifar-100-binary.tar.gz",
    bytes: 168_513_733,
    md5: "03b5dce01913d631647c71ecec9e9cb8",
    members: &[
        "cifar-100-binary/train.bin",
        "cifar-100-binary/test.bin",
        "cifar-100-binary/fine_label_names.txt",
        "cifar-100-binary/coarse_label_names.txt",
    ],
    default_dir: "cifar-100-binary",
};

const CIFAR_SITE: &str = "https://www.cs.toronto.edu/~kriz/";

/// The largest file accepted (the CIFAR archives are 170 MB).
const MAX_BYTES: u64 = 200 * 1024 * 1024;

/// Runs `nabla data fetch DATASET [--dir DIR] [--mirror URL] [--archive FILE]`.
pub fn run(
    dataset: &str,
    dir: Option<PathBuf>,
    mirror: Option<&str>,
    archive: Option<&Path>,
) -> Result<()> {
    let (resources, mirrors): (&[Resource], &[&str]) = match dataset {
        "mnist" => (&MNIST, &MNIST_MIRRORS),
        "fashion-mnist" => (&FASHION_MNIST, &FASHION_MIRRORS),
        "cifar10" | "cifar-10" => return fetch_archive(&CIFAR10, dir, mirror, archive),
        "cifar100" | "cifar-100" => return fetch_archive(&CIFAR100, dir, mirror, archive),
        other => {
            return Err(Error::Config(format!(
                "unknown dataset `{other}`: expected `mnist`, `fashion-mnist`, `cifar10` or `cifar100`"
            )));
        }
    };
    if archive.is_some() {
        return Err(Error::Config(format!(
            "--archive is for the CIFAR archives; {dataset} is four files (use --mirror)"
        )));
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from("data").join(dataset));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mirrors: Vec<String> = match mirror {
        Some(m) => vec![if m.ends_with('/') {
            m.to_string()
        } else {
            format!("{m}/")
        }],
        None => mirrors.iter().map(|m| m.to_string()).collect(),
    };
    for resource in resources {
        let path = dir.join(resource.name);
        if std::fs::read(&path).is_ok_and(|existing| resource.digest.matches(&existing).0) {
            outln!("{}: already present, checksum ok", path.display());
            continue;
        }
        let mut failures = Vec::new();
        let mut done = false;
        for base in &mirrors {
            let url = format!("{base}{}", resource.name);
            match download(&url) {
                Ok(bytes) => {
                    let (ok, actual) = resource.digest.matches(&bytes);
                    if ok {
                        crate::checkpoint::write_atomically(&path, &bytes)?;
                        outln!(
                            "{}: {} bytes from {url}, checksum ok",
                            path.display(),
                            bytes.len()
                        );
                        done = true;
                        break;
                    }
                    failures.push(format!(
                        "{url}: checksum mismatch: expected {}, found {actual}",
                        resource.digest.expected()
                    ));
                }
                Err(e) => failures.push(format!("{url}: {e}")),
            }
        }
        if !done {
            return Err(Error::format(
                &path,
                format!(
                    "could not download a good copy:\n  {}",
                    failures.join("\n  ")
                ),
            ));
        }
    }
    outln!("{dataset} is in {}", dir.display());
    Ok(())
}

fn download(url: &str) -> std::result::Result<Vec<u8>, String> {
    let mut response = ureq::get(url).call().map_err(|e| e.to_string())?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_BYTES)
        .read_to_vec()
        .map_err(|e| e.to_string())
}

/// Downloads (or reads, with `--archive`) a dataset's archive, checks its size and
/// MD5, and unpacks its members into `dir`.
fn fetch_archive(
    archive: &Archive,
    dir: Option<PathBuf>,
    mirror: Option<&str>,
    local: Option<&Path>,
) -> Result<()> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("data").join(archive.default_dir));
    let present = archive
        .members
        .iter()
        .all(|member| dir.join(base_name(member)).is_file());
    if present && local.is_none() {
        outln!("{}: already unpacked there", dir.display());
        return Ok(());
    }
    let (bytes, source) = match local {
        Some(path) => (
            std::fs::read(path).map_err(|e| Error::io(path, e))?,
            path.display().to_string(),
        ),
        None => {
            let base = mirror.unwrap_or(CIFAR_SITE);
            let url = format!("{}/{}", base.trim_end_matches('/'), archive.name);
            outln!("downloading {url} ({} MB)…", archive.bytes / 1_000_000);
            let bytes = download(&url).map_err(|e| Error::Config(format!("{url}: {e}")))?;
            (bytes, url)
        }
    };
    verify_archive(archive, &bytes).map_err(|why| Error::Config(format!("{source}: {why}")))?;
    let written = unpack(&bytes, archive.members, &dir)
        .map_err(|why| Error::Config(format!("{source}: {why}")))?;
    outln!(
        "{}: {} files from {source} (size and MD5 ok)",
        dir.display(),
        written.len()
    );
    Ok(())
}

fn base_name(member: &str) -> &str {
    member.rsplit('/').next().unwrap_or(member)
}

/// The archive is the published one: its size, then its MD5.
fn verify_archive(archive: &Archive, bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.len() != archive.bytes {
        return Err(format!(
            "{} bytes, but {} is {} bytes: an incomplete or different file",
            bytes.len(),
            archive.name,
            archive.bytes
        ));
    }
    let (ok, actual) = Checksum::Md5(archive.md5).matches(bytes);
    if !ok {
        return Err(format!(
            "checksum mismatch: expected MD5 {}, found {actual}",
            archive.md5
        ));
    }
    Ok(())
}

/// Unpacks the named members of a gzipped tar into `dir` (each by its base name,
/// written atomically; nothing else in the archive is written, whatever its paths).
fn unpack(
    gzipped_tar: &[u8],
    members: &[&str],
    dir: &Path,
) -> std::result::Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(gzipped_tar));
    let mut written = Vec::new();
    for entry in tar
        .entries()
        .map_err(|e| format!("not a tar.gz archive: {e}"))?
    {
        let mut entry = entry.map_err(|e| format!("a damaged archive: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let name = name.trim_start_matches("./");
        if !entry.header().entry_type().is_file() || !members.contains(&name) {
            continue;
        }
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .map_err(|e| format!("{name}: {e}"))?;
        let path = dir.join(base_name(name));
        crate::checkpoint::write_atomically(&path, &content).map_err(|e| e.to_string())?;
        written.push(path);
    }
    if let Some(missing) = members
        .iter()
        .find(|m| !written.iter().any(|w| w.ends_with(base_name(m))))
    {
        return Err(format!("the archive has no {missing}"));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzipped tar of (path, bytes) entries.
    fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *bytes).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn only_the_named_members_are_unpacked_and_a_missing_one_is_named() {
        let dir = std::env::temp_dir().join(format!("nabla-unpack-{}", std::process::id()));
        let archive = tar_gz(&[
            ("cifar-100-binary/train.bin", b"train"),
            ("cifar-100-binary/test.bin", b"test"),
            ("cifar-100-binary/readme.html", b"<html>"),
        ]);
        let members = ["cifar-100-binary/train.bin", "cifar-100-binary/test.bin"];
        let written = unpack(&archive, &members, &dir).unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(std::fs::read(dir.join("train.bin")).unwrap(), b"train");
        assert!(
            !dir.join("readme.html").exists(),
            "only the data files are kept"
        );

        let short = tar_gz(&[("cifar-100-binary/train.bin", b"train")]);
        let error = unpack(&short, &members, &dir.join("short")).unwrap_err();
        assert!(error.contains("no cifar-100-binary/test.bin"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_archive_of_the_wrong_size_or_sum_is_refused() {
        let archive = Archive {
            name: "x.tar.gz",
            bytes: 3,
            md5: "900150983cd24fb0d6963f7d28e17f72", // MD5("abc")
            members: &[],
            default_dir: "x",
        };
        assert!(verify_archive(&archive, b"abc").is_ok());
        assert!(
            verify_archive(&archive, b"abcd")
                .unwrap_err()
                .contains("4 bytes")
        );
        let error = verify_archive(&archive, b"abd").unwrap_err();
        assert!(error.contains("checksum mismatch"), "{error}");
    }
}
