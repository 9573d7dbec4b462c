//! StackGAN and SDGAN on the training loop: per iteration a batch of training images with one
//! random caption each (and, for SDGAN's siamese branches, a second caption: of the same image
//! or of another); the discriminator's phase, then the generator's. A stage-2 run draws its
//! Stage-I images from the frozen Stage-I generator it carries.

use super::{valid_size, Config, Discriminator, StageOne, StageTwo};
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};
use storyvis_core::captioned::{CaptionBatch, CaptionData, EmbeddedCaptions};
use storyvis_core::data::{block_mean, to_image};
use storyvis_core::family::{Draw, Family, OptimizerSpec, Phase, Report, Reported};
use storyvis_core::joint::{self, Joint};
use storyvis_core::loss;
use storyvis_core::loss::contrastive_loss;
use storyvis_core::recipe::{select_rows, TextNorm};
use storyvis_core::scbn::Scbn;
use storyvis_core::train::mix;
use storyvis_data::dataset::{Dataset, Split};
use storyvis_data::sheet::{paper, StripLayout};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// The Stage-I config a stage-2 run carries (beside its own config).
pub const STAGE1_CONFIG: &str = "stage1.toml";
const SHEET_CAPTIONS: usize = 6;
const SHEET_SEEDS: usize = 3;

/// The generators of a run: Stage I (trained in a stage-1 run, frozen in a stage-2 one) and,
/// in a stage-2 run, Stage II.
pub struct Generators {
    pub one_cfg: Config,
    pub one_vs: VarStore,
    pub one: StageOne,
    pub two: Option<(Config, VarStore, StageTwo)>,
}

/// The noise of a drawing: z [B, noise_dim] and ε [B, condition_dim] of each stage.
pub struct Noise {
    pub z: Tensor,
    pub eps1: Tensor,
    pub eps2: Option<Tensor>,
}

impl Generators {
    /// `stage1`: for a stage-2 config, its Stage-I run's config.
    pub fn new(
        c: &Config,
        stage1: Option<Config>,
        embed_dim: i64,
        word_dim: i64,
        device: Device,
    ) -> Generators {
        let one_cfg = stage1.unwrap_or_else(|| c.clone());
        let one_vs = VarStore::new(device);
        let one = StageOne::new(one_vs.root(), &one_cfg, embed_dim, word_dim);
        let two = (c.stage == 2).then(|| {
            let vs = VarStore::new(device);
            let g = StageTwo::new(vs.root(), c, embed_dim, word_dim);
            (c.clone(), vs, g)
        });
        Generators { one_cfg, one_vs, one, two }
    }

    /// Whether any stage reads word features.
    pub fn reads_words(&self) -> bool {
        let word = |s: Scbn| matches!(s, Scbn::Word | Scbn::Both);
        word(self.one_cfg.scbn) || self.two.as_ref().is_some_and(|t| word(t.0.scbn))
    }

    /// Fresh noise for `b` drawings (libtorch's generator).
    pub fn noise(&self, b: i64, device: Device) -> Noise {
        let randn = |d: i64| Tensor::randn([b, d], (Kind::Float, device));
        Noise {
            z: randn(self.one_cfg.noise_dim),
            eps1: randn(self.one_cfg.condition_dim),
            eps2: self.two.as_ref().map(|t| randn(t.0.condition_dim)),
        }
    }

    /// The frozen Stage I's images (eval mode, no gradient).
    pub fn stage_one(&self, n: &Noise, text: &Tensor, words: Option<(&Tensor, &Tensor)>) -> Tensor {
        tch::no_grad(|| self.one.forward_t(&n.z, text, &n.eps1, words, false).0)
    }

    /// Both stages drawing (eval mode): (Stage-I images [B, 3, 64, 64], Stage-II images).
    pub fn draw(
        &self,
        n: &Noise,
        text: &Tensor,
        words: Option<(&Tensor, &Tensor)>,
    ) -> (Tensor, Option<Tensor>) {
        let one = self.stage_one(n, text, words);
        let two = self.two.as_ref().map(|(_, _, g)| {
            tch::no_grad(|| {
                g.forward_t(&one, text, n.eps2.as_ref().expect("stage-2 noise"), words, false).0
            })
        });
        (one, two)
    }
}

/// Word features of `texts` (or none when no stage reads them): ([B, T, D], mask [B, T]).
pub fn word_features(
    enc: &Joint,
    texts: &[&str],
    needed: bool,
    device: Device,
) -> Result<Option<(Tensor, Tensor)>> {
    if !needed {
        return Ok(None);
    }
    let inputs = enc.text.inputs(texts)?;
    let (f, m) = tch::no_grad(|| enc.text.word_features(&inputs));
    Ok(Some((f.to_device(device), m.to_device(device))))
}

/// The Stage-I run a stage-2 config names: (its checkpoint directory, its config).
pub fn stage_one_run(c: &Config) -> Result<(PathBuf, Config)> {
    ensure!(
        !c.stage1.trim().is_empty(),
        "config: stage 2 needs its Stage-I run: --set stage1=RUN (a stackgan/sdgan run of stage 1)"
    );
    let dir = storyvis_core::checkpoint::resolve(Path::new(&c.stage1))
        .with_context(|| format!("the Stage-I run stage1 = {:?}", c.stage1))?;
    storyvis_core::checkpoint::verify(&dir)?;
    let cfg = storyvis_core::checkpoint::load_config(&dir)?;
    ensure!(
        cfg.family == "stackgan" || cfg.family == "sdgan",
        "stage1 = {}: a {} checkpoint, not a StackGAN/SDGAN Stage-I run",
        dir.display(),
        cfg.family
    );
    let one = Config::of(&cfg)?;
    ensure!(
        one.stage == 1,
        "stage1 = {}: a stage-{} run; Stage II refines a stage-1 run",
        dir.display(),
        one.stage
    );
    ensure!(
        one.text_norm == c.text_norm,
        "stage1 = {}: its text_norm is {}, this run's {}: both stages read the captions the same way (--set text_norm={})",
        dir.display(),
        one.text_norm,
        c.text_norm,
        one.text_norm
    );
    Ok((dir, one))
}

pub fn build(
    cfg: &storyvis_core::config::Config,
    ds: &Dataset,
    from: Option<&Path>,
    device: Device,
) -> Result<Box<dyn Family>> {
    let c = Config::of(cfg)?;
    let size = ds.header.image_size as i64;
    ensure!(
        valid_size(size) && size >= c.image_size,
        "the dataset's images are {size}×{size}; the model draws {0}×{0} from images of 64·2^k pixels at least that large (prepare with --size {0})",
        c.image_size
    );
    // Stage II carries its Stage-I run: weights, config and text encoder. A resumed run reads
    // all three from its checkpoint, a fresh one from the run `stage1` names.
    let read =
        |p: PathBuf| std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()));
    let stage1 = match (c.stage, from) {
        (1, _) => None,
        (_, Some(dir)) => {
            let p = dir.join(STAGE1_CONFIG);
            Some((None, Config::of(&storyvis_core::config::Config::load(&p)?)?, read(p)?))
        }
        (_, None) => {
            let (dir, one) = stage_one_run(&c)?;
            let bytes = read(dir.join(storyvis_core::checkpoint::CONFIG))?;
            Some((Some(dir), one, bytes))
        }
    };
    let dir = match (from, &stage1) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some((Some(d), _, _))) => d.clone(),
        _ => storyvis_core::shipped::locate(&c.text_encoder),
    };
    let enc = Joint::load(&dir, device)
        .with_context(|| format!("loading the text encoder {}", dir.display()))?;
    let mut files = joint::encoder_files(&dir)?;
    let train = CaptionData::load(ds, Split::Train, false)?;
    ensure!(
        train.len() as i64 >= c.batch,
        "{} has {} training images; batch {} needs at least as many",
        ds.dir.display(),
        train.len(),
        c.batch
    );
    let mut captions = EmbeddedCaptions::new(&train, &enc, ds)?;
    // text_norm: a resumed run's own, Stage II's Stage-I run's, else fitted to the distinct
    // training captions.
    let text_norm = match (c.text_norm, from, &stage1) {
        (false, _, _) => None,
        (true, None, Some((Some(one_dir), _, _))) => Some(TextNorm::load(one_dir)?),
        (true, _, _) => Some(TextNorm::resumed_or_fit(from, || captions.distinct_embeddings())?),
    };
    if c.wrong_swap > 0.0 {
        let swaps = &enc.manifest.swaps;
        ensure!(
            !swaps.is_empty(),
            "wrong_swap = {} needs a text encoder trained with swap groups (`storyvis train-text-encoder --swap cube,sphere,cylinder …`); {} has none",
            c.wrong_swap,
            dir.display()
        );
        let added = captions.add_swaps(&enc, swaps, mix(0, 3))?;
        ensure!(
            added > 0,
            "wrong_swap = {}: no training caption of {} has a word of the text encoder's swap groups {:?}",
            c.wrong_swap,
            ds.dir.display(),
            swaps.0
        );
    }
    if c.siamese {
        let single = captions.count.iter().filter(|&&n| n < 2).count();
        ensure!(
            single == 0,
            "the siamese discriminator pairs two captions of one image: {single} of the {} training images of {} have a single caption; it needs ≥ 2 captions per image (prepare clevr-captions --captions 2 or more, or set siamese = false)",
            train.len(),
            ds.dir.display()
        );
    }
    if let Some(norm) = &text_norm {
        captions.embeddings = norm.apply(&captions.embeddings);
        files.push((TextNorm::FILE, norm.to_json()));
    }
    let embed_dim = enc.manifest.config.dim;
    let word_dim = enc.text.word_feature_dim();
    let (one_dir, one_cfg, one_toml) = match stage1 {
        Some((d, one, toml)) => (d, Some(one), Some(toml)),
        None => (None, None, None),
    };
    let mut gens = Generators::new(&c, one_cfg.clone(), embed_dim, word_dim, device);
    if let Some(one_dir) = &one_dir {
        // The Stage-I run's drawing weights (its moving average where it kept one).
        let manifest = storyvis_core::checkpoint::verify(one_dir)?;
        let (file, _) = storyvis_core::checkpoint::drawing_weights(
            one_dir,
            &manifest,
            "generator",
            storyvis_core::checkpoint::Weights::Average,
        );
        storyvis_core::checkpoint::load_store(&mut gens.one_vs, &file)
            .with_context(|| format!("the Stage-I generator of {}", one_dir.display()))?;
    }
    if let Some(toml) = one_toml {
        gens.one_vs.freeze();
        files.push((STAGE1_CONFIG, toml));
    }
    let recipe = cfg.recipe.clone();
    let heads = recipe.attribute_labels(&ds.header.label_names, &train.labels, &ds.dir)?;
    let d_vs = VarStore::new(device);
    let d = Discriminator::new(d_vs.root(), &c, c.stage == 2, heads);
    // The training images at the model's size (averaged down), kept as bytes.
    let images = if size == c.image_size {
        train.images.shallow_clone()
    } else {
        block_mean(&train.images, c.image_size).round().to_kind(Kind::Uint8)
    };
    let samples = CaptionData::load(ds, Split::Test, true)?;
    let sheet_captions: Vec<String> =
        samples.captions.iter().take(SHEET_CAPTIONS).map(|c| c[0].clone()).collect();
    let refs: Vec<&str> = sheet_captions.iter().map(String::as_str).collect();
    let sheet_text = enc.text.embed(&refs)?;
    let sheet_text = match &text_norm {
        Some(norm) => norm.apply(&sheet_text),
        None => sheet_text,
    };
    let sheet_words = word_features(&enc, &refs, gens.reads_words(), device)?;
    let real = samples.images_at(&(0..refs.len() as i64).collect::<Vec<_>>(), Device::Cpu);
    let sheet_real =
        if real.size()[3] == c.image_size { real } else { block_mean(&real, c.image_size) };
    Ok(Box::new(StackGan {
        n: train.len(),
        images: images.to_device(device),
        labels: train.labels.to_device(device),
        augment: recipe.augment(),
        recipe,
        captions,
        files,
        gens,
        d_vs,
        d,
        enc,
        sheet: (sheet_captions, sheet_text, sheet_words, sheet_real),
        cfg: c,
        device,
        now: None,
    }))
}

/// One branch of an iteration: its captions' embeddings and word features, and (stage 2) the
/// frozen Stage I's images of them.
struct Branch {
    text: Tensor,
    words: Option<(Tensor, Tensor)>,
    stage1: Option<Tensor>,
}

impl Branch {
    fn words(&self) -> Option<(&Tensor, &Tensor)> {
        self.words.as_ref().map(|(f, m)| (f, m))
    }

    /// The branch's items at `rows` (all of them, as they are, for none).
    fn rows(&self, rows: Option<&Tensor>) -> Branch {
        let pick = |t: &Tensor| select_rows(t, rows);
        Branch {
            text: pick(&self.text),
            words: self.words.as_ref().map(|(f, m)| (pick(f), pick(m))),
            stage1: self.stage1.as_ref().map(pick),
        }
    }
}

struct Iteration {
    real: Tensor,
    right: Branch,
    wrong: Tensor,
    /// SDGAN: the second branch, and per item 1 if its caption is of the same image.
    second: Option<(Branch, Tensor)>,
    /// The images' labels [B, labels] (what the recipe's attribute head learns).
    labels: Tensor,
    report: Report,
}

pub struct StackGan {
    pub cfg: Config,
    pub gens: Generators,
    pub d_vs: VarStore,
    pub d: Discriminator,
    enc: Joint,
    /// Training images [N, 3, S, S] u8 on the device, at the model's size.
    images: Tensor,
    /// Their labels [N, L] on the device (L = 0 for data without labels).
    labels: Tensor,
    /// The budget-first parts switched on (`[recipe]`), and DiffAugment's transforms.
    recipe: storyvis_core::recipe::Recipe,
    augment: storyvis_core::recipe::Augment,
    n: usize,
    /// Every training caption and its embedding.
    captions: EmbeddedCaptions,
    files: Vec<(&'static str, Vec<u8>)>,
    /// Sample sheet: held-out captions, their embeddings and word features, real images [CPU].
    sheet: (Vec<String>, Tensor, Option<(Tensor, Tensor)>, Tensor),
    device: Device,
    now: Option<Iteration>,
}

/// The phases of an iteration.
const DISCRIMINATOR: &str = "discriminator";
const GENERATOR: &str = "generator";

const REPORTED: [(&str, &str, bool); 10] = [
    ("loss_d", "discriminator", true),
    ("loss_g", "generator (adversarial)", true),
    ("loss_kl", "conditioning augmentation KL", true),
    ("loss_contrastive", "contrastive", true),
    ("loss_d_attributes", "discriminator's attribute head", true),
    ("loss_g_attributes", "generator's attribute loss", true),
    ("loss_g_mode_seeking", "mode-seeking term", true),
    ("d_real", "D(real, right text)", false),
    ("d_wrong", "D(real, wrong text)", false),
    ("d_fake", "D(fake, right text)", false),
];

/// −log(1 − σ(x)), averaged: the "fake" target's cross-entropy.
fn as_fake(logits: &Tensor) -> Tensor {
    loss::generator(&-logits)
}

impl StackGan {
    /// A branch for caption rows `rows`.
    fn branch(&self, rows: &[i64]) -> Result<Branch> {
        let text = self.captions.rows(rows, self.device);
        let texts: Vec<&str> =
            rows.iter().map(|&r| self.captions.texts[r as usize].as_str()).collect();
        let words = word_features(&self.enc, &texts, self.gens.reads_words(), self.device)?;
        let stage1 = self.gens.two.as_ref().map(|_| {
            let n = self.gens.noise(rows.len() as i64, self.device);
            self.gens.stage_one(&n, &text, words.as_ref().map(|(f, m)| (f, m)))
        });
        Ok(Branch { text, words, stage1 })
    }

    /// The trained stage's drawing of a branch in training mode: (images, μ, log σ², the noise
    /// it drew from: [z ; ε] at Stage I, ε at Stage II, whose images come from its branch).
    fn generate(&self, b: &Branch) -> (Tensor, Tensor, Tensor, Tensor) {
        let n = self.gens.noise(b.text.size()[0], self.device);
        match (&self.gens.two, &b.stage1) {
            (Some((_, _, g)), Some(s1)) => {
                let eps = n.eps2.expect("stage-2 noise");
                let (x, mu, logvar) = g.forward_t(s1, &b.text, &eps, b.words(), true);
                (x, mu, logvar, eps)
            }
            _ => {
                let (x, mu, logvar) =
                    self.gens.one.forward_t(&n.z, &b.text, &n.eps1, b.words(), true);
                (x, mu, logvar, Tensor::cat(&[&n.z, &n.eps1], 1))
            }
        }
    }

    fn ca(&self) -> &storyvis_core::nn::CondAug {
        match &self.gens.two {
            Some((_, _, g)) => &g.ca,
            None => &self.gens.one.ca,
        }
    }

    /// SDGAN's contrastive term on the discriminator's features of the two branches' images.
    fn contrastive(&self, f1: &Tensor, f2: &Tensor, same: &Tensor) -> Tensor {
        let c = &self.cfg;
        contrastive_loss(
            &Discriminator::embedding(f1),
            &Discriminator::embedding(f2),
            same,
            c.contrastive,
            c.margin,
            c.alpha,
        )
    }
}

impl Family for StackGan {
    fn networks(&self) -> Vec<(&'static str, &VarStore)> {
        match &self.gens.two {
            None => vec![("generator", &self.gens.one_vs), ("discriminator", &self.d_vs)],
            Some((_, vs, _)) => vec![
                ("generator", vs),
                ("discriminator", &self.d_vs),
                ("stage1_generator", &self.gens.one_vs),
            ],
        }
    }

    fn networks_mut(&mut self) -> Vec<(&'static str, &mut VarStore)> {
        match &mut self.gens.two {
            None => vec![("generator", &mut self.gens.one_vs), ("discriminator", &mut self.d_vs)],
            Some((_, vs, _)) => vec![
                ("generator", vs),
                ("discriminator", &mut self.d_vs),
                ("stage1_generator", &mut self.gens.one_vs),
            ],
        }
    }

    fn optimizers(&self) -> Vec<OptimizerSpec> {
        let c = &self.cfg;
        vec![
            OptimizerSpec::whole("generator", c.lr_g, c.beta1, c.beta2),
            OptimizerSpec::whole("discriminator", c.lr_d, c.beta1, c.beta2),
        ]
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
        vec![Phase::new(DISCRIMINATOR, &["discriminator"]), Phase::new(GENERATOR, &["generator"])]
    }

    fn reported(&self) -> Vec<Reported> {
        REPORTED.iter().map(|&(key, label, checked)| Reported { key, label, checked }).collect()
    }

    fn begin(&mut self, at: Draw) -> Result<()> {
        let b = self.cfg.batch as usize;
        let CaptionBatch { images: idx, right, mut wrong, mut rng } =
            self.captions.batch(at, b, self.iters_per_epoch());
        let (first, count) = (&self.captions.first, &self.captions.count);
        // SDGAN's second branch: with probability ½ another caption of the same image (y = 1),
        // else the mismatched one (another image's, y = 0).
        let second = if self.cfg.siamese {
            let mut rows = Vec::with_capacity(b);
            let mut same = Vec::with_capacity(b);
            for j in 0..b {
                let i = idx[j] as usize;
                if rng.below(2) == 0 {
                    let other =
                        (right[j] as usize - first[i] + 1 + rng.below(count[i] - 1)) % count[i];
                    rows.push((first[i] + other) as i64);
                    same.push(1.0f32);
                } else {
                    rows.push(wrong[j]);
                    same.push(0.0);
                }
            }
            let same = at.shard.take(&same);
            Some((
                self.branch(&at.shard.take(&rows))?,
                Tensor::from_slice(&same).to_device(self.device),
            ))
        } else {
            None
        };
        // The departure `wrong_swap`: some mismatched texts are the right caption, one word swapped.
        if self.cfg.wrong_swap > 0.0 {
            self.captions.swap_wrong(&right, &mut wrong, self.cfg.wrong_swap, &mut rng);
        }
        // The whole batch was drawn; this rank keeps its part (`Shard`).
        let (idx, right, wrong) =
            (at.shard.take(&idx), at.shard.take(&right), at.shard.take(&wrong));
        let rows = Tensor::from_slice(&idx).to_device(self.device);
        let real = storyvis_core::data::to_unit(&self.images.index_select(0, &rows));
        let labels = self.labels.index_select(0, &rows);
        let wrong = self.captions.rows(&wrong, self.device);
        let report = Report::new(&self.reported(), self.device);
        let right = self.branch(&right)?;
        self.now = Some(Iteration { real, right, wrong, second, labels, report });
        Ok(())
    }

    fn loss(&mut self, phase: &str) -> Result<Tensor> {
        ensure!(phase == DISCRIMINATOR || phase == GENERATOR, "StackGAN has no phase {phase:?}");
        let mut it = self.now.take().context("a phase outside an iteration")?;
        let (c, d) = (&self.cfg, &self.d);
        let l = if phase == DISCRIMINATOR {
            // D: real + ½ (fake + wrong) (GAN-CLS), each with the image-only term averaged in at
            // Stage II (StackGAN-Pytorch's compute_discriminator_loss); the condition is μ.
            let (fake, mu, _, _) = tch::no_grad(|| self.generate(&it.right));
            let fake2 = it.second.as_ref().map(|(s, _)| tch::no_grad(|| self.generate(s).0));
            let mu_wrong = tch::no_grad(|| self.ca().stats(&it.wrong).0);
            // DiffAugment (a departure, `[recipe] diffaugment`): one draw for the real images
            // and the fakes of both branches.
            let mut pictures = vec![&it.real, &fake];
            pictures.extend(fake2.as_ref());
            let seen = self.augment.same_draw(&pictures);
            let feat_real = d.features(&seen[0], true);
            let real = d.judge(&feat_real, &mu, true);
            let wrong = d.judge(&feat_real, &mu_wrong, true);
            let feat_fake = d.features(&seen[1], true);
            let fake_logits = d.judge(&feat_fake, &mu, true);
            let mut l_real = loss::generator(&real);
            let mut l_fake = as_fake(&fake_logits);
            if let (Some(ur), Some(uf)) = (d.unconditional(&feat_real), d.unconditional(&feat_fake))
            {
                l_real = (l_real + loss::generator(&ur)) * 0.5;
                l_fake = (l_fake + as_fake(&uf)) * 0.5;
            }
            let mut l: Tensor = l_real + 0.5 * (l_fake + as_fake(&wrong));
            if let Some((_, same)) = &it.second {
                // The siamese discriminator learns features in which the two branches' images
                // of one image's captions are close and of two images' captions far apart.
                l += self.contrastive(&feat_fake, &d.features(&seen[2], true), same)
                    * c.contrastive_weight;
            }
            if let Some(a) = d.attribute_loss(&feat_real, &it.labels) {
                // AC-GAN's head (a departure, `[recipe] aux_attributes`) on the real images.
                it.report.set("loss_d_attributes", &a);
                l += a * self.recipe.aux_attributes;
            }
            it.report.set("d_real", &real.sigmoid().mean(Kind::Float));
            it.report.set("d_wrong", &wrong.sigmoid().mean(Kind::Float));
            it.report.set("d_fake", &fake_logits.sigmoid().mean(Kind::Float));
            it.report.set("loss_d", &l);
            l
        } else {
            // G: −log D(fake, μ) (+ −log D(fake) at Stage II) + λ_KL · KL, per branch.
            // With mode seeking (a departure, `[recipe] mode_seeking`) the first half of the
            // batch's items is drawn twice, each with its own noise (MSGAN's pairs).
            let recipe = &self.recipe;
            let rows = recipe.generator_rows(it.real.size()[0], self.device);
            let pick = |t: &Tensor| select_rows(t, rows.as_ref());
            let adversarial = |b: &Branch| {
                let (fake, mu, logvar, noise) = self.generate(b);
                let seen = self.augment.same_draw(&[&fake]);
                let feat = d.features(&seen[0], true);
                let mut adv = loss::generator(&d.judge(&feat, &mu.detach(), true));
                if let Some(u) = d.unconditional(&feat) {
                    adv += loss::generator(&u);
                }
                (adv, loss::kl(&mu, &logvar), feat, fake, noise)
            };
            let (mut adv, mut kl, feat, fake, noise) = adversarial(&it.right.rows(rows.as_ref()));
            let mut l_con = Tensor::zeros([], (Kind::Float, self.device));
            if let Some((second, same)) = &it.second {
                let (adv2, kl2, feat2, _, _) = adversarial(&second.rows(rows.as_ref()));
                adv = (adv + adv2) * 0.5;
                kl = (kl + kl2) * 0.5;
                l_con = self.contrastive(&feat, &feat2, &pick(same));
            }
            it.report.set("loss_g", &adv);
            it.report.set("loss_kl", &kl);
            it.report.set("loss_contrastive", &l_con);
            let mut l = adv + kl * c.kl_weight + l_con * c.contrastive_weight;
            let attributes = d.attribute_loss(&feat, &pick(&it.labels));
            recipe.add_generator_terms(
                &mut l,
                attributes.as_ref(),
                &fake,
                &noise,
                &mut it.report,
                ("loss_g_attributes", "loss_g_mode_seeking"),
            );
            l
        };
        self.now = Some(it);
        Ok(l)
    }

    fn finish(&mut self) -> Result<Report> {
        Ok(self.now.take().context("an iteration's end without its start")?.report)
    }

    fn set_channels_last(&mut self, on: bool) {
        self.d.set_channels_last(on);
    }

    /// Per held-out caption: its real image, then each seed's drawing (Stage I's, upsampled,
    /// beside Stage II's in a stage-2 run).
    fn sample_sheet(&self, step: usize, seed: u64) -> Result<image::RgbImage> {
        let (captions, text, words, real) = &self.sheet;
        tch::manual_seed(mix(seed, 0x5A) as i64);
        let noise = self.gens.noise(SHEET_SEEDS as i64, self.device);
        let size = self.cfg.image_size;
        let layout = StripLayout::for_frame_size(size as u32);
        let per_seed = if self.gens.two.is_some() { 2 } else { 1 };
        let mut sheet = paper(
            layout.width(1 + (per_seed * SHEET_SEEDS) as u32),
            captions.len() as u32 * layout.row_height() + layout.gap,
        );
        for (i, caption) in captions.iter().enumerate() {
            let t = text.get(i as i64).unsqueeze(0).expand([SHEET_SEEDS as i64, -1], false);
            let w = words.as_ref().map(|(f, m)| {
                (
                    f.narrow(0, i as i64, 1).expand([SHEET_SEEDS as i64, -1, -1], false),
                    m.narrow(0, i as i64, 1).expand([SHEET_SEEDS as i64, -1], false),
                )
            });
            let (one, two) = self.gens.draw(&noise, &t, w.as_ref().map(|(f, m)| (f, m)));
            let mut strip = vec![(to_image(&real.get(i as i64)), "real".to_string())];
            for s in 0..SHEET_SEEDS as i64 {
                match &two {
                    Some(two) => {
                        strip.push((
                            to_image(
                                &one.get(s)
                                    .unsqueeze(0)
                                    .upsample_nearest2d([size, size], None, None)
                                    .get(0),
                            ),
                            format!("I, seed {s}"),
                        ));
                        strip.push((to_image(&two.get(s)), format!("II, seed {s}")));
                    }
                    None => strip.push((to_image(&one.get(s)), format!("seed {s}"))),
                }
            }
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
        self.files.clone()
    }

    fn shape(&self) -> serde_json::Value {
        self.captions.shape()
    }

    fn data_summary(&self) -> serde_json::Value {
        self.captions.data_summary(self.n)
    }

    fn averaged(&self) -> Vec<&'static str> {
        vec!["generator"]
    }

    /// The trained stage drawing batches of training captions (a seeded permutation).
    fn standing_passes(&self, batches: usize, seed: u64) -> Result<()> {
        let rows = self.captions.embeddings.size()[0] as usize;
        for idx in
            storyvis_core::family::standing_batches(rows, self.cfg.batch as usize, batches, seed)
        {
            let _ = self.generate(&self.branch(&idx)?);
        }
        Ok(())
    }
}
