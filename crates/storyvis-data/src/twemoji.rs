//! Twemoji as a captioned-image dataset: the 3,786 64×64 images of the npm package
//! `emoji-datasource-twitter` 16.0.0 (iamcal/emoji-data: `emoji.json` with names, short names,
//! categories and skin-tone variations; `img/twitter/64/*.png`), each with its Unicode name
//! and keywords as captions and its category as its label. The package is fetched on first use
//! into the cache (`$STORYVIS_CACHE`, else `~/.cache/storyvis`), as `scripts/setup` does for
//! libtorch, and checked against its SHA-256. Twemoji graphics are CC-BY 4.0: every dataset made
//! from them carries the attribution in its header.

use crate::dataset::{self, DatasetWriter, Frame, Header, Split, StoryRecord};
pub use crate::npm::cache_dir;
use crate::npm::NpmPackage;
use anyhow::{ensure, Context, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

/// The package (npm's shasum, SHA-1, is e2bd39a8acb77e158106f8249dd7b4cd93fa1b14).
pub const PACKAGE: NpmPackage = NpmPackage {
    name: "emoji-datasource-twitter",
    version: "16.0.0",
    sha256: "f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
    size: "62 MB",
};
pub const ATTRIBUTION: &str = "Twemoji graphics by Twitter, Inc and other contributors, licensed under CC-BY 4.0 \
    (https://creativecommons.org/licenses/by/4.0/); taken from the npm package emoji-datasource-twitter 16.0.0 \
    (https://github.com/iamcal/emoji-data)";

/// The skin tones of the variations' code points.
const TONES: [(&str, &str); 5] = [
    ("1F3FB", "light"),
    ("1F3FC", "medium-light"),
    ("1F3FD", "medium"),
    ("1F3FE", "medium-dark"),
    ("1F3FF", "dark"),
];

#[derive(Deserialize)]
struct Emoji {
    name: Option<String>,
    image: String,
    short_names: Vec<String>,
    category: String,
    subcategory: String,
    #[serde(default)]
    has_img_twitter: bool,
    #[serde(default)]
    skin_variations: BTreeMap<String, Variation>,
}

#[derive(Deserialize)]
struct Variation {
    image: String,
    #[serde(default)]
    has_img_twitter: bool,
}

/// The package tarball's bytes: from the cache, else downloaded into it.
pub fn package(cache: &Path) -> Result<Vec<u8>> {
    PACKAGE.fetch(cache)
}

/// PNG bytes by file name.
type Pngs = BTreeMap<String, Vec<u8>>;

/// `emoji.json` and every 64×64 PNG (by file name) of a package tarball.
fn read_package(tgz: &[u8]) -> Result<(Vec<Emoji>, Pngs)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let (mut json, mut images) = (None, BTreeMap::new());
    for entry in archive.entries().context("the package is not a gzipped tar")? {
        let mut entry = entry.context("a damaged entry in the package")?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        if name == "package/emoji.json" {
            entry.read_to_end(&mut bytes)?;
            json = Some(
                serde_json::from_slice::<Vec<Emoji>>(&bytes)
                    .context("package/emoji.json is not the emoji list")?,
            );
        } else if let Some(file) = name.strip_prefix("package/img/twitter/64/") {
            entry.read_to_end(&mut bytes)?;
            images.insert(file.to_string(), bytes);
        }
    }
    Ok((json.context("the package has no package/emoji.json")?, images))
}

/// An emoji's captions: its Unicode name, its short names and its subcategory, lower-case,
/// words separated by spaces; a skin-tone variation says its tone(s).
fn captions(e: &Emoji, tones: &[&str]) -> Vec<String> {
    let name = e.name.clone().unwrap_or_else(|| e.short_names[0].clone()).to_lowercase();
    let tone = match tones {
        [] => String::new(),
        [one] => format!(" with {one} skin tone"),
        many => format!(" with {} skin tones", many.join(" and ")),
    };
    let mut out = vec![format!("{name}{tone}")];
    for s in &e.short_names {
        let c = format!("{}{tone}", s.replace(['_', '-'], " "));
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out.push(format!("{} emoji{tone}", e.subcategory.replace('-', " ")));
    out
}

/// Composites an RGBA PNG on white and resizes it to `size`.
fn on_white(png: &[u8], size: u32) -> Result<image::RgbImage> {
    let img = image::load_from_memory(png)?.to_rgba8();
    let mut rgb = image::RgbImage::new(img.width(), img.height());
    for (x, y, p) in img.enumerate_pixels() {
        let a = p[3] as u32;
        let c = |v: u8| ((v as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        rgb.put_pixel(x, y, image::Rgb([c(p[0]), c(p[1]), c(p[2])]));
    }
    Ok(if rgb.width() == size && rgb.height() == size {
        rgb
    } else {
        image::imageops::resize(&rgb, size, size, image::imageops::FilterType::Triangle)
    })
}

/// Writes the Twemoji dataset from the package tarball `tgz` into `out`: every image with
/// Twitter artwork, base emoji and skin-tone variations; the first `split` share of the emoji
/// (in `emoji.json` order, each with its variations) train. Returns the number of images.
pub fn write_twemoji(tgz: &[u8], out: &Path, force: bool, size: u32, split: f64) -> Result<usize> {
    crate::clevr::check_common(size, split)?;
    let (emoji, images) = read_package(tgz)?;
    let categories: Vec<String> =
        emoji.iter().map(|e| e.category.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    // (image, emoji, tones, split): a base emoji and its skin-tone variations share a split,
    // so near-duplicates do not cross it.
    let mut items: Vec<(String, &Emoji, Vec<&str>, Split)> = Vec::new();
    for (k, e) in emoji.iter().enumerate() {
        let split = Split::of(k, emoji.len(), split);
        if e.has_img_twitter {
            items.push((e.image.clone(), e, vec![], split));
        }
        for (code, v) in &e.skin_variations {
            if v.has_img_twitter {
                let tones: Vec<&str> = code
                    .split('-')
                    .filter_map(|c| TONES.iter().find(|(t, _)| *t == c).map(|(_, n)| *n))
                    .collect();
                items.push((v.image.clone(), e, tones, split));
            }
        }
    }
    ensure!(!items.is_empty(), "the package lists no Twitter images");
    let writer = DatasetWriter::create(out, force)?;
    let mut records = Vec::with_capacity(items.len());
    for (file, e, tones, split) in &items {
        let png = images.get(file).with_context(|| {
            format!("the package lacks img/twitter/64/{file}, which emoji.json lists")
        })?;
        let rgb = on_white(png, size).with_context(|| format!("img/twitter/64/{file}"))?;
        let rel = format!("images/{}", file.replace(".png", "") + ".png");
        writer.write_png(&rel, rgb.as_raw(), size)?;
        let caps = captions(e, tones);
        let label = categories.iter().map(|c| u8::from(*c == e.category)).collect();
        records.push(StoryRecord {
            id: file.trim_end_matches(".png").to_string(),
            split: *split,
            frames: vec![Frame {
                image: rel,
                vector: Vec::new(),
                label,
                sentence: caps[0].clone(),
                captions: caps,
                objects: Vec::new(),
            }],
        });
    }
    let header = Header {
        format: dataset::FORMAT.into(),
        version: dataset::VERSION,
        kind: "twemoji".into(),
        frames_per_story: 1,
        image_size: size,
        vector_len: 0,
        label_names: categories.iter().map(|c| format!("category:{c}")).collect(),
        stories: records.len(),
        source: serde_json::json!({ "package": "emoji-datasource-twitter 16.0.0", "url": PACKAGE.url(), "sha256": PACKAGE.sha256, "attribution": ATTRIBUTION, "split": split }),
    };
    writer.finish(&header, &records)?;
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Dataset;

    /// A package tarball of two emoji (one with a skin-tone variation) and their PNGs.
    fn fake_package(with_image: bool) -> Vec<u8> {
        let json = r#"[{"name":"WAVING HAND SIGN","image":"1f44b.png","short_names":["wave"],"category":"People & Body","subcategory":"hand-fingers-open","has_img_twitter":true,
            "skin_variations":{"1F3FB":{"image":"1f44b-1f3fb.png","has_img_twitter":true}}},
          {"name":"RED APPLE","image":"1f34e.png","short_names":["apple","red_apple"],"category":"Food & Drink","subcategory":"food-fruit","has_img_twitter":true}]"#;
        let mut png = Vec::new();
        image::RgbaImage::from_pixel(64, 64, image::Rgba([255, 0, 0, 128]))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut add = |name: &str, bytes: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, name, bytes).unwrap();
        };
        add("package/emoji.json", json.as_bytes());
        for f in ["1f44b.png", "1f44b-1f3fb.png", "1f34e.png"]
            .iter()
            .filter(|f| with_image || **f != "1f34e.png")
        {
            add(&format!("package/img/twitter/64/{f}"), &png);
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn a_package_becomes_captioned_images_with_categories_and_the_attribution() {
        let dir = tempfile::tempdir().unwrap();
        let n = write_twemoji(&fake_package(true), &dir.path().join("t"), false, 64, 0.5).unwrap();
        assert_eq!(n, 3);
        let ds = Dataset::open(&dir.path().join("t")).unwrap();
        assert_eq!(ds.header.label_names, vec!["category:Food & Drink", "category:People & Body"]);
        assert!(ds.header.source["attribution"].as_str().unwrap().contains("CC-BY 4.0"));
        let caps: Vec<Vec<String>> =
            ds.stories.iter().map(|s| s.frames[0].captions.clone()).collect();
        assert_eq!(caps[0], vec!["waving hand sign", "wave", "hand fingers open emoji"]);
        assert_eq!(
            caps[1],
            vec![
                "waving hand sign with light skin tone",
                "wave with light skin tone",
                "hand fingers open emoji with light skin tone"
            ]
        );
        assert_eq!(caps[2], vec!["red apple", "apple", "food fruit emoji"]);
        assert_eq!(ds.stories[2].frames[0].label, vec![1, 0]);
        // Half-transparent red on white.
        let px = ds.load_image(&ds.stories[0].frames[0]).unwrap();
        assert_eq!(px.get_pixel(0, 0).0, [255, 127, 127]);
        // The second emoji (the apple) tests; the hand and its variation train together.
        assert_eq!(ds.split(Split::Test).map(|s| s.id.as_str()).collect::<Vec<_>>(), vec!["1f34e"]);
        // A package missing an image it lists is an error, and nothing is written.
        let e = format!(
            "{:#}",
            write_twemoji(&fake_package(false), &dir.path().join("u"), false, 64, 0.5).unwrap_err()
        );
        assert!(e.contains("lacks img/twitter/64/1f34e.png"), "{e}");
        assert!(!dir.path().join("u").exists());
        assert!(format!(
            "{:#}",
            write_twemoji(b"not a tarball", &dir.path().join("v"), false, 64, 0.5).unwrap_err()
        )
        .contains("package"));
    }

    /// The real package, when the cache has it (it is fetched by `prepare twemoji`, not here).
    #[test]
    fn the_cached_package_has_its_3786_images() {
        let Ok(cache) = cache_dir() else { return };
        if !PACKAGE.path(&cache).is_file() {
            eprintln!("skipped: {} is not in the cache", PACKAGE.file());
            return;
        }
        let tgz = package(&cache).unwrap();
        let (emoji, images) = read_package(&tgz).unwrap();
        assert_eq!((emoji.len(), images.len()), (1911, 3786));
    }
}
