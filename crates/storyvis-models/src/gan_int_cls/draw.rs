//! Drawing with a trained GAN-INT-CLS: a caption at several seeds (`generate --text`), the
//! paper's sentence interpolation with the noise fixed (`interpolate`, Reed et al. 2016 §5.3,
//! Figure 8), and style transfer: the style z = S(x) of a query image drawn with a new caption
//! (`style-transfer`, §4.4 and Figure 6).

use super::family::Nets;
use super::Config;
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};
use storyvis_core::captioned::{check_caption, checked_caption, first_captions};
use storyvis_core::checkpoint;
use storyvis_core::data::to_image;
use storyvis_core::drawer::{self, About, Checked, Drawer, Input, Layout, Picture};
use storyvis_core::evaluation::Evaluated;
use storyvis_core::input::Fit;
use storyvis_core::joint::Joint;
use storyvis_data::dataset::{Dataset, StoryRecord};
use storyvis_data::sheet::{paper, StripLayout};
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
    text_norm: Option<storyvis_core::recipe::TextNorm>,
    device: Device,
}

/// Loads a run directory or checkpoint of the gan-int-cls family (an error names the family
/// it is, if another).
pub fn load(path: &Path, device: Device) -> Result<Loaded> {
    load_with(path, device, checkpoint::Weights::Average)
}

/// [`load`] with the chosen generator weights.
pub fn load_with(path: &Path, device: Device, weights: checkpoint::Weights) -> Result<Loaded> {
    let checkpoint::Opened { dir, manifest, config, generator, averaged } =
        checkpoint::open_to_draw(path, &[FAMILY_NAME], weights)?;
    let cfg = Config::of(&config)?;
    let joint = Joint::load(&dir, device)
        .with_context(|| format!("the text encoder in {}", dir.display()))?;
    // Drawing needs no discriminator (nor its attribute head).
    let mut nets = Nets::new(&cfg, joint.manifest.config.dim, None, None, device)?;
    checkpoint::load_store(&mut nets.g_vs, &generator)?;
    if cfg.style {
        // Only style transfer reads the style encoder (untrained where `style = false`).
        checkpoint::load_store(&mut nets.s_vs, &dir.join("style.safetensors"))?;
    }
    let text_norm =
        if cfg.text_norm { Some(storyvis_core::recipe::TextNorm::load(&dir)?) } else { None };
    Ok(Loaded {
        cfg,
        checkpoint: dir,
        step: manifest.step,
        averaged,
        nets,
        joint,
        text_norm,
        device,
    })
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
        let img = image::open(image)
            .with_context(|| {
                format!("{} is not an image this tool can read (PNG, JPEG, …)", image.display())
            })?
            .to_rgb8();
        let s = self.cfg.image_size as u32;
        ensure!(
            img.dimensions() == (s, s),
            "{} is {}×{}; this model reads {s}×{s} images (resize it first)",
            image.display(),
            img.width(),
            img.height()
        );
        let x = Tensor::from_slice(img.as_raw())
            .view([1, s as i64, s as i64, 3])
            .permute([0, 3, 1, 2])
            .to_device(self.device);
        let x = storyvis_core::data::to_unit(&x);
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
        let strip: Vec<(image::RgbImage, String)> =
            images.iter().map(|(x, label)| (self.rgb(x), label.clone())).collect();
        layout.draw_row(&mut sheet, layout.gap, title, &strip);
        sheet
    }
}

/// `generate --text`: the caption drawn at each seed into `out` (`render`'s pictures).
pub fn generate(model: &Loaded, caption: &str, seeds: &[u64], out: &Path) -> Result<Vec<PathBuf>> {
    storyvis_core::drawer::save_all(&render(model, caption, seeds)?, out)
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
        About {
            family: FAMILY_NAME,
            step: self.step,
            checkpoint: &self.checkpoint,
            averaged: self.averaged,
        }
    }

    fn check(&self, text: &str, _fit: Fit) -> Result<Checked> {
        checked_caption(&self.joint, text)
    }

    fn vocabulary(&self) -> Option<Vec<String>> {
        self.joint.text.known_words()
    }

    fn draw_as(&self, text: &Checked, seeds: &[u64], layout: &Layout) -> Result<Vec<Picture>> {
        drawer::check_layout(self, layout)?;
        render(self, &text.sentences[0], seeds)
    }

    fn interpolate(
        &self,
        from: &str,
        to: &str,
        steps: usize,
        seeds: &[u64],
    ) -> Result<Vec<Picture>> {
        interpolate(self, from, to, steps, seeds)
    }

    fn style_transfer(&self, image: &Path, text: &str) -> Result<Picture> {
        style_transfer(self, image, text)
    }
}

impl Evaluated for Loaded {
    fn variant(&self) -> String {
        match (self.cfg.cls, self.cfg.int) {
            (false, false) => "gan",
            (true, false) => "gan-cls",
            (false, true) => "gan-int",
            (true, true) => "gan-int-cls",
        }
        .to_string()
    }

    /// Each item's first caption at each seed (noise from the seed), seed-major.
    fn draw_items(
        &self,
        ds: &Dataset,
        items: &[&StoryRecord],
        seeds: usize,
        batch: usize,
        sink: &mut dyn FnMut(Tensor) -> Result<()>,
    ) -> Result<()> {
        let captions = first_captions(&self.checkpoint, ds, items)?;
        let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
        let t = self.texts(&refs)?;
        let draw = |start: usize, n: usize| {
            let z = Tensor::randn([n as i64, self.cfg.noise_dim], (Kind::Float, self.device));
            Ok(self.draw(&z, &t.narrow(0, start as i64, n as i64)))
        };
        storyvis_core::evaluation::by_seed(items.len(), seeds, batch, &draw, sink)
    }

    fn r_precision(&self, drawn: &Tensor, captions: &[&str]) -> Result<Option<f64>> {
        crate::encoder_training::r_precision(&self.joint, drawn, captions, 0).map(Some)
    }
}

storyvis_core::registry_loaders!(load_with);

/// `interpolate`: per seed, a row from `from` to `to` in `steps` steps of the text embedding
/// with the noise fixed (`interpolate-seedNNNN.png`).
pub fn interpolate(
    model: &Loaded,
    from: &str,
    to: &str,
    steps: usize,
    seeds: &[u64],
) -> Result<Vec<Picture>> {
    ensure!((2..=64).contains(&steps), "--steps must be 2..64, got {steps}");
    let (a, b) = (model.embed(from)?, model.embed(to)?);
    seeds
        .iter()
        .map(|&seed| {
            let z = model.noise(seed);
            let row: Vec<(Tensor, String)> = (0..steps)
                .map(|k| {
                    let w = k as f64 / (steps - 1) as f64;
                    (model.draw(&z, &super::interpolate(&b, &a, w)).get(0), format!("{w:.2}"))
                })
                .collect();
            let sheet = model.row(&format!("\"{from}\" to \"{to}\" (seed {seed})"), &row);
            Picture::png(format!("interpolate-seed{seed:04}.png"), Some(seed), &sheet)
        })
        .collect()
}

/// `style-transfer`: the query image, then the caption drawn in its style
/// (`style-transfer.png`).
pub fn style_transfer(model: &Loaded, image: &Path, caption: &str) -> Result<Picture> {
    ensure!(model.cfg.style, "{} was trained without its style encoder (style = false): it cannot infer an image's style", model.checkpoint.display());
    let t = model.embed(caption)?;
    let (z, query) = model.style_of(image)?;
    let query = query.get(0);
    let drawn = model.draw(&z, &t).get(0);
    Picture::png(
        "style-transfer.png".into(),
        None,
        &model.row(caption, &[(query, "query".into()), (drawn, "its style".into())]),
    )
}
