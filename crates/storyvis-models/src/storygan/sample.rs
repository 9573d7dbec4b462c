//! Drawing stories with a trained generator: `storyvis generate`. Typed text is split into
//! sentences, checked against the model (T, vocabulary, lengths) before anything is written,
//! and drawn once per seed as a strip (frames left to right, sentences underneath) or as one
//! PNG per frame.

use super::data::StoryData;
use crate::storygan::config::{Config, TextInput};
use crate::storygan::generator::{Generator, TextBatch};
use crate::storygan::DataShape;
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use storyvis_core::checkpoint;
use storyvis_core::data::to_image;
use storyvis_core::drawer::{
    self, About, Checked, Drawer, Format as DrawFormat, Input, Layout, Picture,
};
use storyvis_core::evaluation::Evaluated;
use storyvis_core::input::{
    count, excerpt, split_sentences, words, Fit, MAX_SENTENCE_BYTES, MAX_STORY_BYTES,
};
use storyvis_core::text::{tokenize, Vocab};
use storyvis_data::dataset::{Dataset, StoryRecord};
use storyvis_data::sheet::{paper, StripLayout};
use tch::nn::VarStore;
use tch::{Device, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Strip,
    Frames,
}

/// What reads typed sentences for a `text = "minilm"` model.
enum MinilmText {
    /// The frozen encoder: sentence embeddings.
    Embeddings(Box<storyvis_core::minilm::MiniLm>),
    /// The tokenizer alone, for a generator with its own trained copy.
    Ids(Box<storyvis_core::minilm::WordPieces>),
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
    let checkpoint::Opened { dir, manifest, config, generator, averaged } =
        checkpoint::open_to_draw(path, &["storygan"], weights)?;
    let cfg = Config::of(&config)?;
    let vocab = storyvis_core::text::load_vocab(&dir)?;
    let mut vs = VarStore::new(device);
    let s: DataShape = serde_json::from_value(manifest.shape.clone())
        .with_context(|| format!("{}: the recorded data shape is not StoryGAN's", dir.display()))?;
    let mut g = Generator::new(vs.root(), &cfg, s.vocab, s.vector_len, s.labels);
    g.attach_minilm()?;
    checkpoint::load_store(&mut vs, &generator)?;
    let minilm = match cfg.text {
        // The generator runs MiniLM itself (its own trained copy, or the frozen one under its
        // attention pooling): it reads token ids.
        TextInput::Minilm if cfg.minilm_tokens() => {
            Some(MinilmText::Ids(Box::new(storyvis_core::minilm::WordPieces::load_default()?)))
        }
        TextInput::Minilm => Some(MinilmText::Embeddings(Box::new(
            storyvis_core::minilm::MiniLm::load_default(Device::Cpu)?,
        ))),
        _ => None,
    };
    Ok(Loaded {
        cfg,
        vocab,
        checkpoint: dir,
        step: manifest.step,
        averaged,
        g,
        _vs: vs,
        device,
        minilm,
    })
}

impl Loaded {
    pub fn device(&self) -> Device {
        self.device
    }

    /// The generator it draws with.
    pub fn generator(&self) -> &Generator {
        &self.g
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
    ensure!(
        text.len() <= MAX_STORY_BYTES,
        "the story is {} bytes long; at most {MAX_STORY_BYTES} are allowed",
        text.len()
    );
    let mut sentences = split_sentences(text);
    let t = model.cfg.frames;
    ensure!(
        !sentences.is_empty(),
        "the story is empty: give {} separated by periods",
        count(t, "sentence")
    );
    for (i, s) in sentences.iter().enumerate() {
        // The length as typed: `split_sentences` added the final period.
        let typed = s.len() - 1;
        ensure!(
            typed <= MAX_SENTENCE_BYTES,
            "sentence {} is {typed} bytes long; at most {MAX_SENTENCE_BYTES} are allowed",
            i + 1
        );
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
        ensure!(
            e.unknown.len() < e.ids.len(),
            "sentence {} ({:?}) has no word the model knows",
            i + 1,
            excerpt(s, 60)
        );
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

/// Draws the story once per seed into `out`; returns the files written.
pub fn generate(
    model: &Loaded,
    story: &Prepared,
    seeds: &[u64],
    out: &Path,
    format: Format,
) -> Result<Vec<PathBuf>> {
    storyvis_core::drawer::save_all(&render(model, &story.sentences, seeds, format)?, out)
}

/// Draws the story once per seed, in memory: per seed a strip (`seedNNNN.png`, the frames left
/// to right with the sentences underneath) or a PNG per frame (`seedNNNN-frameF.png`).
pub fn render(
    model: &Loaded,
    sentences: &[String],
    seeds: &[u64],
    format: Format,
) -> Result<Vec<Picture>> {
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let t = refs.len() as i64;
    let text = match &model.minilm {
        Some(MinilmText::Ids(p)) => {
            TextBatch::Ids(p.ids(&refs)?.0.view([1, t, -1]).to_device(model.device))
        }
        Some(MinilmText::Embeddings(m)) => TextBatch::Vectors(
            m.embed(&refs)?.view([1, t, storyvis_core::minilm::DIM]).to_device(model.device),
        ),
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
        let images: Vec<image::RgbImage> =
            (0..t).map(|f| to_image(&frames.get(0).get(f))).collect();
        match format {
            Format::Frames => {
                for (f, img) in images.iter().enumerate() {
                    pictures.push(Picture::png(
                        format!("seed{seed:04}-frame{}.png", f + 1),
                        Some(seed),
                        img,
                    )?);
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
        About {
            family: "storygan",
            step: self.step,
            checkpoint: &self.checkpoint,
            averaged: self.averaged,
        }
    }

    fn check(&self, text: &str, fit: Fit) -> Result<Checked> {
        let p = prepare(self, text, fit, false)?;
        Ok(Checked { sentences: p.sentences, unknown: p.unknown })
    }

    fn vocabulary(&self) -> Option<Vec<String>> {
        (self.cfg.text == TextInput::Sentence).then(|| self.vocab.known())
    }

    fn draw_as(&self, text: &Checked, seeds: &[u64], layout: &Layout) -> Result<Vec<Picture>> {
        drawer::check_layout(self, layout)?;
        let format = match layout.format {
            Some(DrawFormat::Frames) => Format::Frames,
            _ => Format::Strip,
        };
        render(self, &text.sentences, seeds, format)
    }
}

impl Evaluated for Loaded {
    fn variant(&self) -> String {
        format!("{:?}", self.cfg.variant).to_lowercase()
    }

    /// Each story's own sentences at each seed, seed-major: stories [n, T, 3, S, S].
    fn draw_items(
        &self,
        ds: &Dataset,
        items: &[&StoryRecord],
        seeds: usize,
        batch: usize,
        sink: &mut dyn FnMut(Tensor) -> Result<()>,
    ) -> Result<()> {
        let data = StoryData::load(ds, items, &self.cfg, &self.vocab)
            .with_context(|| format!("the data does not fit {}", self.checkpoint.display()))?;
        let draw = |start: usize, n: usize| {
            let index: Vec<i64> = (start..start + n).map(|i| i as i64).collect();
            Ok(tch::no_grad(|| self.draw(&data.batch(&index, self.device).text)))
        };
        storyvis_core::evaluation::by_seed(data.len(), seeds, batch, &draw, sink)
    }
}

/// The registry's loader for evaluation (`FamilyEntry::evaluated`).
pub fn load_evaluated(
    dir: &Path,
    device: Device,
    weights: checkpoint::Weights,
) -> Result<Box<dyn Evaluated>> {
    Ok(Box::new(load_with(dir, device, weights)?))
}

/// The registry's loader (`FamilyEntry::drawer`): a StoryGAN that reads sentences.
pub fn load_drawer(
    dir: &Path,
    device: Device,
    weights: checkpoint::Weights,
) -> Result<Box<dyn Drawer>> {
    let model = load_with(dir, device, weights)?;
    ensure!(
        model.cfg.text != TextInput::Vector,
        "{} was trained on attribute vectors, not sentences: it cannot draw typed stories",
        dir.display()
    );
    Ok(Box::new(model))
}

#[cfg(feature = "testing")]
/// Mean absolute difference, in [0, 1] pixel units, between the frames the model draws for
/// `stories` (their own sentences, noise from `seed`) and the stories' real frames.
pub fn pixel_error(
    model: &Loaded,
    ds: &storyvis_data::dataset::Dataset,
    stories: &[&storyvis_data::dataset::StoryRecord],
    seed: u64,
) -> Result<f64> {
    let data = super::data::StoryData::load(ds, stories, &model.cfg, &model.vocab)?;
    let index: Vec<i64> = (0..data.len() as i64).collect();
    let batch = data.batch(&index, model.device);
    tch::manual_seed(seed as i64);
    let fake = model.draw(&batch.text);
    // Both in [−1, 1]: halve the difference for [0, 1] units.
    Ok((fake - &batch.images).abs().mean(tch::Kind::Float).double_value(&[]) / 2.0)
}
