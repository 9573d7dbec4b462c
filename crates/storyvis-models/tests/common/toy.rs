//! The toy family: a two-layer GAN over a dataset's mean frame colours (three numbers per
//! frame), small enough that a loop test runs in a second. It has the parts every family has
//! (two networks, two optimisers, two phases, reported values, a sample sheet) and a fault
//! injector that makes a loss or only a gradient NaN at a chosen step, which is what the
//! loop's non-finite policies are tested with.

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use storyvis_core::checkpoint::{self, Weights};
use storyvis_core::config::{check_adam, range};
use storyvis_core::data::to_unit;
use storyvis_core::drawer::{About, Checked, Drawer, Input, Layout, Picture};
use storyvis_core::evaluation::Evaluated;
use storyvis_core::family::{Draw, Family, FamilyEntry, OptimizerSpec, Phase, Report, Reported};
use storyvis_core::input::Fit;
use storyvis_core::loss;
use storyvis_core::nn::{leaky, linear};
use storyvis_core::train::mix;
use storyvis_data::dataset::{Dataset, Split, StoryRecord};
use storyvis_data::rng::Rng;
use tch::nn::{Module, VarStore};
use tch::{Device, Kind, Tensor};

pub const FAMILY: FamilyEntry = FamilyEntry {
    name: "toy",
    about: "a two-layer GAN over mean frame colours, for testing the training loop",
    presets: &[("toy", include_str!("toy.toml"))],
    check: |cfg| Config::of(cfg).map(drop),
    build,
    training_only: |_| vec!["discriminator"],
    drawer: Some(load_drawer),
    recipe: &[],
    evaluated: Some(load_evaluated),
    synthetic: Some(synthetic),
};

/// Where the injected NaN goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NanIn {
    /// The generator's loss is NaN.
    Loss,
    /// The generator's loss stays finite but its gradient is NaN (0 · √0: the value 0, the
    /// derivative 0 · ∞).
    Gradient,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub noise_dim: i64,
    pub hidden: i64,
    pub batch: i64,
    pub lr_g: f64,
    pub lr_d: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// At this step (1-based; 0: never) the generator phase gets a NaN ...
    pub nan_step: usize,
    /// ... in its loss or only in its gradient ...
    pub nan_in: NanIn,
    /// ... on the first this many attempts (a roll-back is another attempt).
    pub nan_times: usize,
}

impl Config {
    pub fn of(cfg: &storyvis_core::config::Config) -> Result<Config> {
        let c: Config = cfg.model()?;
        range("noise_dim", c.noise_dim, 1, 1024)?;
        range("hidden", c.hidden, 1, 4096)?;
        range("batch", c.batch, 1, 4096)?;
        check_adam(&[("lr_g", c.lr_g), ("lr_d", c.lr_d)], c.beta1, c.beta2)?;
        Ok(c)
    }
}

fn build(
    cfg: &storyvis_core::config::Config,
    ds: &Dataset,
    _from: Option<&Path>,
    device: Device,
) -> Result<Box<dyn Family>> {
    let c = Config::of(cfg)?;
    let mut colours = Vec::new();
    for story in ds.split(Split::Train) {
        for frame in &story.frames {
            let img = ds.load_image(frame)?;
            let t = Tensor::from_slice(img.as_raw()).view([-1, 3]);
            colours.push(to_unit(&t).mean_dim(0, false, Kind::Float));
        }
    }
    ensure!(
        colours.len() >= 2,
        "{} has {} training frames; the toy family needs at least 2",
        ds.dir.display(),
        colours.len()
    );
    Ok(Box::new(Toy::new(c, Tensor::stack(&colours, 0).to_device(device), device)))
}

struct Nets {
    g_vs: VarStore,
    g: tch::nn::Sequential,
    d_vs: VarStore,
    d: tch::nn::Sequential,
}

pub struct Toy {
    cfg: Config,
    nets: Nets,
    /// Mean colours of the training frames [N, 3] in [−1, 1].
    data: Tensor,
    device: Device,
    /// The iteration's real batch, its noise for each phase (drawn whole on the host and
    /// sharded, so that the toy trains the same for any number of processes), its attempt,
    /// and its reported values.
    real: Option<Tensor>,
    noise: Option<[Tensor; 2]>,
    at: Option<Draw>,
    report: Option<Report>,
}

impl Toy {
    fn new(cfg: Config, data: Tensor, device: Device) -> Toy {
        let (g_vs, d_vs) = (VarStore::new(device), VarStore::new(device));
        let h = cfg.hidden;
        let g = tch::nn::seq()
            .add(linear(g_vs.root() / "fc1", cfg.noise_dim, h, true))
            .add_fn(|x| x.relu())
            .add(linear(g_vs.root() / "fc2", h, 3, true))
            .add_fn(|x| x.tanh());
        let d = tch::nn::seq()
            .add(linear(d_vs.root() / "fc1", 3, h, true))
            .add_fn(leaky)
            .add(linear(d_vs.root() / "fc2", h, 1, true));
        Toy {
            cfg,
            nets: Nets { g_vs, g, d_vs, d },
            data,
            device,
            real: None,
            noise: None,
            at: None,
            report: None,
        }
    }

    fn fake(&self) -> Tensor {
        self.nets.g.forward(&Tensor::randn(
            [self.cfg.batch, self.cfg.noise_dim],
            (Kind::Float, self.device),
        ))
    }

    /// Whether this attempt at this step gets the injected NaN.
    fn inject(&self) -> bool {
        self.at
            .is_some_and(|at| at.step + 1 == self.cfg.nan_step && at.rollbacks < self.cfg.nan_times)
    }
}

impl Family for Toy {
    storyvis_core::networks!(self;
        "generator" => nets.g_vs,
        "discriminator" => nets.d_vs,
    );

    fn optimizers(&self) -> Vec<OptimizerSpec> {
        let c = &self.cfg;
        vec![
            OptimizerSpec::whole("generator", c.lr_g, c.beta1, c.beta2),
            OptimizerSpec::whole("discriminator", c.lr_d, c.beta1, c.beta2),
        ]
    }

    fn iters_per_epoch(&self) -> usize {
        (self.data.size()[0] / self.cfg.batch).max(1) as usize
    }

    fn batches(&self) -> Vec<(&'static str, usize)> {
        vec![("batch", self.cfg.batch as usize)]
    }

    fn phases(&self) -> Vec<Phase> {
        vec![
            Phase::new("discriminator", &["discriminator"]),
            Phase::new("generator", &["generator"]),
        ]
    }

    fn reported(&self) -> Vec<Reported> {
        vec![
            Reported { key: "loss_d", label: "discriminator", checked: true },
            Reported { key: "loss_g", label: "generator", checked: true },
            Reported { key: "fake_mean", label: "mean generated value", checked: false },
        ]
    }

    fn begin(&mut self, at: Draw) -> Result<()> {
        let n = self.data.size()[0] as usize;
        let mut rng = Rng::for_item(storyvis_core::train::mix(at.seed, 7), at.step as u64);
        let idx: Vec<i64> = (0..self.cfg.batch).map(|_| rng.below(n) as i64).collect();
        let idx = at.shard.take(&idx);
        self.real =
            Some(self.data.index_select(0, &Tensor::from_slice(&idx).to_device(self.device)));
        let stream = mix(mix(at.seed, at.step as u64), at.rollbacks as u64);
        let (b, d) = (self.cfg.batch as usize, self.cfg.noise_dim as usize);
        self.noise = Some([1, 2].map(|k| at.shard.normal(b, d, mix(stream, k), self.device)));
        self.at = Some(at);
        self.report = Some(Report::new(&self.reported(), self.device));
        Ok(())
    }

    fn loss(&mut self, phase: &str) -> Result<Tensor> {
        let real = self.real.as_ref().context("a phase outside an iteration")?;
        let inject = self.inject();
        let report = self.report.as_mut().context("a phase outside an iteration")?;
        let noise = self.noise.as_ref().context("a phase outside an iteration")?;
        let fake = self.nets.g.forward(&noise[(phase != "discriminator") as usize]);
        if phase == "discriminator" {
            let (r, f) = (self.nets.d.forward(real), self.nets.d.forward(&fake.detach()));
            // The matching-aware loss with no mismatched pairs: real → 1, fake → 0.
            let l = loss::discriminator(&r, &f, &f);
            report.set("loss_d", &l);
            return Ok(l);
        }
        ensure!(phase == "generator", "the toy family has no phase {phase:?}");
        let mut l = loss::generator(&self.nets.d.forward(&fake));
        if inject {
            let p = self.nets.g_vs.trainable_variables().remove(0);
            l = match self.cfg.nan_in {
                NanIn::Loss => l + f64::NAN,
                NanIn::Gradient => l + (p.sum(Kind::Float) * 0.0).sqrt() * 0.0,
            };
        }
        report.set("loss_g", &l);
        report.set("fake_mean", &fake.mean(Kind::Float));
        Ok(l)
    }

    fn finish(&mut self) -> Result<Report> {
        self.report.take().context("an iteration's end without its start")
    }

    fn draw_once(&self) -> Result<()> {
        let _ = self.fake();
        Ok(())
    }

    fn set_channels_last(&mut self, _on: bool) {}

    /// Two rows of swatches: real mean colours above, generated ones below.
    fn sample_sheet(&self, _step: usize, seed: u64) -> Result<image::RgbImage> {
        const N: i64 = 16;
        const SIDE: u32 = 12;
        tch::manual_seed(storyvis_core::train::mix(seed, 0x5A) as i64);
        let fake = tch::no_grad(|| {
            self.nets.g.forward(&Tensor::randn([N, self.cfg.noise_dim], (Kind::Float, self.device)))
        });
        let real = self.data.narrow(0, 0, N.min(self.data.size()[0]));
        let mut sheet = image::RgbImage::new(N as u32 * SIDE, 2 * SIDE);
        for (row, src) in [&real, &fake].into_iter().enumerate() {
            let rgb: Vec<f32> = Vec::try_from(
                ((src.to_device(Device::Cpu) + 1.0) * 127.5).clamp(0.0, 255.0).flatten(0, -1),
            )?;
            for (i, c) in rgb.chunks(3).enumerate() {
                let px = image::Rgb([c[0] as u8, c[1] as u8, c[2] as u8]);
                for y in 0..SIDE {
                    for x in 0..SIDE {
                        sheet.put_pixel(i as u32 * SIDE + x, row as u32 * SIDE + y, px);
                    }
                }
            }
        }
        Ok(sheet)
    }

    fn files(&self) -> Vec<(&'static str, Vec<u8>)> {
        Vec::new()
    }

    fn shape(&self) -> serde_json::Value {
        serde_json::json!({ "colours": 3 })
    }

    fn data_summary(&self) -> serde_json::Value {
        serde_json::json!({ "train_frames": self.data.size()[0] })
    }

    fn averaged(&self) -> Vec<&'static str> {
        vec!["generator"]
    }
}

/// The toy family's benchmark hook: random colours for training data.
fn synthetic(cfg: &storyvis_core::config::Config, device: Device) -> Result<Box<dyn Family>> {
    let c = Config::of(cfg)?;
    let data = Tensor::rand([64, 3], (Kind::Float, device)) * 2.0 - 1.0;
    Ok(Box::new(Toy::new(c, data, device)))
}

/// A trained toy generator: it draws flat colours (and reads any text, ignoring it).
pub struct Loaded {
    cfg: Config,
    g_vs: VarStore,
    g: tch::nn::Sequential,
    checkpoint: PathBuf,
    step: usize,
    averaged: bool,
}

impl Loaded {
    fn load(dir: &Path, device: Device, weights: Weights) -> Result<Loaded> {
        let opened = checkpoint::open_to_draw(dir, &["toy"], weights)?;
        let cfg = Config::of(&opened.config)?;
        let mut toy = Toy::new(cfg.clone(), Tensor::zeros([2, 3], (Kind::Float, device)), device);
        checkpoint::load_store(&mut toy.nets.g_vs, &opened.generator)?;
        Ok(Loaded {
            cfg,
            g_vs: toy.nets.g_vs,
            g: toy.nets.g,
            checkpoint: opened.dir,
            step: opened.manifest.step,
            averaged: opened.averaged,
        })
    }

    /// `n` colours [n, 3] in [−1, 1] from libtorch's generator.
    fn colours(&self, n: i64) -> Tensor {
        tch::no_grad(|| {
            self.g
                .forward(&Tensor::randn([n, self.cfg.noise_dim], (Kind::Float, self.g_vs.device())))
        })
    }
}

fn load_drawer(dir: &Path, device: Device, weights: Weights) -> Result<Box<dyn Drawer>> {
    Ok(Box::new(Loaded::load(dir, device, weights)?))
}

fn load_evaluated(dir: &Path, device: Device, weights: Weights) -> Result<Box<dyn Evaluated>> {
    Ok(Box::new(Loaded::load(dir, device, weights)?))
}

impl Drawer for Loaded {
    fn input(&self) -> Input {
        Input::Caption
    }

    fn about(&self) -> About<'_> {
        About {
            family: "toy",
            step: self.step,
            checkpoint: &self.checkpoint,
            averaged: self.averaged,
        }
    }

    fn check(&self, text: &str, _fit: Fit) -> Result<Checked> {
        ensure!(!text.trim().is_empty(), "the caption is empty");
        Ok(Checked { sentences: vec![text.to_string()], unknown: Vec::new() })
    }

    /// One 8×8 swatch of the drawn colour per seed.
    fn draw_as(&self, _text: &Checked, seeds: &[u64], layout: &Layout) -> Result<Vec<Picture>> {
        ensure!(*layout == Layout::default(), "the toy family draws swatches only");
        seeds
            .iter()
            .map(|&seed| {
                tch::manual_seed(seed as i64);
                let c = self.colours(1).view([3, 1, 1]).expand([3, 8, 8], false);
                Picture::png(
                    format!("seed{seed:04}.png"),
                    Some(seed),
                    &storyvis_core::data::to_image(&c),
                )
            })
            .collect()
    }
}

impl Evaluated for Loaded {
    fn variant(&self) -> String {
        "toy".into()
    }

    /// Every item a flat colour, at the dataset's size: images [n, 3, S, S].
    fn draw_items(
        &self,
        ds: &Dataset,
        items: &[&StoryRecord],
        seeds: usize,
        batch: usize,
        sink: &mut dyn FnMut(Tensor) -> Result<()>,
    ) -> Result<()> {
        let s = ds.header.image_size as i64;
        let draw = |_: usize, n: usize| {
            let c = self.colours(n as i64).view([n as i64, 3, 1, 1]);
            Ok(c.expand([n as i64, 3, s, s], false).contiguous())
        };
        storyvis_core::evaluation::by_seed(items.len(), seeds, batch, &draw, sink)
    }
}

/// libtorch's random generator is global: runs take turns (`common::turn`), with the toy family
/// registered beside storyvis' own.
pub fn turn() -> std::sync::MutexGuard<'static, ()> {
    let turn = super::turn();
    storyvis_core::registry::register(&FAMILY);
    turn
}

/// The toy's usual training set: six rendered stories, all in the training split.
pub fn dataset(dir: &Path) {
    let opts = storyvis_data::clevr::GenerateOptions {
        stories: 6,
        seed: 3,
        split: 1.0,
        supersample: 1,
        ..Default::default()
    };
    storyvis_data::clevr::generate(&opts, dir, false, &|| {}).unwrap();
}
