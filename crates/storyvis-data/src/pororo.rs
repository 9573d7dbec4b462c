//! Import of Pororo-SV, the StoryGAN paper's cartoon dataset (Li et al. 2019, §5.2), in the
//! layout its distributed archive has and the StoryGAN-family loaders read:
//!
//! ```text
//! SRC/<episode group>/<episode>/<n>.png   each a vertical strip of square frames (w × k·w)
//! SRC/img_cache4.npy            bytes (or str) array [stories]: each story's first frame
//! SRC/following_cache4.npy      bytes (or str) array [stories, 4]: the next four frames
//! SRC/descriptions.npy          pickled dict in a 0-d object array: frame path without .png
//!                               -> list of descriptions
//! SRC/labels.npy                the same kind of dict: frame path without .png -> 9 labels
//! SRC/train_seen_unseen_ids.npy object array of three index arrays: train, val, test stories
//! ```
//!
//! Five-frame stories keep the published split. Each frame is one square cut from its strip
//! (the reference loaders pick one at random at every epoch; here `--frame` picks once),
//! resized to the target size; its labels are the nine characters', and its sentence one of
//! its descriptions (`--description`). Stories with a frame file, label or description
//! missing are skipped and reported like the CLEVR-SV importer's; `strict` fails instead.

use crate::clevr::import::{list, ImportReport, Skipped};
use crate::dataset::{DatasetWriter, Frame, Header, Split, StoryRecord, FORMAT, VERSION};
use crate::npy;
use crate::pickle::{ArrayData, NdArray, Value};
use crate::rng::Rng;
use anyhow::{bail, ensure, Context, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// What the dataset's header calls this kind of data.
pub const KIND: &str = "pororo-sv";

/// The nine characters, in the order of the archive's label vectors.
pub const CHARACTERS: [&str; 9] =
    ["Pororo", "Loopy", "Crong", "Eddy", "Poby", "Petty", "Tongtong", "Rody", "Harry"];

/// Frames a story has.
pub const FRAMES: usize = 5;

/// The five files of the layout.
pub const FILES: [&str; 5] = [
    "img_cache4.npy",
    "following_cache4.npy",
    "descriptions.npy",
    "labels.npy",
    "train_seen_unseen_ids.npy",
];

/// Which description of a frame becomes its sentence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Description {
    /// The first.
    First,
    /// The first as the sentence, and every one kept as the frame's captions.
    All,
    /// One drawn per frame from the import's seed.
    Random,
}

/// Which square of a frame's strip becomes the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    First,
    Middle,
    /// One drawn per frame from the import's seed.
    Random,
}

impl FromStr for Description {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Description> {
        match s {
            "first" => Ok(Description::First),
            "all" => Ok(Description::All),
            "random" => Ok(Description::Random),
            other => bail!("unknown --description {other:?}: use first, all or random"),
        }
    }
}

impl FromStr for Cut {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Cut> {
        match s {
            "first" => Ok(Cut::First),
            "middle" => Ok(Cut::Middle),
            "random" => Ok(Cut::Random),
            other => bail!("unknown --frame {other:?}: use first, middle or random"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub size: u32,
    pub description: Description,
    pub cut: Cut,
    /// Seeds the random picks of descriptions and squares.
    pub seed: u64,
    /// Fail if any story cannot be imported, instead of skipping it.
    pub strict: bool,
}

/// Text from bytes: UTF-8 where they are, else latin-1 (what Python 2's `str` held either way).
fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// The text of a fixed-width entry: `S` bytes or `U` unicode (`big_endian`: `>U`), NUL padding
/// dropped.
fn entry_text(raw: &[u8], unicode: bool, big_endian: bool) -> Result<String> {
    if unicode {
        let chars: Vec<char> = raw
            .chunks(4)
            .map(|c| {
                let b = [c[0], c[1], c[2], c[3]];
                if big_endian {
                    u32::from_be_bytes(b)
                } else {
                    u32::from_le_bytes(b)
                }
            })
            .take_while(|&c| c != 0)
            .map(|c| char::from_u32(c).context("an entry holds an invalid character"))
            .collect::<Result<_>>()?;
        return Ok(chars.into_iter().collect());
    }
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    Ok(decode(&raw[..end]))
}

/// The text of a pickled string (Python 3 `str`, or Python 2 `str` as bytes).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Bytes(b) => Some(decode(b)),
        other => other.as_text(),
    }
}

/// The texts of a fixed-width string array's raw data.
fn fixed_texts(file: &str, raw: &[u8], d: &crate::dtype::Dtype) -> Result<Option<Vec<String>>> {
    let unicode = d.descr.starts_with('U');
    if !(unicode || d.descr.starts_with('S') || d.descr.starts_with('a')) {
        return Ok(None);
    }
    let width = d.itemsize()?;
    ensure!(width > 0, "{file}: strings of width 0");
    let texts = raw
        .chunks(width)
        .map(|c| entry_text(c, unicode, d.order == '>'))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("{file}: reading its strings"))?;
    Ok(Some(texts))
}

/// A `.npy` of paths (`|S…` bytes or `<U…` str, or objects that are strings): their texts and
/// the array's shape.
fn paths(file: &str, v: Value) -> Result<(Vec<usize>, Vec<String>)> {
    let bad = |what: String| {
        anyhow::anyhow!("{file}: expected an array of paths (bytes or str), found {what}")
    };
    let Value::Array(NdArray { shape, dtype, data }) = v else {
        return Err(bad(v.kind()));
    };
    let texts = match (data, dtype) {
        (ArrayData::Raw(raw), Some(d)) => {
            fixed_texts(file, &raw, &d)?.ok_or_else(|| bad(format!("dtype '{}'", d.name())))?
        }
        (ArrayData::Objects(items), _) => items
            .iter()
            .map(|x| text_of(x).ok_or_else(|| bad(format!("an entry that is {}", x.kind()))))
            .collect::<Result<Vec<_>>>()?,
        (ArrayData::Raw(_), None) => return Err(bad("an array without a dtype".into())),
    };
    Ok((shape, texts))
}

/// The dict an `np.save`d dict holds (a 0-d object array around it).
fn dict(file: &str, v: Value) -> Result<Vec<(Value, Value)>> {
    let inner = match v {
        Value::Array(NdArray { data: ArrayData::Objects(mut items), .. }) if items.len() == 1 => {
            items.remove(0)
        }
        other => other,
    };
    match inner {
        Value::Dict(pairs) => Ok(pairs),
        other => bail!("{file}: expected a pickled dict, found {}", other.kind()),
    }
}

/// The last three parts of a frame's path without `.png` (`group/episode/n`): how frames are
/// matched across the files, whatever folder prefix the archive's paths carry.
fn frame_key(path: &str) -> String {
    let p = path.trim().trim_end_matches(".png").replace('\\', "/");
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    parts[parts.len().saturating_sub(3)..].join("/")
}

/// The whole numbers of an index array (or a list of numbers).
fn indices(what: &str, v: &Value) -> Result<Vec<usize>> {
    let nums: Vec<f64> = match v {
        Value::Array(NdArray { dtype: Some(d), data: ArrayData::Raw(raw), .. }) => {
            crate::dtype::numeric_to_f64(raw, d)?
        }
        other => npy::to_f32_vec(other)
            .with_context(|| format!("{what} is {}, not an array of indices", other.kind()))?
            .into_iter()
            .map(f64::from)
            .collect(),
    };
    nums.into_iter()
        .map(|x| {
            ensure!(x >= 0.0 && x.fract() == 0.0, "{what} holds {x}, not a story index");
            Ok(x as usize)
        })
        .collect()
}

/// A frame ready to be cut: its PNG, labels and descriptions.
struct ReadyFrame {
    png: PathBuf,
    labels: Vec<u8>,
    descriptions: Vec<String>,
}

struct Ready {
    index: usize,
    split: Split,
    frames: Vec<ReadyFrame>,
}

/// The parsed layout.
struct Layout {
    /// Each story's five frame paths.
    stories: Vec<Vec<String>>,
    descriptions: HashMap<String, Vec<String>>,
    labels: HashMap<String, std::result::Result<Vec<u8>, String>>,
    /// train, val, test story indices.
    splits: [Vec<usize>; 3],
}

fn read(src: &Path, name: &str) -> Result<Value> {
    let path = src.join(name);
    ensure!(
        path.is_file(),
        "{} is missing: the Pororo-SV layout has {}",
        path.display(),
        FILES.join(", ")
    );
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    // np.load(allow_pickle=True), as the reference loaders call it, also reads a plain pickle.
    if !bytes.starts_with(b"\x93NUMPY") {
        return crate::pickle::load(&bytes)
            .with_context(|| format!("{} is neither a .npy nor a pickle", path.display()));
    }
    npy::load(&bytes).with_context(|| format!("{} is not a readable .npy", path.display()))
}

/// How many stories the layout at `src` lists (for progress bars; 0 when unreadable).
pub fn stories_in(src: &Path) -> usize {
    read(src, FILES[0]).and_then(|v| paths(FILES[0], v)).map_or(0, |(_, p)| p.len())
}

fn parse(src: &Path) -> Result<Layout> {
    let (shape, first) = paths(FILES[0], read(src, FILES[0])?)?;
    ensure!(shape.len() == 1, "{}: expected shape (stories,), found {shape:?}", FILES[0]);
    let n = first.len();
    let (fshape, following) = paths(FILES[1], read(src, FILES[1])?)?;
    ensure!(
        fshape == [n, FRAMES - 1],
        "{}: expected shape ({n}, {}) for the {n} stories of {}, found {fshape:?}",
        FILES[1],
        FRAMES - 1,
        FILES[0]
    );
    let stories = (0..n)
        .map(|i| {
            let mut s = vec![first[i].clone()];
            s.extend(following[i * (FRAMES - 1)..(i + 1) * (FRAMES - 1)].iter().cloned());
            s
        })
        .collect();
    let mut descriptions = HashMap::new();
    for (k, v) in dict(FILES[2], read(src, FILES[2])?)? {
        let key = text_of(&k).with_context(|| format!("{}: a key is {}", FILES[2], k.kind()))?;
        let texts: Vec<String> = match &v {
            Value::List(items) | Value::Tuple(items) => items.iter().filter_map(text_of).collect(),
            Value::Array(NdArray { data: ArrayData::Objects(items), .. }) => {
                items.iter().filter_map(text_of).collect()
            }
            Value::Array(NdArray { data: ArrayData::Raw(raw), dtype: Some(d), .. }) => {
                fixed_texts(FILES[2], raw, d)?.unwrap_or_default()
            }
            other => text_of(other).into_iter().collect(),
        };
        let texts: Vec<String> = texts
            .iter()
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|t| !t.is_empty())
            .collect();
        descriptions.insert(frame_key(&key), texts);
    }
    // A label entry that is not numbers makes its frame's stories skipped (the reason kept).
    let mut labels = HashMap::new();
    for (k, v) in dict(FILES[3], read(src, FILES[3])?)? {
        let key = text_of(&k).with_context(|| format!("{}: a key is {}", FILES[3], k.kind()))?;
        let parsed = npy::to_f32_vec(&v)
            .map(|nums| nums.iter().map(|&x| (x > 0.5) as u8).collect())
            .map_err(|e| format!("{e:#}"));
        labels.insert(frame_key(&key), parsed);
    }
    let ids = read(src, FILES[4])?;
    let parts: Vec<Value> = match ids {
        Value::Array(NdArray { data: ArrayData::Objects(items), .. }) => items,
        Value::List(items) | Value::Tuple(items) => items,
        // Three splits of one length make a numeric [3, N] array.
        Value::Array(NdArray { shape, dtype: Some(d), data: ArrayData::Raw(raw) })
            if shape.len() == 2 && shape[0] == 3 =>
        {
            let row = raw.len() / 3;
            (0..3)
                .map(|k| {
                    Value::Array(NdArray {
                        shape: vec![shape[1]],
                        dtype: Some(d.clone()),
                        data: ArrayData::Raw(raw[k * row..(k + 1) * row].to_vec()),
                    })
                })
                .collect()
        }
        other => bail!("{}: expected three index arrays, found {}", FILES[4], other.kind()),
    };
    ensure!(
        parts.len() == 3,
        "{}: expected three index arrays (train, val, test), found {}",
        FILES[4],
        parts.len()
    );
    let mut splits: [Vec<usize>; 3] = Default::default();
    for (k, (part, name)) in parts.iter().zip(["train", "val", "test"]).enumerate() {
        let idx = indices(&format!("{}: the {name} split", FILES[4]), part)?;
        if let Some(&bad) = idx.iter().find(|&&i| i >= n) {
            bail!("{}: the {name} split names story {bad}, but there are {n} stories", FILES[4]);
        }
        splits[k] = idx;
    }
    Ok(Layout { stories, descriptions, labels, splits })
}

/// Where a frame's PNG is: the path as given under SRC, else its last three parts.
fn locate(src: &Path, path: &str) -> Option<PathBuf> {
    let given = src.join(path.trim().trim_start_matches("./"));
    if given.is_file() {
        return Some(given);
    }
    let short = src.join(format!("{}.png", frame_key(path)));
    short.is_file().then_some(short)
}

fn check_story(src: &Path, layout: &Layout, index: usize, split: Split) -> Result<Ready, String> {
    let mut frames = Vec::with_capacity(FRAMES);
    for path in &layout.stories[index] {
        let key = frame_key(path);
        let png = locate(src, path).ok_or_else(|| format!("frame {path} is missing"))?;
        let (w, h) = image::image_dimensions(&png)
            .map_err(|e| format!("frame {} cannot be read: {e}", png.display()))?;
        // The reference loaders take ⌊h / w⌋ squares and leave any rows below them.
        if w == 0 || h < w {
            return Err(format!("frame {key} is {w}×{h}: not a vertical strip of square frames"));
        }
        let labels = layout
            .labels
            .get(&key)
            .ok_or_else(|| format!("frame {key} has no entry in {}", FILES[3]))?
            .as_ref()
            .map_err(|e| format!("frame {key}'s entry in {} is not labels: {e}", FILES[3]))?;
        if labels.len() != CHARACTERS.len() {
            return Err(format!(
                "frame {key} has {} labels in {}, not {}",
                labels.len(),
                FILES[3],
                CHARACTERS.len()
            ));
        }
        let descriptions = layout
            .descriptions
            .get(&key)
            .filter(|d| !d.is_empty())
            .ok_or_else(|| format!("frame {key} has no description in {}", FILES[2]))?;
        frames.push(ReadyFrame { png, labels: labels.clone(), descriptions: descriptions.clone() });
    }
    Ok(Ready { index, split, frames })
}

/// The story's id: its index in the archive's story list.
fn story_id(index: usize) -> String {
    format!("{index:05}")
}

/// Cuts square `square` of `k` from a strip (w × k·w) and resizes it to size × size.
fn cut(strip: &image::RgbImage, square: u32, size: u32) -> image::RgbImage {
    let w = strip.width();
    let sq = image::imageops::crop_imm(strip, 0, square * w, w, w).to_image();
    image::imageops::resize(&sq, size, size, image::imageops::FilterType::Triangle)
}

fn import_story(story: &Ready, opts: &ImportOptions, out: &DatasetWriter) -> Result<StoryRecord> {
    let id = story_id(story.index);
    let mut frames = Vec::with_capacity(FRAMES);
    for (t, f) in story.frames.iter().enumerate() {
        let mut rng = Rng::for_item(opts.seed, (story.index * FRAMES + t) as u64);
        let strip = image::open(&f.png)
            .with_context(|| format!("cannot read {}", f.png.display()))?
            .to_rgb8();
        // `check_story` saw at least one whole square.
        let k = strip.height() / strip.width();
        let square = match opts.cut {
            Cut::First => 0,
            Cut::Middle => k / 2,
            Cut::Random => rng.below(k as usize) as u32,
        };
        let rgb = cut(&strip, square, opts.size);
        let rel = format!("images/{id}_{t}.png");
        out.write_png(&rel, rgb.as_raw(), opts.size)?;
        let d = &f.descriptions;
        let sentence = match opts.description {
            Description::First | Description::All => d[0].clone(),
            Description::Random => d[rng.below(d.len())].clone(),
        };
        let captions = if opts.description == Description::All && d.len() > 1 {
            d.clone()
        } else {
            Vec::new()
        };
        frames.push(Frame {
            image: rel,
            vector: f.labels.iter().map(|&x| x as f32).collect(),
            label: f.labels.clone(),
            sentence,
            captions,
            objects: Vec::new(),
        });
    }
    Ok(StoryRecord { id, split: story.split, frames })
}

/// Imports the Pororo-SV layout at `src` into a storyvis dataset at `out` (see the module's
/// documentation). Nothing is written on error. `tick` is called once per imported story.
pub fn import(
    src: &Path,
    out: &Path,
    force: bool,
    opts: &ImportOptions,
    tick: &(dyn Fn() + Sync),
) -> Result<ImportReport> {
    crate::clevr::check_size(opts.size)?;
    ensure!(src.is_dir(), "{} is not a directory", src.display());
    let layout = parse(src)?;
    let mut ready = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = vec![false; layout.stories.len()];
    for (split, ids) in [Split::Train, Split::Val, Split::Test].into_iter().zip(&layout.splits) {
        for &i in ids {
            if std::mem::replace(&mut seen[i], true) {
                let reason = format!("listed again in the {split:?} split of {}", FILES[4]);
                skipped.push(Skipped { story: story_id(i), reason: reason.to_lowercase() });
                continue;
            }
            match check_story(src, &layout, i, split) {
                Ok(r) => ready.push(r),
                Err(reason) => skipped.push(Skipped { story: story_id(i), reason }),
            }
        }
    }
    let listed = ready.len() + skipped.len();
    if ready.is_empty() {
        bail!(
            "none of the {listed} stories in {} can be imported:\n{}",
            src.display(),
            list(&skipped)
        );
    }
    if opts.strict && !skipped.is_empty() {
        bail!(
            "{} of the {listed} stories in {} cannot be imported (without --strict they would be skipped):\n{}",
            skipped.len(),
            src.display(),
            list(&skipped)
        );
    }
    let writer = DatasetWriter::create(out, force)?;
    let records: Vec<StoryRecord> = ready
        .par_iter()
        .map(|story| {
            let r = import_story(story, opts, &writer);
            tick();
            r
        })
        .collect::<Result<_>>()?;
    let count = |s: Split| records.iter().filter(|r| r.split == s).count();
    let source = serde_json::json!({
        "imported_from": src.display().to_string(),
        "layout": "Pororo-SV (img_cache4.npy, following_cache4.npy, descriptions.npy, labels.npy, train_seen_unseen_ids.npy)",
        "description": format!("{:?}", opts.description).to_lowercase(),
        "frame": format!("{:?}", opts.cut).to_lowercase(),
        "seed": opts.seed,
        "splits": {"train": count(Split::Train), "val": count(Split::Val), "test": count(Split::Test)},
        "in_no_split": layout.stories.len() - listed,
        "skipped": skipped.iter().map(|s| serde_json::json!({"story": s.story, "reason": s.reason})).collect::<Vec<_>>(),
    });
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        kind: KIND.into(),
        frames_per_story: FRAMES,
        image_size: opts.size,
        vector_len: CHARACTERS.len(),
        label_names: CHARACTERS.iter().map(|c| format!("character:{c}")).collect(),
        stories: records.len(),
        source,
    };
    writer.finish(&header, &records)?;
    Ok(ImportReport { imported: records.len(), skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_matched_by_their_last_three_path_parts() {
        let k = "Pororo_ENGLISH1_1/Pororo_ENGLISH1_1_ep1/12";
        assert_eq!(frame_key("Pororo_ENGLISH1_1/Pororo_ENGLISH1_1_ep1/12.png"), k);
        assert_eq!(frame_key("./pororo_png/Pororo_ENGLISH1_1/Pororo_ENGLISH1_1_ep1/12.png"), k);
        assert_eq!(frame_key("/data/pororo_png/Pororo_ENGLISH1_1/Pororo_ENGLISH1_1_ep1/12"), k);
    }

    #[test]
    fn fixed_width_entries_lose_their_padding() {
        assert_eq!(entry_text(b"ab/c.png\0\0", false, false).unwrap(), "ab/c.png");
        // UTF-8 bytes read as UTF-8; other bytes as latin-1.
        assert_eq!(entry_text("caf\u{e9}".as_bytes(), false, false).unwrap(), "caf\u{e9}");
        assert_eq!(entry_text(b"caf\xe9", false, false).unwrap(), "caf\u{e9}");
        let (mut le, mut be) = (Vec::new(), Vec::new());
        for c in "é/1.png".chars().chain(std::iter::once('\0')) {
            le.extend((c as u32).to_le_bytes());
            be.extend((c as u32).to_be_bytes());
        }
        assert_eq!(entry_text(&le, true, false).unwrap(), "é/1.png");
        assert_eq!(entry_text(&be, true, true).unwrap(), "é/1.png");
    }

    #[test]
    fn a_strip_is_cut_into_squares() {
        // Three 2×2 squares stacked: red, green, blue.
        let mut strip = image::RgbImage::new(2, 6);
        for (i, c) in [[255, 0, 0], [0, 255, 0], [0, 0, 255]].iter().enumerate() {
            for y in 0..2 {
                for x in 0..2 {
                    strip.put_pixel(x, 2 * i as u32 + y, image::Rgb(*c));
                }
            }
        }
        assert_eq!(cut(&strip, 1, 2).get_pixel(1, 1).0, [0, 255, 0]);
        assert_eq!(cut(&strip, 2, 2).get_pixel(0, 0).0, [0, 0, 255]);
        assert_eq!(cut(&strip, 0, 4).get_pixel(3, 3).0, [255, 0, 0]);
    }
}
