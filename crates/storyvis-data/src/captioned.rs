//! Imports of captioned-image collections into the dataset format (one item per image, its
//! captions in `captions`):
//!
//! * `cub`: the layout Reed et al. (CVPR 2016, ICML 2016) and StackGAN distribute for CUB-200
//!   and Oxford-102:
//!   ```text
//!   SRC/images/<class>/<name>.jpg          (or .png)
//!   SRC/text_c10/<class>/<name>.txt        one caption per line (10 per image)
//!   SRC/trainvalclasses.txt, testclasses.txt   optional: the class split, one class per line
//!   ```
//!   Labels are the class, one-hot. Without the class lists, `split` of the classes (in name
//!   order) train and the rest test, as the paper splits by class.
//! * `folder`: anything else: `SRC/captions.jsonl`, one line per image:
//!   `{"image": "relative/path.png", "captions": ["…", …], "split": "train"|"test" (no "val"),
//!   "labels": ["tag", …]}` (`split` and `labels` optional; without `split`, the first `split`
//!   share of the lines train).
//!
//! Images are centre-cropped to a square and resized (bilinear). A missing or unreadable
//! caption file, a caption file that is not UTF-8 or holds no caption, a missing image: each
//! an error that names the file, and nothing is written.

use crate::dataset::{self, DatasetWriter, Frame, Header, Split, StoryRecord};
use anyhow::{bail, ensure, Context, Result};
use rayon::prelude::*;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Which layout the source has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Cub,
    Folder,
}

impl std::str::FromStr for Layout {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cub" => Ok(Layout::Cub),
            "folder" => Ok(Layout::Folder),
            other => bail!("unknown layout {other:?} (cub or folder)"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CaptionImport {
    pub layout: Layout,
    pub size: u32,
    /// Share of classes (cub) or lines (folder) in the training split when the source does not
    /// say.
    pub split: f64,
}

/// One image of the source before it is written.
struct Item {
    id: String,
    image: PathBuf,
    captions: Vec<String>,
    split: Split,
    labels: Vec<String>,
}

/// A caption file: UTF-8, one caption per non-empty line.
fn read_captions(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("caption file {} is missing or unreadable", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "caption file {} is not UTF-8 (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let caps: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    ensure!(!caps.is_empty(), "caption file {} holds no caption", path.display());
    Ok(caps)
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

fn class_list(path: &Path) -> Result<Option<BTreeSet<String>>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
    Ok(Some(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()))
}

fn cub_items(src: &Path, opts: &CaptionImport) -> Result<Vec<Item>> {
    let (images, texts) = (src.join("images"), src.join("text_c10"));
    ensure!(
        images.is_dir(),
        "{} has no images/ directory (the CUB / Oxford-102 layout: images/<class>/<name>.jpg)",
        src.display()
    );
    ensure!(
        texts.is_dir(),
        "{} has no text_c10/ directory (captions: text_c10/<class>/<name>.txt)",
        src.display()
    );
    let classes: Vec<PathBuf> = sorted_dirs(&images)?.into_iter().filter(|p| p.is_dir()).collect();
    ensure!(!classes.is_empty(), "{} holds no class directories", images.display());
    let name =
        |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (train, test) =
        (class_list(&src.join("trainvalclasses.txt"))?, class_list(&src.join("testclasses.txt"))?);
    let n_train = (classes.len() as f64 * opts.split).round() as usize;
    let mut items = Vec::new();
    for (k, class) in classes.iter().enumerate() {
        let c = name(class);
        let split = match (&train, &test) {
            (Some(tr), _) if tr.contains(&c) => Split::Train,
            (_, Some(te)) if te.contains(&c) => Split::Test,
            (Some(_), _) | (_, Some(_)) => continue, // in neither list: left out, as the paper's splits do
            _ if k < n_train => Split::Train,
            _ => Split::Test,
        };
        for img in sorted_dirs(class)? {
            let ext = img.extension().map(|e| e.to_string_lossy().to_lowercase());
            if !matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png")) {
                continue;
            }
            let stem =
                img.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let captions = read_captions(&texts.join(&c).join(format!("{stem}.txt")))?;
            items.push(Item {
                id: format!("{c}/{stem}"),
                image: img,
                captions,
                split,
                labels: vec![c.clone()],
            });
        }
    }
    ensure!(!items.is_empty(), "{} holds no images", images.display());
    Ok(items)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderLine {
    image: String,
    captions: Vec<String>,
    #[serde(default)]
    split: Option<Split>,
    #[serde(default)]
    labels: Vec<String>,
}

fn folder_items(src: &Path, opts: &CaptionImport) -> Result<Vec<Item>> {
    let path = src.join("captions.jsonl");
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "{} is missing (the folder layout: captions.jsonl beside the images)",
            path.display()
        )
    })?;
    let text =
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not UTF-8", path.display()))?;
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).collect();
    let n_train = (lines.len() as f64 * opts.split).round() as usize;
    let mut items = Vec::with_capacity(lines.len());
    for (k, (n, line)) in lines.into_iter().enumerate() {
        let at = || format!("{} line {}", path.display(), n + 1);
        let l: FolderLine = serde_json::from_str(line).with_context(at)?;
        ensure!(
            !l.image.is_empty()
                && Path::new(&l.image)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{}: image {:?} must be a relative path inside {}",
            at(),
            l.image,
            src.display()
        );
        let captions: Vec<String> =
            l.captions.iter().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect();
        ensure!(!captions.is_empty(), "{}: no caption", at());
        ensure!(
            l.split != Some(Split::Val),
            "{}: split \"val\": captioned images are \"train\" or \"test\"",
            at()
        );
        let split = l.split.unwrap_or(if k < n_train { Split::Train } else { Split::Test });
        items.push(Item {
            id: format!("{k:06}"),
            image: src.join(&l.image),
            captions,
            split,
            labels: l.labels,
        });
    }
    ensure!(!items.is_empty(), "{} lists no images", path.display());
    Ok(items)
}

/// Centre-crops to a square and resizes to `size`.
fn square(img: &image::RgbImage, size: u32) -> image::RgbImage {
    let (w, h) = img.dimensions();
    let s = w.min(h);
    let crop = image::imageops::crop_imm(img, (w - s) / 2, (h - s) / 2, s, s).to_image();
    image::imageops::resize(&crop, size, size, image::imageops::FilterType::Triangle)
}

/// Imports `src` into a new dataset at `out`; returns the number of images.
pub fn import_captioned(
    src: &Path,
    out: &Path,
    force: bool,
    opts: &CaptionImport,
    tick: &(dyn Fn() + Sync),
) -> Result<usize> {
    crate::clevr::check_common(opts.size, opts.split)?;
    ensure!(src.is_dir(), "{} is not a directory", src.display());
    let items = match opts.layout {
        Layout::Cub => cub_items(src, opts)?,
        Layout::Folder => folder_items(src, opts)?,
    };
    let label_names: Vec<String> = items
        .iter()
        .flat_map(|i| i.labels.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let writer = DatasetWriter::create(out, force)?;
    let records: Vec<StoryRecord> = items
        .par_iter()
        .enumerate()
        .map(|(k, item)| {
            let img = image::open(&item.image)
                .with_context(|| format!("cannot read image {}", item.image.display()))?
                .to_rgb8();
            let rgb = square(&img, opts.size);
            let rel = format!("images/{k:06}.png");
            writer.write_png(&rel, rgb.as_raw(), opts.size)?;
            tick();
            let label = label_names.iter().map(|n| u8::from(item.labels.contains(n))).collect();
            let frame = Frame {
                image: rel,
                vector: Vec::new(),
                label,
                sentence: item.captions[0].clone(),
                captions: item.captions.clone(),
                objects: Vec::new(),
            };
            Ok(StoryRecord { id: item.id.clone(), split: item.split, frames: vec![frame] })
        })
        .collect::<Result<_>>()?;
    let header = Header {
        format: dataset::FORMAT.into(),
        version: dataset::VERSION,
        kind: match opts.layout {
            Layout::Cub => "captioned-cub".into(),
            Layout::Folder => "captioned-folder".into(),
        },
        frames_per_story: 1,
        image_size: opts.size,
        vector_len: 0,
        label_names,
        stories: records.len(),
        source: serde_json::json!({ "imported": src.display().to_string(), "layout": format!("{:?}", opts.layout).to_lowercase(), "split": opts.split }),
    };
    writer.finish(&header, &records)?;
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Dataset;

    fn jpg(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(w, h, image::Rgb(rgb)).save(path).unwrap();
    }

    fn write(path: &Path, text: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A CUB-style tree: 3 classes of 2 images each, 10 captions per image.
    fn cub_tree(root: &Path, with_lists: bool) {
        for (c, class) in ["001.Albatross", "002.Auklet", "003.Bunting"].iter().enumerate() {
            for i in 0..2 {
                jpg(
                    &root.join(format!("images/{class}/bird_{i}.jpg")),
                    40 + 10 * i,
                    30,
                    [80 * c as u8, 100, 20],
                );
                let caps: String = (0..10)
                    .map(|k| format!("this bird {k} of class {c} has a short beak.\n"))
                    .collect();
                write(&root.join(format!("text_c10/{class}/bird_{i}.txt")), caps.as_bytes());
            }
        }
        if with_lists {
            write(&root.join("trainvalclasses.txt"), b"001.Albatross\n003.Bunting\n");
            write(&root.join("testclasses.txt"), b"002.Auklet\n");
        }
    }

    #[test]
    fn a_cub_tree_imports_with_its_class_split_captions_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("cub");
        cub_tree(&src, true);
        let opts = CaptionImport { layout: Layout::Cub, size: 16, split: 0.5 };
        assert_eq!(
            import_captioned(&src, &dir.path().join("out"), false, &opts, &|| {}).unwrap(),
            6
        );
        let ds = Dataset::open(&dir.path().join("out")).unwrap();
        assert_eq!(ds.header.label_names, vec!["001.Albatross", "002.Auklet", "003.Bunting"]);
        let test: Vec<_> = ds.split(Split::Test).map(|s| s.id.clone()).collect();
        assert_eq!(test, vec!["002.Auklet/bird_0", "002.Auklet/bird_1"]);
        let first = &ds.stories[0].frames[0];
        assert_eq!((first.captions.len(), first.label.as_slice()), (10, &[1u8, 0, 0][..]));
        assert_eq!(ds.load_image(first).unwrap().dimensions(), (16, 16));
        // Without the lists: the first half of the classes (rounded) train.
        let src2 = dir.path().join("cub2");
        cub_tree(&src2, false);
        import_captioned(
            &src2,
            &dir.path().join("out2"),
            false,
            &CaptionImport { split: 0.67, ..opts.clone() },
            &|| {},
        )
        .unwrap();
        let ds = Dataset::open(&dir.path().join("out2")).unwrap();
        assert_eq!(ds.split(Split::Train).count(), 4);
    }

    #[test]
    fn a_broken_cub_tree_is_an_error_naming_the_file_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let opts = CaptionImport { layout: Layout::Cub, size: 16, split: 0.5 };
        let err = |src: &Path| {
            format!(
                "{:#}",
                import_captioned(src, &dir.path().join("never"), false, &opts, &|| {}).unwrap_err()
            )
        };
        let missing = dir.path().join("missing");
        cub_tree(&missing, true);
        std::fs::remove_file(missing.join("text_c10/002.Auklet/bird_1.txt")).unwrap();
        assert!(
            err(&missing).contains("text_c10/002.Auklet/bird_1.txt is missing"),
            "{}",
            err(&missing)
        );
        let latin1 = dir.path().join("latin1");
        cub_tree(&latin1, true);
        write(&latin1.join("text_c10/001.Albatross/bird_0.txt"), b"a caf\xe9 bird.\n");
        assert!(err(&latin1).contains("bird_0.txt is not UTF-8"), "{}", err(&latin1));
        let empty = dir.path().join("empty");
        cub_tree(&empty, true);
        write(&empty.join("text_c10/003.Bunting/bird_0.txt"), b"\n  \n");
        assert!(err(&empty).contains("holds no caption"));
        assert!(err(&dir.path().join("nothing")).contains("is not a directory"));
        assert!(!dir.path().join("never").exists());
    }

    #[test]
    fn a_folder_with_captions_jsonl_imports_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("f");
        jpg(&src.join("a.png"), 20, 20, [255, 0, 0]);
        jpg(&src.join("sub/b.jpg"), 30, 20, [0, 0, 255]);
        let lines = "{\"image\":\"a.png\",\"captions\":[\"a red square.\",\"red.\"],\"labels\":[\"red\"]}\n\
                     {\"image\":\"sub/b.jpg\",\"captions\":[\"a blue one.\"],\"split\":\"test\",\"labels\":[\"blue\"]}\n";
        write(&src.join("captions.jsonl"), lines.as_bytes());
        let opts = CaptionImport { layout: Layout::Folder, size: 16, split: 1.0 };
        assert_eq!(
            import_captioned(&src, &dir.path().join("out"), false, &opts, &|| {}).unwrap(),
            2
        );
        let ds = Dataset::open(&dir.path().join("out")).unwrap();
        assert_eq!(ds.header.label_names, vec!["blue", "red"]);
        assert_eq!((ds.stories[0].split, ds.stories[1].split), (Split::Train, Split::Test));
        assert_eq!(ds.stories[0].frames[0].captions, vec!["a red square.", "red."]);
        let px = ds.load_image(&ds.stories[1].frames[0]).unwrap();
        let [r, g, b] = px.get_pixel(8, 8).0; // a JPEG: within its rounding
        assert!(r < 8 && g < 8 && b > 247, "{:?}", [r, g, b]);
        for (bad, want) in [
            ("{\"image\":\"../x.png\",\"captions\":[\"x\"]}", "must be a relative path"),
            ("{\"image\":\"a.png\",\"captions\":[\" \"]}", "line 1: no caption"),
            ("{\"image\":\"a.png\"}", "line 1"),
            ("{\"image\":\"nope.png\",\"captions\":[\"x\"]}", "cannot read image"),
            (
                "{\"image\":\"a.png\",\"captions\":[\"x\"],\"split\":\"val\"}",
                "\"train\" or \"test\"",
            ),
        ] {
            write(&src.join("captions.jsonl"), bad.as_bytes());
            let e = format!(
                "{:#}",
                import_captioned(&src, &dir.path().join("bad"), false, &opts, &|| {}).unwrap_err()
            );
            assert!(e.contains(want), "{bad}: {e}");
        }
        write(&src.join("captions.jsonl"), b"\xff\xfe");
        let e = format!(
            "{:#}",
            import_captioned(&src, &dir.path().join("bad"), false, &opts, &|| {}).unwrap_err()
        );
        assert!(e.contains("is not UTF-8"), "{e}");
    }
}
