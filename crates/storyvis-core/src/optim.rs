//! Adam (Kingma & Ba 2015) with its state in plain tensors, so that checkpoints hold it and a
//! resumed run continues exactly (tch's optimiser keeps its state out of reach).
//!
//! The parameters of one optimiser live in one flat buffer (each variable is re-seated as a
//! view into it), and so do the moments: an update is a handful of kernels over the whole
//! model instead of a handful per variable, which is what decides the speed of small models
//! on a GPU. Gradients come from `backward` (autograd's `grad`, not `.grad` accumulation), so
//! there is nothing to zero and no other model's gradients are computed.

use anyhow::{ensure, Context, Result};
use tch::{nn::VarStore, Kind, Tensor};

pub struct Adam {
    /// Trainable variables, sorted by name; each a view into `flat`.
    params: Vec<(String, Tensor)>,
    flat: Tensor,
    m: Tensor,
    v: Tensor,
    pub step: i64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

/// Contiguous strides of a shape.
fn strides(size: &[i64]) -> Vec<i64> {
    let mut s = vec![1; size.len()];
    for i in (0..size.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * size[i + 1];
    }
    s
}

impl Adam {
    /// Over the trainable variables of `vs` whose names `keep` accepts. The variables keep
    /// their values and identities; their storage moves into the optimiser's flat buffer.
    pub fn new(vs: &VarStore, beta1: f64, beta2: f64, keep: impl Fn(&str) -> bool) -> Adam {
        let mut params: Vec<(String, Tensor)> =
            vs.variables().into_iter().filter(|(n, t)| t.requires_grad() && keep(n)).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let total: i64 = params.iter().map(|(_, p)| p.numel() as i64).sum();
        let flat = Tensor::zeros([total], (Kind::Float, vs.device()));
        tch::no_grad(|| {
            let mut offset = 0;
            for (_, p) in &mut params {
                let (size, n) = (p.size(), p.numel() as i64);
                flat.narrow(0, offset, n).copy_(&p.reshape([-1]));
                let _ = p.set_source_tensor_storage_offset_(&flat, offset, &size, strides(&size));
                offset += n;
            }
        });
        let (m, v) = (flat.zeros_like(), flat.zeros_like());
        Adam { params, flat, m, v, step: 0, beta1, beta2, eps: 1e-8 }
    }

    /// The variables, in the order `backward` returns their gradients.
    pub fn params(&self) -> Vec<&Tensor> {
        self.params.iter().map(|(_, p)| p).collect()
    }

    /// d loss / d parameters for each of `optimizers`, one flat gradient each (zeros where the
    /// loss does not depend on a variable). Nothing accumulates in `.grad`.
    pub fn backward(loss: &Tensor, optimizers: &[&Adam]) -> Vec<Tensor> {
        let inputs: Vec<&Tensor> = optimizers.iter().flat_map(|o| o.params()).collect();
        let grads = Tensor::run_backward(&[loss], &inputs, false, false);
        let mut grads = grads.into_iter();
        optimizers
            .iter()
            .map(|o| {
                let parts: Vec<Tensor> = o
                    .params
                    .iter()
                    .map(|(_, p)| {
                        let g = grads.next().expect("one gradient per input");
                        if g.defined() {
                            g.reshape([-1])
                        } else {
                            p.zeros_like().reshape([-1])
                        }
                    })
                    .collect();
                Tensor::cat(&parts, 0)
            })
            .collect()
    }

    /// One update with learning rate `lr` and the flat gradient `g` (from `backward`):
    ///   m ← β1 m + (1−β1) g,  v ← β2 v + (1−β2) g²,
    ///   p ← p − lr · m̂ / (√v̂ + ε),  m̂ = m / (1−β1ᵗ),  v̂ = v / (1−β2ᵗ),
    /// computed in place as p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε), with three
    /// model-sized temporaries.
    /// One update outside the training engine (the scorers' and text encoders' loops): the
    /// gradient of `loss` for each optimiser's variables, then each one's step at `lr`.
    /// Returns the loss's value.
    pub fn update(loss: &Tensor, optimizers: &mut [&mut Adam], lr: f64) -> f64 {
        let grads = {
            let shared: Vec<&Adam> = optimizers.iter().map(|o| &**o).collect();
            Adam::backward(loss, &shared)
        };
        for (o, g) in optimizers.iter_mut().zip(&grads) {
            o.step(g, lr);
        }
        loss.double_value(&[])
    }

    pub fn step(&mut self, g: &Tensor, lr: f64) {
        self.step += 1;
        let bc1 = 1.0 - self.beta1.powi(self.step as i32);
        let bc2 = 1.0 - self.beta2.powi(self.step as i32);
        tch::no_grad(|| {
            let _ = self.m.lerp_(g, 1.0 - self.beta1);
            let _ = self.v.g_mul_scalar_(self.beta2);
            let _ = self.v.addcmul_(&(g * (1.0 - self.beta2)), g);
            let mut denom = self.v.sqrt();
            let _ = denom.g_div_scalar_(bc2.sqrt());
            let _ = denom.g_add_scalar_(self.eps);
            let _ = self.flat.addcdiv_(&(&self.m * (-lr / bc1)), &denom);
        });
    }

    /// Both moments, in place (what a data-parallel run broadcasts from rank 0 beside the
    /// variables themselves).
    pub fn moments_in_place(&self) -> [&Tensor; 2] {
        [&self.m, &self.v]
    }

    /// Copies of the moments and the step count (to undo updates with `set_moments`).
    pub fn moments(&self) -> (Tensor, Tensor, i64) {
        (self.m.copy(), self.v.copy(), self.step)
    }

    pub fn set_moments(&mut self, (m, v, step): (Tensor, Tensor, i64)) {
        tch::no_grad(|| {
            self.m.copy_(&m);
            self.v.copy_(&v);
        });
        self.step = step;
    }

    /// A variable's slice of a flat buffer, in its shape.
    fn slice(&self, flat: &Tensor, i: usize) -> Tensor {
        let offset: i64 = self.params[..i].iter().map(|(_, p)| p.numel() as i64).sum();
        let p = &self.params[i].1;
        flat.narrow(0, offset, p.numel() as i64).view(p.size().as_slice())
    }

    /// The moment tensors, named `<prefix>.m.<param>` / `<prefix>.v.<param>`.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("{prefix}.m.{name}"), self.slice(&self.m, i)));
            out.push((format!("{prefix}.v.{name}"), self.slice(&self.v, i)));
        }
        out
    }

    /// Restores the moments saved by `state`; every one must be present with its shape.
    pub fn load_state(
        &mut self,
        prefix: &str,
        tensors: &std::collections::HashMap<String, Tensor>,
        step: i64,
    ) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            for i in 0..self.params.len() {
                let name = &self.params[i].0;
                for (kind, flat) in [("m", &self.m), ("v", &self.v)] {
                    let key = format!("{prefix}.{kind}.{name}");
                    let src = tensors
                        .get(&key)
                        .with_context(|| format!("optimizer state lacks {key}"))?;
                    let mut dst = self.slice(flat, i);
                    ensure!(
                        src.size() == dst.size(),
                        "optimizer state {key} has shape {:?}, expected {:?}",
                        src.size(),
                        dst.size()
                    );
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
            let g = Adam::backward(&(&x * &x).sum(Kind::Float), &[&opt]).remove(0); // gradient 2x
            opt.step(&g, 0.1);
            let g = 2.0 * p;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            p -=
                0.1 * (m / (1.0 - 0.9f64.powi(t))) / ((v / (1.0 - 0.999f64.powi(t))).sqrt() + 1e-8);
            assert!((x.double_value(&[0]) - p).abs() < 1e-5, "step {t}");
        }
    }

    #[test]
    fn flat_storage_keeps_values_and_updates_every_variable() {
        let vs = VarStore::new(Device::Cpu);
        let a = vs.root().var("a", &[2, 3], nn::Init::Uniform { lo: -1.0, up: 1.0 });
        let b = vs.root().var("b", &[4], nn::Init::Uniform { lo: -1.0, up: 1.0 });
        let unused = vs.root().var("c", &[2], nn::Init::Const(0.5));
        let before: Vec<Tensor> = [&a, &b, &unused].iter().map(|t| t.detach().copy()).collect();
        let mut opt = Adam::new(&vs, 0.9, 0.999, |_| true);
        for (t, was) in [&a, &b, &unused].iter().zip(&before) {
            assert_eq!(t.detach().copy(), *was, "re-seating keeps values");
        }
        // Loss Σ a + Σ b²: the first Adam step moves each used element by lr (sign of its
        // gradient), and leaves the unused variable alone.
        let loss = a.sum(Kind::Float) + b.square().sum(Kind::Float);
        let g = Adam::backward(&loss, &[&opt]).remove(0);
        assert_eq!(g.size(), [12]);
        opt.step(&g, 0.01);
        let da = (a.detach() - &before[0]).max().double_value(&[]);
        assert!((da + 0.01).abs() < 1e-6, "a moved {da}");
        let db = (b.detach() - &before[1]) + before[1].sign() * 0.01;
        assert!(db.abs().max().double_value(&[]) < 1e-6);
        assert_eq!(unused.detach().copy(), before[2]);
        // The moments come back per variable, in the variables' shapes.
        let state = opt.state("x");
        assert_eq!(state[0].0, "x.m.a");
        assert_eq!(state[0].1.size(), [2, 3]);
        assert!((state[0].1.double_value(&[0, 0]) - 0.1).abs() < 1e-6);
    }
}
