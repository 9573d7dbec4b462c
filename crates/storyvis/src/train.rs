//! The StoryGAN training loop (SPEC §1 "Objective"): each iteration samples a story batch and an
//! independent image batch, updates the image discriminator, then the story discriminator, then
//! the generator `g_steps` times. The loop owns the run directory: resolved config, vocabulary,
//! `stats.jsonl`, sample grids, the loss curve and checkpoints.
//!
//! Randomness is a function of (seed, step, roll-backs): the noise stream is reseeded every
//! iteration and batches are drawn from per-epoch permutations, so a resumed run continues
//! exactly where the straight run would be.

use crate::checkpoint;
use crate::config::{Config, NonFinite, TextInput};
use crate::data::{check_compatible, to_rgb8, Batch, StoryData};
use crate::loss;
use crate::models::storygan::{parameters, DataShape, StoryGan};
use crate::nn::pick_frames;
use crate::optim::Adam;
use crate::plot::line_chart;
use crate::precision::{Precision, Runtime};
use crate::run_dir::{cut_stats, fork, new_run_dir};
use crate::text::Vocab;
use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use storyvis_data::dataset::{Dataset, Split};
use storyvis_data::rng::Rng;
use storyvis_data::sheet::{paper, save_png, StripLayout};
use tch::{Device, Kind, Tensor};

/// Stories shown in the sample grids.
const SAMPLE_STORIES: usize = 4;

/// Where a run starts.
pub enum Start {
    /// A new numbered run directory under `runs`.
    Fresh { runs: PathBuf },
    /// Continue from a checkpoint (a run directory or a checkpoint directory).
    Resume(PathBuf),
}

pub struct TrainRequest {
    /// The resolved config of a fresh run; on resume, only its preset is checked.
    pub config: Config,
    /// On resume: `--set` overrides applied to the checkpoint's config (`Config::RESUMABLE`).
    pub overrides: Vec<String>,
    pub data: PathBuf,
    pub start: Start,
    pub runtime: Runtime,
}

/// One logged line of `stats.jsonl`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub step: usize,
    pub epoch: usize,
    pub lr_g: f64,
    pub loss_d_image: f64,
    pub loss_d_story: f64,
    pub loss_g: f64,
    pub loss_kl: f64,
    pub loss_text: f64,
    /// Mean D_I(real) and D_I(fake) (probabilities).
    pub d_real: f64,
    pub d_fake: f64,
    /// Per-label accuracy of D_I's auxiliary classifier on real frames.
    pub aux_accuracy: f64,
    pub seconds_per_iteration: f64,
}

/// What a run ended with.
pub struct Outcome {
    pub run_dir: PathBuf,
    pub checkpoint: PathBuf,
    /// The step the run ended at.
    pub steps: usize,
    /// The step this call started from (0 for a fresh run, the checkpoint's step on resume).
    pub first_step: usize,
    /// Iterations this call ran, including any repeated after a roll-back.
    pub iterations: usize,
    pub interrupted: bool,
}

/// Mixes seeds into one (SplitMix64 finaliser).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Trainer {
    cfg: Config,
    device: Device,
    /// The arithmetic of the forward passes (`--precision`).
    precision: Precision,
    model: StoryGan,
    opt_g: Adam,
    /// Sentence mode: the sentence encoder and its label head, at `lr_text`.
    opt_text: Option<Adam>,
    opt_di: Adam,
    opt_ds: Option<Adam>,
    train: StoryData,
    samples: StoryData,
    vocab: Vocab,
    shape: DataShape,
    run_dir: PathBuf,
    iters_per_epoch: usize,
    /// SHA-256 of the training data's manifest, recorded in every checkpoint.
    data_digest: String,
}

/// What an iteration reports, in the order of the tensor it returns: the loss names first
/// (as errors name them), then D_I's mean outputs and auxiliary accuracy.
const REPORTED: [&str; 8] = ["image discriminator", "story discriminator", "generator", "KL", "text", "D(real)", "D(fake)", "auxiliary accuracy"];
/// How many of `REPORTED` are losses (checked for being finite).
const LOSSES: usize = 5;

/// A loss that was not finite, found when the loop read the losses back.
#[derive(Debug)]
struct NonFiniteLoss {
    name: &'static str,
    value: f64,
    step: usize,
}

impl std::fmt::Display for NonFiniteLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "non-finite {} loss ({}) at step {}", self.name, self.value, self.step)
    }
}

fn value(t: &Tensor) -> f64 {
    t.double_value(&[])
}

/// Reads back the iterations' reported values (one host-device synchronisation for all of
/// them) and checks the losses; returns the newest (step, values).
fn read_back(pending: &mut Vec<(usize, Tensor)>) -> std::result::Result<Option<(usize, Vec<f64>)>, NonFiniteLoss> {
    if pending.is_empty() {
        return Ok(None);
    }
    let all = Tensor::stack(&pending.iter().map(|(_, t)| t.shallow_clone()).collect::<Vec<_>>(), 0);
    let values: Vec<f64> = Vec::try_from(all.to_kind(Kind::Double).flatten(0, -1)).expect("reported values");
    let steps: Vec<usize> = pending.drain(..).map(|(s, _)| s).collect();
    for (row, step) in values.chunks(REPORTED.len()).zip(&steps) {
        if let Some(i) = row[..LOSSES].iter().position(|x| !x.is_finite()) {
            return Err(NonFiniteLoss { name: REPORTED[i], value: row[i], step: *step });
        }
    }
    Ok(steps.last().map(|&s| (s, values[values.len() - REPORTED.len()..].to_vec())))
}

impl Trainer {
    /// The networks (seeded by the config) and their optimisers over `train`.
    fn new(cfg: Config, shape: DataShape, train: StoryData, samples: StoryData, vocab: Vocab, run_dir: PathBuf, device: Device) -> Trainer {
        tch::manual_seed(cfg.seed as i64);
        let model = StoryGan::new(&cfg, shape, device);
        let opt_g = Adam::new(&model.g_vs, cfg.beta1, cfg.beta2, |n| !is_text(n));
        let opt_text = (cfg.text == TextInput::Sentence).then(|| Adam::new(&model.g_vs, cfg.beta1, cfg.beta2, is_text));
        let opt_di = Adam::new(&model.di_vs, cfg.beta1, cfg.beta2, |_| true);
        let opt_ds = model.ds_vs.as_ref().map(|vs| Adam::new(vs, cfg.beta1, cfg.beta2, |_| true));
        let iters_per_epoch = (train.len() / cfg.story_batch as usize).max(1);
        Trainer {
            cfg,
            device,
            precision: Precision::Fp32,
            model,
            opt_g,
            opt_text,
            opt_di,
            opt_ds,
            train,
            samples,
            vocab,
            shape,
            run_dir,
            iters_per_epoch,
            data_digest: String::new(),
        }
    }

    /// A trainer with no run directory or vocabulary, for measuring and checking iterations.
    fn headless(cfg: Config, shape: DataShape, train: StoryData, samples: StoryData, device: Device) -> Trainer {
        let vocab = Vocab::from_words(vec!["<pad>".into(), "<unk>".into()]);
        Trainer::new(cfg, shape, train, samples, vocab, PathBuf::new(), device)
    }

    /// Runs the networks at `runtime`'s precision and memory format (its device is the
    /// trainer's).
    fn set_runtime(&mut self, runtime: Runtime) -> Result<()> {
        runtime.precision.apply(self.device)?;
        self.precision = runtime.precision;
        self.model.set_channels_last(runtime.channels_last);
        Ok(())
    }

    fn total_steps(&self) -> usize {
        if self.cfg.max_steps > 0 {
            self.cfg.max_steps
        } else {
            self.cfg.epochs * self.iters_per_epoch
        }
    }

    fn lr(&self, base: f64, epoch: usize) -> f64 {
        base * 0.5f64.powi((epoch / self.cfg.lr_halve_epochs) as i32)
    }

    /// The story indices of iteration `step` (a per-epoch permutation of the training set)
    /// and the image batch's (story, frame) picks.
    fn draw(&self, step: usize) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
        let n = self.train.len();
        let b = self.cfg.story_batch as usize;
        let epoch = step / self.iters_per_epoch;
        let k = step % self.iters_per_epoch;
        let mut perm: Vec<i64> = (0..n as i64).collect();
        Rng::for_item(mix(self.cfg.seed, 1), epoch as u64).shuffle(&mut perm);
        let stories = (0..b).map(|j| perm[(k * b + j) % n]).collect();
        let mut rng = Rng::for_item(mix(self.cfg.seed, 2), step as u64);
        let bi = self.cfg.image_batch as usize;
        let img_stories = (0..bi).map(|_| rng.below(n) as i64).collect();
        let frames = (0..bi).map(|_| rng.below(self.cfg.frames) as i64).collect();
        (stories, img_stories, frames)
    }

    /// One iteration; returns its `REPORTED` values as one tensor on the device, or None when
    /// a loss was not finite and the policy is to skip. Only the `skip` policy reads losses
    /// inside the iteration (it must, to skip the update); otherwise the loop checks them in
    /// batches, so a GPU iteration never waits for the host.
    fn iteration(&mut self, step: usize, rollbacks: usize) -> Result<Option<Tensor>> {
        tch::manual_seed(mix(mix(self.cfg.seed, step as u64), rollbacks as u64 + 3) as i64);
        let (story_idx, img_idx, frames) = self.draw(step);
        let story = self.train.batch(&story_idx, self.device);
        let img = self.train.batch(&img_idx, self.device);
        let frames = crate::data::upload(&frames, self.device);
        self.update(step, &story, &img, &frames)
    }

    /// The updates of one iteration on given batches (`frames`: the image batch's frame picks).
    fn update(&mut self, step: usize, story: &Batch, img: &Batch, frames: &Tensor) -> Result<Option<Tensor>> {
        let cfg = self.cfg.clone();
        let epoch = step / self.iters_per_epoch;
        let (lr_g, lr_d, lr_text) = (self.lr(cfg.lr_g, epoch), self.lr(cfg.lr_d, epoch), self.lr(cfg.lr_text, epoch));
        let (alpha, beta) = (cfg.image_weight, cfg.story_weight);
        let eager = cfg.nonfinite == NonFinite::Skip;
        let skip = |name: &str, loss: &Tensor| {
            let bad = eager && !value(loss).is_finite();
            if bad {
                eprintln!("warning: non-finite {name} loss at step {}; iteration skipped", step + 1);
            }
            bad
        };

        // Forward passes run in the chosen precision (`amp`); backward passes and the updates
        // outside it.
        let amp = self.precision.autocast(self.device)?;
        let fwd = self.generate(story, img, frames);
        let real_img = pick_frames(&img.images, frames);
        let labels_t = pick_frames(&img.labels, frames);
        let (s_t, h_t) = (pick_frames(&fwd.s_img, frames).detach(), pick_frames(&fwd.cond_img, frames).detach());

        // Image discriminator: real + ½(fake + wrong), wrong = text shifted by one; plus the
        // auxiliary classifier on real frames.
        // Real and wrong pairs share the real images' features.
        let di = &self.model.di;
        let real_feat = di.features(&real_img, true);
        let (real, real_cls) = di.judge(&real_feat, &s_t, &h_t, true);
        let (fake, _) = di.forward_t(&fwd.fake_img.detach(), &s_t, &h_t, true);
        let (wrong, _) = di.judge(&real_feat, &s_t.roll([1], [0]), &h_t.roll([1], [0]), true);
        let loss_di = alpha * loss::discriminator(&real, &fake, &wrong) + cfg.aux_real_weight * loss::multi_label(&real_cls, &labels_t);
        drop(amp);
        if skip(REPORTED[0], &loss_di) {
            return Ok(None);
        }
        let g = Adam::backward(&loss_di, &[&self.opt_di]).remove(0);
        self.opt_di.step(&g, lr_d);
        let d_real = real.sigmoid().mean(Kind::Float).detach();
        let d_fake = fake.sigmoid().mean(Kind::Float).detach();
        let aux_accuracy = real_cls.gt(0.0).to_kind(Kind::Float).eq_tensor(&labels_t).to_kind(Kind::Float).mean(Kind::Float);

        // Story discriminator, the same way over whole stories.
        let mut d_story = Tensor::zeros([], (Kind::Float, self.device));
        if let (Some(ds), Some(opt)) = (&self.model.ds, &mut self.opt_ds) {
            let amp = self.precision.autocast(self.device)?;
            let s = fwd.s_story.detach();
            let real_feat = ds.features(&story.images, true);
            let real = ds.judge(&real_feat, &s);
            let fake = ds.forward_t(&fwd.fake_story.detach(), &s, true);
            let wrong = ds.judge(&real_feat, &s.roll([1], [0]));
            let l = beta * loss::discriminator(&real, &fake, &wrong);
            drop(amp);
            if skip(REPORTED[1], &l) {
                return Ok(None);
            }
            let g = Adam::backward(&l, &[opt]).remove(0);
            opt.step(&g, lr_d);
            d_story = l.detach();
        }

        // Generator steps (the first reuses this iteration's forward pass).
        let zero = || Tensor::zeros([], (Kind::Float, self.device));
        let (mut g_total, mut kl_total, mut text_total) = (zero(), zero(), zero());
        let mut fwd = Some(fwd);
        for _ in 0..cfg.g_steps {
            let amp = self.precision.autocast(self.device)?;
            let f = match fwd.take() {
                Some(f) => f,
                None => self.generate(story, img, frames),
            };
            let s_t = pick_frames(&f.s_img, frames).detach();
            let h_t = pick_frames(&f.cond_img, frames).detach();
            let (fake, fake_cls) = self.model.di.forward_t(&f.fake_img, &s_t, &h_t, true);
            let mut l = alpha * loss::generator(&fake) + cfg.aux_fake_weight * loss::multi_label(&fake_cls, &labels_t);
            if let Some(ds) = &self.model.ds {
                l += beta * loss::generator(&ds.forward_t(&f.fake_story, &f.s_story.detach(), true));
            }
            let kl = &f.kl_story + &f.kl_img;
            l += cfg.kl_weight * &kl;
            if let Some(head) = &self.model.g.text_labels {
                // Each sentence names the object its frame adds.
                let t = loss::multi_label(&tch::nn::Module::forward(head, &f.s_story), &story.added);
                text_total += t.detach();
                l += cfg.text_aux_weight * t;
            }
            drop(amp);
            if skip(REPORTED[2], &l) {
                return Ok(None);
            }
            let opts: Vec<&Adam> = std::iter::once(&self.opt_g).chain(self.opt_text.as_ref()).collect();
            let grads = Adam::backward(&l, &opts);
            self.opt_g.step(&grads[0], lr_g);
            if let Some(o) = &mut self.opt_text {
                o.step(&grads[1], lr_text);
            }
            g_total += l.detach();
            kl_total += kl.detach();
        }
        let n = cfg.g_steps as f64;
        let reported = [loss_di.detach(), d_story, g_total / n, kl_total / n, text_total / n, d_real, d_fake, aux_accuracy];
        Ok(Some(Tensor::stack(&reported, 0)))
    }

    /// The generator's forward pass on both batches.
    fn generate(&self, story: &Batch, img: &Batch, frames: &Tensor) -> Forward {
        let g = &self.model.g;
        // The encodings G sees pass on only a share of the GAN's gradient to the encoder.
        let k = self.cfg.text_gan_gradient;
        let scaled = |s: &Tensor| s.detach() * (1.0 - k) + s * k;
        let s_story = g.encode_text(&story.text);
        let ctx = g.context(&scaled(&s_story), true);
        let fake_story = g.decode_story(&ctx, true);
        let s_img = g.encode_text(&img.text);
        let ctx_img = g.context(&scaled(&s_img), true);
        let fake_img = g.decode_frames(&ctx_img, frames, true);
        Forward { s_story, fake_story, kl_story: ctx.kl, s_img, cond_img: ctx_img.cond, fake_img, kl_img: ctx_img.kl }
    }

    /// A grid: per held-out story, its ground truth frames and then the generated ones.
    fn sample_grid(&self, step: usize) -> Result<()> {
        let n = self.samples.len() as i64;
        let batch = self.samples.batch(&(0..n).collect::<Vec<_>>(), self.device);
        tch::manual_seed(mix(self.cfg.seed, 0x5A) as i64);
        let fake = self.model.g.draw(&batch.text);
        let t = self.cfg.frames;
        let layout = StripLayout::for_frame_size(64);
        let mut sheet = paper(layout.width(2 * t as u32), n as u32 * layout.row_height() + layout.gap);
        for i in 0..n {
            let mut strip = Vec::new();
            for (which, src) in [(0, &batch.images), (1, &fake)] {
                for f in 0..t {
                    let rgb = to_rgb8(&src.get(i).get(f as i64));
                    let img = image::RgbImage::from_raw(64, 64, rgb).expect("64×64 frame");
                    let caption = if which == 0 { self.samples.sentences[i as usize][f].clone() } else { String::new() };
                    strip.push((img, caption));
                }
            }
            let title = format!("story {}: ground truth | generated (step {step})", self.samples.ids[i as usize]);
            layout.draw_row(&mut sheet, layout.gap + i as u32 * layout.row_height(), &title, &strip);
        }
        save_png(&sheet, &self.run_dir.join("samples").join(format!("{}.png", checkpoint::step_name(step))))
    }

    fn save(&self, step: usize, rollbacks: usize) -> Result<PathBuf> {
        let mut opts: Vec<(&str, &Adam)> = vec![("generator", &self.opt_g), ("image_d", &self.opt_di)];
        if let Some(o) = &self.opt_text {
            opts.push(("text", o));
        }
        if let Some(o) = &self.opt_ds {
            opts.push(("story_d", o));
        }
        let snap = checkpoint::Snapshot { cfg: &self.cfg, vocab: &self.vocab, shape: self.shape, step, rollbacks, data_digest: &self.data_digest };
        checkpoint::save(&self.run_dir.join("checkpoints"), &self.model, &opts, &snap)
    }

    /// Restores weights and optimiser state; returns (step, roll-backs).
    fn restore(&mut self, dir: &Path) -> Result<(usize, usize)> {
        let manifest = checkpoint::verify(dir)?;
        let mut opts: Vec<(&str, &mut Adam)> = vec![("generator", &mut self.opt_g), ("image_d", &mut self.opt_di)];
        if let Some(o) = &mut self.opt_text {
            opts.push(("text", o));
        }
        if let Some(o) = &mut self.opt_ds {
            opts.push(("story_d", o));
        }
        // The optimiser state first: it also tells a generator-only export from a checkpoint.
        checkpoint::load_optimizers(dir, &manifest, &mut opts)?;
        checkpoint::load_model(dir, &mut self.model)?;
        Ok((manifest.step, manifest.rollbacks))
    }
}

struct Forward {
    s_story: Tensor,
    fake_story: Tensor,
    kl_story: Tensor,
    s_img: Tensor,
    cond_img: Tensor,
    fake_img: Tensor,
    kl_img: Tensor,
}

/// The generator's text-encoder variables (trained at `lr_text`).
fn is_text(name: &str) -> bool {
    name.starts_with("sentence.") || name.starts_with("text_labels.")
}

/// Writes the loss-curve PNG from `stats.jsonl`.
pub fn plot_losses(run_dir: &Path) -> Result<()> {
    let text = fs::read_to_string(run_dir.join(crate::run_dir::STATS)).unwrap_or_default();
    let keys = ["loss_d_image", "loss_d_story", "loss_g", "loss_kl", "loss_text"];
    let mut series: Vec<(String, Vec<(f64, f64)>)> = keys.iter().map(|k| (k.to_string(), vec![])).collect();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let step = v["step"].as_f64().unwrap_or(f64::NAN);
        for (k, s) in keys.iter().zip(series.iter_mut()) {
            s.1.push((step, v[*k].as_f64().unwrap_or(f64::NAN)));
        }
    }
    series.retain(|(_, p)| p.iter().any(|(_, y)| *y != 0.0));
    save_png(&line_chart("training losses", &series), &run_dir.join("loss.png"))
}

/// Runs training. `on_step(step, total)` is called after every iteration; `stop` asks the loop
/// to save a checkpoint and return after the current iteration.
pub fn train(req: TrainRequest, on_step: &dyn Fn(usize, usize, Option<&Stats>), stop: &AtomicBool) -> Result<Outcome> {
    let ds = Dataset::open(&req.data)?;
    let data_digest = checkpoint::sha256(&ds.dir.join("manifest.jsonl"))?;
    let (cfg, resume_from, run_dir, vocab) = match &req.start {
        Start::Fresh { runs } => {
            check_compatible(&ds, &req.config)?;
            let vocab = Vocab::build(ds.split(Split::Train).flat_map(|s| s.frames.iter().map(|f| f.sentence.as_str())));
            (req.config.clone(), None, runs.clone(), vocab)
        }
        Start::Resume(path) => {
            let dir = checkpoint::resolve(path)?;
            let manifest = checkpoint::verify(&dir)?;
            if let Some(want) = &manifest.data_digest {
                ensure!(
                    *want == data_digest,
                    "{} trained on other data than {} (its manifest.jsonl differs): resume it with the dataset it was trained on (named in the run's run.json)",
                    dir.display(),
                    ds.dir.display()
                );
            }
            let (cfg, vocab) = checkpoint::load_config(&dir)?;
            ensure!(cfg.preset == req.config.preset, "the checkpoint {} is from preset {}, not {}", dir.display(), cfg.preset, req.config.preset);
            let run_dir = dir.parent().and_then(Path::parent).map(Path::to_path_buf).context("checkpoint outside a run directory")?;
            (cfg.resumed_with(&req.overrides)?, Some(dir), run_dir, vocab)
        }
    };
    check_compatible(&ds, &cfg)?;
    let train_stories: Vec<_> = ds.split(Split::Train).collect();
    ensure!(train_stories.len() >= 2, "{} has {} training stories; at least 2 are needed", ds.dir.display(), train_stories.len());
    let mut sample_stories: Vec<_> = ds.split(Split::Test).take(SAMPLE_STORIES).collect();
    if sample_stories.is_empty() {
        sample_stories = train_stories.iter().take(SAMPLE_STORIES).copied().collect();
    }
    if cfg.text == TextInput::Sentence {
        ensure!(!vocab.is_empty(), "the training sentences contain no words");
    }
    // On a GPU the whole training set lives on the device (10,000 stories at 64×64: 0.5 GB
    // of u8), so drawing a batch is a gather there.
    let train = StoryData::load(&ds, &train_stories, &cfg, &vocab)?.to_device(req.runtime.device);
    let samples = StoryData::load(&ds, &sample_stories, &cfg, &vocab)?;
    let shape = DataShape { vocab: vocab.len(), vector_len: ds.header.vector_len as i64, labels: ds.header.label_names.len() as i64 };
    // A fresh run's numbered directory is made only once the data has loaded.
    let run_dir = if resume_from.is_some() { run_dir } else { new_run_dir(&run_dir, &cfg.preset)? };
    let preset = cfg.preset.clone();
    let mut t = Trainer::new(cfg, shape, train, samples, vocab, run_dir, req.runtime.device);
    t.data_digest = data_digest;
    t.set_runtime(req.runtime)?;

    let (mut step, mut rollbacks) = (0, 0);
    let mut resume_from = resume_from;
    match resume_from.clone() {
        Some(dir) => {
            (step, rollbacks) = t.restore(&dir)?;
            let newest = checkpoint::newest_step(&t.run_dir.join("checkpoints")).unwrap_or(step);
            if newest > step && t.total_steps() > step {
                // Continuing here would overwrite the checkpoints after `step` and interleave
                // two histories in one record: continue in a new run directory instead.
                let forked = fork(&t.run_dir, &dir, step, &preset)?;
                eprintln!(
                    "resuming from {} (step {step}); {} has newer checkpoints (up to step {newest}), so this continues in a new run directory {}",
                    dir.display(),
                    t.run_dir.display(),
                    forked.display()
                );
                resume_from = Some(forked.join("checkpoints").join(checkpoint::step_name(step)));
                t.run_dir = forked;
            } else {
                eprintln!("resuming from {} (step {step})", dir.display());
            }
        }
        None => {
            storyvis_data::atomic::write_file(&t.run_dir.join("config.toml"), t.cfg.to_toml().as_bytes())?;
            storyvis_data::atomic::write_file(&t.run_dir.join("vocab.json"), t.vocab.save_json().as_bytes())?;
            let mut info = serde_json::json!({
                "data": ds.dir.display().to_string(),
                "train_stories": t.train.len(),
                "device": format!("{:?}", req.runtime.device),
                "precision": req.runtime.precision.to_string(),
                "channels_last": req.runtime.channels_last,
                "parameters": {},
            });
            for (name, vs) in t.model.stores() {
                info["parameters"][name] = parameters(vs).into();
            }
            storyvis_data::atomic::write_file(&t.run_dir.join("run.json"), serde_json::to_string_pretty(&info)?.as_bytes())?;
        }
    }
    let total = t.total_steps();
    // The record holds exactly the steps up to where this run continues.
    let mut stats_file = cut_stats(&t.run_dir, step)?;
    let (first_step, mut iterations) = (step, 0);
    let mut last_ckpt = resume_from.clone();
    let mut timer = Instant::now();
    let mut since_log = 0usize;
    let mut interrupted = false;
    // Reported values not yet read back: read at every log, sample and checkpoint step (so no
    // non-finite state is ever saved) and at the end.
    let mut pending: Vec<(usize, Tensor)> = Vec::new();
    while step < total {
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        if let Some(values) = t.iteration(step, rollbacks)? {
            pending.push((step + 1, values));
        }
        step += 1;
        iterations += 1;
        since_log += 1;
        let log = step % t.cfg.log_every == 0 || step == total;
        let sample = step % t.cfg.sample_every == 0 || step == total;
        let save = step % t.cfg.checkpoint_every == 0 || step == total;
        let mut logged = None;
        if log || sample || save {
            let newest = match read_back(&mut pending) {
                Ok(newest) => newest,
                Err(e) if t.cfg.nonfinite == NonFinite::Rollback => {
                    rollbacks += 1;
                    ensure!(rollbacks <= t.cfg.max_rollbacks, "{e}; gave up after {} roll-backs", t.cfg.max_rollbacks);
                    let dir = last_ckpt.clone().with_context(|| format!("{e}; no checkpoint to roll back to"))?;
                    eprintln!("warning: {e}; rolling back to {}", dir.display());
                    (step, _) = t.restore(&dir)?;
                    // The steps logged after the checkpoint are run again: drop them.
                    stats_file = cut_stats(&t.run_dir, step)?;
                    (timer, since_log) = (Instant::now(), 0);
                    continue;
                }
                Err(e) => bail!("{e}"),
            };
            if let (true, Some((at, v))) = (log, newest.filter(|(at, _)| *at == step)) {
                let epoch = (at - 1) / t.iters_per_epoch;
                let s = Stats {
                    step: at,
                    epoch,
                    lr_g: t.lr(t.cfg.lr_g, epoch),
                    loss_d_image: v[0],
                    loss_d_story: v[1],
                    loss_g: v[2],
                    loss_kl: v[3],
                    loss_text: v[4],
                    d_real: v[5],
                    d_fake: v[6],
                    aux_accuracy: v[7],
                    seconds_per_iteration: timer.elapsed().as_secs_f64() / since_log as f64,
                };
                writeln!(stats_file, "{}", serde_json::to_string(&s)?)?;
                (timer, since_log) = (Instant::now(), 0);
                logged = Some(s);
            }
        }
        if sample {
            t.sample_grid(step)?;
            plot_losses(&t.run_dir)?;
        }
        if save {
            last_ckpt = Some(t.save(step, rollbacks)?);
        }
        on_step(step, total, logged.as_ref());
    }
    if last_ckpt.as_ref().is_none_or(|c| !c.ends_with(checkpoint::step_name(step))) {
        if let Err(e) = read_back(&mut pending) {
            bail!("{e}; stopped without saving (the last good checkpoint is kept)");
        }
        last_ckpt = Some(t.save(step, rollbacks)?);
        plot_losses(&t.run_dir)?;
    }
    Ok(Outcome { run_dir: t.run_dir, checkpoint: last_ckpt.expect("saved"), steps: step, first_step, iterations, interrupted })
}

/// What `bench_iterations` measured.
pub struct IterationTimes {
    /// Milliseconds per training iteration, each ended by a device synchronisation.
    pub train_ms: Vec<f64>,
    /// Milliseconds to draw one story (eval mode, no gradients), synchronised.
    pub sample_ms: Vec<f64>,
    /// Parameters per network (generator, image_d, story_d).
    pub parameters: Vec<(&'static str, i64)>,
}

/// Times training iterations and story sampling of `cfg` on `data` (after `warmup` untimed
/// iterations): the loop `train` runs, minus saving and logging.
pub fn bench_iterations(
    cfg: Config,
    shape: DataShape,
    data: StoryData,
    runtime: Runtime,
    warmup: usize,
    iterations: usize,
    draws: usize,
) -> Result<IterationTimes> {
    let Runtime { device, precision, .. } = runtime;
    // Milliseconds of each of `n` calls after `warmup` untimed ones, each between two device
    // synchronisations.
    let timed = |n: usize, f: &mut dyn FnMut(usize) -> Result<()>| -> Result<Vec<f64>> {
        let sync = || {
            if let Device::Cuda(i) = device {
                tch::Cuda::synchronize(i as i64);
            }
        };
        let mut ms = Vec::with_capacity(n);
        for i in 0..warmup + n {
            sync();
            let start = Instant::now();
            f(i)?;
            sync();
            if i >= warmup {
                ms.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        Ok(ms)
    };
    let samples = StoryData::synthetic(&cfg, shape, 1, cfg.seed + 1);
    let one = samples.batch(&[0], device);
    let mut t = Trainer::headless(cfg, shape, data.to_device(device), samples, device);
    t.set_runtime(runtime)?;
    let parameters = t.model.stores().into_iter().map(|(n, vs)| (n, parameters(vs))).collect();
    let train_ms = timed(iterations, &mut |step| t.iteration(step, 0).map(drop))?;
    let sample_ms = timed(draws, &mut |_| {
        let _amp = precision.autocast(device)?;
        let _ = t.model.g.draw(&one.text);
        Ok(())
    })?;
    Ok(IterationTimes { train_ms, sample_ms, parameters })
}

/// One iteration on the CPU from the weights in `weights` (generator/image_d/story_d
/// safetensors), given batches, frame picks and noise (`Generator::feed_noise` order): what the
/// parity test against the PyTorch implementation (bench/pytorch_storygan.py) runs. Returns the
/// `REPORTED` values and the networks after the updates. `runtime`: the CPU in fp32 for the
/// parity check; bf16 or channels-last to compare those with it.
#[allow(clippy::too_many_arguments)]
pub fn one_iteration(
    cfg: Config,
    shape: DataShape,
    weights: &Path,
    story: &Batch,
    img: &Batch,
    frames: &Tensor,
    noise: Vec<Tensor>,
    runtime: Runtime,
) -> Result<(Vec<f64>, StoryGan)> {
    ensure!(runtime.device == Device::Cpu, "the parity check runs on the CPU");
    let data = || StoryData::synthetic(&cfg, shape, 2, 0);
    let mut t = Trainer::headless(cfg.clone(), shape, data(), data(), Device::Cpu);
    checkpoint::load_model(weights, &mut t.model)?;
    t.set_runtime(runtime)?;
    t.model.g.feed_noise(noise);
    let values = t.update(0, story, img, frames)?.context("an iteration skipped its update")?;
    let values = Vec::<f64>::try_from(values.to_kind(Kind::Double)).context("reported values")?;
    Ok((values, t.model))
}
