//! GAN-INT-CLS on the training loop (Reed et al. 2016, Algorithm 1): per iteration a batch of
//! training images with one random caption each; the discriminator's phase, the generator's,
//! and (with `style`) the style encoder's.

use super::{interpolate, style_loss, Config, Discriminator, Generator, Judge, StyleEncoder};
use anyhow::{ensure, Context, Result};
use std::path::Path;
use storyvis_core::captioned::{CaptionData, EmbeddedCaptions};
use storyvis_core::data::to_image;
use storyvis_core::family::{Draw, Family, FamilyEntry, OptimizerSpec, Phase, Report, Reported};
use storyvis_core::joint::{self, Joint};
use storyvis_core::loss;
use storyvis_core::recipe::projected::{Backbone, Projected};
use storyvis_core::recipe::TextNorm;
use storyvis_core::train::mix;
use storyvis_data::dataset::{Dataset, Split};
use storyvis_data::sheet::{paper, StripLayout};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

pub const FAMILY: FamilyEntry = FamilyEntry {
    name: "gan-int-cls",
    about: "text to image: GAN-INT-CLS (Reed et al., ICML 2016)",
    presets: &[
        ("gan-int-cls-clevr", include_str!("../../../../presets/gan-int-cls-clevr.toml")),
        ("gan-int-cls-small", include_str!("../../../../presets/gan-int-cls-small.toml")),
        ("gan-int-cls-fast", include_str!("../../../../presets/gan-int-cls-fast.toml")),
        ("gan-int-cls-twemoji", include_str!("../../../../presets/gan-int-cls-twemoji.toml")),
        ("gan-int-cls-tiny", include_str!("../../../../presets/gan-int-cls-tiny.toml")),
    ],
    check: |cfg| Config::of(cfg).map(drop),
    build,
    training_only: |c| match Config::of(c) {
        // The style encoder trains only with `style` (§4.4); drawing reads it only then.
        Ok(m) if !m.style => vec!["discriminator", "style"],
        _ => vec!["discriminator"],
    },
    drawer: Some(super::draw::load_drawer),
    recipe: &storyvis_core::recipe::KEYS,
    evaluated: Some(super::draw::load_evaluated),
    synthetic: None,
};

/// Held-out captions drawn in the sample sheets, and seeds per caption.
const SHEET_CAPTIONS: usize = 6;
const SHEET_SEEDS: usize = 4;

fn build(
    cfg: &storyvis_core::config::Config,
    ds: &Dataset,
    from: Option<&Path>,
    device: Device,
) -> Result<Box<dyn Family>> {
    let c = Config::of(cfg)?;
    ensure!(
        ds.header.image_size as i64 == c.image_size,
        "the dataset's images are {0}×{0}; the model draws {1}×{1} (prepare with --size {1}, or --set image_size={0})",
        ds.header.image_size,
        c.image_size
    );
    // A resumed run reads the encoder its checkpoint carries; a fresh one the configured one.
    // A relative path that does not exist from here is looked up as the shipped models are
    // (`STORYVIS_HOME`, the checkout, beside the binary), so the presets' default
    // `models/text-encoder-clevr` works from any directory.
    let dir = match from {
        Some(d) => d.to_path_buf(),
        None => storyvis_core::shipped::locate(&c.text_encoder),
    };
    let enc = Joint::load(&dir, device)
        .with_context(|| format!("loading the text encoder {}", dir.display()))?;
    ensure!(
        enc.manifest.config.image_size == c.image_size,
        "the text encoder {} was trained on {1}×{1} images, the model draws {2}×{2}",
        dir.display(),
        enc.manifest.config.image_size,
        c.image_size
    );
    let files = joint::encoder_files(&dir)?;
    let train = CaptionData::load(ds, Split::Train, false)?;
    ensure!(
        train.len() as i64 >= c.batch,
        "{} has {} training images; batch {} needs at least as many",
        ds.dir.display(),
        train.len(),
        c.batch
    );
    let samples = CaptionData::load(ds, Split::Test, true)?;
    let mut captions = EmbeddedCaptions::new(&train, &enc, ds)?;
    let sheet_captions: Vec<String> =
        samples.captions.iter().take(SHEET_CAPTIONS).map(|c| c[0].clone()).collect();
    let mut sheet_text =
        enc.text.embed(&sheet_captions.iter().map(String::as_str).collect::<Vec<_>>())?;
    // text_norm: fitted to the distinct training captions (a resumed run reads its own).
    let text_norm = if c.text_norm {
        let norm = TextNorm::resumed_or_fit(from, || captions.distinct_embeddings())?;
        captions.embeddings = norm.apply(&captions.embeddings);
        sheet_text = norm.apply(&sheet_text);
        Some(norm)
    } else {
        None
    };
    let sheet_real =
        samples.images_at(&(0..sheet_captions.len() as i64).collect::<Vec<_>>(), device);
    let embed_dim = enc.manifest.config.dim;
    let recipe = cfg.recipe.clone();
    let heads = recipe.attribute_labels(&ds.header.label_names, &train.labels, &ds.dir)?;
    let backbone = recipe.projected(cfg.run.seed)?;
    let nets = Nets::new(&c, embed_dim, heads, backbone, device)?;
    let images = train.images.to_device(device);
    let labels = train.labels.to_device(device);
    let augment = recipe.augment();
    Ok(Box::new(GanIntCls {
        cfg: c,
        recipe,
        augment,
        nets,
        images,
        labels,
        n: train.len(),
        captions,
        files,
        text_norm,
        sheet: (sheet_captions, sheet_text, sheet_real),
        device,
        now: None,
    }))
}

/// The networks, each in its own store.
pub struct Nets {
    pub g_vs: VarStore,
    pub g: Generator,
    pub d_vs: VarStore,
    pub d: Judge,
    pub s_vs: VarStore,
    pub s: StyleEncoder,
}

impl Nets {
    /// `labels`: what the discriminator's attribute head predicts, if it has one; `backbone`:
    /// the projected discriminator's frozen network and the seed of its random projections
    /// (none: the paper's discriminator).
    pub fn new(
        c: &Config,
        embed_dim: i64,
        labels: Option<storyvis_core::recipe::Labels>,
        backbone: Option<Backbone>,
        device: Device,
    ) -> Result<Nets> {
        let (g_vs, d_vs, s_vs) =
            (VarStore::new(device), VarStore::new(device), VarStore::new(device));
        let g = Generator::new(g_vs.root(), c, embed_dim);
        let d = match backbone {
            None => Judge::Own(Box::new(Discriminator::new(d_vs.root(), c, embed_dim, labels))),
            Some(b) => Judge::Projected(Box::new(Projected::new(
                d_vs.root(),
                b,
                c.image_size,
                c.ndf,
                embed_dim,
                labels,
            )?)),
        };
        let s = StyleEncoder::new(s_vs.root(), c);
        Ok(Nets { g_vs, g, d_vs, d, s_vs, s })
    }
}

struct Iteration {
    real: Tensor,
    text: Tensor,
    wrong: Tensor,
    /// The images' labels [B, labels] (what the attribute head learns).
    labels: Tensor,
    report: Report,
}

pub struct GanIntCls {
    pub cfg: Config,
    /// The budget-first parts switched on (`[recipe]`), and DiffAugment's transforms.
    recipe: storyvis_core::recipe::Recipe,
    augment: storyvis_core::recipe::Augment,
    pub nets: Nets,
    /// Training images [N, 3, S, S] u8 on the device.
    images: Tensor,
    /// Their labels [N, labels] (0/1).
    labels: Tensor,
    n: usize,
    /// Every training caption's embedding.
    captions: EmbeddedCaptions,
    files: Vec<(&'static str, Vec<u8>)>,
    /// The centring and scale of the text embeddings (`text_norm`), saved with the run.
    text_norm: Option<TextNorm>,
    /// Sample sheet: held-out captions, their embeddings, their real images.
    sheet: (Vec<String>, Tensor, Tensor),
    device: Device,
    now: Option<Iteration>,
}

/// Reported values.
/// The phases of an iteration.
const DISCRIMINATOR: &str = "discriminator";
const GENERATOR: &str = "generator";
const STYLE: &str = "style encoder";

const REPORTED: [(&str, &str, bool); 11] = [
    ("loss_d", "discriminator", true),
    ("loss_g", "generator", true),
    ("loss_g_int", "generator (interpolated text)", true),
    ("loss_style", "style encoder", true),
    ("d_real", "D(real, right text)", false),
    ("d_wrong", "D(real, wrong text)", false),
    ("d_fake", "D(fake, right text)", false),
    ("loss_d_attributes", "discriminator's attribute head", true),
    ("loss_g_attributes", "generator's attribute loss", true),
    ("loss_g_mode_seeking", "mode-seeking term", true),
    ("loss_d_ma_gp", "matching-aware gradient penalty", true),
];

impl GanIntCls {
    fn noise(&self, b: i64) -> Tensor {
        Tensor::randn([b, self.cfg.noise_dim], (Kind::Float, self.device))
    }
}

impl Family for GanIntCls {
    storyvis_core::networks!(self;
        "generator" => nets.g_vs,
        "discriminator" => nets.d_vs,
        "style" => nets.s_vs,
    );

    fn optimizers(&self) -> Vec<OptimizerSpec> {
        let c = &self.cfg;
        [("generator", c.lr_g), ("discriminator", c.lr_d), ("style", c.lr_style)]
            .into_iter()
            .map(|(n, lr)| OptimizerSpec::whole(n, lr, c.beta1, c.beta2))
            .collect()
    }

    fn lr_scale(&self, epoch: usize) -> f64 {
        storyvis_core::family::halving(epoch, self.cfg.lr_halve_epochs)
    }

    fn iters_per_epoch(&self) -> usize {
        (self.n / self.cfg.batch as usize).max(1)
    }

    fn batches(&self) -> Vec<(&'static str, usize)> {
        vec![("batch", self.cfg.batch as usize)]
    }

    fn phases(&self) -> Vec<Phase> {
        // The discriminator, `g_steps` generator updates, the style encoder.
        let mut v = vec![Phase::new(DISCRIMINATOR, &["discriminator"])];
        v.extend(Phase::repeated(GENERATOR, &["generator"], self.recipe.g_steps as usize));
        if self.cfg.style {
            v.push(Phase::new(STYLE, &["style"]));
        }
        v
    }

    fn reported(&self) -> Vec<Reported> {
        REPORTED.iter().map(|&(key, label, checked)| Reported { key, label, checked }).collect()
    }

    fn begin(&mut self, at: Draw) -> Result<()> {
        let batch = self.captions.batch(at, self.cfg.batch as usize, self.iters_per_epoch());
        // The whole batch is drawn, then this rank's part taken (`Shard`).
        let (idx, right, wrong) = (
            at.shard.take(&batch.images),
            at.shard.take(&batch.right),
            at.shard.take(&batch.wrong),
        );
        let pick = |rows: &[i64]| self.captions.rows(rows, self.device);
        let rows = Tensor::from_slice(&idx).to_device(self.device);
        let real = storyvis_core::data::to_unit(&self.images.index_select(0, &rows));
        let labels = self.labels.index_select(0, &rows);
        let report = Report::new(&self.reported(), self.device);
        self.now =
            Some(Iteration { real, text: pick(&right), wrong: pick(&wrong), labels, report });
        Ok(())
    }

    fn loss(&mut self, phase: &str) -> Result<Tensor> {
        let it = self.now.as_mut().context("a phase outside an iteration")?;
        let (c, nets, recipe) = (&self.cfg, &self.nets, &self.recipe);
        // This rank's part of the batch (all of it in a one-process run).
        let b = it.real.size()[0];
        let device = self.device;
        let noise = || Tensor::randn([b, c.noise_dim], (Kind::Float, device));
        let z = noise();
        let l = match phase {
            DISCRIMINATOR => {
                let fake = tch::no_grad(|| nets.g.forward_t(&z, &it.text, true));
                // DiffAugment: one draw for the real images and the fakes.
                let seen = self.augment.same_draw(&[&it.real, &fake]);
                let feat = nets.d.features(&seen[0], true);
                let real = nets.d.judge(&feat, &it.text, true);
                let fake = nets.d.forward_t(&seen[1], &it.text, true);
                let mut l = if c.cls {
                    // GAN-CLS: real + ½ (wrong + fake).
                    let wrong = nets.d.judge(&feat, &it.wrong, true);
                    it.report.set("d_wrong", &wrong.sigmoid().mean(Kind::Float));
                    loss::discriminator(&real, &fake, &wrong)
                } else {
                    loss::real_fake(&real, &fake)
                };
                it.report.set("d_real", &real.sigmoid().mean(Kind::Float));
                it.report.set("d_fake", &fake.sigmoid().mean(Kind::Float));
                if let Some(a) = nets.d.attribute_loss(&feat, &it.labels) {
                    it.report.set("loss_d_attributes", &a);
                    l += a * recipe.aux_attributes;
                }
                if recipe.ma_gp > 0.0 {
                    // DF-GAN's matching-aware gradient penalty on the real images as the
                    // discriminator saw them, with their own captions.
                    let gp = storyvis_core::recipe::matching_aware_penalty(
                        &seen[0],
                        &it.text,
                        |x, e| nets.d.forward_t(x, e, true),
                    );
                    it.report.set("loss_d_ma_gp", &gp);
                    l += gp * recipe.ma_gp;
                }
                l
            }
            GENERATOR => {
                // With mode seeking the batch's first half of captions is drawn twice, each
                // with its own noise (MSGAN's pairs).
                let [text, labels, wrong] = <[Tensor; 3]>::try_from(
                    recipe.generator_batch(&[&it.text, &it.labels, &it.wrong]),
                )
                .expect("three");
                let fake = nets.g.forward_t(&z, &text, true);
                let seen = self.augment.same_draw(&[&fake]);
                let feat = nets.d.features(&seen[0], true);
                let mut l = loss::generator(&nets.d.judge(&feat, &text, true));
                it.report.set("loss_g", &l);
                let attributes = nets.d.attribute_loss(&feat, &labels);
                recipe.add_generator_terms(
                    &mut l,
                    attributes.as_ref(),
                    &fake,
                    &z,
                    &mut it.report,
                    ("loss_g_attributes", "loss_g_mode_seeking"),
                );
                if c.int {
                    // GAN-INT: captions interpolated with another image's, which no real image
                    // matches: only the generator's objective sees them.
                    let t = interpolate(&text, &wrong, c.int_beta);
                    let seen = self.augment.same_draw(&[&nets.g.forward_t(&noise(), &t, true)]);
                    let li = loss::generator(&nets.d.forward_t(&seen[0], &t, true));
                    it.report.set("loss_g_int", &li);
                    l += li;
                }
                l
            }
            STYLE => {
                // G as it draws (eval mode: its batch-norm running statistics, which this
                // pass must not update), so that S inverts what `draw` and `style-transfer` see.
                let x = tch::no_grad(|| nets.g.forward_t(&z, &it.text, false));
                let l = style_loss(&z, &nets.s.forward_t(&x, true));
                it.report.set("loss_style", &l);
                l
            }
            other => anyhow::bail!("gan-int-cls has no phase {other:?}"),
        };
        if phase == DISCRIMINATOR {
            it.report.set("loss_d", &l);
        }
        Ok(l)
    }

    fn finish(&mut self) -> Result<Report> {
        Ok(self.now.take().context("an iteration's end without its start")?.report)
    }

    fn set_channels_last(&mut self, on: bool) {
        self.nets.d.set_channels_last(on);
    }

    /// Per held-out caption: its real image, then the model's drawings at fixed noise.
    fn sample_sheet(&self, step: usize, seed: u64) -> Result<image::RgbImage> {
        let (captions, text, real) = &self.sheet;
        let n = captions.len();
        tch::manual_seed(mix(seed, 0x5A) as i64);
        let z = self.noise(SHEET_SEEDS as i64);
        let size = self.cfg.image_size as u32;
        let layout = StripLayout::for_frame_size(size);
        let mut sheet = paper(
            layout.width(1 + SHEET_SEEDS as u32),
            n as u32 * layout.row_height() + layout.gap,
        );
        for (i, caption) in captions.iter().enumerate() {
            let t = text.get(i as i64).unsqueeze(0).expand([SHEET_SEEDS as i64, -1], false);
            let fake = tch::no_grad(|| self.nets.g.forward_t(&z, &t, false));
            let mut strip = vec![(to_image(&real.get(i as i64)), "real".to_string())];
            strip.extend(
                (0..SHEET_SEEDS as i64).map(|s| (to_image(&fake.get(s)), format!("seed {s}"))),
            );
            layout.draw_row(
                &mut sheet,
                layout.gap + i as u32 * layout.row_height(),
                &format!("{caption} (step {step})"),
                &strip,
            );
        }
        Ok(sheet)
    }

    fn files(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut files = self.files.clone();
        files.extend(self.text_norm.iter().map(|n| (TextNorm::FILE, n.to_json())));
        files
    }

    fn shape(&self) -> serde_json::Value {
        let mut s = self.captions.shape();
        s["labels"] = serde_json::json!(self.labels.size()[1]);
        s
    }

    fn data_summary(&self) -> serde_json::Value {
        self.captions.data_summary(self.n)
    }

    fn averaged(&self) -> Vec<&'static str> {
        vec!["generator"]
    }

    /// Images drawn from batches of training captions (a seeded permutation) and fresh noise.
    fn standing_passes(&self, batches: usize, seed: u64) -> Result<()> {
        let rows = self.captions.embeddings.size()[0] as usize;
        for idx in
            storyvis_core::family::standing_batches(rows, self.cfg.batch as usize, batches, seed)
        {
            let text = self.captions.rows(&idx, self.device);
            let _ = self.nets.g.forward_t(&self.noise(idx.len() as i64), &text, true);
        }
        Ok(())
    }
}
