//! Drawing with a trained GAN-INT-CLS: a caption at several seeds (`generate --text`), the
//! paper's sentence interpolation with the noise fixed (`interpolate`, Reed et al. 2016 §5.3,
//! Figure 8), and style transfer: the style z = S(x) of a query image drawn with a new caption
//! (`style-transfer`, §4.4 and Figure 6).

use super::family::Nets;
use super::Config;
use crate::captioned::MAX_CAPTION_BYTES;
use crate::checkpoint;
use crate::data::to_image;
use crate::drawer::{About, Checked, Drawer, Input, Picture};
use crate::joint::Joint;
use crate::sample::Fit;
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};
use storyvis_data::sheet::{paper, save_png, StripLayout};
use tch::{Device, Kind, Tensor};

pub const FAMILY_NAME: &str = "gan-int-cls";

/// A trained GAN-INT-CLS ready to draw.
pub struct Loaded {
    pub cfg: Config,
    pub checkpoint: PathBuf,
    pub step: usize,
    /// Whether it draws with the run's moving average of the generator.
    pub averaged: bool,
    nets: Nets,
    pub joint: Joint,
    /// The centring and scale of the encoder's embeddings the run trained with (`text_norm`).
    text_norm: Option<crate::recipe::TextNorm>,
    device: Device,
}

/// Loads a run directory or checkpoint of the gan-int-cls family (an error names the family
/// it is, if another).
pub fn load(path: &Path, device: Device) -> Result<Loaded> {
    load_with(path, device, checkpoint::Weights::Average)
}

/// [`load`] with the chosen generator weights.
pub fn load_with(path: &Path, device: Device, weights: checkpoint::Weights) -> Result<Loaded> {
    let dir = checkpoint::resolve(path)?;
    let manifest = checkpoint::verify(&dir)?;
    let cfg = Config::of(&checkpoint::load_config_of(&dir, FAMILY_NAME)?)?;
    let joint = Joint::load(&dir, device).with_context(|| format!("the text encoder in {}", dir.display()))?;
    // Drawing needs no discriminator (nor its attribute head).
    let mut nets = Nets::new(&cfg, joint.manifest.config.dim, None, None, device)?;
    let (file, averaged) = checkpoint::drawing_weights(&dir, &manifest, "generator", weights);
    checkpoint::load_store(&mut nets.g_vs, &file)?;
    checkpoint::load_store(&mut nets.s_vs, &dir.join("style.safetensors"))?;
    let text_norm = if cfg.text_norm { Some(crate::recipe::TextNorm::load(&dir)?) } else { None };
    Ok(Loaded { cfg, checkpoint: dir, step: manifest.step, averaged, nets, joint, text_norm, device })
}

/// A typed caption checked for a model that reads it through `joint`'s text encoder.
pub fn checked_caption(joint: &Joint, text: &str) -> Result<Checked> {
    check_caption(text)?;
    Ok(Checked { sentences: vec![text.to_string()], unknown: joint.text.unknown_words(text) })
}

/// Checks a typed caption: not empty, not too long, some words.
pub fn check_caption(caption: &str) -> Result<()> {
    ensure!(!caption.trim().is_empty(), "the caption is empty");
    ensure!(caption.len() <= MAX_CAPTION_BYTES, "the caption is {} bytes long; at most {MAX_CAPTION_BYTES} are allowed", caption.len());
    ensure!(caption.chars().any(char::is_alphanumeric), "the caption {caption:?} has no words");
    Ok(())
}

impl Loaded {
    pub fn device(&self) -> Device {
        self.device
    }

    /// A caption's embedding [1, dim] (words outside a word encoder's vocabulary read as
    /// unknown: `TextEncoder::unknown_words` lists them).
    pub fn embed(&self, caption: &str) -> Result<Tensor> {
        check_caption(caption)?;
        self.texts(&[caption])
    }

    /// Captions' embeddings [N, dim] as the generator reads them (through `text_norm` when the
    /// run used it).
    pub fn texts(&self, captions: &[&str]) -> Result<Tensor> {
        let e = self.joint.text.embed(captions)?;
        Ok(match &self.text_norm {
            Some(n) => n.apply(&e),
            None => e,
        })
    }

    /// The noise of `seed` [1, noise_dim].
    pub fn noise(&self, seed: u64) -> Tensor {
        tch::manual_seed(seed as i64);
        Tensor::randn([1, self.cfg.noise_dim], (Kind::Float, self.device))
    }

    /// Images [B, 3, S, S] for noise and text embeddings (eval mode).
    pub fn draw(&self, z: &Tensor, text: &Tensor) -> Tensor {
        tch::no_grad(|| self.nets.g.forward_t(z, text, false))
    }

    /// The style z = S(x) of an image file, which must be the model's size.
    /// Also returns the image itself, [1, 3, S, S] in [−1, 1] on the device.
    pub fn style_of(&self, image: &Path) -> Result<(Tensor, Tensor)> {
        let img = image::open(image).with_context(|| format!("{} is not an image this tool can read (PNG, JPEG, …)", image.display()))?.to_rgb8();
        let s = self.cfg.image_size as u32;
        ensure!(img.dimensions() == (s, s), "{} is {}×{}; this model reads {s}×{s} images (resize it first)", image.display(), img.width(), img.height());
        let x = Tensor::from_slice(img.as_raw()).view([1, s as i64, s as i64, 3]).permute([0, 3, 1, 2]).to_device(self.device);
        let x = crate::data::to_unit(&x);
        let z = tch::no_grad(|| self.nets.s.forward_t(&x, false));
        Ok((z, x))
    }

    fn rgb(&self, x: &Tensor) -> image::RgbImage {
        to_image(x)
    }

    /// One row of images (labelled) under a title.
    fn row(&self, title: &str, images: &[(Tensor, String)]) -> image::RgbImage {
        let layout = StripLayout::for_frame_size(self.cfg.image_size as u32);
        let mut sheet = paper(layout.width(images.len() as u32), layout.row_height() + layout.gap);
        let strip: Vec<(image::RgbImage, String)> = images.iter().map(|(x, label)| (self.rgb(x), label.clone())).collect();
        layout.draw_row(&mut sheet, layout.gap, title, &strip);
        sheet
    }

    /// Writes one row of images (labelled) with a title as a PNG.
    fn save_row(&self, path: &Path, title: &str, images: &[(Tensor, String)]) -> Result<()> {
        save_png(&self.row(title, images), path)
    }
}

/// The held-out evaluation's drawings: each caption at each seed 0..seeds (noise from the
/// seed), seed-major: [seeds · N, 3, S, S] on the CPU, `batch` at a time; `on_batch` after each.
pub fn draw_captions(model: &Loaded, captions: &[&str], seeds: usize, batch: usize, on_batch: &dyn Fn()) -> Result<Tensor> {
    let t = model.texts(captions)?;
    let mut out = Vec::new();
    for seed in 0..seeds {
        tch::manual_seed(seed as i64);
        for start in (0..captions.len()).step_by(batch.max(1)) {
            let n = (captions.len() - start).min(batch.max(1)) as i64;
            let z = Tensor::randn([n, model.cfg.noise_dim], (Kind::Float, model.device));
            out.push(model.draw(&z, &t.narrow(0, start as i64, n)).to_device(Device::Cpu));
            on_batch();
        }
    }
    Ok(Tensor::cat(&out, 0))
}

/// R-precision of images [K·N, 3, S, S] drawn from `captions` (K draws of the N, in order):
/// each image against its caption and 99 others, in the model's joint embedding.
pub fn r_precision(model: &Loaded, images: &Tensor, captions: &[&str], seed: u64) -> Result<f64> {
    crate::joint::r_precision(&model.joint, images, captions, seed)
}

/// `generate --text`: the caption drawn at each seed, one row; also each image alone.
pub fn generate(model: &Loaded, caption: &str, seeds: &[u64], out: &Path) -> Result<Vec<PathBuf>> {
    crate::drawer::save_all(&render(model, caption, seeds)?, out)
}

/// The caption drawn at each seed, in memory: each image alone (`seedNNNN.png`), then the row
/// of them under the caption (`row.png`).
pub fn render(model: &Loaded, caption: &str, seeds: &[u64]) -> Result<Vec<Picture>> {
    let t = model.embed(caption)?;
    let mut pictures = Vec::new();
    let mut row = Vec::new();
    for &seed in seeds {
        let x = model.draw(&model.noise(seed), &t).get(0);
        pictures.push(Picture::png(format!("seed{seed:04}.png"), Some(seed), &model.rgb(&x))?);
        row.push((x, format!("seed {seed}")));
    }
    pictures.push(Picture::png("row.png".into(), None, &model.row(caption, &row))?);
    Ok(pictures)
}

impl Drawer for Loaded {
    fn input(&self) -> Input {
        Input::Caption
    }

    fn about(&self) -> About<'_> {
        About { family: FAMILY_NAME, step: self.step, checkpoint: &self.checkpoint }
    }

    fn check(&self, text: &str, _fit: Fit) -> Result<Checked> {
        checked_caption(&self.joint, text)
    }

    fn draw(&self, text: &Checked, seeds: &[u64]) -> Result<Vec<Picture>> {
        render(self, &text.sentences[0], seeds)
    }
}

/// The registry's loader (`FamilyEntry::drawer`).
pub fn load_drawer(dir: &Path, device: Device, weights: checkpoint::Weights) -> Result<Box<dyn Drawer>> {
    Ok(Box::new(load_with(dir, device, weights)?))
}

/// `interpolate`: per seed, a row from `from` to `to` in `steps` steps of the text embedding
/// with the noise fixed.
pub fn interpolate(model: &Loaded, from: &str, to: &str, steps: usize, seeds: &[u64], out: &Path) -> Result<Vec<PathBuf>> {
    ensure!((2..=64).contains(&steps), "--steps must be 2..64, got {steps}");
    let (a, b) = (model.embed(from)?, model.embed(to)?);
    storyvis_data::atomic::create_dir_all(out)?;
    let mut files = Vec::new();
    for &seed in seeds {
        let z = model.noise(seed);
        let row: Vec<(Tensor, String)> = (0..steps)
            .map(|k| {
                let w = k as f64 / (steps - 1) as f64;
                (model.draw(&z, &super::interpolate(&b, &a, w)).get(0), format!("{w:.2}"))
            })
            .collect();
        let path = out.join(format!("interpolate-seed{seed:04}.png"));
        model.save_row(&path, &format!("\"{from}\" to \"{to}\" (seed {seed})"), &row)?;
        files.push(path);
    }
    Ok(files)
}

/// `style-transfer`: the query image, then the caption drawn in its style.
pub fn style_transfer(model: &Loaded, image: &Path, caption: &str, out: &Path) -> Result<PathBuf> {
    ensure!(model.cfg.style, "{} was trained without its style encoder (style = false): it cannot infer an image's style", model.checkpoint.display());
    let t = model.embed(caption)?;
    let (z, query) = model.style_of(image)?;
    storyvis_data::atomic::create_dir_all(out)?;
    let query = query.get(0);
    let drawn = model.draw(&z, &t).get(0);
    let path = out.join("style-transfer.png");
    model.save_row(&path, caption, &[(query, "query".into()), (drawn, "its style".into())])?;
    Ok(path)
}
