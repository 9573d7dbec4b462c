//! Drawing with a trained TGANs-C: a caption at several seeds (`generate --text`), each clip an
//! animated GIF (or, with `--format strip`, a PNG of its frames left to right).

use super::family::{rgb, strips, Nets, FAMILY_NAME};
use super::Config;
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};
use storyvis_core::captioned::MAX_CAPTION_BYTES;
use storyvis_core::checkpoint;
use storyvis_core::data::to_rgb8;
use storyvis_core::drawer::{self, About, Checked, Drawer, Format, Input, Layout, Picture};
use storyvis_core::evaluation::Evaluated;
use storyvis_core::input::Fit;
use storyvis_core::text::load_vocab;
use storyvis_core::text::Vocab;
use storyvis_data::dataset::{Dataset, StoryRecord};
use tch::{Device, Kind, Tensor};

/// A frame of the GIFs lasts this long, in hundredths of a second (TGANs-C's clips are GIFs;
/// 10 frames a second shows Bouncing MNIST's motion at the pace of its demonstrations).
pub const GIF_DELAY_CS: u16 = 10;
/// GIF frames are drawn at this multiple of the model's size (64 → 128 pixels).
pub const GIF_SCALE: u32 = 2;

/// How a clip is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClipFormat {
    Gif,
    Strip,
}

/// A trained TGANs-C ready to draw.
pub struct Loaded {
    pub cfg: Config,
    pub checkpoint: PathBuf,
    pub step: usize,
    pub averaged: bool,
    pub vocab: Vocab,
    /// The (digit, motion) combinations its training data held out, where the checkpoint
    /// records them.
    pub held_out: Option<storyvis_data::bouncing::HeldOut>,
    nets: Nets,
    /// The discriminators' attribute labels and projected backbone, to build them when they
    /// are loaded (drawing needs neither, nor the backbone's weights).
    judges:
        (Option<storyvis_core::recipe::Labels>, Option<storyvis_core::recipe::projected::Backbone>),
    /// Whether `judge` has loaded the discriminators.
    discriminator_loaded: bool,
    device: Device,
}

/// Loads a run directory or checkpoint of the tganc family (an error names the family it is,
/// if another).
pub fn load_with(path: &Path, device: Device, weights: checkpoint::Weights) -> Result<Loaded> {
    let checkpoint::Opened { dir, manifest, config: core, generator, averaged } =
        checkpoint::open_to_draw(path, &[FAMILY_NAME], weights)?;
    let cfg = Config::of(&core)?;
    let vocab = load_vocab(&dir)?;
    // The discriminators' attribute head, if the run had one (its width from the data; drawing
    // and judging never compute its loss, so its groups do not matter here).
    let labels = manifest
        .shape
        .get("labels")
        .and_then(serde_json::Value::as_i64)
        .filter(|_| core.recipe.aux_attributes > 0.0)
        .map(|count| storyvis_core::recipe::Labels { count, groups: None });
    let backbone = core.recipe.projected(core.run.seed)?;
    let mut nets = Nets::new(&cfg, vocab.len(), labels.clone(), None, device)?;
    if cfg.text_norm {
        nets.text.set_norm(storyvis_core::recipe::TextNorm::load(&dir)?);
    }
    checkpoint::load_store(&mut nets.g_vs, &generator)?;
    if cfg.trains_text() {
        checkpoint::load_store(&mut nets.t_vs, &dir.join("text.safetensors"))?;
    }
    let held_out = manifest
        .shape
        .get("held_out_motion")
        .and_then(|m| serde_json::from_value::<Vec<usize>>(m.clone()).ok())
        .filter(|m| m.len() == 10 || m.len() == 100)
        .map(|motion| storyvis_data::bouncing::HeldOut {
            digits: if motion.len() == 10 { 1 } else { 2 },
            motion,
        });
    Ok(Loaded {
        cfg,
        checkpoint: dir,
        step: manifest.step,
        averaged,
        vocab,
        held_out,
        nets,
        judges: (labels, backbone),
        discriminator_loaded: false,
        device,
    })
}

impl Loaded {
    /// Loads the run's discriminators too (a training checkpoint's; an export has none).
    pub fn load_discriminator(&mut self) -> Result<()> {
        let file = self.checkpoint.join("discriminator.safetensors");
        ensure!(
            file.is_file(),
            "{} has no discriminators (an exported copy?): give a training checkpoint",
            self.checkpoint.display()
        );
        let (labels, backbone) = self.judges.clone();
        if backbone.is_some() {
            self.nets.d_vs = tch::nn::VarStore::new(self.device);
            self.nets.d =
                super::Discriminator::new(self.nets.d_vs.root(), &self.cfg, labels, backbone)?;
        }
        checkpoint::load_store(&mut self.nets.d_vs, &file)
    }

    /// The discriminators' verdict on clips [B, C, T, S, S] with their captions' word ids:
    /// per clip, the mean of the probabilities "real and matching" of the video discriminator,
    /// of the frame discriminator (averaged over frames) and, when it was trained (the
    /// adversarial temporal loss), of the motion discriminator (averaged over frame pairs).
    pub fn judge(&self, clips: &Tensor, ids: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let s = self.nets.text.forward(ids);
            let d = &self.nets.d;
            let f = d.features(clips, false);
            let b = clips.size()[0];
            let mut p = vec![
                d.video(&f, &s, false).sigmoid(),
                d.frame(&f, &s, false).sigmoid().view([b, -1]).mean_dim(1, false, Kind::Float),
            ];
            if self.cfg.temporal == super::Temporal::Adversarial {
                p.push(d.motion(&f, &s, false).sigmoid().view([b, -1]).mean_dim(
                    1,
                    false,
                    Kind::Float,
                ));
            }
            Tensor::stack(&p, 0).mean_dim(0, false, Kind::Float)
        })
    }

    /// Captions → the token ids the model reads [N, L] on its device.
    pub fn ids(&self, captions: &[&str]) -> Result<Tensor> {
        Ok(self.nets.text.ids(&self.vocab, captions)?.to_device(self.device))
    }

    /// Checks a typed caption (not empty, not too long, some words) and returns its token ids
    /// [1, L]; words the model never saw read as unknown (`unknown_words` lists them; MiniLM
    /// reads any word).
    pub fn encode(&self, caption: &str) -> Result<Tensor> {
        ensure!(!caption.trim().is_empty(), "the caption is empty");
        ensure!(
            caption.len() <= MAX_CAPTION_BYTES,
            "the caption is {} bytes long; at most {MAX_CAPTION_BYTES} are allowed",
            caption.len()
        );
        if self.cfg.text == super::CaptionText::Minilm {
            return self.ids(&[caption]);
        }
        let enc = self.vocab.encode(caption);
        ensure!(!enc.ids.is_empty(), "the caption {caption:?} has no words");
        ensure!(
            enc.unknown.len() < enc.ids.len(),
            "the caption {caption:?} has no word the model knows; it knows: {}",
            self.vocab.known().join(" ")
        );
        self.ids(&[caption])
    }

    /// The words of `caption` the model never saw (none for MiniLM, which reads any word).
    pub fn unknown_words(&self, caption: &str) -> Vec<String> {
        if self.cfg.text == super::CaptionText::Minilm {
            return Vec::new();
        }
        self.vocab.encode(caption).unknown
    }

    /// Clips [B, C, T, S, S] for noise z and word ids (eval mode).
    pub fn draw(&self, z: &Tensor, ids: &Tensor) -> Tensor {
        tch::no_grad(|| self.nets.draw(z, ids, false))
    }

    /// The noise of `seed` [1, noise_dim].
    pub fn noise(&self, seed: u64) -> Tensor {
        tch::manual_seed(seed as i64);
        Tensor::randn([1, self.cfg.noise_dim], (Kind::Float, self.device))
    }

    /// The caption encoder's sentence representations S [B, sentence_dim] of word ids.
    pub fn sentence(&self, ids: &Tensor) -> Tensor {
        tch::no_grad(|| self.nets.text.forward(ids))
    }

    pub fn device(&self) -> Device {
        self.device
    }
}

/// Writes a clip's frames [T, C, S, S] in [−1, 1] as an animated GIF that loops, each frame
/// scaled up `GIF_SCALE` times (nearest neighbour).
pub fn write_gif(frames: &Tensor, path: &Path) -> Result<()> {
    storyvis_data::atomic::write_file(
        path,
        &gif_bytes(frames).with_context(|| format!("encoding {}", path.display()))?,
    )
}

/// A clip's frames [T, C, S, S] in [−1, 1] as the bytes of an animated GIF (`write_gif`).
pub fn gif_bytes(frames: &Tensor) -> Result<Vec<u8>> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
        enc.set_repeat(Repeat::Infinite)?;
        for t in 0..frames.size()[0] {
            let f = rgb(&frames.get(t));
            let (h, w) = (f.size()[1] as u32, f.size()[2] as u32);
            let img = image::RgbImage::from_raw(w, h, to_rgb8(&f)).context("frame bytes")?;
            let big = image::imageops::resize(
                &img,
                w * GIF_SCALE,
                h * GIF_SCALE,
                image::imageops::FilterType::Nearest,
            );
            let rgba = image::DynamicImage::ImageRgb8(big).to_rgba8();
            let delay = image::Delay::from_numer_denom_ms(GIF_DELAY_CS as u32 * 10, 1);
            enc.encode_frame(image::Frame::from_parts(rgba, 0, 0, delay))?;
        }
    }
    Ok(bytes)
}

/// `generate --text` on a video model: the caption drawn at each seed, a GIF per seed
/// (`seedNNNN.gif`), or a PNG strip per seed with `ClipFormat::Strip`; and a sheet of every
/// seed's strip (`strips.png`).
pub fn generate(
    model: &Loaded,
    caption: &str,
    seeds: &[u64],
    out: &Path,
    format: ClipFormat,
) -> Result<Vec<PathBuf>> {
    storyvis_core::drawer::save_all(&render(model, caption, seeds, format)?, out)
}

/// [`generate`] in memory.
pub fn render(
    model: &Loaded,
    caption: &str,
    seeds: &[u64],
    format: ClipFormat,
) -> Result<Vec<Picture>> {
    let ids = model.encode(caption)?;
    let mut pictures = Vec::new();
    let mut rows = Vec::new();
    let size = model.cfg.image_size as u32;
    for &seed in seeds {
        let clip =
            model.draw(&model.noise(seed), &ids).get(0).transpose(0, 1).to_device(Device::Cpu); // [T, C, S, S]
        pictures.push(match format {
            ClipFormat::Gif => Picture {
                name: format!("seed{seed:04}.gif"),
                seed: Some(seed),
                mime: "image/gif",
                bytes: gif_bytes(&clip)?,
            },
            ClipFormat::Strip => Picture::png(
                format!("seed{seed:04}.png"),
                Some(seed),
                &strips(&[(format!("{caption} (seed {seed})"), clip.shallow_clone())], size),
            )?,
        });
        rows.push((format!("seed {seed}: {caption}"), clip));
    }
    pictures.push(Picture::png("strips.png".into(), None, &strips(&rows, size))?);
    Ok(pictures)
}

impl Drawer for Loaded {
    fn input(&self) -> Input {
        Input::Video { frames: self.cfg.frames as usize }
    }

    fn about(&self) -> About<'_> {
        About {
            family: FAMILY_NAME,
            step: self.step,
            checkpoint: &self.checkpoint,
            averaged: self.averaged,
        }
    }

    /// Words it never saw read as unknown (listed for the caller to warn of).
    fn check(&self, text: &str, _fit: Fit) -> Result<Checked> {
        self.encode(text).map(drop)?;
        Ok(Checked { sentences: vec![text.to_string()], unknown: self.unknown_words(text) })
    }

    fn vocabulary(&self) -> Option<Vec<String>> {
        (self.cfg.text != super::CaptionText::Minilm).then(|| self.vocab.known())
    }

    fn draw_as(&self, text: &Checked, seeds: &[u64], layout: &Layout) -> Result<Vec<Picture>> {
        drawer::check_layout(self, layout)?;
        let format = match layout.format {
            Some(Format::Strip) => ClipFormat::Strip,
            _ => ClipFormat::Gif,
        };
        render(self, &text.sentences[0], seeds, format)
    }
}

impl Evaluated for Loaded {
    fn variant(&self) -> String {
        format!("{:?}", self.cfg.temporal).to_lowercase()
    }

    /// Each clip's caption at each seed, seed-major: clips [n, C, T, S, S].
    fn draw_items(
        &self,
        ds: &Dataset,
        items: &[&StoryRecord],
        seeds: usize,
        batch: usize,
        sink: &mut dyn FnMut(Tensor) -> Result<()>,
    ) -> Result<()> {
        let h = &ds.header;
        ensure!(
            h.kind == storyvis_data::bouncing::KIND,
            "{} draws video clips; evaluate it on a video dataset ({}), not {} ({})",
            self.checkpoint.display(),
            storyvis_data::bouncing::KIND,
            ds.dir.display(),
            h.kind
        );
        ensure!(
            self.cfg.frames == h.frames_per_story as i64
                && self.cfg.image_size == h.image_size as i64,
            "{} draws {} frames of {}×{}; the dataset's clips are {} frames of {}×{}",
            self.checkpoint.display(),
            self.cfg.frames,
            self.cfg.image_size,
            self.cfg.image_size,
            h.frames_per_story,
            h.image_size,
            h.image_size
        );
        let ids = self.ids(&captions(items))?;
        let draw = |start: usize, n: usize| {
            let z = Tensor::randn([n as i64, self.cfg.noise_dim], (Kind::Float, self.device));
            Ok(self.draw(&z, &ids.narrow(0, start as i64, n as i64)))
        };
        storyvis_core::evaluation::by_seed(items.len(), seeds, batch, &draw, sink)
    }

    fn held_out(&self) -> Option<&storyvis_data::bouncing::HeldOut> {
        self.held_out.as_ref()
    }

    fn judge(&mut self, clips: &Tensor, items: &[&StoryRecord]) -> Result<Tensor> {
        if !self.discriminator_loaded {
            self.load_discriminator()?;
            self.discriminator_loaded = true;
        }
        let ids = self.ids(&captions(items))?;
        Ok(Loaded::judge(self, &clips.to_device(self.device), &ids))
    }
}

/// Each clip's caption (a video dataset stores it as the first frame's sentence).
fn captions<'a>(items: &[&'a StoryRecord]) -> Vec<&'a str> {
    items.iter().map(|s| s.frames[0].sentence.as_str()).collect()
}

storyvis_core::registry_loaders!(load_with);
