//! TGANs-C on the training loop: per iteration a batch of training clips with their captions
//! and, for the matching-aware terms, a mismatched caption for each (another clip's of the
//! batch, with other words); the discriminators' phase (D0, D1, and D2 with the adversarial
//! temporal loss; the caption encoder learns here), then the generator's (§3.4, eqs. 1–6).

use super::{
    coherence_constraint, CaptionEncoder, CaptionText, Config, Discriminator, Generator, Mismatch,
    Temporal, TextNet,
};
use anyhow::{ensure, Context, Result};
use std::path::Path;
use storyvis_core::data::{load_clips, to_image, to_network, to_unit};
use storyvis_core::family::{Draw, Family, FamilyEntry, OptimizerSpec, Phase, Report, Reported};
use storyvis_core::loss;
use storyvis_core::recipe::TextNorm;
use storyvis_core::text::Vocab;
use storyvis_core::text::{load_vocab, VOCAB};
use storyvis_core::train::mix;
use storyvis_data::dataset::{Dataset, Split, StoryRecord};
use storyvis_data::rng::Rng;
use storyvis_data::sheet::{paper, StripLayout};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

pub const FAMILY_NAME: &str = "tganc";

pub const FAMILY: FamilyEntry = FamilyEntry {
    name: FAMILY_NAME,
    about: "text to video: TGANs-C (Pan et al., ACM Multimedia 2017)",
    presets: &[
        ("tganc-mnist1", include_str!("../../../../presets/tganc-mnist1.toml")),
        ("tganc-mnist2", include_str!("../../../../presets/tganc-mnist2.toml")),
        ("tganc-fast", include_str!("../../../../presets/tganc-fast.toml")),
        ("tganc-tiny", include_str!("../../../../presets/tganc-tiny.toml")),
    ],
    check: |cfg| Config::of(cfg).map(drop),
    build,
    training_only: |_| vec!["discriminator"],
    drawer: Some(super::draw::load_drawer),
    // Every part but the matching-aware gradient penalty (not built for its three judges yet).
    recipe: &[
        "diffaugment",
        "aux_attributes",
        "mode_seeking",
        "mode_seeking_cap",
        "d_backbone",
        "d_backbone_size",
        "g_steps",
    ],
    evaluated: Some(super::draw::load_evaluated),
    synthetic: None,
};

/// Held-out clips drawn in the sample sheets, and seeds per clip.
const SHEET_CLIPS: usize = 4;
const SHEET_SEEDS: usize = 2;

/// A video dataset's clips: every frame of a clip carries the clip's caption.
pub fn check_video(ds: &Dataset) -> Result<()> {
    let story =
        ds.stories.iter().find(|s| s.frames.iter().any(|f| f.sentence != s.frames[0].sentence));
    ensure!(
        story.is_none(),
        "{} is a story dataset (story {} has a different sentence per frame); TGANs-C trains on video datasets (storyvis prepare bouncing-mnist)",
        ds.dir.display(),
        story.map(|s| s.id.as_str()).unwrap_or("")
    );
    Ok(())
}

fn build(
    cfg: &storyvis_core::config::Config,
    ds: &Dataset,
    from: Option<&Path>,
    device: Device,
) -> Result<Box<dyn Family>> {
    let c = Config::of(cfg)?;
    check_video(ds)?;
    ensure!(
        ds.header.frames_per_story as i64 == c.frames,
        "the dataset's clips have {} frames, the model draws {} (prepare with --frames {}, or --set frames={})",
        ds.header.frames_per_story,
        c.frames,
        c.frames,
        ds.header.frames_per_story
    );
    ensure!(
        ds.header.image_size as i64 == c.image_size,
        "the dataset's frames are {0}×{0}; the model draws {1}×{1} (prepare with --size {1}, or --set image_size={0})",
        ds.header.image_size,
        c.image_size
    );
    let train: Vec<&StoryRecord> = ds.split(Split::Train).collect();
    ensure!(
        train.len() as i64 >= c.batch,
        "{} has {} training clips; batch {} needs at least as many",
        ds.dir.display(),
        train.len(),
        c.batch
    );
    let captions: Vec<&str> = train.iter().map(|s| s.frames[0].sentence.as_str()).collect();
    let vocab = match from {
        Some(dir) => load_vocab(dir)?,
        None => Vocab::build(captions.iter().copied()),
    };
    ensure!(!vocab.is_empty(), "the training captions contain no words");
    let recipe = cfg.recipe.clone();
    // A clip's label is its first frame's (every frame carries the clip's).
    let labels: Vec<f32> =
        train.iter().flat_map(|s| s.frames[0].label.iter().map(|&x| x as f32)).collect();
    let labels = Tensor::from_slice(&labels).view([train.len() as i64, -1]);
    let heads = recipe.attribute_labels(&ds.header.label_names, &labels, &ds.dir)?;
    let labels = labels.to_device(device);
    let backbone = recipe.projected(cfg.run.seed)?;
    let mut nets = Nets::new(&c, vocab.len(), heads, backbone, device)?;
    let ids = if c.trains_text() {
        nets.text.ids(&vocab, &captions)?
    } else {
        // The frozen MiniLM: every training caption embedded once (cached beside the data).
        let corpus = ds.stories.iter().map(|s| s.frames[0].sentence.as_str());
        storyvis_core::minilm::dataset_embeddings(&ds.dir, corpus, &captions)?
    }
    .to_device(device);
    let text_ids = storyvis_core::family::text_ids(captions.iter().copied());
    // text_norm: fitted to the distinct training captions (a resumed run reads its own).
    if c.text_norm {
        let distinct = || {
            ids.index_select(
                0,
                &Tensor::from_slice(&storyvis_core::family::first_of_each(&text_ids))
                    .to_device(device),
            )
        };
        nets.text.set_norm(TextNorm::resumed_or_fit(from, distinct)?);
    }
    let mut words = vec![Vec::new(); text_ids.iter().max().map_or(0, |m| m + 1)];
    for (caption, &t) in captions.iter().zip(&text_ids) {
        if words[t].is_empty() {
            words[t] = vocab.encode(caption).ids;
        }
    }
    let clips = load_clips(ds, &train, c.channels)?.to_device(device);
    let test: Vec<&StoryRecord> = ds.split(Split::Test).take(SHEET_CLIPS).collect();
    let sheet_clips =
        if test.is_empty() { train[..SHEET_CLIPS.min(train.len())].to_vec() } else { test };
    let sheet_captions: Vec<String> =
        sheet_clips.iter().map(|s| s.frames[0].sentence.clone()).collect();
    // Titles say whether the training split showed the clip's combination.
    let held = storyvis_data::bouncing::held_out_of(&ds.header).ok();
    let sheet_titles: Vec<String> = sheet_clips
        .iter()
        .map(|s| match &held {
            Some(h) if h.holds(&storyvis_data::bouncing::combination_of(&s.frames[0].label)) => {
                format!("{} (held-out combination)", s.frames[0].sentence)
            }
            Some(_) => format!("{} (seen combination)", s.frames[0].sentence),
            None => s.frames[0].sentence.clone(),
        })
        .collect();
    let sheet_ids = nets
        .text
        .ids(&vocab, &sheet_captions.iter().map(String::as_str).collect::<Vec<_>>())?
        .to_device(device);
    let sheet_real = load_clips(ds, &sheet_clips, c.channels)?;
    let augment = recipe.augment();
    Ok(Box::new(Tganc {
        cfg: c,
        recipe,
        augment,
        nets,
        clips,
        labels,
        ids,
        text_ids,
        words,
        vocab,
        held_out: held,
        sheet: (sheet_titles, sheet_ids, sheet_real),
        device,
        now: None,
    }))
}

/// The networks, each in its own store.
pub struct Nets {
    pub g_vs: VarStore,
    pub g: Generator,
    /// The caption encoder's weights (none with MiniLM).
    pub t_vs: VarStore,
    pub text: TextNet,
    pub d_vs: VarStore,
    pub d: Discriminator,
}

impl Nets {
    /// `labels`: what the discriminators' attribute head predicts, if they have one.
    /// `backbone`: the projected frame discriminator's network and projection seed, if any.
    pub fn new(
        c: &Config,
        vocab: i64,
        labels: Option<storyvis_core::recipe::Labels>,
        backbone: Option<storyvis_core::recipe::projected::Backbone>,
        device: Device,
    ) -> Result<Nets> {
        let (g_vs, mut t_vs, d_vs) =
            (VarStore::new(device), VarStore::new(device), VarStore::new(device));
        let g = Generator::new(g_vs.root(), c);
        let text = match c.text {
            CaptionText::Lstm => {
                TextNet::Lstm(Box::new(CaptionEncoder::new(t_vs.root(), vocab, c)))
            }
            CaptionText::Minilm if c.text_finetune => {
                let bert = Box::new(storyvis_core::minilm::Bert::new(
                    t_vs.root() / "minilm",
                    &storyvis_core::minilm::BertConfig::all_minilm_l6_v2(),
                ));
                // A resumed run or a drawn checkpoint then loads its own weights over these.
                storyvis_core::minilm::load_pretrained(&mut t_vs, "minilm")?;
                TextNet::Tuned {
                    pieces: Box::new(storyvis_core::minilm::WordPieces::load_default()?),
                    bert,
                }
            }
            CaptionText::Minilm => TextNet::Minilm(
                Box::new(storyvis_core::minilm::MiniLm::load_default(device)?),
                None,
            ),
        };
        let d = Discriminator::new(d_vs.root(), c, labels, backbone)?;
        Ok(Nets { g_vs, g, t_vs, text, d_vs, d })
    }

    /// Clips [B, C, T, S, S] for noise z and captions' word ids [B, L] (the generator in
    /// `train` mode or not).
    pub fn draw(&self, z: &Tensor, ids: &Tensor, train: bool) -> Tensor {
        self.g.forward_t(z, &self.text.forward(ids), train)
    }
}

struct Iteration {
    real: Tensor,
    ids: Tensor,
    wrong: Tensor,
    /// The clips' labels [B, labels] (what the attribute head learns).
    labels: Tensor,
    report: Report,
}

pub struct Tganc {
    pub cfg: Config,
    /// The budget-first parts switched on (`[recipe]`), and DiffAugment's transforms.
    recipe: storyvis_core::recipe::Recipe,
    augment: storyvis_core::recipe::Augment,
    pub nets: Nets,
    /// Training clips [N, T, C, S, S] u8 on the device.
    clips: Tensor,
    /// Their labels [N, labels] (0/1).
    labels: Tensor,
    /// Their captions' word ids [N, L].
    ids: Tensor,
    /// Per clip, an id shared by identical captions.
    text_ids: Vec<usize>,
    /// Per caption id, its word ids.
    words: Vec<Vec<i64>>,
    vocab: Vocab,
    /// The (digit, motion) combinations the training data holds out, if it records them.
    held_out: Option<storyvis_data::bouncing::HeldOut>,
    /// Sample sheet: held-out clips' titles (caption, seen or held-out combination), their
    /// captions' word ids, their real clips.
    sheet: (Vec<String>, Tensor, Tensor),
    device: Device,
    now: Option<Iteration>,
}

/// The phases of an iteration.
const DISCRIMINATOR: &str = "discriminator";
const GENERATOR: &str = "generator";

/// Reported values.
const REPORTED: [(&str, &str, bool); 13] = [
    ("loss_d", "discriminator", true),
    ("loss_g", "generator", true),
    ("loss_d_video", "video discriminator", true),
    ("loss_d_frame", "frame discriminator", true),
    ("loss_d_motion", "motion discriminator", true),
    ("loss_g_coherence", "temporal coherence constraint", true),
    ("d_real", "D0(real, right caption)", false),
    ("d_wrong", "D0(real, wrong caption)", false),
    ("d_fake", "D0(fake, right caption)", false),
    ("motion_real", "D2(real, right caption)", false),
    ("loss_d_attributes", "discriminators' attribute head", true),
    ("loss_g_attributes", "generator's attribute loss", true),
    ("loss_g_mode_seeking", "mode-seeking term", true),
];

/// The matching-aware losses of one batch against its discriminators: the discriminators'
/// (real + ½ (fake + wrong), per discriminator, eqs. 1, 2 and 4) and the generator's; and,
/// with an attribute head and labels, its loss (unweighted, not in `total`).
pub struct Losses {
    pub video: Tensor,
    pub frame: Tensor,
    pub motion: Option<Tensor>,
    pub attributes: Option<Tensor>,
}

impl Losses {
    pub fn total(&self) -> Tensor {
        match &self.motion {
            Some(m) => &self.video + &self.frame + m,
            None => &self.video + &self.frame,
        }
    }
}

impl Tganc {
    /// Whether the captions are read by the frozen MiniLM (no caption encoder trains).
    fn frozen_text(&self) -> bool {
        !self.cfg.trains_text()
    }

    fn noise(&self, b: i64) -> Tensor {
        Tensor::randn([b, self.cfg.noise_dim], (Kind::Float, self.device))
    }
}

/// The discriminators' matching-aware loss (eqs. 1, 2, 4): on real clips with the right
/// sentence `s`, real clips with a wrong sentence `w`, and fake clips with `s`; with `labels`
/// [B, labels] of the real clips, the attribute head's loss on them.
pub fn discriminator_losses(
    d: &Discriminator,
    real: &Tensor,
    fake: &Tensor,
    s: &Tensor,
    w: &Tensor,
    motion: bool,
    labels: Option<&Tensor>,
) -> (Losses, [Tensor; 4]) {
    let fr = d.features(real, true);
    let attributes = labels.and_then(|y| d.attribute_loss(&fr, y));
    let ff = d.features(fake, true);
    let (v_real, v_wrong, v_fake) =
        (d.video(&fr, s, true), d.video(&fr, w, true), d.video(&ff, s, true));
    let video = loss::discriminator(&v_real, &v_fake, &v_wrong);
    let frame =
        loss::discriminator(&d.frame(&fr, s, true), &d.frame(&ff, s, true), &d.frame(&fr, w, true));
    let mean = |t: &Tensor| t.sigmoid().mean(Kind::Float).detach();
    let (motion, m_real) = if motion {
        let m_real = d.motion(&fr, s, true);
        (
            Some(loss::discriminator(&m_real, &d.motion(&ff, s, true), &d.motion(&fr, w, true))),
            mean(&m_real),
        )
    } else {
        (None, Tensor::zeros([], (Kind::Float, real.device())))
    };
    (
        Losses { video, frame, motion, attributes },
        [mean(&v_real), mean(&v_wrong), mean(&v_fake), m_real],
    )
}

/// The generator's adversarial losses (non-saturating: −log D(fake, right sentence) per
/// discriminator) and, for TGANs-C-C, the coherence constraint; with `labels` [B, labels] of
/// the captions drawn, the attribute head's loss on the drawings.
pub fn generator_losses(
    d: &Discriminator,
    fake: &Tensor,
    s: &Tensor,
    temporal: Temporal,
    labels: Option<&Tensor>,
) -> (Losses, Option<Tensor>) {
    let f = d.features(fake, true);
    let attributes = labels.and_then(|y| d.attribute_loss(&f, y));
    let video = loss::generator(&d.video(&f, s, true));
    let frame = loss::generator(&d.frame(&f, s, true));
    let motion =
        (temporal == Temporal::Adversarial).then(|| loss::generator(&d.motion(&f, s, true)));
    let constraint = (temporal == Temporal::Constraint).then(|| coherence_constraint(&f));
    (Losses { video, frame, motion, attributes }, constraint)
}

impl Family for Tganc {
    // With MiniLM there is no caption encoder to train or save: the networks, optimisers and
    // learning rates are the generator's and the discriminators'.
    storyvis_core::networks!(self;
        "generator" => nets.g_vs,
        "text" => nets.t_vs if !self.frozen_text(),
        "discriminator" => nets.d_vs,
    );

    fn optimizers(&self) -> Vec<OptimizerSpec> {
        let c = &self.cfg;
        let lr = |n: &str| match n {
            "generator" => c.lr_g,
            "text" => c.lr_text,
            _ => c.lr_d,
        };
        // (Without the adversarial temporal loss D2's judge gets no gradient and stays as it is.)
        self.networks()
            .into_iter()
            .map(|(n, _)| OptimizerSpec::whole(n, lr(n), c.beta1, c.beta2))
            .collect()
    }

    fn lr_scale(&self, epoch: usize) -> f64 {
        storyvis_core::family::halving(epoch, self.cfg.lr_halve_epochs)
    }

    fn iters_per_epoch(&self) -> usize {
        (self.text_ids.len() / self.cfg.batch as usize).max(1)
    }

    fn batches(&self) -> Vec<(&'static str, usize)> {
        vec![("batch", self.cfg.batch as usize)]
    }

    fn phases(&self) -> Vec<Phase> {
        // The discriminators (and the caption encoder, from their matching-aware terms), then
        // `g_steps` generator updates, each with fresh noise.
        let d: &[&str] =
            if self.frozen_text() { &["discriminator"] } else { &["discriminator", "text"] };
        let mut v = vec![Phase::new(DISCRIMINATOR, d)];
        v.extend(Phase::repeated(GENERATOR, &["generator"], self.recipe.g_steps as usize));
        v
    }

    fn reported(&self) -> Vec<Reported> {
        REPORTED.iter().map(|&(key, label, checked)| Reported { key, label, checked }).collect()
    }

    fn begin(&mut self, at: Draw) -> Result<()> {
        let b = self.cfg.batch as usize;
        let n = self.text_ids.len();
        let ipe = self.iters_per_epoch();
        let (epoch, k) = (at.step / ipe, at.step % ipe);
        let mut perm: Vec<i64> = (0..n as i64).collect();
        Rng::for_item(mix(at.seed, 1), epoch as u64).shuffle(&mut perm);
        let idx: Vec<i64> = (0..b).map(|j| perm[(k * b + j) % n]).collect();
        // A mismatched caption for each clip: another clip's of the batch, redrawn while its
        // words are the same (a clip with the same caption is not a mismatch).
        let mut rng = Rng::for_item(mix(at.seed, 2), at.step as u64);
        let text = |j: usize| self.text_ids[idx[j] as usize];
        let wrong: Vec<i64> = match self.cfg.mismatch {
            Mismatch::Random => storyvis_core::family::mismatched(
                b,
                &mut rng,
                |_, k| idx[k],
                |j, w| self.text_ids[w as usize] == text(j),
            ),
            Mismatch::Closest => {
                let differ = |j: usize, k: usize| {
                    storyvis_core::family::words_differ(&self.words[text(j)], &self.words[text(k)])
                };
                storyvis_core::family::closest_mismatched(b, &mut rng, differ)
                    .into_iter()
                    .map(|k| idx[k])
                    .collect()
            }
        };
        // The whole batch was drawn; this rank keeps its part (`Shard`).
        let (idx, wrong) = (at.shard.take(&idx), at.shard.take(&wrong));
        let rows = |r: &[i64]| Tensor::from_slice(r).to_device(self.device);
        let real = to_network(&self.clips.index_select(0, &rows(&idx)));
        let report = Report::new(&self.reported(), self.device);
        let (ids, wrong, labels) = (
            self.ids.index_select(0, &rows(&idx)),
            self.ids.index_select(0, &rows(&wrong)),
            self.labels.index_select(0, &rows(&idx)),
        );
        self.now = Some(Iteration { real, ids, wrong, labels, report });
        Ok(())
    }

    fn loss(&mut self, phase: &str) -> Result<Tensor> {
        let it = self.now.as_mut().context("a phase outside an iteration")?;
        let (c, nets, recipe) = (&self.cfg, &self.nets, &self.recipe);
        // This rank's part of the batch (all of it in a one-process run).
        let z = Tensor::randn([it.real.size()[0], c.noise_dim], (Kind::Float, self.device));
        let aux = recipe.aux_attributes > 0.0;
        let l = match phase {
            DISCRIMINATOR => {
                // The caption encoder learns from the discriminators' matching-aware terms.
                let s = nets.text.forward(&it.ids);
                let w = nets.text.forward(&it.wrong);
                let fake = tch::no_grad(|| nets.g.forward_t(&z, &s, true));
                // DiffAugment: one draw for the real clips and the fakes.
                let seen = self.augment.same_draw(&[&it.real, &fake]);
                let labels = aux.then_some(&it.labels);
                let (l, means) = discriminator_losses(
                    &nets.d,
                    &seen[0],
                    &seen[1],
                    &s,
                    &w,
                    c.temporal == Temporal::Adversarial,
                    labels,
                );
                it.report.set("loss_d_video", &l.video);
                it.report.set("loss_d_frame", &l.frame);
                if let Some(m) = &l.motion {
                    it.report.set("loss_d_motion", m);
                }
                for (key, m) in
                    ["d_real", "d_wrong", "d_fake", "motion_real"].into_iter().zip(&means)
                {
                    it.report.set(key, m);
                }
                let mut total = l.total();
                if let Some(a) = &l.attributes {
                    it.report.set("loss_d_attributes", a);
                    total += a * recipe.aux_attributes;
                }
                it.report.set("loss_d", &total);
                total
            }
            GENERATOR => {
                // With mode seeking the batch's first half of captions is drawn twice, each
                // with its own noise (MSGAN's pairs).
                let [ids, labels] =
                    <[Tensor; 2]>::try_from(recipe.generator_batch(&[&it.ids, &it.labels]))
                        .expect("two");
                let s = tch::no_grad(|| nets.text.forward(&ids));
                let fake = nets.g.forward_t(&z, &s, true);
                let seen = self.augment.same_draw(&[&fake]);
                let (l, constraint) =
                    generator_losses(&nets.d, &seen[0], &s, c.temporal, aux.then_some(&labels));
                let mut total = l.total();
                if let Some(cc) = constraint {
                    it.report.set("loss_g_coherence", &cc);
                    total += cc * c.constraint_weight;
                }
                recipe.add_generator_terms(
                    &mut total,
                    l.attributes.as_ref(),
                    &fake,
                    &z,
                    &mut it.report,
                    ("loss_g_attributes", "loss_g_mode_seeking"),
                );
                it.report.set("loss_g", &total);
                total
            }
            other => anyhow::bail!("TGANs-C has no phase {other:?}"),
        };
        Ok(l)
    }

    fn finish(&mut self) -> Result<Report> {
        Ok(self.now.take().context("an iteration's end without its start")?.report)
    }

    fn set_channels_last(&mut self, on: bool) {
        self.nets.d.set_channels_last(on);
    }

    /// Per held-out clip: its real frames, then the model's at fixed noise, one strip each.
    fn sample_sheet(&self, step: usize, seed: u64) -> Result<image::RgbImage> {
        let (captions, ids, real) = &self.sheet;
        tch::manual_seed(mix(seed, 0x5A) as i64);
        let z = self.noise(SHEET_SEEDS as i64);
        let rows: Vec<(String, Tensor)> = captions
            .iter()
            .enumerate()
            .flat_map(|(i, caption)| {
                let id = ids.get(i as i64).unsqueeze(0).expand([SHEET_SEEDS as i64, -1], false);
                let fake = tch::no_grad(|| self.nets.draw(&z, &id, false)).transpose(1, 2); // [seeds, T, C, S, S]
                let mut rows =
                    vec![(format!("{caption}: real (step {step})"), to_unit(&real.get(i as i64)))];
                rows.extend((0..SHEET_SEEDS as i64).map(|s| (format!("seed {s}"), fake.get(s))));
                rows
            })
            .collect();
        Ok(strips(&rows, self.cfg.image_size as u32))
    }

    fn files(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut files = vec![(VOCAB, self.vocab.save_json().into_bytes())];
        files.extend(self.nets.text.norm().map(|n| (TextNorm::FILE, n.to_json())));
        files
    }

    /// With the held-out combinations of the training data (`eval` scores "seen" against them).
    fn shape(&self) -> serde_json::Value {
        serde_json::json!({ "vocab": self.vocab.len(), "labels": self.labels.size()[1], "held_out_motion": self.held_out.as_ref().map(|h| &h.motion) })
    }

    fn data_summary(&self) -> serde_json::Value {
        serde_json::json!({ "train_clips": self.text_ids.len() })
    }

    fn averaged(&self) -> Vec<&'static str> {
        vec!["generator"]
    }

    /// Clips drawn from batches of training captions (a seeded permutation) and fresh noise.
    fn standing_passes(&self, batches: usize, seed: u64) -> Result<()> {
        for idx in storyvis_core::family::standing_batches(
            self.text_ids.len(),
            self.cfg.batch as usize,
            batches,
            seed,
        ) {
            let ids = self.ids.index_select(0, &Tensor::from_slice(&idx).to_device(self.device));
            let _ = self.nets.draw(&self.noise(idx.len() as i64), &ids, true);
        }
        Ok(())
    }
}

/// Clips as strips, one a row with its title: frames [T, C, S, S] in [−1, 1] (C 1 or 3).
pub fn strips(rows: &[(String, Tensor)], size: u32) -> image::RgbImage {
    let layout = StripLayout::for_clips(size);
    let frames = rows.first().map(|r| r.1.size()[0] as u32).unwrap_or(1);
    let mut sheet =
        paper(layout.width(frames), rows.len() as u32 * layout.row_height() + layout.gap);
    for (r, (title, clip)) in rows.iter().enumerate() {
        let strip: Vec<(image::RgbImage, String)> =
            (0..clip.size()[0]).map(|t| (to_image(&rgb(&clip.get(t))), String::new())).collect();
        layout.draw_row(&mut sheet, layout.gap + r as u32 * layout.row_height(), title, &strip);
    }
    sheet
}

/// A frame [C, S, S] with 1 or 3 channels as [3, S, S].
pub fn rgb(frame: &Tensor) -> Tensor {
    if frame.size()[0] == 1 {
        frame.expand([3, -1, -1], false)
    } else {
        frame.shallow_clone()
    }
}
