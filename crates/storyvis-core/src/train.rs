//! The training loop every model family runs on (`family::Family`). It owns the run directory
//! (resolved config, the family's files, `run.json`, `stats.jsonl`, sample sheets, the loss
//! curve, checkpoints), seeding, backward passes and optimiser steps, the non-finite policy,
//! exact resume and Ctrl-C.
//!
//! Randomness is a function of (seed, step, roll-backs): libtorch's generator is reseeded every
//! iteration and families draw their batches from (seed, step), so a resumed run continues
//! exactly where the straight run would be.

use crate::checkpoint;
use crate::config::{Config, NonFinite, Run};
use crate::distributed::Group;
use crate::family::{Draw, Family, OptimizerSpec, Phase, Reported, Shard};
use crate::optim::Adam;
use crate::plot::line_chart;
use crate::precision::{Precision, Runtime};
use crate::run_dir::{cut_stats, fork, new_run_dir};
use anyhow::{bail, ensure, Context, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use storyvis_data::dataset::Dataset;
use storyvis_data::sheet::save_png;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

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
    /// On resume: `--set` overrides applied to the checkpoint's config (`config::RESUMABLE`).
    pub overrides: Vec<String>,
    pub data: PathBuf,
    pub start: Start,
    pub runtime: Runtime,
    /// The process group of a data-parallel run (`distributed`); None: one process.
    pub group: Option<Arc<Group>>,
}

/// One logged line of `stats.jsonl`: the step, its epoch, each optimiser's learning rate
/// (`lr_<name>`), the family's reported values, each optimiser's gradient norm over the
/// iteration (`grad_<name>`) and the time per iteration.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub step: usize,
    pub epoch: usize,
    /// (key, value), in the order written.
    pub values: Vec<(String, f64)>,
    pub seconds_per_iteration: f64,
}

impl Stats {
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The JSON line (keys in order).
    pub fn to_json(&self) -> String {
        let mut s = format!("{{\"step\":{},\"epoch\":{}", self.step, self.epoch);
        for (k, v) in &self.values {
            // JSON has no NaN: a non-finite diagnostic is written as null.
            let v =
                if v.is_finite() { serde_json::Value::from(*v) } else { serde_json::Value::Null };
            s += &format!(",{}:{v}", serde_json::Value::from(k.as_str()));
        }
        s + &format!(",\"seconds_per_iteration\":{}}}", self.seconds_per_iteration)
    }
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

pub use crate::streams::mix;

/// A value that was not finite, found when the loop read the values back.
#[derive(Debug)]
struct NonFiniteValue {
    what: String,
    value: f64,
    step: usize,
}

impl std::fmt::Display for NonFiniteValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "non-finite {} ({}) at step {}", self.what, self.value, self.step)
    }
}

/// The state of every network and optimiser at the start of an iteration (`nonfinite = skip`
/// restores it, so that a skipped iteration changes nothing).
struct Snapshot {
    variables: Vec<Vec<(String, Tensor)>>,
    moments: Vec<(Tensor, Tensor, i64)>,
}

/// A family with its optimisers: runs iterations.
pub struct Engine<F: Family + ?Sized> {
    pub family: Box<F>,
    specs: Vec<OptimizerSpec>,
    opts: Vec<Adam>,
    phases: Vec<Phase>,
    /// Each phase's optimisers, as indices into `opts`.
    phase_optimizers: Vec<Vec<usize>>,
    reported: Vec<Reported>,
    device: Device,
    precision: Precision,
    nonfinite: NonFinite,
    /// The moving averages: (network, its averaged copy), and the half-life in iterations.
    ema: Vec<(&'static str, VarStore)>,
    ema_half_life: usize,
    /// Batches of standing statistics for the averages (0: none).
    ema_standing: usize,
    /// The process group of a data-parallel run.
    group: Option<Arc<Group>>,
}

/// The averages' half-life ramps up over the first iterations: at iteration k it is at most
/// EMA_RAMPUP · k (StyleGAN2-ADA's `ema_rampup`), so the average does not hold on to the random
/// initialisation.
pub const EMA_RAMPUP: f64 = 0.05;

pub use crate::streams::STANDING_SALT;

/// Salts libtorch's generator per rank in a data-parallel run.
pub const RANK_SALT: u64 = 0x2A4C;

/// The weight of the old average after iteration `k` (1-based) at half-life `h` iterations:
/// β = 0.5^(1 / min(h, EMA_RAMPUP · k)), and average ← β · average + (1 − β) · weights.
pub fn ema_beta(h: usize, k: usize) -> f64 {
    0.5f64.powf(1.0 / (h as f64).min(EMA_RAMPUP * k as f64).max(1e-8))
}

/// A store holding a copy of every variable of `vs` under the same names, none trainable.
fn copy_store(vs: &VarStore) -> VarStore {
    let copy = VarStore::new(vs.device());
    tch::no_grad(|| {
        for (name, t) in vs.variables() {
            let mut parts: Vec<&str> = name.split('.').collect();
            let last = parts.pop().expect("a variable name");
            let p = parts.iter().fold(copy.root(), |p, part| p / *part);
            // The networks' variables are all f32, the store's kind.
            p.zeros_no_train(last, &t.size()).copy_(&t);
        }
    });
    copy
}

/// The variables of `vs` whose names `keep` accepts, in name order (the same on every rank).
fn sorted_variables(vs: &VarStore, keep: impl Fn(&str) -> bool) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> =
        vs.variables().into_iter().filter(|(n, _)| keep(n)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The network called `name` among a family's `networks()`.
fn network<'a>(nets: &[(&'static str, &'a VarStore)], name: &str) -> Option<&'a VarStore> {
    nets.iter().find(|(n, _)| *n == name).map(|(_, vs)| *vs)
}

/// Copies every variable of `src` into the same-named variable of `dest`.
fn copy_into(dest: &VarStore, src: &VarStore) {
    let d = dest.variables();
    tch::no_grad(|| {
        for (name, t) in src.variables() {
            d[&name].shallow_clone().copy_(&t);
        }
    });
}

impl<F: Family + ?Sized> Engine<F> {
    pub fn new(family: Box<F>, nonfinite: NonFinite, device: Device) -> Result<Engine<F>> {
        let specs = family.optimizers();
        let mut opts = Vec::with_capacity(specs.len());
        {
            let nets = family.networks();
            for s in &specs {
                let vs = network(&nets, s.network)
                    .with_context(|| format!("optimizer {} names no network", s.name))?;
                opts.push(Adam::new(vs, s.beta1, s.beta2, s.params));
            }
        }
        let (phases, reported) = (family.phases(), family.reported());
        let phase_optimizers = phases
            .iter()
            .map(|p| {
                p.optimizers
                    .iter()
                    .map(|o| {
                        specs.iter().position(|s| s.name == *o).with_context(|| {
                            format!(
                                "phase {} names optimizer {o}, which the family does not have",
                                p.name
                            )
                        })
                    })
                    .collect::<Result<Vec<usize>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Engine {
            family,
            specs,
            opts,
            phases,
            phase_optimizers,
            reported,
            device,
            precision: Precision::Fp32,
            nonfinite,
            ema: Vec::new(),
            ema_half_life: 0,
            ema_standing: 0,
            group: None,
        })
    }

    /// Trains as one rank of `group` (data parallel, PyTorch's DistributedDataParallel): each
    /// rank takes its part of every batch (`Shard`), gradients are averaged across the ranks
    /// before every optimiser step, and reported values are averaged. Every batch the family
    /// draws must split evenly.
    pub fn set_group(&mut self, group: Arc<Group>) -> Result<()> {
        let world = group.world();
        for (key, b) in self.family.batches() {
            // Two items a rank at least: batch norm's running variance of one item is 0/0.
            let fits = b % world == 0 && b / world >= 2;
            ensure!(
                fits,
                "{key} = {b} does not split across {world} processes into parts of 2 or more: the global batch is the config's, each process takes {key} / {world} of it (a new run can --set {key}={}; a resumed one keeps its batch: use a number of processes that divides it)",
                b.div_ceil(world).max(2) * world
            );
        }
        self.group = Some(group);
        Ok(())
    }

    /// Whether this process reports and writes: the only one, or rank 0 of a group.
    pub fn lead(&self) -> bool {
        crate::distributed::leads(self.group.as_deref())
    }

    /// This process's part of every batch.
    pub fn shard(&self) -> Shard {
        self.group.as_ref().map_or(Shard::WHOLE, |g| Shard { rank: g.rank(), world: g.world() })
    }

    /// Every rank's networks, moving averages and optimiser state become rank 0's (at the
    /// start and after a restore: identical weights everywhere, as DistributedDataParallel
    /// broadcasts them). Variables go in name order, which every rank shares.
    pub fn sync_state(&mut self) -> Result<()> {
        let Some(g) = self.group.clone() else {
            return Ok(());
        };
        let mut stores: Vec<&VarStore> =
            self.family.networks().into_iter().map(|(_, v)| v).collect();
        stores.extend(self.ema.iter().map(|(_, v)| v));
        tch::no_grad(|| -> Result<()> {
            // The variables (the optimisers' parameters are views into their flat buffers).
            for vs in stores {
                for (_, t) in sorted_variables(vs, |_| true) {
                    g.broadcast(&t.detach(), 0)?;
                }
            }
            for o in &mut self.opts {
                for t in o.moments_in_place() {
                    g.broadcast(t, 0)?;
                }
                o.step = g.broadcast_i64(o.step)?;
            }
            Ok(())
        })
    }

    /// Averages batch norm's running means and variances, which each rank keeps over its own
    /// part of the batches (as StyleGAN's training does), across the ranks, in the networks
    /// and in their moving averages (which copy them): done before every sample sheet and
    /// checkpoint, so that what is drawn and saved holds every rank's batches.
    fn average_buffers(&mut self) -> Result<()> {
        let Some(g) = self.group.clone() else {
            return Ok(());
        };
        let running = |n: &str| n.ends_with("running_mean") || n.ends_with("running_var");
        let nets = self.family.networks();
        for (_, vs) in &nets {
            for (_, mut t) in sorted_variables(vs, running) {
                tch::no_grad(|| g.all_reduce_mean(&mut t))?;
            }
        }
        for (name, avg) in &self.ema {
            let live = network(&nets, name).expect("an averaged network").variables();
            tch::no_grad(|| {
                for (n, mut a) in avg.variables().into_iter().filter(|(n, _)| running(n)) {
                    a.copy_(&live[&n]);
                }
            });
        }
        Ok(())
    }

    /// Keeps a moving average of the family's `averaged` networks from their current weights,
    /// with half-life `half_life` iterations (0: none), whose batch-norm statistics
    /// `refresh_averages` re-estimates over `standing` batches (0: copied from the networks).
    pub fn set_ema(&mut self, half_life: usize, standing: usize) -> Result<()> {
        // Standing statistics are those of a moving average: an error without one.
        ensure!(
            standing == 0 || half_life > 0,
            "ema_standing = {standing} re-estimates a moving average's statistics, but the run keeps none (ema_half_life = 0)"
        );
        self.ema_half_life = half_life;
        self.ema_standing = standing;
        self.ema.clear();
        if half_life == 0 {
            return Ok(());
        }
        let names = self.family.averaged();
        ensure!(
            !names.is_empty(),
            "ema_half_life = {half_life}, but this family names no network to average"
        );
        let nets = self.family.networks();
        for name in names {
            let vs = network(&nets, name)
                .with_context(|| format!("the family averages {name}, which it does not have"))?;
            self.ema.push((name, copy_store(vs)));
        }
        Ok(())
    }

    /// The averages, as checkpoints name them (`<network>_ema`).
    pub fn averages(&self) -> Vec<(String, &VarStore)> {
        self.ema.iter().map(|(n, vs)| (checkpoint::average_of(n), vs)).collect()
    }

    /// Moves the averages towards the weights after iteration `k` (1-based): trainable
    /// variables by β (`ema_beta`), others (batch-norm statistics) copied.
    fn update_ema(&mut self, k: usize) {
        if self.ema.is_empty() {
            return;
        }
        let beta = ema_beta(self.ema_half_life, k);
        let nets = self.family.networks();
        tch::no_grad(|| {
            for (name, avg) in &self.ema {
                let live = network(&nets, name).expect("an averaged network").variables();
                for (n, mut a) in avg.variables() {
                    let w = &live[&n];
                    if w.requires_grad() {
                        let next = w + (&a - w) * beta;
                        a.copy_(&next);
                    } else {
                        a.copy_(w);
                    }
                }
            }
        });
    }

    /// Runs `f` with the averaged weights in place of the networks' own (the family draws
    /// with them), then puts the own weights back. Without averages, `f` sees the weights.
    pub fn with_averages<T>(&mut self, f: impl FnOnce(&F) -> T) -> T {
        self.swap_averages(f, false)
    }

    /// Re-estimates the averages' batch-norm statistics by the family's `standing_passes`
    /// (BigGAN's standing statistics), when the run asks for them; the trainable variables of
    /// the averages and every variable of the networks stay as they are.
    pub fn refresh_averages(&mut self, seed: u64) -> Result<()> {
        if self.ema.is_empty() || self.ema_standing == 0 {
            return Ok(());
        }
        let batches = self.ema_standing;
        tch::manual_seed(mix(seed, STANDING_SALT) as i64);
        self.swap_averages(
            |f| {
                crate::nn::standing_statistics(|| tch::no_grad(|| f.standing_passes(batches, seed)))
            },
            true,
        )?;
        // Nothing non-finite is saved: statistics of an average that has diverged are an error.
        for (name, avg) in &self.ema {
            for (n, v) in avg.variables() {
                ensure!(
                    v.isfinite().all().int64_value(&[]) != 0,
                    "the standing statistics of the {name}'s moving average are not finite ({n})"
                );
            }
        }
        Ok(())
    }

    /// `with_averages`; with `keep`, what `f` leaves in the networks becomes the averages.
    fn swap_averages<T>(&mut self, f: impl FnOnce(&F) -> T, keep: bool) -> T {
        if self.ema.is_empty() {
            return f(&self.family);
        }
        let nets = self.family.networks();
        let mut saved = Vec::new();
        for (name, avg) in &self.ema {
            let live = network(&nets, name).expect("an averaged network");
            saved.push(copy_store(live));
            copy_into(live, avg);
        }
        drop(nets);
        let out = f(&self.family);
        let nets = self.family.networks();
        for ((name, avg), own) in self.ema.iter().zip(&saved) {
            let live = network(&nets, name).expect("an averaged network");
            if keep {
                copy_into(avg, live);
            }
            copy_into(live, own);
        }
        out
    }

    /// Each optimiser's learning rate in `epoch`: its own, times the family's schedule.
    fn learning_rates(&self, epoch: usize) -> Vec<f64> {
        let scale = self.family.lr_scale(epoch);
        self.specs.iter().map(|s| s.lr * scale).collect()
    }

    /// Runs the family at `runtime`'s precision and memory format (its device is the engine's).
    pub fn set_runtime(&mut self, runtime: Runtime) -> Result<()> {
        runtime.precision.apply(self.device)?;
        self.precision = runtime.precision;
        self.family.set_channels_last(runtime.channels_last);
        Ok(())
    }

    /// The names of what `iteration` returns, in order, and whether each must be finite: the
    /// family's values, then each optimiser's gradient norm.
    fn columns(&self) -> Vec<(String, String, bool)> {
        let mut c: Vec<_> = self
            .reported
            .iter()
            .map(|r| (r.key.to_string(), format!("{} loss", r.label), r.checked))
            .collect();
        c.extend(
            self.specs
                .iter()
                .map(|s| (format!("grad_{}", s.name), format!("{} gradient", s.name), true)),
        );
        c
    }

    fn snapshot(&self) -> Snapshot {
        let variables = self
            .family
            .networks()
            .iter()
            .map(|(_, vs)| {
                vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
            })
            .collect();
        Snapshot { variables, moments: self.opts.iter().map(Adam::moments).collect() }
    }

    fn restore_snapshot(&mut self, s: Snapshot) {
        tch::no_grad(|| {
            for ((_, vs), saved) in self.family.networks_mut().into_iter().zip(&s.variables) {
                let vars = vs.variables();
                for (n, t) in saved {
                    vars[n].shallow_clone().copy_(t);
                }
            }
        });
        for (o, m) in self.opts.iter_mut().zip(s.moments) {
            o.set_moments(m);
        }
    }

    /// One iteration at `at`; returns its values (`columns` order) as one tensor on the device,
    /// or None when a value was not finite and the policy is to skip (the whole iteration is
    /// then undone). Only the `skip` policy reads values inside the iteration (it must, to
    /// undo it before the next); otherwise the loop checks them in batches, so a GPU iteration
    /// never waits for the host. `reseed`: seed libtorch's generator from `at` first.
    pub fn iteration(&mut self, at: Draw, reseed: bool) -> Result<Option<Tensor>> {
        if reseed {
            let mut s = mix(mix(at.seed, at.step as u64), at.rollbacks as u64 + 3);
            if at.shard.world > 1 {
                // libtorch's generator (the families' noise) has a stream per rank; the host
                // streams of the batches are shared and sharded (`Shard`).
                s = mix(s, RANK_SALT + at.shard.rank as u64);
            }
            tch::manual_seed(s as i64);
        }
        let eager = self.nonfinite == NonFinite::Skip;
        let saved = eager.then(|| self.snapshot());
        let lrs = self.learning_rates(at.step / self.family.iters_per_epoch().max(1));
        {
            let _amp = self.precision.autocast(self.device)?;
            self.family.begin(at)?;
        }
        let mut sq: Vec<Tensor> =
            self.opts.iter().map(|_| Tensor::zeros([], (Kind::Float, self.device))).collect();
        for i in 0..self.phases.len() {
            // Forward passes run in the chosen precision (`amp`); backward passes and the
            // updates outside it.
            let amp = self.precision.autocast(self.device)?;
            let phase = &self.phases[i];
            let loss = self.family.loss(phase.name)?;
            drop(amp);
            let phase_optimizers = &self.phase_optimizers[i];
            let opts: Vec<&Adam> = phase_optimizers.iter().map(|&o| &self.opts[o]).collect();
            let mut grads = Adam::backward(&loss, &opts);
            if let Some(g) = &self.group {
                // DistributedDataParallel's average of the ranks' gradients: each rank's loss
                // is a mean over its part of the batch, so the average is the whole batch's.
                for grad in &mut grads {
                    g.all_reduce_mean(grad)?;
                }
            }
            let norms: Vec<Tensor> = grads.iter().map(|g| g.square().sum(Kind::Float)).collect();
            if eager {
                let l = loss.double_value(&[]);
                let mut bad = if !l.is_finite() {
                    Some(format!("{} loss", phase.name))
                } else {
                    // Every element finite (a squared norm can overflow where no element does).
                    let finite = |g: &Tensor| g.isfinite().all().int64_value(&[]) == 1;
                    phase_optimizers
                        .iter()
                        .zip(&grads)
                        .find(|(_, g)| !finite(g))
                        .map(|(&o, _)| format!("{} gradient", self.specs[o].name))
                };
                // Every rank skips, or none does.
                if let Some(g) = &self.group {
                    if g.any(bad.is_some())? && bad.is_none() {
                        bad = Some(format!("{} loss on another rank", phase.name));
                    }
                }
                if let Some(what) = bad {
                    if self.lead() {
                        eprintln!(
                            "warning: non-finite {what} at step {}; iteration skipped",
                            at.step + 1
                        );
                    }
                    self.restore_snapshot(saved.expect("snapshot"));
                    return Ok(None);
                }
            }
            for ((&o, g), n) in phase_optimizers.iter().zip(&grads).zip(norms) {
                self.opts[o].step(g, lrs[o]);
                sq[o] += n;
            }
        }
        let reported = self.family.finish()?.stacked()?.to_device(self.device);
        ensure!(
            reported.numel() == self.reported.len(),
            "the family reported {} values for its {} names",
            reported.numel(),
            self.reported.len()
        );
        let mut values = Tensor::cat(&[reported, Tensor::stack(&sq, 0).sqrt()], 0);
        if let Some(g) = &self.group {
            // The whole batch's values (the mean of the ranks' means), the same on every rank,
            // so that every rank takes the same decisions on them.
            g.all_reduce_mean(&mut values)?;
        }
        if eager {
            let v =
                Vec::<f64>::try_from(values.to_kind(Kind::Double)).context("reported values")?;
            if let Some(((_, what, _), x)) = self
                .columns()
                .iter()
                .zip(&v)
                .find(|((_, _, checked), x)| *checked && !x.is_finite())
            {
                if self.lead() {
                    eprintln!(
                        "warning: non-finite {what} ({x}) at step {}; iteration skipped",
                        at.step + 1
                    );
                }
                self.restore_snapshot(saved.expect("snapshot"));
                return Ok(None);
            }
        }
        self.update_ema(at.step + 1);
        Ok(Some(values))
    }

    /// Writes a checkpoint of the networks, their averages and the optimisers under `root`;
    /// returns its directory. In a data-parallel run rank 0 writes it, and every rank then
    /// waits until it is whole on disk (a roll-back reads it).
    pub fn save(
        &self,
        root: &Path,
        cfg: &Config,
        step: usize,
        rollbacks: usize,
        data_digest: &str,
    ) -> Result<PathBuf> {
        let dir = if self.lead() {
            let opts: Vec<(&str, &Adam)> =
                self.specs.iter().map(|s| s.name).zip(&self.opts).collect();
            let snap = checkpoint::Snapshot {
                cfg,
                files: self.family.files(),
                shape: self.family.shape(),
                step,
                rollbacks,
                data_digest,
            };
            let averages = self.averages();
            let mut networks = self.family.networks();
            networks.extend(averages.iter().map(|(n, vs)| (n.as_str(), *vs)));
            checkpoint::save(root, &networks, &opts, &snap)?
        } else {
            root.join(checkpoint::step_name(step))
        };
        if let Some(g) = &self.group {
            g.barrier()?;
        }
        Ok(dir)
    }

    /// Restores weights and optimiser state; returns (step, roll-backs).
    pub fn restore(&mut self, dir: &Path) -> Result<(usize, usize)> {
        let manifest = checkpoint::verify(dir)?;
        let mut opts: Vec<(&str, &mut Adam)> =
            self.specs.iter().map(|s| s.name).zip(self.opts.iter_mut()).collect();
        // The optimiser state first: it also tells a generator-only export from a checkpoint.
        checkpoint::load_optimizers(dir, &manifest, &mut opts)?;
        checkpoint::load_networks(dir, &mut self.family.networks_mut())?;
        for (name, avg) in &mut self.ema {
            let file = format!("{}.safetensors", checkpoint::average_of(name));
            ensure!(
                manifest.files.contains_key(&file),
                "{} holds no moving average of the {name} ({file}), which this run keeps",
                dir.display()
            );
            checkpoint::load_store(avg, &dir.join(&file))?;
        }
        Ok((manifest.step, manifest.rollbacks))
    }
}

/// Reads back the iterations' values (one host-device synchronisation for all of them) and
/// checks those that must be finite; returns the newest (step, values).
fn read_back(
    pending: &mut Vec<(usize, Tensor)>,
    columns: &[(String, String, bool)],
) -> std::result::Result<Option<(usize, Vec<f64>)>, NonFiniteValue> {
    if pending.is_empty() {
        return Ok(None);
    }
    let all = Tensor::stack(&pending.iter().map(|(_, t)| t.shallow_clone()).collect::<Vec<_>>(), 0);
    let values: Vec<f64> =
        Vec::try_from(all.to_kind(Kind::Double).flatten(0, -1)).expect("reported values");
    let steps: Vec<usize> = pending.drain(..).map(|(s, _)| s).collect();
    for (row, step) in values.chunks(columns.len()).zip(&steps) {
        if let Some(i) = (0..row.len()).find(|&i| columns[i].2 && !row[i].is_finite()) {
            return Err(NonFiniteValue { what: columns[i].1.clone(), value: row[i], step: *step });
        }
    }
    Ok(steps.last().map(|&s| (s, values[values.len() - columns.len()..].to_vec())))
}

/// Writes the loss-curve PNG from `stats.jsonl` (every `loss_*` column with a non-zero value).
pub fn plot_losses(run_dir: &Path) -> Result<()> {
    let text = fs::read_to_string(run_dir.join(crate::run_dir::STATS)).unwrap_or_default();
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for line in text.lines() {
        let Ok(serde_json::Value::Object(v)) = serde_json::from_str::<serde_json::Value>(line)
        else {
            continue;
        };
        let step = v.get("step").and_then(|s| s.as_f64()).unwrap_or(f64::NAN);
        for (k, y) in v.iter().filter(|(k, _)| k.starts_with("loss_")) {
            let y = y.as_f64().unwrap_or(f64::NAN);
            match series.iter_mut().find(|(name, _)| name == k) {
                Some(s) => s.1.push((step, y)),
                None => series.push((k.clone(), vec![(step, y)])),
            }
        }
    }
    series.retain(|(_, p)| p.iter().any(|(_, y)| *y != 0.0));
    save_png(&line_chart("training losses", &series), &run_dir.join("loss.png"))
}

fn total_steps(run: &Run, iters_per_epoch: usize) -> usize {
    if run.max_steps > 0 {
        run.max_steps
    } else {
        run.epochs * iters_per_epoch
    }
}

fn write_run_files(
    run_dir: &Path,
    cfg: &Config,
    family: &dyn Family,
    ds: &Dataset,
    runtime: Runtime,
) -> Result<()> {
    storyvis_data::atomic::write_file(&run_dir.join("config.toml"), cfg.to_toml().as_bytes())?;
    for (name, bytes) in family.files() {
        storyvis_data::atomic::write_file(&run_dir.join(name), &bytes)?;
    }
    let mut info = serde_json::json!({
        "family": cfg.family,
        "data": ds.dir.display().to_string(),
        "device": format!("{:?}", runtime.device),
        "precision": runtime.precision.to_string(),
        "channels_last": runtime.channels_last,
        "parameters": {},
    });
    if let serde_json::Value::Object(m) = family.data_summary() {
        info.as_object_mut().expect("object").extend(m);
    }
    for (name, vs) in family.networks() {
        info["parameters"][name] = parameters(vs).into();
    }
    storyvis_data::atomic::write_file(
        &run_dir.join("run.json"),
        serde_json::to_string_pretty(&info)?.as_bytes(),
    )
}

/// Parameter count of a store.
pub fn parameters(vs: &tch::nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}

/// Runs training. `on_step(step, total, stats)` is called after every iteration; `stop` asks
/// the loop to save a checkpoint and return after the current iteration.
///
/// In a data-parallel run (`req.group`) every rank runs this loop in step: rank 0 alone makes
/// and writes the run directory (config, statistics, sample sheets, checkpoints) and calls
/// `on_step`; the other ranks learn the run directory from it. Stopping (Ctrl-C, the time
/// budget) is agreed at every iteration, so all ranks stop at the same one.
pub fn train(
    req: TrainRequest,
    on_step: &dyn Fn(usize, usize, Option<&Stats>),
    stop: &AtomicBool,
) -> Result<Outcome> {
    let group = req.group.clone();
    let lead = crate::distributed::leads(group.as_deref());
    let ds = Dataset::open(&req.data)?;
    let data_digest = checkpoint::sha256(&ds.dir.join("manifest.jsonl"))?;
    let (cfg, resume_from, run_dir) = match &req.start {
        Start::Fresh { runs } => (req.config.clone(), None, runs.clone()),
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
            let cfg = checkpoint::load_config(&dir)?;
            ensure!(
                cfg.preset == req.config.preset,
                "the checkpoint {} is from preset {}, not {}",
                dir.display(),
                cfg.preset,
                req.config.preset
            );
            let run_dir = dir
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .context("checkpoint outside a run directory")?;
            (cfg.resumed_with(&req.overrides)?, Some(dir), run_dir)
        }
    };
    let entry = crate::registry::family(&cfg.family)?;
    tch::manual_seed(cfg.run.seed as i64);
    let family = (entry.build)(&cfg, &ds, resume_from.as_deref(), req.runtime.device)?;
    let mut t = Engine::new(family, cfg.run.nonfinite, req.runtime.device)?;
    t.set_runtime(req.runtime)?;
    t.set_ema(cfg.run.ema_half_life, cfg.run.ema_standing)?;
    if let Some(g) = &group {
        t.set_group(g.clone())?;
    }
    // A fresh run's numbered directory is made only once the data has loaded and the engine
    // has accepted the config (by rank 0; the other ranks learn it below).
    let mut run_dir =
        if resume_from.is_some() || !lead { run_dir } else { new_run_dir(&run_dir, &cfg.preset)? };

    let (mut step, mut rollbacks) = (0, 0);
    let mut resume_from = resume_from;
    match resume_from.clone() {
        Some(dir) => {
            (step, rollbacks) = t.restore(&dir)?;
            let newest = checkpoint::newest_step(&run_dir.join("checkpoints")).unwrap_or(step);
            if lead && newest > step && total_steps(&cfg.run, t.family.iters_per_epoch()) > step {
                // Continuing here would overwrite the checkpoints after `step` and interleave
                // two histories in one record: continue in a new run directory instead.
                let forked = fork(&run_dir, &dir, step, &cfg.preset)?;
                eprintln!(
                    "resuming from {} (step {step}); {} has newer checkpoints (up to step {newest}), so this continues in a new run directory {}",
                    dir.display(),
                    run_dir.display(),
                    forked.display()
                );
                resume_from = Some(forked.join("checkpoints").join(checkpoint::step_name(step)));
                run_dir = forked;
            } else if lead {
                eprintln!("resuming from {} (step {step})", dir.display());
            }
        }
        None if lead => write_run_files(&run_dir, &cfg, t.family.as_ref(), &ds, req.runtime)?,
        None => {}
    }
    if let Some(g) = &group {
        run_dir = g.share_path("run_dir", lead.then_some(run_dir.as_path()))?;
        // Identical weights and optimiser state everywhere, and the same step.
        t.sync_state()?;
        step = g.broadcast_i64(step as i64)? as usize;
        rollbacks = g.broadcast_i64(rollbacks as i64)? as usize;
        if lead {
            eprintln!(
                "training as {} processes, each taking its part of every batch ({})",
                g.world(),
                t.family
                    .batches()
                    .iter()
                    .map(|(k, b)| format!("{k} {}", b / g.world()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let run = cfg.run.clone();
    let ipe = t.family.iters_per_epoch().max(1);
    let total = total_steps(&run, ipe);
    let columns = t.columns();
    let ckpts = run_dir.join("checkpoints");
    // The record holds exactly the steps up to where this run continues.
    let mut stats_file = if lead { Some(cut_stats(&run_dir, step)?) } else { None };
    let (first_step, mut iterations) = (step, 0);
    let mut last_ckpt = resume_from.clone();
    let mut timer = Instant::now();
    let mut since_log = 0usize;
    let mut interrupted = false;
    // Values not yet read back: read at every log, sample and checkpoint step (so no
    // non-finite state is ever saved) and at the end.
    let mut pending: Vec<(usize, Tensor)> = Vec::new();
    let started = Instant::now();
    let budget = (run.max_seconds > 0).then(|| std::time::Duration::from_secs(run.max_seconds));
    let shard = t.shard();
    while step < total {
        let (mut stopping, mut spent) =
            (stop.load(Ordering::SeqCst), budget.is_some_and(|b| started.elapsed() >= b));
        if let Some(g) = &group {
            // All ranks stop at the same iteration: when any is asked to.
            let agreed = g.any_of(&[stopping, spent])?;
            (stopping, spent) = (agreed[0], agreed[1]);
        }
        if stopping {
            interrupted = true;
            break;
        }
        if spent {
            // The time budget is spent: saved below like a run's last step.
            break;
        }
        if let Some(values) = t.iteration(Draw { step, rollbacks, seed: run.seed, shard }, true)? {
            pending.push((step + 1, values));
        }
        step += 1;
        iterations += 1;
        since_log += 1;
        let log = step % run.log_every == 0 || step == total;
        let sample = step % run.sample_every == 0 || step == total;
        let save = step % run.checkpoint_every == 0 || step == total;
        let mut logged = None;
        if log || sample || save {
            // The values are averaged across ranks: every rank takes the same decision here.
            let newest = match read_back(&mut pending, &columns) {
                Ok(newest) => newest,
                Err(e) if run.nonfinite == NonFinite::Rollback => {
                    rollbacks += 1;
                    ensure!(
                        rollbacks <= run.max_rollbacks,
                        "{e}; gave up after {} roll-backs",
                        run.max_rollbacks
                    );
                    let dir = last_ckpt
                        .clone()
                        .with_context(|| format!("{e}; no checkpoint to roll back to"))?;
                    if lead {
                        eprintln!("warning: {e}; rolling back to {}", dir.display());
                    }
                    let (back, _) = t.restore(&dir)?;
                    t.sync_state()?;
                    step = back;
                    // The steps logged after the checkpoint are run again: drop them, from the
                    // record and the plot.
                    if lead {
                        stats_file = Some(cut_stats(&run_dir, step)?);
                        plot_losses(&run_dir)?;
                    }
                    (timer, since_log) = (Instant::now(), 0);
                    continue;
                }
                Err(e) => bail!("{e}; stopped without saving (the last good checkpoint is kept)"),
            };
            if let (true, Some((at, v))) = (log, newest.filter(|(at, _)| *at == step)) {
                let epoch = (at - 1) / ipe;
                let mut values: Vec<(String, f64)> = t
                    .specs
                    .iter()
                    .map(|s| format!("lr_{}", s.name))
                    .zip(t.learning_rates(epoch))
                    .collect();
                values.extend(columns.iter().map(|c| c.0.clone()).zip(v));
                let s = Stats {
                    step: at,
                    epoch,
                    values,
                    seconds_per_iteration: timer.elapsed().as_secs_f64() / since_log as f64,
                };
                if let Some(f) = stats_file.as_mut() {
                    writeln!(f, "{}", s.to_json())?;
                }
                (timer, since_log) = (Instant::now(), 0);
                logged = Some(s);
            }
        }
        if sample || save {
            t.average_buffers()?;
            t.refresh_averages(run.seed)?;
        }
        if sample && lead {
            let sheet = t.with_averages(|f| f.sample_sheet(step, run.seed))?;
            save_png(
                &sheet,
                &run_dir.join("samples").join(format!("{}.png", checkpoint::step_name(step))),
            )?;
            plot_losses(&run_dir)?;
        }
        if save {
            last_ckpt = Some(t.save(&ckpts, &cfg, step, rollbacks, &data_digest)?);
        }
        if lead {
            on_step(step, total, logged.as_ref());
        }
    }
    if last_ckpt.as_ref().is_none_or(|c| !c.ends_with(checkpoint::step_name(step))) {
        if let Err(e) = read_back(&mut pending, &columns) {
            bail!("{e}; stopped without saving (the last good checkpoint is kept)");
        }
        t.average_buffers()?;
        t.refresh_averages(run.seed)?;
        last_ckpt = Some(t.save(&ckpts, &cfg, step, rollbacks, &data_digest)?);
        if lead {
            plot_losses(&run_dir)?;
        }
    }
    Ok(Outcome {
        run_dir,
        checkpoint: last_ckpt.expect("saved"),
        steps: step,
        first_step,
        iterations,
        interrupted,
    })
}

/// Milliseconds of each of `n` calls of `f` after `warmup` untimed ones, each between two
/// device synchronisations.
pub fn timed(
    device: Device,
    warmup: usize,
    n: usize,
    f: &mut dyn FnMut(usize) -> Result<()>,
) -> Result<Vec<f64>> {
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
}

/// What `bench` measured.
pub struct IterationTimes {
    /// Milliseconds of each timed training iteration.
    pub train_ms: Vec<f64>,
    /// Milliseconds of each timed drawing of one item.
    pub sample_ms: Vec<f64>,
    /// Trainable parameters per network.
    pub parameters: Vec<(&'static str, i64)>,
}

/// Times training iterations and drawing one item of `cfg`'s family on synthetic data of its
/// usual shape (the family's `synthetic` hook), after `warmup` untimed ones of each: the loop
/// `train` runs, minus saving and logging.
pub fn bench(
    cfg: &Config,
    runtime: Runtime,
    warmup: usize,
    iterations: usize,
    draws: usize,
) -> Result<IterationTimes> {
    let entry = crate::registry::family(&cfg.family)?;
    let synthetic =
        entry.synthetic.with_context(|| format!("the {} family has no benchmark", entry.name))?;
    let Runtime { device, precision, .. } = runtime;
    tch::manual_seed(cfg.run.seed as i64);
    let family = synthetic(cfg, device)?;
    let mut t = Engine::new(family, cfg.run.nonfinite, device)?;
    t.set_runtime(runtime)?;
    let parameters = t.family.networks().into_iter().map(|(n, vs)| (n, parameters(vs))).collect();
    let seed = cfg.run.seed;
    let train_ms = timed(device, warmup, iterations, &mut |step| {
        t.iteration(Draw { step, rollbacks: 0, seed, shard: Shard::WHOLE }, true).map(drop)
    })?;
    let sample_ms = timed(device, warmup, draws, &mut |_| {
        let _amp = precision.autocast(device)?;
        t.family.draw_once()
    })?;
    Ok(IterationTimes { train_ms, sample_ms, parameters })
}
