//! Drawing with a trained StackGAN or SDGAN: a caption at several seeds (`generate --text`,
//! the last stage's images, or both stages side by side with `--stages`), and the held-out
//! drawings `eval` scores.

use super::family::{word_features, Generators, Noise, STAGE1_CONFIG};
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
use storyvis_core::recipe::TextNorm;
use storyvis_data::dataset::{Dataset, StoryRecord};
use storyvis_data::sheet::{paper, StripLayout};
use tch::{Device, Tensor};

/// The families this file draws.
pub const FAMILY_NAMES: [&str; 2] = ["stackgan", "sdgan"];

/// A trained StackGAN / SDGAN ready to draw.
pub struct Loaded {
    pub cfg: Config,
    pub family: String,
    pub checkpoint: PathBuf,
    pub step: usize,
    /// Whether the last stage draws with the run's moving average of its generator.
    pub averaged: bool,
    pub gens: Generators,
    pub joint: Joint,
    /// The centring and scale of the encoder's embeddings the run trained with (`text_norm`).
    text_norm: Option<TextNorm>,
    device: Device,
}

/// Loads a run directory or checkpoint of the stackgan or sdgan family.
pub fn load_with(path: &Path, device: Device, weights: checkpoint::Weights) -> Result<Loaded> {
    let checkpoint::Opened { dir, manifest, config: raw, generator, averaged } =
        checkpoint::open_to_draw(path, &FAMILY_NAMES, weights)?;
    let cfg = Config::of(&raw)?;
    let joint = Joint::load(&dir, device)
        .with_context(|| format!("the text encoder in {}", dir.display()))?;
    let stage1 = match cfg.stage {
        1 => None,
        _ => Some(Config::of(&storyvis_core::config::Config::load(&dir.join(STAGE1_CONFIG))?)?),
    };
    let mut gens = Generators::new(
        &cfg,
        stage1,
        joint.manifest.config.dim,
        joint.text.word_feature_dim(),
        device,
    );
    match &mut gens.two {
        None => checkpoint::load_store(&mut gens.one_vs, &generator)?,
        Some((_, vs, _)) => {
            checkpoint::load_store(vs, &generator)?;
            checkpoint::load_store(&mut gens.one_vs, &dir.join("stage1_generator.safetensors"))?;
        }
    }
    let text_norm = if cfg.text_norm { Some(TextNorm::load(&dir)?) } else { None };
    Ok(Loaded {
        text_norm,
        cfg,
        family: raw.family,
        checkpoint: dir,
        step: manifest.step,
        averaged,
        gens,
        joint,
        device,
    })
}

impl Loaded {
    /// Captions' embeddings and (when a stage reads them) word features.
    fn read(&self, captions: &[&str]) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
        let text = self.joint.text.embed(captions)?.to_device(self.device);
        Ok((
            match &self.text_norm {
                Some(norm) => norm.apply(&text),
                None => text,
            },
            word_features(&self.joint, captions, self.gens.reads_words(), self.device)?,
        ))
    }

    /// The noise of `seed` for one drawing.
    fn noise(&self, seed: u64) -> Noise {
        tch::manual_seed(seed as i64);
        self.gens.noise(1, self.device)
    }
}

/// `generate --text`: the caption drawn at each seed, one row (with `stages`, Stage I's image,
/// upsampled, beside Stage II's); also each final image alone.
pub fn generate(
    model: &Loaded,
    caption: &str,
    seeds: &[u64],
    out: &Path,
    stages: bool,
) -> Result<Vec<PathBuf>> {
    storyvis_core::drawer::save_all(&render(model, caption, seeds, stages)?, out)
}

/// [`generate`] in memory: each final image (`seedNNNN.png`), then the row (`row.png`, or
/// `stages.png` with both stages).
pub fn render(model: &Loaded, caption: &str, seeds: &[u64], stages: bool) -> Result<Vec<Picture>> {
    check_caption(caption)?;
    ensure!(
        !stages || model.gens.two.is_some(),
        "--stages shows Stage I beside Stage II; {} is a Stage-I model (stage 1)",
        model.checkpoint.display()
    );
    let (text, words) = model.read(&[caption])?;
    let size = model.cfg.image_size;
    let mut pictures = Vec::new();
    let mut row = Vec::new();
    for &seed in seeds {
        let (one, two) =
            model.gens.draw(&model.noise(seed), &text, words.as_ref().map(|(f, m)| (f, m)));
        let last = two.as_ref().unwrap_or(&one).get(0);
        pictures.push(Picture::png(format!("seed{seed:04}.png"), Some(seed), &to_image(&last))?);
        if stages {
            let up = one.upsample_nearest2d([size, size], None, None).get(0);
            row.push((to_image(&up), format!("Stage I, seed {seed}")));
            row.push((to_image(&last), format!("Stage II, seed {seed}")));
        } else {
            row.push((to_image(&last), format!("seed {seed}")));
        }
    }
    let layout = StripLayout::for_frame_size(size as u32);
    let mut sheet = paper(layout.width(row.len() as u32), layout.row_height() + layout.gap);
    layout.draw_row(&mut sheet, layout.gap, caption, &row);
    pictures.push(Picture::png(
        (if stages { "stages.png" } else { "row.png" }).into(),
        None,
        &sheet,
    )?);
    Ok(pictures)
}

impl Drawer for Loaded {
    fn input(&self) -> Input {
        Input::Caption
    }

    fn about(&self) -> About<'_> {
        About {
            family: &self.family,
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
        render(self, &text.sentences[0], seeds, layout.stages)
    }

    /// Stage II models show Stage I beside them; a Stage-I model says so when asked.
    fn has_stages(&self) -> bool {
        true
    }
}

impl Evaluated for Loaded {
    /// The stage, and SDGAN's switches.
    fn variant(&self) -> String {
        let mut v = format!("{} stage {}", self.family, self.cfg.stage);
        if self.family == "sdgan" {
            v += &format!(
                " (siamese {}, scbn {:?})",
                if self.cfg.siamese { "on" } else { "off" },
                self.cfg.scbn
            )
            .to_lowercase();
        }
        v
    }

    /// Each item's first caption at each seed, seed-major: the last stage's images.
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
        let (text, words) = self.read(&refs)?;
        let draw = |start: usize, n: usize| {
            let (s, n) = (start as i64, n as i64);
            let noise = self.gens.noise(n, self.device);
            let w = words.as_ref().map(|(f, m)| (f.narrow(0, s, n), m.narrow(0, s, n)));
            let (one, two) =
                self.gens.draw(&noise, &text.narrow(0, s, n), w.as_ref().map(|(f, m)| (f, m)));
            Ok(two.unwrap_or(one))
        };
        storyvis_core::evaluation::by_seed(items.len(), seeds, batch, &draw, sink)
    }

    fn r_precision(&self, drawn: &Tensor, captions: &[&str]) -> Result<Option<f64>> {
        crate::encoder_training::r_precision(&self.joint, drawn, captions, 0).map(Some)
    }
}

storyvis_core::registry_loaders!(load_with);
