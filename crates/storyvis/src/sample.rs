//! Drawing stories with a trained generator: `storyvis generate`. Typed text is split into
//! sentences, checked against the model (T, vocabulary, lengths) before anything is written,
//! and drawn once per seed as a strip (frames left to right, sentences underneath) or as one
//! PNG per frame.

use crate::checkpoint;
use crate::data::to_image;
use crate::drawer::{About, Checked, Drawer, Input, Picture};
use crate::models::storygan::config::{Config, TextInput};
use crate::models::storygan::generator::{Generator, TextBatch};
use crate::models::storygan::DataShape;
use crate::text::{tokenize, Vocab};
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use storyvis_data::sheet::{paper, StripLayout};
use tch::nn::VarStore;
use tch::Device;

/// Longest sentence accepted, in bytes.
pub const MAX_SENTENCE_BYTES: usize = 1000;
/// Longest story accepted, in bytes.
pub const MAX_STORY_BYTES: usize = 64 * 1024;
/// Most seeds one call draws.
pub const MAX_SEEDS: usize = 1000;

/// What to do when the story's sentence count differs from the model's T.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    Exact,
    /// Repeat the last sentence up to T.
    Pad,
    /// Keep the first T sentences.
    Truncate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Strip,
    Frames,
}

/// What reads typed sentences for a `text = "minilm"` model.
enum MinilmText {
    /// The frozen encoder: sentence embeddings.
    Embeddings(Box<crate::minilm::MiniLm>),
    /// The tokenizer alone, for a generator with its own trained copy.
    Ids(Box<crate::minilm::WordPieces>),
}

/// A trained generator ready to draw.
pub struct Loaded {
    pub cfg: Config,
    pub vocab: Vocab,
    pub checkpoint: PathBuf,
    /// Training iterations behind the weights.
    pub step: usize,
    /// Whether it draws with the run's moving average of the generator.
    pub averaged: bool,
    g: Generator,
    _vs: VarStore,
    device: Device,
    /// `text = "minilm"`: how typed sentences reach the generator.
    minilm: Option<MinilmText>,
}

/// Loads a StoryGAN checkpoint to draw with its moving average where it has one.
pub fn load(path: &Path, device: Device) -> Result<Loaded> {
    load_with(path, device, checkpoint::Weights::Average)
}

/// Loads a StoryGAN checkpoint to draw with the chosen weights.
pub fn load_with(path: &Path, device: Device, weights: checkpoint::Weights) -> Result<Loaded> {
    let dir = checkpoint::resolve(path)?;
    let manifest = checkpoint::verify(&dir)?;
    let cfg = Config::of(&checkpoint::load_config_of(&dir, "storygan")?)?;
    let vocab = crate::models::storygan::family::load_vocab(&dir)?;
    let mut vs = VarStore::new(device);
    let s: DataShape =
        serde_json::from_value(manifest.shape.clone()).with_context(|| format!("{}: the recorded data shape is not StoryGAN's", dir.display()))?;
    let mut g = Generator::new(vs.root(), &cfg, s.vocab, s.vector_len, s.labels);
    g.attach_minilm()?;
    let (file, averaged) = checkpoint::drawing_weights(&dir, &manifest, "generator", weights);
    checkpoint::load_store(&mut vs, &file)?;
    let minilm = match cfg.text {
        // The generator runs MiniLM itself (its own trained copy, or the frozen one under its
        // attention pooling): it reads token ids.
        TextInput::Minilm if cfg.minilm_tokens() => Some(MinilmText::Ids(Box::new(crate::minilm::WordPieces::load_default()?))),
        TextInput::Minilm => Some(MinilmText::Embeddings(Box::new(crate::minilm::MiniLm::load_default(Device::Cpu)?))),
        _ => None,
    };
    Ok(Loaded { cfg, vocab, checkpoint: dir, step: manifest.step, averaged, g, _vs: vs, device, minilm })
}

impl Loaded {
    pub fn device(&self) -> Device {
        self.device
    }

    /// Stories [B, T, 3, S, S] in [−1, 1] for a text batch, in eval mode (noise from the
    /// current libtorch seed).
    pub fn draw(&self, text: &TextBatch) -> tch::Tensor {
        self.g.draw(text)
    }

    /// The sentence encodings s_t [B, T, text_dim] the generator reads for a text batch.
    pub fn encode_text(&self, text: &TextBatch) -> tch::Tensor {
        tch::no_grad(|| self.g.encode_text(text))
    }
}

/// Splits a story into sentences at '.', '!', '?' and line breaks.
pub fn split_sentences(text: &str) -> Vec<String> {
    text.split(['.', '!', '?', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(|s| format!("{s}.")).collect()
}

/// A story checked against a model.
#[derive(Debug)]
pub struct Prepared {
    pub sentences: Vec<String>,
    /// Words the vocabulary lacks (drawn as unknown), for the caller to report.
    pub unknown: Vec<String>,
}

pub fn prepare(model: &Loaded, text: &str, fit: Fit, strict_vocab: bool) -> Result<Prepared> {
    ensure!(
        model.cfg.text != TextInput::Vector,
        "this checkpoint was trained on attribute vectors, not sentences; typed stories need a model with text = \"sentence\" or \"minilm\""
    );
    ensure!(text.len() <= MAX_STORY_BYTES, "the story is {} bytes long; at most {MAX_STORY_BYTES} are allowed", text.len());
    let mut sentences = split_sentences(text);
    let t = model.cfg.frames;
    ensure!(!sentences.is_empty(), "the story is empty: give {} separated by periods", count(t, "sentence"));
    for (i, s) in sentences.iter().enumerate() {
        // The length as typed: `split_sentences` added the final period.
        let typed = s.len() - 1;
        ensure!(typed <= MAX_SENTENCE_BYTES, "sentence {} is {typed} bytes long; at most {MAX_SENTENCE_BYTES} are allowed", i + 1);
        ensure!(!tokenize(s).is_empty(), "sentence {} has no words", i + 1);
    }
    let n = sentences.len();
    match (n.cmp(&t), fit) {
        (std::cmp::Ordering::Equal, _) => {}
        (std::cmp::Ordering::Less, Fit::Pad) => {
            let last = sentences.last().expect("non-empty").clone();
            sentences.resize(t, last);
        }
        (std::cmp::Ordering::Greater, Fit::Truncate) => sentences.truncate(t),
        (order, fit) => {
            let hint = match (order, fit) {
                (std::cmp::Ordering::Less, Fit::Truncate) => "; --truncate only drops sentences beyond it: pass --pad to repeat the last one",
                (std::cmp::Ordering::Greater, Fit::Pad) => "; --pad only fills a shorter story: pass --truncate to drop the sentences beyond it",
                (std::cmp::Ordering::Less, _) => " (pass --pad to repeat the last sentence)",
                _ => " (pass --truncate to drop the sentences beyond it)",
            };
            bail!("the story has {}; this model draws {t}{hint}", count(n, "sentence"))
        }
    }
    let mut unknown = Vec::new();
    // MiniLM's WordPiece vocabulary spells any word; only the learned encoder has unknown words.
    for (i, s) in sentences.iter().enumerate().filter(|_| model.cfg.text == TextInput::Sentence) {
        let e = model.vocab.encode(s);
        ensure!(e.unknown.len() < e.ids.len(), "sentence {} ({:?}) has no word the model knows", i + 1, excerpt(s, 60));
        for w in e.unknown {
            if !unknown.contains(&w) {
                unknown.push(w);
            }
        }
    }
    if strict_vocab && !unknown.is_empty() {
        bail!("unknown words (not in the training vocabulary): {}", words(&unknown));
    }
    Ok(Prepared { sentences, unknown })
}

/// "1 sentence", "3 sentences".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The first `chars` characters of `s`, with "…" when it was longer (for echoing input).
pub fn excerpt(s: &str, chars: usize) -> String {
    match s.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// A list of words for a message: the first 20, each shortened to 40 characters.
pub fn words(list: &[String]) -> String {
    let mut out = list.iter().take(20).map(|w| excerpt(w, 40)).collect::<Vec<_>>().join(", ");
    if list.len() > 20 {
        out += &format!(" and {} more", list.len() - 20);
    }
    out
}

/// Reads a story file of at most `MAX_STORY_BYTES` (reading one byte more at most, so that a
/// huge file or a device such as /dev/zero is refused without being read whole).
pub fn read_story_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_STORY_BYTES as u64 + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read {}", path.display()))?;
    ensure!(bytes.len() <= MAX_STORY_BYTES, "{} is longer than {MAX_STORY_BYTES} bytes, the most a story may be", path.display());
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))
}

/// Parses "0-3", "7" or "1,5,9" (a seed given twice is drawn once, in first-given order).
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>> {
    let mut seeds = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let bad = || format!("bad seeds {:?}: use N, A-B or a comma list", excerpt(spec, 40));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (a.trim().parse().with_context(bad)?, b.trim().parse().with_context(bad)?);
                ensure!(a <= b, "bad seed range {part:?}: start after end");
                ensure!(b - a < MAX_SEEDS as u64, "at most {MAX_SEEDS} seeds per call");
                seeds.extend(a..=b);
            }
            None => seeds.push(part.parse().with_context(bad)?),
        }
        ensure!(seeds.len() <= 2 * MAX_SEEDS, "at most {MAX_SEEDS} seeds per call");
    }
    let mut seen = std::collections::HashSet::new();
    seeds.retain(|s| seen.insert(*s));
    ensure!(seeds.len() <= MAX_SEEDS, "at most {MAX_SEEDS} seeds per call");
    Ok(seeds)
}

/// Draws the story once per seed into `out`; returns the files written.
pub fn generate(model: &Loaded, story: &Prepared, seeds: &[u64], out: &Path, format: Format) -> Result<Vec<PathBuf>> {
    crate::drawer::save_all(&render(model, &story.sentences, seeds, format)?, out)
}

/// Draws the story once per seed, in memory: per seed a strip (`seedNNNN.png`, the frames left
/// to right with the sentences underneath) or a PNG per frame (`seedNNNN-frameF.png`).
pub fn render(model: &Loaded, sentences: &[String], seeds: &[u64], format: Format) -> Result<Vec<Picture>> {
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let t = refs.len() as i64;
    let text = match &model.minilm {
        Some(MinilmText::Ids(p)) => TextBatch::Ids(p.ids(&refs)?.0.view([1, t, -1]).to_device(model.device)),
        Some(MinilmText::Embeddings(m)) => TextBatch::Vectors(m.embed(&refs)?.view([1, t, crate::minilm::DIM]).to_device(model.device)),
        None => {
            let ids = model.vocab.batch(&refs)?;
            let l = ids.size()[1];
            TextBatch::Ids(ids.view([1, t, l]).to_device(model.device))
        }
    };
    let mut pictures = Vec::new();
    for &seed in seeds {
        tch::manual_seed(seed as i64);
        let frames = model.draw(&text);
        let images: Vec<image::RgbImage> = (0..t).map(|f| to_image(&frames.get(0).get(f))).collect();
        match format {
            Format::Frames => {
                for (f, img) in images.iter().enumerate() {
                    pictures.push(Picture::png(format!("seed{seed:04}-frame{}.png", f + 1), Some(seed), img)?);
                }
            }
            Format::Strip => {
                let layout = StripLayout::for_frame_size(frames.size()[3] as u32);
                let mut sheet = paper(layout.width(t as u32), layout.row_height() + layout.gap);
                let strip: Vec<_> = images.into_iter().zip(sentences.iter().cloned()).collect();
                layout.draw_row(&mut sheet, layout.gap, &format!("seed {seed}"), &strip);
                pictures.push(Picture::png(format!("seed{seed:04}.png"), Some(seed), &sheet)?);
            }
        }
    }
    Ok(pictures)
}

impl Drawer for Loaded {
    fn input(&self) -> Input {
        Input::Story { frames: self.cfg.frames }
    }

    fn about(&self) -> About<'_> {
        About { family: "storygan", step: self.step, checkpoint: &self.checkpoint }
    }

    fn check(&self, text: &str, fit: Fit) -> Result<Checked> {
        let p = prepare(self, text, fit, false)?;
        Ok(Checked { sentences: p.sentences, unknown: p.unknown })
    }

    fn draw(&self, text: &Checked, seeds: &[u64]) -> Result<Vec<Picture>> {
        render(self, &text.sentences, seeds, Format::Strip)
    }
}

/// The registry's loader (`FamilyEntry::drawer`): a StoryGAN that reads sentences.
pub fn load_drawer(dir: &Path, device: Device, weights: checkpoint::Weights) -> Result<Box<dyn Drawer>> {
    let model = load_with(dir, device, weights)?;
    ensure!(model.cfg.text != TextInput::Vector, "{} was trained on attribute vectors, not sentences: it cannot draw typed stories", dir.display());
    Ok(Box::new(model))
}

/// Mean absolute difference, in [0, 1] pixel units, between the frames the model draws for
/// `stories` (their own sentences, noise from `seed`) and the stories' real frames.
pub fn pixel_error(model: &Loaded, ds: &storyvis_data::dataset::Dataset, stories: &[&storyvis_data::dataset::StoryRecord], seed: u64) -> Result<f64> {
    let data = crate::data::StoryData::load(ds, stories, &model.cfg, &model.vocab)?;
    let index: Vec<i64> = (0..data.len() as i64).collect();
    let batch = data.batch(&index, model.device);
    tch::manual_seed(seed as i64);
    let fake = model.draw(&batch.text);
    // Both in [−1, 1]: halve the difference for [0, 1] units.
    Ok((fake - &batch.images).abs().mean(tch::Kind::Float).double_value(&[]) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_and_seeds() {
        assert_eq!(split_sentences("A red cube. a blue one!\n\nthird?  "), ["A red cube.", "a blue one.", "third."]);
        assert!(split_sentences(" ... \n").is_empty());
        assert_eq!(parse_seeds("0-3").unwrap(), [0, 1, 2, 3]);
        assert_eq!(parse_seeds("5, 9").unwrap(), [5, 9]);
        assert!(parse_seeds("3-1").is_err());
        assert!(parse_seeds("x").is_err());
        assert!(parse_seeds("0-100000").is_err());
        // Each seed is one file: a repeated seed is drawn once.
        assert_eq!(parse_seeds("1,1,0-2,1").unwrap(), [1, 0, 2]);
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("ab", 3), "ab");
        assert_eq!(excerpt("ééé", 2), "éé…");
        let many: Vec<String> = (0..25).map(|i| format!("w{i}")).collect();
        assert!(words(&many).ends_with("w19 and 5 more"), "{}", words(&many));
        let e = parse_seeds(&"x".repeat(500)).unwrap_err().to_string();
        assert!(e.len() < 120, "{e}");
    }
}
