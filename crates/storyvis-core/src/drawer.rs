//! One way to draw from typed text with a trained model of any family: what `storyvis serve`
//! loads. A family that draws from text lists its loader in its registry entry
//! (`FamilyEntry::drawer`); [`load`] reads a checkpoint's family and takes the loader from the
//! registry, so a new family is served by adding that one line.

use crate::checkpoint::Weights;
use crate::input::Fit;
use anyhow::{bail, ensure, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use storyvis_data::rng::Rng;
use tch::Device;

/// What a model reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Input {
    /// A story of `frames` sentences, drawn as `frames` consistent images.
    Story { frames: usize },
    /// A caption, drawn as one image per seed.
    Caption,
    /// A video caption, drawn as one clip of `frames` frames per seed.
    Video { frames: usize },
}

/// One encoded picture of a drawing.
#[derive(Clone, Debug)]
pub struct Picture {
    /// A file name (`seed0003.png`, `row.png`): what `generate` writes it as.
    pub name: String,
    /// The seed it shows, or none for a sheet of every seed.
    pub seed: Option<u64>,
    /// `image/png` or `image/gif`.
    pub mime: &'static str,
    pub bytes: Vec<u8>,
}

impl Picture {
    pub fn png(name: String, seed: Option<u64>, img: &image::RgbImage) -> Result<Picture> {
        Ok(Picture { name, seed, mime: "image/png", bytes: storyvis_data::sheet::png_bytes(img)? })
    }
}

/// Writes pictures into `out` (atomically, each); returns the files in order.
pub fn save_all(pictures: &[Picture], out: &Path) -> Result<Vec<PathBuf>> {
    storyvis_data::atomic::create_dir_all(out)?;
    pictures
        .iter()
        .map(|p| {
            let path = out.join(&p.name);
            storyvis_data::atomic::write_file(&path, &p.bytes)?;
            Ok(path)
        })
        .collect()
}

/// Typed text as a model will read it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// A story's sentences after splitting and fitting to the model's length; a caption alone.
    pub sentences: Vec<String>,
    /// Words outside the model's vocabulary (read as unknown), as `generate` warns of them.
    pub unknown: Vec<String>,
}

/// Where a loaded model comes from.
pub struct About<'a> {
    /// The family's registry name.
    pub family: &'a str,
    /// Training iterations behind the weights.
    pub step: usize,
    /// The checkpoint directory it was loaded from.
    pub checkpoint: &'a Path,
    /// Whether it draws with the run's moving average of its generator.
    pub averaged: bool,
}

/// A trained model that draws from typed text.
pub trait Drawer: Send {
    fn input(&self) -> Input;
    fn about(&self) -> About<'_>;
    /// Checks typed text the way `generate` does (length, emptiness, sentence count, words the
    /// model cannot read) without drawing; `fit` applies to stories only.
    fn check(&self, text: &str, fit: Fit) -> Result<Checked>;
    /// Draws checked text once per seed: per seed a picture (a story's strip, an image, a clip
    /// as an animated GIF), then, for captions and videos, a sheet of every seed (`seed: None`).
    /// The noise of each seed comes from libtorch's process-wide generator, seeded here:
    /// callers on several threads must draw one at a time ([`DRAW_LOCK`]) for a seed to give
    /// the same pictures as `generate`.
    fn draw(&self, text: &Checked, seeds: &[u64]) -> Result<Vec<Picture>> {
        self.draw_as(text, seeds, &Layout::default())
    }
    /// `draw` with the pictures laid out as `generate` is asked (`--format`, `--stages`): an
    /// error naming what the model draws where it cannot lay them out so.
    fn draw_as(&self, text: &Checked, seeds: &[u64], layout: &Layout) -> Result<Vec<Picture>>;
    /// The words it knows (read as themselves; any other word reads as unknown), or none for a
    /// model that reads any word (characters, MiniLM's word pieces).
    fn vocabulary(&self) -> Option<Vec<String>> {
        None
    }
    /// Whether it draws in two stages and can show the first beside the second (`--stages`).
    fn has_stages(&self) -> bool {
        false
    }
    /// The paper's sentence interpolation (Reed et al. 2016, §5.2): a row per seed of
    /// `steps` images from `from` to `to` with the noise fixed. Text-to-image models only.
    fn interpolate(
        &self,
        _from: &str,
        _to: &str,
        _steps: usize,
        _seeds: &[u64],
    ) -> Result<Vec<Picture>> {
        let a = self.about();
        bail!(
            "{} is a {} checkpoint; that family has no sentence interpolation",
            a.checkpoint.display(),
            a.family
        )
    }
    /// Style transfer (Reed et al. 2016, §5.3): `text` drawn in the style of `image` (the size
    /// the model draws), through the model's style encoder.
    fn style_transfer(&self, _image: &Path, _text: &str) -> Result<Picture> {
        let a = self.about();
        bail!(
            "{} is a {} checkpoint; that family has no style encoder to transfer a style with",
            a.checkpoint.display(),
            a.family
        )
    }
}

/// How a drawing is laid out into pictures (`generate --format`, `--stages`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// None: the model's own (a story's strip, a row of images, a clip as a GIF).
    pub format: Option<Format>,
    /// A two-stage model's Stage I beside its Stage II.
    pub stages: bool,
}

/// Checks that `model` can lay its pictures out as `layout` asks, before any text is read: a
/// story as a strip or frames, a clip as a GIF or a strip, a caption's images as a row, and
/// stages only where the model has two.
pub fn check_layout(model: &dyn Drawer, layout: &Layout) -> Result<()> {
    let about = model.about();
    ensure!(
        !layout.stages || model.has_stages(),
        "--stages is for two-stage text-to-image models; {} is a {} checkpoint",
        about.checkpoint.display(),
        about.family
    );
    match (model.input(), layout.format) {
        (_, None) => {}
        (Input::Story { .. }, Some(Format::Gif)) => {
            bail!("--format gif is for video models; stories are drawn as strip or frames")
        }
        (Input::Video { .. }, Some(Format::Frames)) => {
            bail!("--format frames is for story models; a video is drawn as gif or strip")
        }
        (Input::Caption, Some(_)) => bail!(
            "--format is for story and video models; a text-to-image model draws a row of images"
        ),
        _ => {}
    }
    Ok(())
}

/// `generate --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A story's frames left to right with its sentences under them; a clip's frames in a row.
    Strip,
    /// One PNG per frame of a story.
    Frames,
    /// A clip as an animated GIF.
    Gif,
}

/// Held while a drawing seeds libtorch's generator and runs (see [`Drawer::draw`]).
pub static DRAW_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How a family's checkpoint is loaded to draw (`FamilyEntry::drawer`).
pub type LoadDrawer = fn(&Path, Device, Weights) -> Result<Box<dyn Drawer>>;

/// Example inputs for a model: texts in the words of storyvis's own datasets for its kind of
/// input (CLEVR-SV stories, CLEVR captions, Bouncing MNIST captions), made from fixed seeds,
/// kept only where the model reads every word (a model trained on other data gets none).
pub fn examples(model: &dyn Drawer, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for c in example_inputs(&model.input(), 3 * n) {
        if out.len() == n {
            break;
        }
        if model.check(&c, Fit::Exact).is_ok_and(|k| k.unknown.is_empty()) && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// How well `text` fits a kind of input: the share of its words that occur in storyvis's own
/// example inputs of that kind (CLEVR-SV stories, CLEVR captions, Bouncing MNIST captions), 0
/// to 1. What `generate --text` without a model uses to choose between the shipped caption and
/// video models, whose readers (MiniLM) take any word.
pub fn fit_score(text: &str, input: &Input) -> f64 {
    let known: std::collections::HashSet<String> =
        example_inputs(input, 64).iter().flat_map(|e| crate::text::tokenize(e)).collect();
    let words = crate::text::tokenize(text);
    if words.is_empty() {
        return 0.0;
    }
    words.iter().filter(|w| known.contains(*w)).count() as f64 / words.len() as f64
}

/// Up to `count` example inputs of a kind, from fixed seeds (a story shorter than the model's
/// frames is left out).
fn example_inputs(input: &Input, count: usize) -> Vec<String> {
    match *input {
        Input::Story { frames } => (0..count)
            .filter_map(|i| storyvis_data::clevr::example_story(i as u64).ok())
            .filter(|s| s.len() >= frames)
            .map(|s| {
                s[..frames]
                    .iter()
                    .map(|x| x.trim_end_matches('.').to_string() + ".")
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect(),
        Input::Caption => (0..count)
            .filter_map(|i| storyvis_data::clevr::example_caption(i as u64).ok())
            .collect(),
        Input::Video { .. } => {
            let mut rng = Rng::for_item(0, 0);
            (0..count)
                .map(|i| storyvis_data::bouncing::example_caption(&mut rng, 1 + i % 2))
                .collect()
        }
    }
}

/// Checks seeds for one drawing: at least one, at most `max`.
pub fn check_seeds(seeds: &[u64], max: usize) -> Result<()> {
    ensure!(!seeds.is_empty(), "give at least one seed");
    ensure!(seeds.len() <= max, "{} seeds asked; at most {max} per drawing", seeds.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caption_fits_the_kind_whose_example_words_it_uses() {
        let (image, video) = (Input::Caption, Input::Video { frames: 16 });
        let digit = "digit 3 is moving up and down";
        assert_eq!(fit_score(digit, &video), 1.0);
        assert!(fit_score(digit, &image) < 0.5, "{}", fit_score(digit, &image));
        let cube = "a large red metal cube.";
        assert_eq!(fit_score(cube, &image), 1.0);
        assert!(fit_score(cube, &video) < 0.5, "{}", fit_score(cube, &video));
        // Words of neither kind score nothing; an empty caption too.
        assert_eq!(fit_score("zebras graze", &image), 0.0);
        assert_eq!(fit_score(" . ", &video), 0.0);
    }
}
