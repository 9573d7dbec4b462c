//! The supervised loop the scorers train on (the attribute classifier, the clip classifier and
//! the object detector: `storyvis-eval`), beside the GAN engine of `train`: batches of item
//! indices from per-epoch shuffles, Adam (β 0.9, 0.999) with a cosine learning-rate decay to 0,
//! the engine's optimiser and its update step (`Adam::update`).

use crate::optim::Adam;
use storyvis_data::rng::Rng;
use tch::nn::VarStore;
use tch::{Device, Tensor};

/// How a scorer is fitted.
pub struct Fit {
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    pub device: Device,
}

impl Fit {
    /// The learning rate of update `step` (1-based): cosine-decayed from `lr` to 0.
    pub fn lr_at(&self, step: usize) -> f64 {
        let progress = (step - 1) as f64 / self.steps as f64;
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    /// The loop: batches of item indices (per-epoch shuffles of 0..n), `loss_of` each batch's
    /// loss, an Adam update of every trainable variable of `vs`; `on_step(step, steps, loss)`
    /// after each.
    pub fn run_with(
        &self,
        vs: &VarStore,
        n: usize,
        loss_of: &dyn Fn(&Tensor) -> Tensor,
        on_step: &dyn Fn(usize, usize, f64),
    ) {
        let mut adam = Adam::new(vs, 0.9, 0.999, |_| true);
        let mut rng = Rng::new(self.seed);
        let mut order: Vec<usize> = Vec::new();
        for step in 1..=self.steps {
            while order.len() < self.batch {
                let mut next: Vec<usize> = (0..n).collect();
                rng.shuffle(&mut next);
                order.extend(next);
            }
            let pick: Vec<i64> = order.drain(..self.batch).map(|i| i as i64).collect();
            let loss = loss_of(&Tensor::from_slice(&pick));
            let value = Adam::update(&loss, &mut [&mut adam], self.lr_at(step));
            on_step(step, self.steps, value);
        }
    }
}
