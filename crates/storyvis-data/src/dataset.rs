//! The on-disk story dataset format (documented in docs/DATASET.md).
//!
//! ```text
//! DIR/manifest.jsonl    line 1: {"type":"header", ...}; then one {"type":"story", ...} per story
//! DIR/images/*.png      one RGB PNG per frame, image_size × image_size
//! ```
//! A dataset is written into a staging directory and renamed into place when complete
//! (`atomic::StagedDir`), so a reader never sees half of one.

use crate::atomic::{self, StagedDir};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Component, Path, PathBuf};

pub const FORMAT: &str = "storyvis-dataset";
pub const VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.jsonl";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// What the data is ("clevr-sv").
    pub kind: String,
    pub frames_per_story: usize,
    pub image_size: u32,
    pub vector_len: usize,
    /// One name per label entry ("shape:cube", ...).
    pub label_names: Vec<String>,
    pub stories: usize,
    /// How it was made: generator settings or the imported source.
    pub source: serde_json::Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    /// A validation split (Pororo-SV's published one): neither trained on nor evaluated by
    /// default.
    Val,
    Test,
}

impl Split {
    /// Stories 0..round(n·train_fraction) train, the rest test.
    pub fn of(index: usize, n: usize, train_fraction: f64) -> Split {
        if (index as f64) < (n as f64 * train_fraction).round() {
            Split::Train
        } else {
            Split::Test
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    /// Path of the PNG, relative to the dataset directory.
    pub image: String,
    pub vector: Vec<f32>,
    pub label: Vec<u8>,
    pub sentence: String,
    /// Captioned-image datasets: every caption of the image (`sentence` is the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub captions: Vec<String>,
    /// Rendered scenes (CLEVR-SV, CLEVR captions): each object of the frame, what it is and
    /// where it appears, in the order the objects entered the story (what an object detector
    /// learns and eval checks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<FrameObject>,
}

/// One object of a rendered frame: what it is and where it appears.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameObject {
    /// Its shape, colour, material and size, as indices into the values of the header's
    /// label groups (`shape:…`, `color:…`, `material:…`, `size:…`, in that order).
    pub attributes: [u8; 4],
    /// Its centre's projection in the frame's pixels (x to the right, y downwards, pixel i's
    /// centre at i + ½), which may lie outside the frame.
    pub centre: [f32; 2],
    /// How many of the frame's pixels show it (sampled at their centres; 0 when hidden), where
    /// known (not for imported frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoryRecord {
    pub id: String,
    pub split: Split,
    pub frames: Vec<Frame>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Line {
    Header(Header),
    Story(StoryRecord),
}

/// `Line` for writing, without copying the records.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum LineRef<'a> {
    Header(&'a Header),
    Story(&'a StoryRecord),
}

/// A dataset opened and checked against its header.
#[derive(Debug)]
pub struct Dataset {
    pub dir: PathBuf,
    pub header: Header,
    pub stories: Vec<StoryRecord>,
}

fn check_relative(p: &str) -> Result<()> {
    let path = Path::new(p);
    ensure!(
        !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_))),
        "image path {p:?} must be relative and stay inside the dataset"
    );
    Ok(())
}

impl Dataset {
    /// Reads `DIR/manifest.jsonl` and checks every story against the header and that every
    /// image file exists. Errors name the file and line.
    pub fn open(dir: &Path) -> Result<Dataset> {
        let (path, text) = Self::manifest(dir)?;
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let at = |n: usize| format!("{} line {}", path.display(), n + 1);
        let header = Self::header_of(&path, lines.next())?;
        let mut stories = Vec::with_capacity(header.stories);
        for (n, line) in lines {
            let story = match serde_json::from_str::<Line>(line) {
                Ok(Line::Story(s)) => s,
                Ok(Line::Header(_)) => bail!("{}: a second header", at(n)),
                Err(e) => bail!("{}: not a valid story: {e}", at(n)),
            };
            header.check_story(&story).with_context(|| at(n))?;
            for f in &story.frames {
                ensure!(
                    dir.join(&f.image).is_file(),
                    "{}: image {} is missing",
                    at(n),
                    dir.join(&f.image).display()
                );
            }
            stories.push(story);
        }
        ensure!(
            stories.len() == header.stories,
            "{}: header promises {} stories, found {} (truncated?)",
            path.display(),
            header.stories,
            stories.len()
        );
        Ok(Dataset { dir: dir.to_path_buf(), header, stories })
    }

    /// Only the header of `DIR/manifest.jsonl`, checked as `open` checks it (what kind of
    /// dataset a directory holds, without reading its stories or touching its images).
    /// Reads the manifest up to its first non-empty line only (a video dataset's manifest runs
    /// to tens of megabytes).
    pub fn read_header(dir: &Path) -> Result<Header> {
        use std::io::BufRead;
        let path = Self::manifest_path(dir)?;
        let file = fs::File::open(&path).with_context(|| Self::unreadable(&path, dir))?;
        let mut first = None;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| Self::unreadable(&path, dir))?;
            if !line.trim().is_empty() {
                first = Some((n, line));
                break;
            }
        }
        Self::header_of(&path, first.as_ref().map(|(n, l)| (*n, l.as_str())))
    }

    fn manifest(dir: &Path) -> Result<(PathBuf, String)> {
        let path = Self::manifest_path(dir)?;
        let text = fs::read_to_string(&path).with_context(|| Self::unreadable(&path, dir))?;
        Ok((path, text))
    }

    fn manifest_path(dir: &Path) -> Result<PathBuf> {
        ensure!(dir.is_dir(), "dataset directory {} does not exist", dir.display());
        Ok(dir.join(MANIFEST))
    }

    fn unreadable(path: &Path, dir: &Path) -> String {
        format!("cannot read {} (is {} a storyvis dataset?)", path.display(), dir.display())
    }

    /// The header from the manifest's first non-empty line (`(index, text)`).
    fn header_of(path: &Path, first: Option<(usize, &str)>) -> Result<Header> {
        let (n0, first) = first.with_context(|| format!("{} is empty", path.display()))?;
        let at = format!("{} line {}", path.display(), n0 + 1);
        let header = match serde_json::from_str::<Line>(first) {
            Ok(Line::Header(h)) => h,
            Ok(Line::Story(_)) => bail!("{at}: expected the header first"),
            Err(e) => bail!("{at}: not a valid header: {e}"),
        };
        ensure!(
            header.format == FORMAT,
            "{at}: format is {:?}, expected {FORMAT:?}",
            header.format
        );
        ensure!(
            header.version == VERSION,
            "{at}: format version {} is not supported (this storyvis reads version {VERSION})",
            header.version
        );
        Ok(header)
    }

    /// Loads one frame as RGB8, checking its size against the header.
    pub fn load_image(&self, frame: &Frame) -> Result<image::RgbImage> {
        let path = self.dir.join(&frame.image);
        let img = image::open(&path)
            .with_context(|| format!("cannot read image {}", path.display()))?
            .to_rgb8();
        let s = self.header.image_size;
        ensure!(
            img.dimensions() == (s, s),
            "image {} is {}×{}, the dataset says {s}×{s}",
            path.display(),
            img.width(),
            img.height()
        );
        Ok(img)
    }

    pub fn split(&self, split: Split) -> impl Iterator<Item = &StoryRecord> {
        self.stories.iter().filter(move |s| s.split == split)
    }
}

impl Header {
    fn check_story(&self, s: &StoryRecord) -> Result<()> {
        ensure!(
            s.frames.len() == self.frames_per_story,
            "story {} has {} frames, the header says {}",
            s.id,
            s.frames.len(),
            self.frames_per_story
        );
        for (t, f) in s.frames.iter().enumerate() {
            check_relative(&f.image)?;
            ensure!(
                f.vector.len() == self.vector_len,
                "story {} frame {}: vector of {} numbers, expected {}",
                s.id,
                t + 1,
                f.vector.len(),
                self.vector_len
            );
            ensure!(
                f.label.len() == self.label_names.len(),
                "story {} frame {}: label of {} entries, expected {}",
                s.id,
                t + 1,
                f.label.len(),
                self.label_names.len()
            );
            ensure!(
                f.label.iter().all(|&v| v <= 1),
                "story {} frame {}: labels must be 0 or 1",
                s.id,
                t + 1
            );
            ensure!(
                !f.sentence.trim().is_empty(),
                "story {} frame {}: empty sentence",
                s.id,
                t + 1
            );
            ensure!(
                f.objects.iter().all(|o| o.centre.iter().all(|c| c.is_finite())),
                "story {} frame {}: an object's centre is not finite",
                s.id,
                t + 1
            );
            if !f.objects.is_empty() {
                // Each attribute indexes its label group's values.
                let values = |g: &str| {
                    self.label_names
                        .iter()
                        .filter(|n| n.split_once(':').is_some_and(|(p, _)| p == g))
                        .count()
                };
                let groups = ["shape", "color", "material", "size"].map(values);
                ensure!(
                    f.objects.iter().all(|o| o.attributes.iter().zip(groups).all(|(&a, n)| (a as usize) < n)),
                    "story {} frame {}: an object's attributes are outside the label groups (shape, color, material, size: {groups:?} values)",
                    s.id,
                    t + 1
                );
            }
            if !f.captions.is_empty() {
                ensure!(
                    f.captions[0] == f.sentence,
                    "story {} frame {}: the sentence must be the first caption",
                    s.id,
                    t + 1
                );
                ensure!(
                    f.captions.iter().all(|c| !c.trim().is_empty()),
                    "story {} frame {}: an empty caption",
                    s.id,
                    t + 1
                );
            }
        }
        Ok(())
    }
}

/// Writes a dataset into a staging directory; nothing appears at the destination until
/// `finish`, and dropping the writer (an error, a panic) removes the staging directory.
#[derive(Debug)]
pub struct DatasetWriter {
    stage: StagedDir,
}

impl DatasetWriter {
    pub fn create(dest: &Path, force: bool) -> Result<DatasetWriter> {
        let stage = StagedDir::new(dest, force)?;
        fs::create_dir(stage.path().join("images"))
            .with_context(|| format!("cannot create images/ in {}", stage.path().display()))?;
        Ok(DatasetWriter { stage })
    }

    /// Encodes an RGB8 image as PNG at `rel` (e.g. "images/000001_1.png"). Thread-safe.
    pub fn write_png(&self, rel: &str, rgb: &[u8], size: u32) -> Result<()> {
        check_relative(rel)?;
        let img = image::RgbImage::from_raw(size, size, rgb.to_vec()).with_context(|| {
            format!("{rel}: {} bytes is not a {size}×{size} RGB image", rgb.len())
        })?;
        let mut bytes = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
            .with_context(|| format!("cannot encode {rel}"))?;
        atomic::write_synced(&self.stage.path().join(rel), &bytes)
    }

    /// Writes the manifest and moves the dataset into place.
    pub fn finish(self, header: &Header, stories: &[StoryRecord]) -> Result<()> {
        ensure!(
            header.stories == stories.len(),
            "header says {} stories, got {}",
            header.stories,
            stories.len()
        );
        let mut text = serde_json::to_string(&LineRef::Header(header))?;
        text.push('\n');
        for s in stories {
            header.check_story(s)?;
            text.push_str(&serde_json::to_string(&LineRef::Story(s))?);
            text.push('\n');
        }
        atomic::write_synced(&self.stage.path().join(MANIFEST), text.as_bytes())?;
        self.stage.commit()
    }
}
