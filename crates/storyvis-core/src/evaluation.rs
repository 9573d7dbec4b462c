//! The hook a family gives `storyvis eval`: a trained model loaded to draw a dataset's
//! held-out items. Evaluation (the `storyvis-eval` crate) scores what it draws by the kind of
//! data (story frames, captioned images, clips) with scorers that never train a generator.

use crate::checkpoint::Weights;
use crate::drawer::Drawer;
use anyhow::{bail, Result};
use std::path::Path;
use storyvis_data::bouncing::HeldOut;
use storyvis_data::dataset::{Dataset, StoryRecord};
use tch::{Device, Tensor};

/// A trained model loaded for evaluation: a `Drawer` (whose `about` names its checkpoint,
/// step and weights) that also draws a dataset's items.
pub trait Evaluated: Drawer {
    /// Its variant, as the table's row names it ("svc", "gan-int-cls", "conv3d", …).
    fn variant(&self) -> String;
    /// Draws `items` of `ds` (their own text) at noise seeds 0..`seeds`, seed by seed, in
    /// batches of at most `batch` items; each batch goes to `sink` on the CPU as the model draws
    /// it: stories [n, T, 3, S, S], images [n, 3, S, S], clips [n, C, T, S, S]. An error, before
    /// anything is drawn, where the data is not of the kind the model draws or does not fit it.
    fn draw_items(
        &self,
        ds: &Dataset,
        items: &[&StoryRecord],
        seeds: usize,
        batch: usize,
        sink: &mut dyn FnMut(Tensor) -> Result<()>,
    ) -> Result<()>;
    /// R-precision (1 true + 99 random captions) of drawn images [N·seeds, 3, S, S] against
    /// `captions` in the model's joint embedding, where it has one.
    fn r_precision(&self, _drawn: &Tensor, _captions: &[&str]) -> Result<Option<f64>> {
        Ok(None)
    }
    /// The (digit, motion) combinations its training data held out, where its checkpoint
    /// records them (video models).
    fn held_out(&self) -> Option<&HeldOut> {
        None
    }
    /// The model's discriminator's probability that each clip [n, C, T, S, S] (for `items`'
    /// captions) is real: what GAM (Im et al., ICLR 2016) compares two models by.
    fn judge(&mut self, _clips: &Tensor, _items: &[&StoryRecord]) -> Result<Tensor> {
        bail!(
            "{} has no discriminator verdicts to compare (GAM is for video models)",
            self.about().checkpoint.display()
        )
    }
}

/// How a family's checkpoint is loaded for evaluation (`FamilyEntry::evaluated`).
pub type LoadEvaluated = fn(&Path, Device, Weights) -> Result<Box<dyn Evaluated>>;

/// The loop every family's `Evaluated::draw_items` runs: for each seed 0..`seeds` (libtorch's
/// generator seeded with it), the `n` items in batches of at most `batch`, each drawn by
/// `draw(start, len)` and handed to `sink` on the CPU.
pub fn by_seed(
    n: usize,
    seeds: usize,
    batch: usize,
    draw: &dyn Fn(usize, usize) -> Result<Tensor>,
    sink: &mut dyn FnMut(Tensor) -> Result<()>,
) -> Result<()> {
    let batch = batch.max(1);
    for seed in 0..seeds {
        tch::manual_seed(seed as i64);
        for start in (0..n).step_by(batch) {
            let len = (n - start).min(batch);
            sink(draw(start, len)?.to_device(Device::Cpu))?;
        }
    }
    Ok(())
}

/// Writes a family's two registry loaders from its `load_with(dir, device, weights)`:
/// `load_drawer` (`FamilyEntry::drawer`) and `load_evaluated` (`FamilyEntry::evaluated`).
#[macro_export]
macro_rules! registry_loaders {
    ($load:path) => {
        /// The registry's loader (`FamilyEntry::drawer`).
        pub fn load_drawer(
            dir: &std::path::Path,
            device: tch::Device,
            weights: $crate::checkpoint::Weights,
        ) -> anyhow::Result<Box<dyn $crate::drawer::Drawer>> {
            Ok(Box::new($load(dir, device, weights)?))
        }

        /// The registry's loader for evaluation (`FamilyEntry::evaluated`).
        pub fn load_evaluated(
            dir: &std::path::Path,
            device: tch::Device,
            weights: $crate::checkpoint::Weights,
        ) -> anyhow::Result<Box<dyn $crate::evaluation::Evaluated>> {
            Ok(Box::new($load(dir, device, weights)?))
        }
    };
}
