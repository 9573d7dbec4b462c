//! The seam between the training loop (`train.rs`) and a model family (a folder under
//! `models/`). A family declares its networks, its optimisers and the phases of one iteration,
//! and computes each phase's loss; the loop owns everything else: seeding, backward passes and
//! optimiser steps, the non-finite policy, checkpoints, resume, statistics, plots and sample
//! sheets on disk. The phase split follows StyleGAN2-ADA / StyleGAN3's `training/loss.py`
//! (`accumulate_gradients(phase, …)`), where the loop, not the loss, runs the optimiser.

use crate::config::Config;
use anyhow::Result;
use std::path::Path;
use storyvis_data::dataset::Dataset;
use storyvis_data::rng::Rng;
use tch::nn::VarStore;
use tch::{Device, Tensor};

/// An optimiser (Adam) over part of one network.
pub struct OptimizerSpec {
    /// Its name in checkpoints and statistics (`lr_<name>`, `grad_<name>`).
    pub name: &'static str,
    /// The network whose trainable variables it updates.
    pub network: &'static str,
    /// Which of them (by variable name).
    pub params: fn(&str) -> bool,
    /// Its learning rate, before the family's schedule (`Family::lr_scale`).
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
}

impl OptimizerSpec {
    /// An optimiser over every trainable variable of `network`, named after it.
    pub fn whole(network: &'static str, lr: f64, beta1: f64, beta2: f64) -> OptimizerSpec {
        OptimizerSpec { name: network, network, params: |_| true, lr, beta1, beta2 }
    }
}

/// The factor of a schedule that halves every learning rate every `every` epochs (StackGAN's
/// and StoryGAN's) in `epoch`.
pub fn halving(epoch: usize, every: usize) -> f64 {
    0.5f64.powi((epoch / every) as i32)
}

/// One phase of an iteration: a loss, and the optimisers its gradient updates.
pub struct Phase {
    /// What `Family::loss` is asked for ("discriminator", "generator", …).
    pub name: &'static str,
    /// The optimisers it steps, by name (`OptimizerSpec::name`).
    pub optimizers: Vec<&'static str>,
}

impl Phase {
    pub fn new(name: &'static str, optimizers: &[&'static str]) -> Phase {
        Phase { name, optimizers: optimizers.to_vec() }
    }

    /// `times` phases of one name, each stepping `optimizers` (a generator updated `g_steps`
    /// times after its discriminator).
    pub fn repeated(name: &'static str, optimizers: &[&'static str], times: usize) -> Vec<Phase> {
        (0..times).map(|_| Phase::new(name, optimizers)).collect()
    }
}

pub use crate::report::{Report, Reported};

/// Where in the run an iteration is.
#[derive(Clone, Copy, Debug)]
pub struct Draw {
    /// The iteration, from 0.
    pub step: usize,
    /// Roll-backs so far (each changes the random stream that follows).
    pub rollbacks: usize,
    pub seed: u64,
    /// This process's part of every batch (`Shard::WHOLE` in a one-process run).
    pub shard: Shard,
}

/// In data-parallel training (`distributed`), which part of every batch a process takes:
/// rank `rank` of `world` takes the `rank`-th of `world` equal, consecutive parts of the batch
/// every rank draws alike from (seed, step). A family draws its whole (global) batch from its
/// host streams as in a one-process run, then keeps its part with `take`; libtorch's generator,
/// which draws its noise, is seeded per rank by the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub world: usize,
}

impl Shard {
    /// The whole batch: one process.
    pub const WHOLE: Shard = Shard { rank: 0, world: 1 };

    /// This rank's part of a batch drawn whole (its length divisible by `world`: the loop
    /// checks the family's `batches` when the run starts).
    pub fn take<T: Clone>(&self, whole: &[T]) -> Vec<T> {
        let n = whole.len() / self.world;
        whole[self.rank * n..(self.rank + 1) * n].to_vec()
    }

    /// This rank's rows of a `rows` × `cols` matrix of standard normal values that every rank
    /// draws alike from `stream` (a host stream: the same on every machine), on `device`. A
    /// family that draws its noise this way, in `begin`, trains the same for any number of
    /// processes (the toy family does; the test of the loop's equivalence rests on it).
    pub fn normal(&self, rows: usize, cols: usize, stream: u64, device: Device) -> Tensor {
        let mut rng = Rng::for_item(stream, 0);
        let mut v = Vec::with_capacity(rows * cols);
        while v.len() < rows * cols {
            // Box–Muller: two independent normal values from two uniform ones.
            let (u1, u2) = (1.0 - rng.uniform(), rng.uniform());
            let r = (-2.0 * u1.ln()).sqrt();
            let a = std::f64::consts::TAU * u2;
            v.push((r * a.cos()) as f32);
            v.push((r * a.sin()) as f32);
        }
        v.truncate(rows * cols);
        let n = rows / self.world;
        let mine = &v[self.rank * n * cols..(self.rank + 1) * n * cols];
        Tensor::from_slice(mine).view([n as i64, cols as i64]).to_device(device)
    }
}

/// A model family in training.
pub trait Family {
    /// Every network, in checkpoint order: (name, variables). Checkpoints hold one
    /// `<name>.safetensors` per network.
    fn networks(&self) -> Vec<(&'static str, &VarStore)>;
    fn networks_mut(&mut self) -> Vec<(&'static str, &mut VarStore)>;
    fn optimizers(&self) -> Vec<OptimizerSpec>;
    /// What every optimiser's learning rate is multiplied by in `epoch` (1: constant rates).
    fn lr_scale(&self, _epoch: usize) -> f64 {
        1.0
    }
    /// Iterations in one pass over the training data.
    fn iters_per_epoch(&self) -> usize;
    /// The batches an iteration draws, by config key (`batch`; StoryGAN's `story_batch` and
    /// `image_batch`): in data-parallel training each is split across the ranks (`Shard`), so
    /// the loop checks that every one divides.
    fn batches(&self) -> Vec<(&'static str, usize)>;
    /// The phases of one iteration, in order (a phase may appear more than once).
    fn phases(&self) -> Vec<Phase>;
    /// The values an iteration reports (`Report`), in `stats.jsonl` order.
    fn reported(&self) -> Vec<Reported>;
    /// Starts an iteration: draws its batches and anything the phases share (libtorch's
    /// generator is seeded by the loop just before). Runs under the loop's autocast.
    fn begin(&mut self, at: Draw) -> Result<()>;
    /// The loss of the phase named `phase` (a scalar tensor with a graph to the phase's
    /// optimisers' variables). Runs under the loop's autocast; the loop runs the backward pass
    /// outside it and applies the update before asking for the next phase.
    fn loss(&mut self, phase: &str) -> Result<Tensor>;
    /// Ends an iteration: its reported values (not read back: the loop does that in batches).
    fn finish(&mut self) -> Result<Report>;
    /// Runs the convolution stacks in the channels-last memory format (`--memory-format`).
    fn set_channels_last(&mut self, on: bool);
    /// A sample sheet of the model at `step` (fixed inputs and noise, seeded from `seed`).
    fn sample_sheet(&self, step: usize, seed: u64) -> Result<image::RgbImage>;
    /// Files beside the config in the run directory and every checkpoint (a vocabulary, say):
    /// (name, bytes).
    fn files(&self) -> Vec<(&'static str, Vec<u8>)>;
    /// Sizes the networks took from the data (recorded in checkpoints, read back by the family
    /// when it loads one).
    fn shape(&self) -> serde_json::Value;
    /// What `run.json` records about the training data (item counts).
    fn data_summary(&self) -> serde_json::Value;
    /// The networks drawing uses, of which the loop keeps a moving average when the run asks
    /// for one (`ema_half_life`).
    fn averaged(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// `batches` training-mode forward passes, without gradients, of the `averaged` networks
    /// the way drawing uses them, over the training items `standing_batches` picks from `seed`
    /// (libtorch's generator is seeded by the loop just before): the loop runs them inside
    /// `nn::standing_statistics` with the averages in place, to re-estimate their batch-norm
    /// statistics (`ema_standing`). Families whose averaged networks have no batch norm need
    /// nothing.
    fn standing_passes(&self, _batches: usize, _seed: u64) -> Result<()> {
        Ok(())
    }
    /// Draws one item the way `generate` does (a story, an image, a clip) from fixed inputs,
    /// for `storyvis bench`. Runs under the loop's autocast.
    fn draw_once(&self) -> Result<()> {
        anyhow::bail!("this family has no drawing benchmark")
    }
}

/// Writes a `Family`'s `networks` and `networks_mut` from one list of (name, field path)
/// entries, each kept only where its `if` condition holds:
///
/// ```ignore
/// storyvis_core::networks!(self;
///     "generator" => nets.g_vs,
///     "text" => nets.t_vs if !self.frozen_text(),
///     "discriminator" => nets.d_vs,
/// );
/// ```
#[macro_export]
macro_rules! networks {
    ($s:ident; $($name:literal => $($field:ident).+ $(if $cond:expr)?),* $(,)?) => {
        fn networks(&$s) -> Vec<(&'static str, &tch::nn::VarStore)> {
            let keep = [$(true $(&& $cond)?),*];
            let mut v = Vec::new();
            let mut k = keep.iter();
            $(if *k.next().expect("one flag a network") { v.push(($name, &$s.$($field).+)); })*
            v
        }

        fn networks_mut(&mut $s) -> Vec<(&'static str, &mut tch::nn::VarStore)> {
            let keep = [$(true $(&& $cond)?),*];
            let mut v = Vec::new();
            let mut k = keep.iter();
            $(if *k.next().expect("one flag a network") { v.push(($name, &mut $s.$($field).+)); })*
            v
        }
    };
}

/// How a family is built for training on a dataset (libtorch's generator seeded by the loop
/// first). The checkpoint path: the one a resumed run continues, whose `files` it reads.
pub type Build = fn(&Config, &Dataset, Option<&Path>, Device) -> Result<Box<dyn Family>>;

/// A family as the registry (`registry::register`) lists it.
pub struct FamilyEntry {
    pub name: &'static str,
    /// One line for listings.
    pub about: &'static str,
    /// Presets: (name, TOML).
    pub presets: &'static [(&'static str, &'static str)],
    /// Checks a config's [model] section (types, ranges).
    pub check: fn(&Config) -> Result<()>,
    pub build: Build,
    /// Networks drawing never reads under this config (discriminators, and networks the
    /// config leaves untrained): `export` leaves them out.
    pub training_only: fn(&Config) -> Vec<&'static str>,
    /// How a trained model is loaded to draw from typed text (`storyvis serve`); none for a
    /// family that does not draw from text.
    pub drawer: Option<crate::drawer::LoadDrawer>,
    /// The `[recipe]` keys the family reads (`recipe::KEYS`); setting another is an error.
    pub recipe: &'static [&'static str],
    /// How a trained model is loaded to draw held-out items for `storyvis eval`; none for a
    /// family that is not evaluated.
    pub evaluated: Option<crate::evaluation::LoadEvaluated>,
    /// How the family is built on synthetic data of its usual shape for `storyvis bench`
    /// (`train::bench`); none for a family without a benchmark.
    pub synthetic: Option<Synthetic>,
}

/// A family built on synthetic data for benchmarks (libtorch's generator seeded first).
pub type Synthetic = fn(&Config, Device) -> Result<Box<dyn Family>>;

/// The training items of each of `batches` standing passes (`Family::standing_passes`):
/// consecutive batches of `batch` from a permutation of `items` seeded by `seed`, wrapping
/// around.
pub fn standing_batches(items: usize, batch: usize, batches: usize, seed: u64) -> Vec<Vec<i64>> {
    let mut perm: Vec<i64> = (0..items as i64).collect();
    Rng::for_item(crate::streams::mix(seed, crate::streams::STANDING_SALT), 0).shuffle(&mut perm);
    (0..batches).map(|k| (0..batch).map(|j| perm[(k * batch + j) % items]).collect()).collect()
}

/// Per text, an id that identical texts share (in order of first appearance): what the
/// matching-aware terms compare to tell a mismatched caption from the same words.
pub fn text_ids<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<usize> {
    let mut seen = std::collections::HashMap::new();
    texts
        .into_iter()
        .map(|t| {
            let n = seen.len();
            *seen.entry(t).or_insert(n)
        })
        .collect()
}

/// For each distinct text id (from `text_ids`), the first position that has it.
pub fn first_of_each(text_ids: &[usize]) -> Vec<i64> {
    let mut first = vec![0i64; text_ids.iter().max().map_or(0, |m| m + 1)];
    for (k, &t) in text_ids.iter().enumerate().rev() {
        first[t] = k as i64;
    }
    first
}

/// The mismatched ("wrong") caption of each of a batch's `b` items (Reed et al. 2016 §3.1):
/// `draw(rng, k)` takes a caption of the batch's item k ≠ j, redrawn (at most 8 times) while
/// `same(j, caption)` says it has item j's own words (identical texts are not a mismatch).
pub fn mismatched(
    b: usize,
    rng: &mut Rng,
    mut draw: impl FnMut(&mut Rng, usize) -> i64,
    same: impl Fn(usize, i64) -> bool,
) -> Vec<i64> {
    (0..b)
        .map(|j| {
            let mut w = 0;
            for _ in 0..8 {
                let other = (j + 1 + rng.below(b - 1)) % b;
                w = draw(rng, other);
                if !same(j, w) {
                    break;
                }
            }
            w
        })
        .collect()
}

/// Hard negatives for the matching-aware terms: each of a batch's `b` items gets the batch
/// position of the closest other caption. `differ(j, k)` says how far item k's caption is
/// from item j's (0: the same words); the fewest-differing of the other items with other words
/// is taken, ties drawn by `rng` ("digit 3 is moving up and down" gets "digit 5 is moving up
/// and down" before "digit 5 is moving left and right"). An item whose batch holds only its
/// own caption gets a random other position.
pub fn closest_mismatched(
    b: usize,
    rng: &mut Rng,
    differ: impl Fn(usize, usize) -> usize,
) -> Vec<usize> {
    (0..b)
        .map(|j| {
            let d: Vec<usize> = (0..b).map(|k| if k == j { 0 } else { differ(j, k) }).collect();
            match d.iter().copied().filter(|&x| x > 0).min() {
                Some(best) => {
                    let ties: Vec<usize> = (0..b).filter(|&k| d[k] == best).collect();
                    ties[rng.below(ties.len())]
                }
                None => (j + 1 + rng.below(b - 1)) % b,
            }
        })
        .collect()
}

/// How many word positions two captions' word ids differ in (a longer caption's extra words
/// each count).
pub fn words_differ(a: &[i64], b: &[i64]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_mismatch_differs_in_the_fewest_words() {
        let caps: Vec<Vec<i64>> =
            [[1, 3, 5, 6], [1, 4, 5, 6], [1, 4, 7, 8], [1, 3, 5, 6], [1, 9, 7, 8]]
                .iter()
                .map(|c| c.to_vec())
                .collect();
        assert_eq!(words_differ(&caps[0], &caps[2]), 3);
        assert_eq!(words_differ(&[1, 2], &[1, 2, 3]), 1);
        for seed in 0..20 {
            let mut rng = Rng::for_item(seed, 0);
            let got = closest_mismatched(5, &mut rng, |j, k| words_differ(&caps[j], &caps[k]));
            // 0 and 3 share their words: each gets 1 (one word off), never the other.
            assert_eq!((got[0], got[3]), (1, 1));
            // 1 is one word from 0 and from 3 (a tie, drawn); 2 and 4 are one word apart.
            assert!(got[1] == 0 || got[1] == 3);
            assert_eq!((got[2], got[4]), (4, 2));
        }
        // A batch of one caption falls back to another position.
        let mut rng = Rng::for_item(1, 0);
        let got = closest_mismatched(3, &mut rng, |_, _| 0);
        assert!(got.iter().enumerate().all(|(j, &k)| k != j && k < 3));
    }

    #[test]
    fn identical_texts_share_an_id_in_order_of_first_appearance() {
        assert_eq!(text_ids(["a b", "c", "a b", "d", "c"]), vec![0, 1, 0, 2, 1]);
        assert_eq!(first_of_each(&[0, 1, 0, 2, 1]), vec![0, 1, 3]);
    }

    #[test]
    fn a_mismatched_caption_is_another_items_with_other_words() {
        // Items 0 and 1 have the same words; 2 and 3 their own. Caption k is item k's.
        let ids = text_ids(["x", "x", "y", "z"]);
        for seed in 0..50 {
            let mut rng = Rng::for_item(seed, 0);
            let wrong = mismatched(4, &mut rng, |_, k| k as i64, |j, w| ids[w as usize] == ids[j]);
            for (j, &w) in wrong.iter().enumerate() {
                assert_ne!(w as usize, j, "seed {seed}: item {j} got its own caption");
                assert_ne!(
                    ids[w as usize], ids[j],
                    "seed {seed}: item {j} got {w}, the same words"
                );
            }
        }
        // The draws follow the generator: a caption drawn per other item, in order.
        let (mut a, mut b) = (Rng::for_item(3, 1), Rng::for_item(3, 1));
        let got = mismatched(5, &mut a, |rng, k| (10 * k + rng.below(10)) as i64, |_, _| false);
        let want: Vec<i64> = (0..5)
            .map(|j| {
                let k = (j + 1 + b.below(4)) % 5;
                (10 * k + b.below(10)) as i64
            })
            .collect();
        assert_eq!(got, want);
    }
}
