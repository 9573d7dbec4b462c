//! What an iteration reports: values by key, declared by the family, read back by the loop.

use anyhow::Result;
use tch::{Device, Tensor};

/// A value an iteration reports (a column of `stats.jsonl`).
#[derive(Clone, Copy)]
pub struct Reported {
    /// Its key in `stats.jsonl`; keys that start with `loss_` are plotted.
    pub key: &'static str,
    /// How errors name it ("image discriminator" in "non-finite image discriminator loss").
    pub label: &'static str,
    /// Whether a non-finite value is an error (losses are; diagnostics such as D(real) are not).
    pub checked: bool,
}

/// The values one iteration reports, by key (`Family::reported` declares them, in
/// `stats.jsonl` order): each starts at zero and is set or added to by name, as
/// `report.set("d_real", &x)`. Values stay on the device (detached) until the loop reads a
/// batch of iterations back.
pub struct Report {
    keys: Vec<&'static str>,
    values: Vec<Tensor>,
    /// Keys set that `reported` does not declare: the loop's error.
    undeclared: Vec<String>,
}

impl Report {
    pub fn new(reported: &[Reported], device: Device) -> Report {
        let zero = Tensor::zeros([], (tch::Kind::Float, device));
        Report {
            keys: reported.iter().map(|r| r.key).collect(),
            values: reported.iter().map(|_| zero.copy()).collect(),
            undeclared: Vec::new(),
        }
    }

    fn slot(&mut self, key: &str) -> Option<usize> {
        let at = self.keys.iter().position(|k| *k == key);
        if at.is_none() && !self.undeclared.iter().any(|k| k == key) {
            self.undeclared.push(key.to_string());
        }
        at
    }

    /// Sets `key` to `value` (a scalar; detached).
    pub fn set(&mut self, key: &str, value: &Tensor) {
        if let Some(i) = self.slot(key) {
            self.values[i] = value.detach().to_kind(tch::Kind::Float);
        }
    }

    /// Adds `value` (a scalar; detached) to `key`.
    pub fn add(&mut self, key: &str, value: &Tensor) {
        if let Some(i) = self.slot(key) {
            self.values[i] = &self.values[i] + value.detach().to_kind(tch::Kind::Float);
        }
    }

    /// Divides `key` by `n` (a mean over the phases that added to it).
    pub fn divide(&mut self, key: &str, n: f64) {
        if let Some(i) = self.slot(key) {
            self.values[i] = &self.values[i] / n;
        }
    }

    /// Every value in declared order as one 1-d tensor; an error naming any key set that the
    /// family did not declare.
    pub fn stacked(&self) -> Result<Tensor> {
        anyhow::ensure!(
            self.undeclared.is_empty(),
            "the family reported values it does not declare: {}",
            self.undeclared.join(", ")
        );
        if self.values.is_empty() {
            return Ok(Tensor::zeros([0], (tch::Kind::Float, Device::Cpu)));
        }
        Ok(Tensor::stack(&self.values, 0))
    }
}
