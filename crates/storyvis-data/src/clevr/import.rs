//! Import of the original CLEVR-SV layout, as the StoryGAN code reads it:
//!
//! ```text
//! SRC/images/CLEVR_new_%06d_%d.png   320×240 RGBA, frames 1..4 of story %06d
//! SRC/CLEVR_dict.npy                 np.save of a dict: file name -> 75 floats
//! ```
//! Frames are resized to the target size the way the reference loader does (alpha dropped,
//! squashed to a square with a bilinear filter); labels and sentences are derived from the
//! vectors.

use super::scene::{decode_frame, label_of, Camera, Object, FRAMES, VECTOR_LEN};
use super::{check_common, header, sentence, story_id};
use crate::dataset::{DatasetWriter, Frame, Split, StoryRecord};
use crate::npy;
use crate::rng::Rng;
use anyhow::{bail, ensure, Context, Result};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub size: u32,
    pub split: f64,
    /// Seeds the choice of sentence wording.
    pub seed: u64,
    /// Fail if any story cannot be imported, instead of skipping it.
    pub strict: bool,
}

/// A story of the source that was not imported, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The story's number as in its file names: "000196".
    pub story: String,
    /// "no entry for CLEVR_new_000196_1.png in CLEVR_dict.npy".
    pub reason: String,
}

/// What an import did: stories written, and stories left out in order of their numbers.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    pub imported: usize,
    pub skipped: Vec<Skipped>,
}

/// Names the dict may have (the StoryGAN README spells it both ways).
const DICT_NAMES: [&str; 2] = ["CLEVR_dict.npy", "clevr_dict.npy"];

/// Error messages list this many skipped stories, then how many more.
const LISTED: usize = 10;

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
fn objects_in_order(
    vectors: &[Vec<f32>],
    names: &[String],
) -> Result<(Vec<Object>, Camera), String> {
    let mut seen = BTreeSet::new();
    let mut order = Vec::with_capacity(FRAMES);
    let mut camera = None;
    for (t, (v, name)) in vectors.iter().zip(names).enumerate() {
        let (objs, cam) = decode_frame(v).map_err(|e| format!("{name}: {e}"))?;
        camera.get_or_insert(cam);
        let new = objs
            .iter()
            .find(|(slot, _)| *slot == t && !seen.contains(slot))
            .or_else(|| objs.iter().find(|(slot, _)| !seen.contains(slot)))
            .ok_or_else(|| format!("{name} adds no object to the story"))?;
        seen.insert(new.0);
        order.push(new.1);
    }
    Ok((order, camera.expect("four frames")))
}

/// A story that can be imported: its frames' names and vectors, and its objects in order.
struct Ready {
    num: u32,
    names: Vec<String>,
    vectors: Vec<Vec<f32>>,
    objects: Vec<Object>,
    camera: Camera,
}

/// Checks story `num`, whose frame numbers in `images/` are `present`: every frame file is
/// there, has an entry of `VECTOR_LEN` numbers in the dict (`dict_name`), and the vectors add
/// one object per frame. The error is the reason to skip it.
fn check_story(
    num: u32,
    present: &BTreeSet<usize>,
    dict: &BTreeMap<String, Vec<f32>>,
    dict_name: &str,
) -> Result<Ready, String> {
    let names: Vec<String> = (0..FRAMES).map(|t| frame_name(num, t)).collect();
    let missing: Vec<&str> =
        (0..FRAMES).filter(|t| !present.contains(&(t + 1))).map(|t| names[t].as_str()).collect();
    if !missing.is_empty() {
        return Err(format!("images/ lacks {}", missing.join(", ")));
    }
    let mut vectors = Vec::with_capacity(FRAMES);
    for key in &names {
        let v = dict.get(key).ok_or_else(|| format!("no entry for {key} in {dict_name}"))?;
        if v.len() != VECTOR_LEN {
            return Err(format!(
                "{key} has {} numbers, expected {VECTOR_LEN} (in {dict_name})",
                v.len()
            ));
        }
        vectors.push(v.clone());
    }
    let (objects, camera) = objects_in_order(&vectors, &names)?;
    Ok(Ready { num, names, vectors, objects, camera })
}

/// The first `LISTED` skipped stories, one per line, then how many more (for messages; the
/// dataset's header lists them all).
pub fn list(skipped: &[Skipped]) -> String {
    let mut lines: Vec<String> =
        skipped.iter().take(LISTED).map(|s| format!("  story {}: {}", s.story, s.reason)).collect();
    if skipped.len() > LISTED {
        lines.push(format!("  and {} more", skipped.len() - LISTED));
    }
    lines.join("\n")
}

/// Imports `src` into a storyvis dataset at `out`. Stories that cannot be imported (a frame
/// file missing, a frame without a dict entry or with a vector of the wrong length, vectors
/// that do not add one object per frame) are skipped and reported, and recorded in the
/// dataset's header; with `opts.strict` they are an error instead. It is an error too when
/// no story can be imported. Nothing is written on error. `tick` is called once per imported
/// story.
pub fn import(
    src: &Path,
    out: &Path,
    force: bool,
    opts: &ImportOptions,
    tick: &(dyn Fn() + Sync),
) -> Result<ImportReport> {
    check_common(opts.size, opts.split)?;
    ensure!(src.is_dir(), "{} is not a directory", src.display());
    let (dict_path, dict_name) = DICT_NAMES
        .iter()
        .map(|n| (src.join(n), *n))
        .find(|(p, _)| p.is_file())
        .with_context(|| format!("{} has no CLEVR_dict.npy", src.display()))?;
    let dict = npy::load_dict_of_vectors(&dict_path)?;
    let images = src.join("images");
    let mut stories: BTreeMap<u32, BTreeSet<usize>> = BTreeMap::new();
    for e in
        std::fs::read_dir(&images).with_context(|| format!("cannot read {}", images.display()))?
    {
        let name = e?.file_name().to_string_lossy().into_owned();
        if let Some((n, t)) = parse_name(&name) {
            stories.entry(n).or_default().insert(t);
        }
    }
    ensure!(!stories.is_empty(), "{} holds no CLEVR_new_%06d_%d.png frames", images.display());
    let mut ready = Vec::with_capacity(stories.len());
    let mut skipped = Vec::new();
    for (&num, present) in &stories {
        match check_story(num, present, &dict, dict_name) {
            Ok(r) => ready.push(r),
            Err(reason) => skipped.push(Skipped { story: story_id(num as usize), reason }),
        }
    }
    if ready.is_empty() {
        bail!(
            "none of the {} stories in {} can be imported:\n{}",
            stories.len(),
            src.display(),
            list(&skipped)
        );
    }
    if opts.strict && !skipped.is_empty() {
        bail!(
            "{} of the {} stories in {} cannot be imported (without --strict they would be skipped):\n{}",
            skipped.len(),
            stories.len(),
            src.display(),
            list(&skipped)
        );
    }

    let writer = DatasetWriter::create(out, force)?;
    let n = ready.len();
    // Splits follow the index among the imported stories.
    let records: Vec<StoryRecord> = ready
        .par_iter()
        .enumerate()
        .map(|(i, story)| {
            let r = import_story(&images, story, i, n, opts, &writer);
            tick();
            r
        })
        .collect::<Result<_>>()?;
    let left_out: Vec<serde_json::Value> =
        skipped.iter().map(|s| serde_json::json!({"story": s.story, "reason": s.reason})).collect();
    let source = serde_json::json!({
        "imported_from": src.display().to_string(),
        "layout": "StoryGAN CLEVR-SV (images/CLEVR_new_%06d_%d.png + CLEVR_dict.npy)",
        "split": opts.split,
        "sentence_seed": opts.seed,
        "skipped": left_out,
    });
    writer.finish(&header(source, n, opts.size), &records)?;
    Ok(ImportReport { imported: n, skipped })
}

fn import_story(
    images: &Path,
    story: &Ready,
    index: usize,
    total: usize,
    opts: &ImportOptions,
    out: &DatasetWriter,
) -> Result<StoryRecord> {
    let mut rng = Rng::for_item(opts.seed, story.num as u64);
    let id = story_id(story.num as usize);
    let mut frames = Vec::with_capacity(FRAMES);
    for (t, (name, vector)) in story.names.iter().zip(&story.vectors).enumerate() {
        let path: PathBuf = images.join(name);
        let img = image::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        // Like the reference loader: RGB channels only, squashed to size × size.
        let rgb = image::imageops::resize(
            &img.to_rgb8(),
            opts.size,
            opts.size,
            image::imageops::FilterType::Triangle,
        );
        let rel = format!("images/{id}_{}.png", t + 1);
        out.write_png(&rel, rgb.as_raw(), opts.size)?;
        frames.push(Frame {
            image: rel,
            vector: vector.clone(),
            label: label_of(vector).to_vec(),
            sentence: sentence::caption(&story.objects, t, &story.camera, &mut rng).text,
            captions: Vec::new(),
            // The authors' cameras are known only as the fitted mean one (`scene::CAMERA_BASE`).
            objects: super::frame_objects(&story.objects[..=t], &story.camera, opts.size, None),
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
