//! Import of the original CLEVR-SV layout, as the StoryGAN code reads it:
//!
//! ```text
//! SRC/images/CLEVR_new_%06d_%d.png   320×240 RGBA, frames 1..4 of story %06d
//! SRC/CLEVR_dict.npy                 np.save of a dict: file name -> 75 floats
//! ```
//! Frames are resized to the target size the way the reference loader does (alpha dropped,
//! squashed to a square with a bilinear filter); labels and sentences are derived from the
//! vectors.

use super::scene::{decode_frame, label_of, Object, FRAMES, VECTOR_LEN};
use super::{check_common, header, sentence};
use crate::dataset::{DatasetWriter, Frame, Split, StoryRecord};
use crate::npy;
use crate::rng::Rng;
use anyhow::{ensure, Context, Result};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub size: u32,
    pub split: f64,
    /// Seeds the choice of sentence wording.
    pub seed: u64,
}

/// Names the dict may have (the StoryGAN README spells it both ways).
const DICT_NAMES: [&str; 2] = ["CLEVR_dict.npy", "clevr_dict.npy"];

fn frame_name(story: u32, t: usize) -> String {
    format!("CLEVR_new_{story:06}_{}.png", t + 1)
}

/// Parses "CLEVR_new_000123_4.png" into (123, 4).
fn parse_name(name: &str) -> Option<(u32, usize)> {
    let rest = name.strip_prefix("CLEVR_new_")?.strip_suffix(".png")?;
    let (num, t) = rest.split_once('_')?;
    if num.len() != 6 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((num.parse().ok()?, t.parse().ok()?))
}

/// Orders a story's objects by appearance. The object frame t adds is slot t when present
/// (cumulative filling), else the slot present in frame t but not in frame t-1.
fn objects_in_order(vectors: &[Vec<f32>], names: &[String]) -> Result<(Vec<Object>, super::scene::Camera)> {
    let mut seen = BTreeSet::new();
    let mut order = Vec::with_capacity(FRAMES);
    let mut camera = None;
    for (t, v) in vectors.iter().enumerate() {
        let (objs, cam) = decode_frame(v).map_err(|e| anyhow::anyhow!("{}: {e}", names[t]))?;
        camera.get_or_insert(cam);
        let new = objs
            .iter()
            .find(|(slot, _)| *slot == t && !seen.contains(slot))
            .or_else(|| objs.iter().find(|(slot, _)| !seen.contains(slot)))
            .with_context(|| format!("{}: adds no object to frame {}", names[t], t))?;
        seen.insert(new.0);
        order.push(new.1);
    }
    Ok((order, camera.expect("four frames")))
}

/// Imports `src` into a storyvis dataset at `out`.
pub fn import(src: &Path, out: &Path, force: bool, opts: &ImportOptions, tick: &(dyn Fn() + Sync)) -> Result<usize> {
    check_common(opts.size, opts.split)?;
    ensure!(src.is_dir(), "{} is not a directory", src.display());
    let dict_path = DICT_NAMES
        .iter()
        .map(|n| src.join(n))
        .find(|p| p.is_file())
        .with_context(|| format!("{} has no CLEVR_dict.npy", src.display()))?;
    let dict = npy::load_dict_of_vectors(&dict_path)?;
    let images = src.join("images");
    let mut stories: BTreeMap<u32, BTreeSet<usize>> = BTreeMap::new();
    for e in std::fs::read_dir(&images).with_context(|| format!("cannot read {}", images.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if let Some((n, t)) = parse_name(&name) {
            stories.entry(n).or_default().insert(t);
        }
    }
    ensure!(!stories.is_empty(), "{} holds no CLEVR_new_%06d_%d.png frames", images.display());
    for (n, frames) in &stories {
        for t in 0..FRAMES {
            ensure!(frames.contains(&(t + 1)), "story {n:06} lacks {}", images.join(frame_name(*n, t)).display());
            let key = frame_name(*n, t);
            let v = dict.get(&key).with_context(|| format!("{}: no entry for {key}", dict_path.display()))?;
            ensure!(
                v.len() == VECTOR_LEN,
                "{}: {key} has {} numbers, expected {VECTOR_LEN}",
                dict_path.display(),
                v.len()
            );
        }
    }

    let writer = DatasetWriter::create(out, force)?;
    let numbers: Vec<u32> = stories.keys().copied().collect();
    let n = numbers.len();
    let records: Vec<StoryRecord> = numbers
        .par_iter()
        .enumerate()
        .map(|(i, &num)| {
            let r = import_story(&images, &dict, num, i, n, opts, &writer);
            tick();
            r
        })
        .collect::<Result<_>>()?;
    let source = serde_json::json!({
        "imported_from": src.display().to_string(),
        "layout": "StoryGAN CLEVR-SV (images/CLEVR_new_%06d_%d.png + CLEVR_dict.npy)",
        "split": opts.split,
        "sentence_seed": opts.seed,
    });
    writer.finish(&header(source, n, opts.size), &records)?;
    Ok(n)
}

fn import_story(
    images: &Path,
    dict: &BTreeMap<String, Vec<f32>>,
    num: u32,
    index: usize,
    total: usize,
    opts: &ImportOptions,
    out: &DatasetWriter,
) -> Result<StoryRecord> {
    let names: Vec<String> = (0..FRAMES).map(|t| frame_name(num, t)).collect();
    let vectors: Vec<Vec<f32>> = names.iter().map(|k| dict[k].clone()).collect();
    let (objects, camera) = objects_in_order(&vectors, &names)?;
    let mut rng = Rng::for_item(opts.seed, num as u64);
    let id = format!("{num:06}");
    let mut frames = Vec::with_capacity(FRAMES);
    for t in 0..FRAMES {
        let path: PathBuf = images.join(&names[t]);
        let img = image::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        // Like the reference loader: RGB channels only, squashed to size × size.
        let rgb = image::imageops::resize(&img.to_rgb8(), opts.size, opts.size, image::imageops::FilterType::Triangle);
        let rel = format!("images/{id}_{}.png", t + 1);
        out.write_png(&rel, rgb.as_raw(), opts.size)?;
        frames.push(Frame {
            image: rel,
            vector: vectors[t].clone(),
            label: label_of(&vectors[t]).to_vec(),
            sentence: sentence::caption(&objects, t, &camera, &mut rng).text,
        });
    }
    Ok(StoryRecord { id, split: Split::of(index, total, opts.split), frames })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_names_parse() {
        assert_eq!(parse_name("CLEVR_new_000123_4.png"), Some((123, 4)));
        assert_eq!(parse_name(&frame_name(7, 0)), Some((7, 1)));
        assert_eq!(parse_name("CLEVR_new_123_4.png"), None);
        assert_eq!(parse_name("CLEVR_dict.npy"), None);
    }
}
