//! Adam (Kingma & Ba 2015) with its state in plain tensors, so that checkpoints hold it and a
//! resumed run continues exactly (tch's optimiser keeps its state out of reach).

use anyhow::{ensure, Context, Result};
use tch::{nn::VarStore, Kind, Tensor};

pub struct Adam {
    /// Trainable variables, sorted by name.
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub step: i64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl Adam {
    /// Over the trainable variables of `vs` whose names `keep` accepts.
    pub fn new(vs: &VarStore, beta1: f64, beta2: f64, keep: impl Fn(&str) -> bool) -> Adam {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(n, t)| t.requires_grad() && keep(n)).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Adam { params, m, v, step: 0, beta1, beta2, eps: 1e-8 }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update with learning rate `lr`:
    ///   m ← β1 m + (1−β1) g,  v ← β2 v + (1−β2) g²,
    ///   p ← p − lr · m̂ / (√v̂ + ε),  m̂ = m / (1−β1ᵗ),  v̂ = v / (1−β2ᵗ).
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let bc1 = 1.0 - self.beta1.powi(self.step as i32);
        let bc2 = 1.0 - self.beta2.powi(self.step as i32);
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let m = &mut self.m[i];
                let v = &mut self.v[i];
                m.copy_(&(&*m * self.beta1 + &g * (1.0 - self.beta1)));
                v.copy_(&(&*v * self.beta2 + g.square() * (1.0 - self.beta2)));
                let update = (&*m / bc1) / ((&*v / bc2).sqrt() + self.eps) * lr;
                let _ = p.g_sub_(&update);
            }
        });
    }

    /// The moment tensors, named `<prefix>.m.<param>` / `<prefix>.v.<param>`.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("{prefix}.m.{name}"), self.m[i].shallow_clone()));
            out.push((format!("{prefix}.v.{name}"), self.v[i].shallow_clone()));
        }
        out
    }

    /// Restores the moments saved by `state`; every one must be present with its shape.
    pub fn load_state(&mut self, prefix: &str, tensors: &std::collections::HashMap<String, Tensor>, step: i64) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            for (i, (name, _)) in self.params.iter().enumerate() {
                for (kind, dst) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                    let key = format!("{prefix}.{kind}.{name}");
                    let src = tensors.get(&key).with_context(|| format!("optimizer state lacks {key}"))?;
                    ensure!(src.size() == dst.size(), "optimizer state {key} has shape {:?}, expected {:?}", src.size(), dst.size());
                    dst.copy_(&src.to_kind(Kind::Float).to_device(dst.device()));
                }
            }
            Ok(())
        })?;
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device};

    #[test]
    fn matches_the_adam_equations_on_a_scalar() {
        let vs = VarStore::new(Device::Cpu);
        let x = vs.root().var("x", &[1], nn::Init::Const(1.0));
        let mut opt = Adam::new(&vs, 0.9, 0.999, |_| true);
        let (mut m, mut v, mut p) = (0.0f64, 0.0f64, 1.0f64);
        for t in 1..=5 {
            opt.zero_grad();
            (&x * &x).sum(Kind::Float).backward(); // gradient 2x
            opt.step(0.1);
            let g = 2.0 * p;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            p -= 0.1 * (m / (1.0 - 0.9f64.powi(t))) / ((v / (1.0 - 0.999f64.powi(t))).sqrt() + 1e-8);
            assert!((x.double_value(&[0]) - p).abs() < 1e-5, "step {t}");
        }
    }
}
