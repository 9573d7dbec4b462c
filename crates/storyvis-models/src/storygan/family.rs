//! StoryGAN on the training loop (Li et al., CVPR 2019, §3.4 "Objective"): each iteration
//! samples a story batch and an independent image batch, updates the image discriminator, then
//! the story discriminator, then the generator `g_steps` times (yitong91/StoryGAN trainer.py).

use super::config::{Config, GanLoss, TextInput};
use super::data::{check_compatible, Batch, StoryData};
use super::discriminators;
use super::generator::{self, TextBatch};
use super::{DataShape, StoryGan};
use anyhow::{ensure, Context, Result};
use std::path::Path;
use storyvis_core::data::to_image;
use storyvis_core::family::{Draw, Family, FamilyEntry, OptimizerSpec, Phase, Report, Reported};
use storyvis_core::loss;
use storyvis_core::nn::pick_frames;
#[cfg(feature = "testing")]
use storyvis_core::precision::Runtime;
use storyvis_core::text::Vocab;
use storyvis_core::train::mix;
#[cfg(feature = "testing")]
use storyvis_core::train::Engine;
use storyvis_data::dataset::{Dataset, Split};
use storyvis_data::rng::Rng;
use storyvis_data::sheet::{paper, StripLayout};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Stories shown in the sample grids.
const SAMPLE_STORIES: usize = 4;
pub use storyvis_core::text::{load_vocab, VOCAB};

pub const FAMILY: FamilyEntry = FamilyEntry {
    name: "storygan",
    about: "story visualisation: T sentences in, T consistent frames out (Li et al., CVPR 2019)",
    presets: &[
        ("storygan-clevr", include_str!("../../../../presets/storygan-clevr.toml")),
        ("storygan-quality", include_str!("../../../../presets/storygan-quality.toml")),
        ("storygan-fast", include_str!("../../../../presets/storygan-fast.toml")),
        ("storygan-small", include_str!("../../../../presets/storygan-small.toml")),
        ("storygan-tiny", include_str!("../../../../presets/storygan-tiny.toml")),
        ("storygan-pororo", include_str!("../../../../presets/storygan-pororo.toml")),
        ("storygan-pororo-fast", include_str!("../../../../presets/storygan-pororo-fast.toml")),
        ("storygan-pororo-tiny", include_str!("../../../../presets/storygan-pororo-tiny.toml")),
    ],
    check: |cfg| Config::of(cfg).map(drop),
    build,
    training_only: |_| vec!["image_d", "story_d", "object_d"],
    drawer: Some(crate::storygan::sample::load_drawer),
    recipe: &[],
    evaluated: Some(super::sample::load_evaluated),
    synthetic: Some(synthetic),
};

fn build(
    cfg: &storyvis_core::config::Config,
    ds: &Dataset,
    from: Option<&Path>,
    device: Device,
) -> Result<Box<dyn Family>> {
    let m = Config::of(cfg)?;
    check_compatible(ds, &m)?;
    let vocab = match from {
        Some(dir) => load_vocab(dir)?,
        None => Vocab::build(
            ds.split(Split::Train).flat_map(|s| s.frames.iter().map(|f| f.sentence.as_str())),
        ),
    };
    let train_stories: Vec<_> = ds.split(Split::Train).collect();
    ensure!(
        train_stories.len() >= 2,
        "{} has {} training stories; at least 2 are needed",
        ds.dir.display(),
        train_stories.len()
    );
    let mut sample_stories: Vec<_> = ds.split(Split::Test).take(SAMPLE_STORIES).collect();
    if sample_stories.is_empty() {
        sample_stories = train_stories.iter().take(SAMPLE_STORIES).copied().collect();
    }
    if m.text == TextInput::Sentence {
        ensure!(!vocab.is_empty(), "the training sentences contain no words");
    }
    // On a GPU the whole training set lives on the device (10,000 stories at 64×64: 0.5 GB
    // of u8), so drawing a batch is a gather there.
    let train = StoryData::load(ds, &train_stories, &m, &vocab)?
        .with_places(ds, &train_stories, &m)?
        .to_device(device);
    let samples = StoryData::load(ds, &sample_stories, &m, &vocab)?;
    let shape = DataShape {
        vocab: vocab.len(),
        vector_len: ds.header.vector_len as i64,
        labels: ds.header.label_names.len() as i64,
    };
    // The added object's labels come from CLEVR-SV's per-object slots.
    let clevr = storyvis_data::clevr::scene::LABEL_LEN as i64;
    ensure!(
        m.aux_added_weight == 0.0 || shape.labels == clevr,
        "aux_added_weight needs CLEVR-SV's {clevr} object labels per frame; {} has {}",
        ds.dir.display(),
        shape.labels
    );
    let finetune = m.text == TextInput::Minilm && m.text_finetune;
    let mut trainer = StoryGanTrainer::new(m, shape, train, samples, vocab, device)?;
    if finetune {
        // MiniLM starts pretrained (a resumed run then loads its own weights over these).
        storyvis_core::minilm::load_pretrained(&mut trainer.model.g_vs, "minilm")?;
    }
    Ok(Box::new(trainer))
}

/// What the phases of one iteration share.
struct Iteration {
    story: Batch,
    /// The image batch and its frame picks.
    img: Batch,
    frames: Tensor,
    /// The first generator pass (D phases and the first G step use it).
    fwd: Option<Forward>,
    report: Report,
    g_done: usize,
    /// The generator step's optional terms (`loss_recon`, `loss_place`), for the report.
    extra: Vec<(&'static str, Tensor)>,
}

struct Forward {
    s_story: Tensor,
    fake_story: Tensor,
    kl_story: Tensor,
    s_img: Tensor,
    cond_img: Tensor,
    fake_img: Tensor,
    kl_img: Tensor,
    /// The real frames before the image batch's picks (blank before a first frame), when the
    /// generator sees the previous frame.
    prev_img: Option<Tensor>,
    /// `layout_d`: the place marks of the image batch's picks [B, 1, S, S].
    mark_img: Option<Tensor>,
}

/// The frame before each pick: images [B, T, 3, S, S], frames [B] → [B, 3, S, S], blank
/// (zeros) where the pick is a story's first frame.
pub fn previous_frames(images: &Tensor, frames: &Tensor) -> Tensor {
    let before = pick_frames(images, &(frames - 1).clamp_min(0));
    let later = frames.gt(0).to_kind(before.kind()).to_device(before.device()).view([-1, 1, 1, 1]);
    before * later
}

/// What the image discriminator reads: the frames, beside the frames before them when the
/// generator sees those, and the new object's place mark with `layout_d`.
fn pair(x: &Tensor, prev: Option<&Tensor>, mark: Option<&Tensor>) -> Tensor {
    let mut parts = vec![x.shallow_clone()];
    parts.extend(prev.map(Tensor::shallow_clone));
    parts.extend(mark.map(Tensor::shallow_clone));
    Tensor::cat(&parts, 1)
}

/// The image batch's picked frames' new objects: their true places [B, 2] and labels [B, 15]
/// (what the object discriminator judges).
fn new_objects(it: &Iteration) -> (Tensor, Tensor) {
    let places = it.img.places.as_ref().expect("a layout model's places");
    (pick_frames(places, &it.frames), pick_frames(&it.img.added, &it.frames))
}

/// The spread of the mark that weights the L1 term at the new object (`recon_object`), in
/// half widths of the frame: about a large object's radius at 64×64.
const OBJECT_EXTENT: f64 = 0.15;

/// StoryGAN with its training data.
pub struct StoryGanTrainer {
    pub cfg: Config,
    pub model: StoryGan,
    train: StoryData,
    samples: StoryData,
    vocab: Vocab,
    shape: DataShape,
    device: Device,
    /// The story `draw_once` draws (`storyvis bench`), on the device.
    bench_text: Option<TextBatch>,
    /// Batches to use instead of drawing (the parity check).
    #[cfg(feature = "testing")]
    fixed: Option<(Batch, Batch, Tensor)>,
    now: Option<Iteration>,
}

/// The generator's text-encoder variables, and the place head's (trained at `lr_text`: like
/// the label head, a supervised regression that learns too slowly at the GAN's rate).
fn is_text(name: &str) -> bool {
    name.starts_with("sentence.")
        || name.starts_with("placer.")
        || name.starts_with("minilm.")
        || name.starts_with("text_pool.")
        || name.starts_with("text_labels.")
}

/// The phases of an iteration (Li et al. 2019, Algorithm 1: the image discriminator, the
/// story discriminator, then `g_steps` generator updates).
const IMAGE_D: &str = "image discriminator";
const OBJECT_D: &str = "object discriminator";
const STORY_D: &str = "story discriminator";
const GENERATOR: &str = "generator";

impl StoryGanTrainer {
    /// The networks (libtorch's generator seeded by the caller) over `train`; frozen MiniLM
    /// loaded from the cache when the generator attends over its tokens.
    pub fn new(
        cfg: Config,
        shape: DataShape,
        train: StoryData,
        samples: StoryData,
        vocab: Vocab,
        device: Device,
    ) -> Result<StoryGanTrainer> {
        let mut model = StoryGan::new(&cfg, shape, device);
        model.g.attach_minilm()?;
        Ok(StoryGanTrainer {
            cfg,
            model,
            train,
            samples,
            vocab,
            shape,
            device,
            bench_text: None,
            #[cfg(feature = "testing")]
            fixed: None,
            now: None,
        })
    }

    /// A trainer with no vocabulary, for measuring and checking iterations.
    fn headless(
        cfg: Config,
        shape: DataShape,
        train: StoryData,
        device: Device,
    ) -> Result<StoryGanTrainer> {
        let vocab = Vocab::from_words(vec!["<pad>".into(), "<unk>".into()]);
        let samples = StoryData::synthetic(&cfg, shape, 1, 1);
        StoryGanTrainer::new(cfg, shape, train, samples, vocab, device)
    }

    fn has_text_optimizer(&self) -> bool {
        self.cfg.trains_text() || self.cfg.layout
    }

    /// The story indices of iteration `step` (a per-epoch permutation of the training set)
    /// and the image batch's (story, frame) picks.
    fn draw(&self, step: usize, seed: u64) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
        let n = self.train.len();
        let b = self.cfg.story_batch as usize;
        let ipe = self.iters_per_epoch();
        let (epoch, k) = (step / ipe, step % ipe);
        let mut perm: Vec<i64> = (0..n as i64).collect();
        Rng::for_item(mix(seed, 1), epoch as u64).shuffle(&mut perm);
        let stories = (0..b).map(|j| perm[(k * b + j) % n]).collect();
        let mut rng = Rng::for_item(mix(seed, 2), step as u64);
        let bi = self.cfg.image_batch as usize;
        let img_stories = (0..bi).map(|_| rng.below(n) as i64).collect();
        let frames = (0..bi).map(|_| rng.below(self.cfg.frames) as i64).collect();
        (stories, img_stories, frames)
    }

    /// The generator's forward pass on both batches.
    fn generate(&self, story: &Batch, img: &Batch, frames: &Tensor) -> Forward {
        let g = &self.model.g;
        // The encodings G sees pass on only a share of the GAN's gradient to the encoder.
        let k = self.cfg.text_gan_gradient;
        let scaled = |s: &Tensor| s.detach() * (1.0 - k) + s * k;
        let s_story = g.encode_text(&story.text);
        let mut ctx = g.context(&scaled(&s_story), true);
        // With `layout`, frames are drawn at the true places (teacher forcing).
        ctx.places = story.places.as_ref().map(Tensor::shallow_clone);
        let fake_story = g.decode_story(&ctx, true);
        let s_img = g.encode_text(&img.text);
        let mut ctx_img = g.context(&scaled(&s_img), true);
        ctx_img.places = img.places.as_ref().map(Tensor::shallow_clone);
        // Teacher forcing: a single frame is drawn from the real frame before it.
        let prev_img = g.sees_previous().then(|| previous_frames(&img.images, frames));
        let fake_img = g.decode_frames(&ctx_img, frames, prev_img.as_ref(), true);
        let mark_img = match (&img.places, self.cfg.layout_d) {
            (Some(p), true) => Some(generator::place_mark(
                &pick_frames(p, frames),
                self.cfg.image_size,
                g.mark_sigma(),
            )),
            _ => None,
        };
        Forward {
            s_story,
            fake_story,
            kl_story: ctx.kl,
            s_img,
            cond_img: ctx_img.cond,
            fake_img,
            kl_img: ctx_img.kl,
            prev_img,
            mark_img,
        }
    }

    /// The discriminator's adversarial loss over real, fake and mismatched pairs.
    fn d_adversarial(&self, real: &Tensor, fake: &Tensor, wrong: &Tensor) -> Tensor {
        match self.cfg.gan_loss {
            GanLoss::Bce => loss::discriminator(real, fake, wrong),
            GanLoss::Hinge => loss::hinge_discriminator(real, fake, wrong),
        }
    }

    /// The generator's adversarial loss on D's logits for its frames or stories.
    fn g_adversarial(&self, fake: &Tensor) -> Tensor {
        match self.cfg.gan_loss {
            GanLoss::Bce => loss::generator(fake),
            GanLoss::Hinge => loss::hinge_generator(fake),
        }
    }

    /// Image discriminator: real + ½(fake + wrong), wrong = text shifted by one; plus the
    /// auxiliary classifier on real frames (paper §3.3; the reference code's D_I).
    fn image_d_loss(&self, it: &Iteration) -> (Tensor, [Tensor; 3]) {
        let fwd = it.fwd.as_ref().expect("the iteration's forward pass");
        let real_img = pick_frames(&it.img.images, &it.frames);
        let labels_t = pick_frames(&it.img.labels, &it.frames);
        let (s_t, h_t) = (
            pick_frames(&fwd.s_img, &it.frames).detach(),
            pick_frames(&fwd.cond_img, &it.frames).detach(),
        );
        // Real and wrong pairs share the real images' features.
        let di = &self.model.di;
        let (prev, mark) = (fwd.prev_img.as_ref(), fwd.mark_img.as_ref());
        let real_feat = di.features(&pair(&real_img, prev, mark), true);
        let (real, real_cls) = di.judge(&real_feat, &s_t, &h_t, true);
        let (fake, _) = di.forward_t(&pair(&fwd.fake_img.detach(), prev, mark), &s_t, &h_t, true);
        let (wrong, _) = di.judge(&real_feat, &s_t.roll([1], [0]), &h_t.roll([1], [0]), true);
        let mut l = self.cfg.image_weight * self.d_adversarial(&real, &fake, &wrong)
            + self.cfg.aux_real_weight * loss::multi_label(&real_cls, &labels_t);
        if let Some(added) = di.added(&real_feat) {
            l += self.cfg.aux_added_weight
                * loss::multi_label(&added, &pick_frames(&it.img.added, &it.frames));
        }
        let d_real = real.sigmoid().mean(Kind::Float).detach();
        let d_fake = fake.sigmoid().mean(Kind::Float).detach();
        let aux = real_cls
            .gt(0.0)
            .to_kind(Kind::Float)
            .eq_tensor(&labels_t)
            .to_kind(Kind::Float)
            .mean(Kind::Float);
        (l, [d_real, d_fake, aux])
    }

    /// Story discriminator, the same way over whole stories.
    fn story_d_loss(&self, it: &Iteration) -> Tensor {
        let fwd = it.fwd.as_ref().expect("the iteration's forward pass");
        let ds = self.model.ds.as_ref().expect("a story discriminator");
        let s = fwd.s_story.detach();
        let real_feat = ds.features(&it.story.images, true);
        let real = ds.judge(&real_feat, &s);
        let fake = ds.forward_t(&fwd.fake_story.detach(), &s, true);
        let wrong = ds.judge(&real_feat, &s.roll([1], [0]));
        self.cfg.story_weight * self.d_adversarial(&real, &fake, &wrong)
    }

    /// The object discriminator (`object_d_weight`): the window around the new object's true
    /// place in the real and the generated frames of the image batch, judged with the object's
    /// labels; its label head learns on the real windows.
    fn object_d_loss(&self, it: &Iteration) -> Tensor {
        let fwd = it.fwd.as_ref().expect("the iteration's forward pass");
        let od = self.model.od.as_ref().expect("an object discriminator");
        let (places, labels) = new_objects(it);
        let real_img = pick_frames(&it.img.images, &it.frames);
        let (real, real_cls) =
            od.forward(&discriminators::crop(&real_img, &places, od.side), &labels);
        let (fake, _) =
            od.forward(&discriminators::crop(&fwd.fake_img.detach(), &places, od.side), &labels);
        let adversarial = match self.cfg.gan_loss {
            GanLoss::Bce => loss::real_fake(&real, &fake),
            GanLoss::Hinge => loss::hinge_real_fake(&real, &fake),
        };
        (adversarial + loss::multi_label(&real_cls, &labels)) * self.cfg.object_d_weight
    }

    /// One generator step (the first reuses the iteration's forward pass): (loss, KL, text
    /// loss).
    fn generator_loss(&self, it: &mut Iteration) -> (Tensor, Tensor, Tensor) {
        let cfg = &self.cfg;
        let f = match it.fwd.take() {
            Some(f) => f,
            None => self.generate(&it.story, &it.img, &it.frames),
        };
        let labels_t = pick_frames(&it.img.labels, &it.frames);
        let s_t = pick_frames(&f.s_img, &it.frames).detach();
        let h_t = pick_frames(&f.cond_img, &it.frames).detach();
        let di = &self.model.di;
        let feat = di.features(&pair(&f.fake_img, f.prev_img.as_ref(), f.mark_img.as_ref()), true);
        let (fake, fake_cls) = di.judge(&feat, &s_t, &h_t, true);
        let mut l = cfg.image_weight * self.g_adversarial(&fake)
            + cfg.aux_fake_weight * loss::multi_label(&fake_cls, &labels_t);
        if let Some(added) = di.added(&feat) {
            l += cfg.aux_added_weight
                * loss::multi_label(&added, &pick_frames(&it.img.added, &it.frames));
        }
        if let Some(ds) = &self.model.ds {
            l += cfg.story_weight
                * self.g_adversarial(&ds.forward_t(&f.fake_story, &f.s_story.detach(), true));
        }
        let kl = &f.kl_story + &f.kl_img;
        l += cfg.kl_weight * &kl;
        let mut extra = Vec::new();
        if cfg.recon_weight > 0.0 {
            // pix2pix's L1 (Isola et al. 2017, eq. 3) on frames drawn from the real frame
            // before them.
            let real_img = pick_frames(&it.img.images, &it.frames);
            let diff = (&f.fake_img - real_img).abs();
            let r = match (&it.img.places, cfg.recon_object) {
                (Some(p), w) if w > 0.0 => {
                    // Each pixel weighted 1 + w · m, m a mark of the new object's extent at its
                    // place: the object's pixels, few against the floor's, count as much as
                    // the rest of the frame does.
                    let m = generator::place_mark(
                        &pick_frames(p, &it.frames),
                        cfg.image_size,
                        OBJECT_EXTENT,
                    );
                    let weight = m * w + 1.0;
                    (diff * &weight).mean(Kind::Float) / weight.mean(Kind::Float)
                }
                _ => diff.mean(Kind::Float),
            };
            l += cfg.recon_weight * &r;
            extra.push(("loss_recon", r.detach()));
        }
        if let Some(od) = &self.model.od {
            let (places, labels) = new_objects(it);
            let (fake, cls) =
                od.forward(&discriminators::crop(&f.fake_img, &places, od.side), &labels);
            let o = self.g_adversarial(&fake) + loss::multi_label(&cls, &labels);
            l += cfg.object_d_weight * &o;
            extra.push(("loss_g_object", o.detach()));
        }
        if let (Some(placer), Some(places)) = (&self.model.g.placer, &it.story.places) {
            // The place head, teacher-forced on the true places of the earlier objects; its
            // gradient reaches the sentence encoder whole.
            let p = placer.loss(&f.s_story, places);
            l += cfg.layout_weight * &p;
            extra.push(("loss_place", p.detach()));
        }
        it.extra = extra;
        let mut text = Tensor::zeros([], (Kind::Float, self.device));
        if let Some(head) = &self.model.g.text_labels {
            // Each sentence names the object its frame adds.
            let t = loss::multi_label(&tch::nn::Module::forward(head, &f.s_story), &it.story.added);
            text = t.detach();
            l += cfg.text_aux_weight * t;
        }
        (l, kl.detach(), text)
    }
}

impl Family for StoryGanTrainer {
    fn networks(&self) -> Vec<(&'static str, &VarStore)> {
        self.model.stores()
    }

    fn networks_mut(&mut self) -> Vec<(&'static str, &mut VarStore)> {
        self.model.stores_mut()
    }

    fn optimizers(&self) -> Vec<OptimizerSpec> {
        let c = &self.cfg;
        let spec = |name, network, params, lr| OptimizerSpec {
            name,
            network,
            params,
            lr,
            beta1: c.beta1,
            beta2: c.beta2,
        };
        let mut v = vec![spec("generator", "generator", |n| !is_text(n), c.lr_g)];
        if self.has_text_optimizer() {
            // The sentence encoder and its label head, at `lr_text`.
            v.push(spec("text", "generator", is_text, c.lr_text));
        }
        v.push(spec("image_d", "image_d", |_| true, c.lr_d));
        if self.model.od.is_some() {
            v.push(spec("object_d", "object_d", |_| true, c.lr_d));
        }
        if self.model.ds.is_some() {
            v.push(spec("story_d", "story_d", |_| true, c.lr_d));
        }
        v
    }

    fn lr_scale(&self, epoch: usize) -> f64 {
        storyvis_core::family::halving(epoch, self.cfg.lr_halve_epochs)
    }

    fn iters_per_epoch(&self) -> usize {
        (self.train.len() / self.cfg.story_batch as usize).max(1)
    }

    fn batches(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("story_batch", self.cfg.story_batch as usize),
            ("image_batch", self.cfg.image_batch as usize),
        ]
    }

    fn phases(&self) -> Vec<Phase> {
        let mut v = vec![Phase::new(IMAGE_D, &["image_d"])];
        if self.model.od.is_some() {
            v.push(Phase::new(OBJECT_D, &["object_d"]));
        }
        if self.model.ds.is_some() {
            v.push(Phase::new(STORY_D, &["story_d"]));
        }
        let g: &[&str] =
            if self.has_text_optimizer() { &["generator", "text"] } else { &["generator"] };
        v.extend(Phase::repeated(GENERATOR, g, self.cfg.g_steps));
        v
    }

    fn reported(&self) -> Vec<Reported> {
        let r = |key, label, checked| Reported { key, label, checked };
        let mut v = vec![
            r("loss_d_image", "image discriminator", true),
            r("loss_d_story", "story discriminator", true),
            r("loss_g", "generator", true),
            r("loss_kl", "KL", true),
            r("loss_text", "text", true),
            // Mean D_I(real) and D_I(fake) (probabilities), and the per-label accuracy of D_I's
            // auxiliary classifier on real frames.
            r("d_real", "D(real)", false),
            r("d_fake", "D(fake)", false),
            r("aux_accuracy", "auxiliary accuracy", false),
        ];
        if self.cfg.recon_weight > 0.0 {
            v.push(r("loss_recon", "L1 to the real frame", true));
        }
        if self.cfg.layout {
            v.push(r("loss_place", "place", true));
        }
        if self.cfg.object_d_weight > 0.0 {
            v.push(r("loss_d_object", "object discriminator", true));
            v.push(r("loss_g_object", "G's object term", true));
        }
        v
    }

    fn begin(&mut self, at: Draw) -> Result<()> {
        #[cfg(feature = "testing")]
        let fixed =
            self.fixed.as_ref().map(|(s, i, f)| (s.shallow(), i.shallow(), f.shallow_clone()));
        #[cfg(not(feature = "testing"))]
        let fixed = None;
        let (story, img, frames) = match fixed {
            Some(batches) => batches,
            None => {
                // The whole batches are drawn; this rank keeps its part (`Shard`).
                let (story_idx, img_idx, frames) = self.draw(at.step, at.seed);
                let (story_idx, img_idx, frames) =
                    (at.shard.take(&story_idx), at.shard.take(&img_idx), at.shard.take(&frames));
                (
                    self.train.batch(&story_idx, self.device),
                    self.train.batch(&img_idx, self.device),
                    storyvis_core::data::upload(&frames, self.device),
                )
            }
        };
        let fwd = self.generate(&story, &img, &frames);
        let report = Report::new(&self.reported(), self.device);
        self.now = Some(Iteration {
            story,
            img,
            frames,
            fwd: Some(fwd),
            report,
            g_done: 0,
            extra: Vec::new(),
        });
        Ok(())
    }

    fn loss(&mut self, phase: &str) -> Result<Tensor> {
        let mut it = self.now.take().context("a phase outside an iteration")?;
        let l = match phase {
            IMAGE_D => {
                let (l, [d_real, d_fake, aux]) = self.image_d_loss(&it);
                let r = &mut it.report;
                r.set("loss_d_image", &l);
                r.set("d_real", &d_real);
                r.set("d_fake", &d_fake);
                r.set("aux_accuracy", &aux);
                Ok(l)
            }
            OBJECT_D if self.model.od.is_some() => {
                let l = self.object_d_loss(&it);
                it.report.set("loss_d_object", &l);
                Ok(l)
            }
            STORY_D if self.model.ds.is_some() => {
                let l = self.story_d_loss(&it);
                it.report.set("loss_d_story", &l);
                Ok(l)
            }
            GENERATOR => {
                let (l, kl, text) = self.generator_loss(&mut it);
                let r = &mut it.report;
                r.add("loss_g", &l);
                r.add("loss_kl", &kl);
                r.add("loss_text", &text);
                for (k, v) in std::mem::take(&mut it.extra) {
                    r.add(k, &v);
                }
                it.g_done += 1;
                Ok(l)
            }
            other => Err(anyhow::anyhow!("StoryGAN has no phase {other:?} here")),
        };
        self.now = Some(it);
        l
    }

    fn finish(&mut self) -> Result<Report> {
        let mut it = self.now.take().context("an iteration's end without its start")?;
        // The generator's values: means over its `g_steps` updates.
        let n = it.g_done.max(1) as f64;
        let declared = self.reported();
        for k in ["loss_g", "loss_kl", "loss_text", "loss_recon", "loss_place", "loss_g_object"] {
            if declared.iter().any(|r| r.key == k) {
                it.report.divide(k, n);
            }
        }
        Ok(it.report)
    }

    /// One story drawn as `generate` draws (the benchmark's, already on the device).
    fn draw_once(&self) -> Result<()> {
        let text = self.bench_text.as_ref().context("no story to draw (a benchmark builds one)")?;
        let _ = self.model.g.draw(text);
        Ok(())
    }

    fn set_channels_last(&mut self, on: bool) {
        self.model.set_channels_last(on);
    }

    /// A grid: per held-out story, its ground truth frames and then the generated ones.
    fn sample_sheet(&self, step: usize, seed: u64) -> Result<image::RgbImage> {
        let n = self.samples.len() as i64;
        let batch = self.samples.batch(&(0..n).collect::<Vec<_>>(), self.device);
        tch::manual_seed(mix(seed, 0x5A) as i64);
        let fake = self.model.g.draw(&batch.text);
        let t = self.cfg.frames;
        let layout = StripLayout::for_frame_size(self.cfg.image_size as u32);
        let mut sheet =
            paper(layout.width(2 * t as u32), n as u32 * layout.row_height() + layout.gap);
        for i in 0..n {
            let mut strip = Vec::new();
            for (which, src) in [(0, &batch.images), (1, &fake)] {
                for f in 0..t {
                    let img = to_image(&src.get(i).get(f as i64));
                    let caption = if which == 0 {
                        self.samples.sentences[i as usize][f].clone()
                    } else {
                        String::new()
                    };
                    strip.push((img, caption));
                }
            }
            let title = format!(
                "story {}: ground truth | generated (step {step})",
                self.samples.ids[i as usize]
            );
            layout.draw_row(
                &mut sheet,
                layout.gap + i as u32 * layout.row_height(),
                &title,
                &strip,
            );
        }
        Ok(sheet)
    }

    fn files(&self) -> Vec<(&'static str, Vec<u8>)> {
        vec![(VOCAB, self.vocab.save_json().into_bytes())]
    }

    fn shape(&self) -> serde_json::Value {
        serde_json::to_value(self.shape).expect("shape")
    }

    fn data_summary(&self) -> serde_json::Value {
        serde_json::json!({ "train_stories": self.train.len() })
    }

    fn averaged(&self) -> Vec<&'static str> {
        vec!["generator"]
    }

    /// Whole stories drawn as `generate` and `eval` draw them (`decode_story`: with the
    /// previous frame, each from the one drawn before), from story batches of a seeded
    /// permutation of the training stories.
    fn standing_passes(&self, batches: usize, seed: u64) -> Result<()> {
        let g = &self.model.g;
        for idx in storyvis_core::family::standing_batches(
            self.train.len(),
            self.cfg.story_batch as usize,
            batches,
            seed,
        ) {
            let story = self.train.batch(&idx, self.device);
            let ctx = g.drawing_context(&g.encode_text(&story.text), true);
            let _ = g.decode_story(&ctx, true);
        }
        Ok(())
    }
}

/// CLEVR-SV's shapes (15 labels, 75-long attribute vectors of 5 slots, a 40-word vocabulary):
/// what `storyvis bench` builds StoryGAN for.
const BENCH_SHAPE: DataShape = DataShape { vocab: 40, vector_len: 75, labels: 15 };

/// The registry's benchmark hook (`FamilyEntry::synthetic`): StoryGAN on synthetic stories of
/// CLEVR-SV's shapes, four batches of them.
fn synthetic(cfg: &storyvis_core::config::Config, device: Device) -> Result<Box<dyn Family>> {
    let m = Config::of(cfg)?;
    let stories = 4 * m.story_batch.max(m.image_batch) as usize;
    let data = StoryData::synthetic(&m, BENCH_SHAPE, stories, cfg.run.seed);
    let one = StoryData::synthetic(&m, BENCH_SHAPE, 1, cfg.run.seed + 1).batch(&[0], device);
    let mut trainer = StoryGanTrainer::headless(m, BENCH_SHAPE, data.to_device(device), device)?;
    trainer.bench_text = Some(one.text);
    Ok(Box::new(trainer))
}

/// One iteration on the CPU from the weights in `weights` (generator/image_d/story_d
/// safetensors), given batches, frame picks and noise (`Generator::feed_noise` order): what the
/// parity test against the PyTorch implementation (bench/pytorch_storygan.py) runs. Returns the
/// reported values (the family's, then each optimiser's gradient norm) and the networks after
/// the updates. `runtime`: the CPU in fp32 for the parity check; bf16 or channels-last to
/// compare those with it.
#[cfg(feature = "testing")]
#[allow(clippy::too_many_arguments)]
pub fn one_iteration(
    cfg: &storyvis_core::config::Config,
    shape: DataShape,
    weights: &Path,
    story: &Batch,
    img: &Batch,
    frames: &Tensor,
    noise: Vec<Tensor>,
    runtime: Runtime,
) -> Result<(Vec<f64>, StoryGan)> {
    ensure!(runtime.device == Device::Cpu, "the parity check runs on the CPU");
    let m = Config::of(cfg)?;
    let mut family = StoryGanTrainer::headless(
        m.clone(),
        shape,
        StoryData::synthetic(&m, shape, 2, 0),
        Device::Cpu,
    )?;
    family.fixed = Some((story.shallow(), img.shallow(), frames.shallow_clone()));
    let mut t = Engine::new(Box::new(family), cfg.run.nonfinite, Device::Cpu)?;
    storyvis_core::checkpoint::load_networks(weights, &mut t.family.model.stores_mut())?;
    t.set_runtime(runtime)?;
    t.family.model.g.feed_noise(noise);
    let values = t
        .iteration(
            Draw {
                step: 0,
                rollbacks: 0,
                seed: cfg.run.seed,
                shard: storyvis_core::family::Shard::WHOLE,
            },
            false,
        )?
        .context("an iteration skipped its update")?;
    let values = Vec::<f64>::try_from(values.to_kind(Kind::Double)).context("reported values")?;
    Ok((values, t.family.model))
}
