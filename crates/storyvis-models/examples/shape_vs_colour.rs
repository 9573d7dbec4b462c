//! How far a text encoder moves a caption's embedding when only its shape word changes, against
//! when only its colour word changes: over the 24 captions "a large {colour} metal {shape}."
//! (8 CLEVR colours × 3 shapes), the mean cosine similarity and L2 distance of the pairs that
//! differ in the shape word only, and of those that differ in the colour word only.
//!
//! Given a StackGAN / SDGAN checkpoint instead of a text encoder, it also measures the same
//! pairs after the Stage-I generator's conditioning augmentation (StackGAN §3.1), ĉ = μ + σ ⊙ ε:
//! the mean L2 distance between their μ, and how many standard deviations of ĉ's noise that is
//! along the line joining them, d′ = ‖μ_a − μ_b‖ / √(Σ_k σ̄_k² u_k²) with u the unit direction
//! and σ̄² the two captions' mean variance (d′ ≫ 1: the generator can read the word from ĉ; d′ ≲ 1:
//! it reaches the generator as noise).
//!
//!   cargo run --release --example shape_vs_colour -p storyvis-models -- models/text-encoder-clevr [DIR …]
use anyhow::{ensure, Result};
use storyvis_core::joint::Joint;
use storyvis_data::clevr::scene::{COLORS, SHAPES};
use storyvis_models::stackgan::draw;
use tch::{Device, Kind, Tensor};

/// Mean (cosine, L2, d′) over the pairs differing in the shape word only, then in the colour
/// word only, of the rows of `e` [24, D] (row = colour · 3 + shape); d′ (see above) needs the
/// rows' variances `var`, else it is 0.
fn pairs(e: &Tensor, var: Option<&Tensor>) -> [(f64, f64, f64); 2] {
    let unit = e / e.square().sum_dim_intlist(1, true, Kind::Float).sqrt();
    let cos = unit.matmul(&unit.tr());
    let mut acc = [(0.0, 0.0, 0.0, 0usize); 2];
    let n = e.size()[0] as usize;
    for a in 0..n {
        for b in a + 1..n {
            let same_colour = a / SHAPES.len() == b / SHAPES.len();
            let same_shape = a % SHAPES.len() == b % SHAPES.len();
            let k = match (same_colour, same_shape) {
                (true, false) => 0,
                (false, true) => 1,
                _ => continue,
            };
            let (i, j) = (a as i64, b as i64);
            let d = e.get(i) - e.get(j);
            let l2 = d.square().sum(Kind::Float).sqrt().double_value(&[]);
            acc[k].0 += cos.double_value(&[i, j]);
            acc[k].1 += l2;
            if let Some(v) = var {
                let u = &d / l2;
                let sd = ((v.get(i) + v.get(j)) * 0.5 * u.square())
                    .sum(Kind::Float)
                    .sqrt()
                    .double_value(&[]);
                acc[k].2 += l2 / sd;
            }
            acc[k].3 += 1;
        }
    }
    acc.map(|(cs, l2, dp, n)| (cs / n as f64, l2 / n as f64, dp / n as f64))
}

fn main() -> Result<()> {
    storyvis_models::install();
    let dirs: Vec<String> = std::env::args().skip(1).collect();
    ensure!(!dirs.is_empty(), "usage: shape_vs_colour TEXT_ENCODER_OR_STACKGAN_CHECKPOINT [… …]");
    let texts: Vec<String> = COLORS
        .iter()
        .flat_map(|c| SHAPES.iter().map(move |s| format!("a large {c} metal {s}.")))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for dir in dirs {
        let path = std::path::Path::new(&dir);
        // A run directory has checkpoints/, a checkpoint its config; a text encoder neither.
        let is_model = path.join("checkpoints").is_dir()
            || path.join(storyvis_core::checkpoint::CONFIG).exists();
        let model = if is_model {
            Some(draw::load_with(path, Device::Cpu, storyvis_core::checkpoint::Weights::Average)?)
        } else {
            None
        };
        let joint = match &model {
            Some(m) => &m.joint,
            None => &Joint::load(path, Device::Cpu)?,
        };
        let e = joint.text.embed(&refs)?.to_kind(Kind::Float);
        let [s, c] = pairs(&e, None);
        println!("{dir}: shape word only: cosine {:.4}, L2 {:.3}; colour word only: cosine {:.4}, L2 {:.3}", s.0, s.1, c.0, c.1);
        if let Some(m) = model {
            let (mu, logvar) = tch::no_grad(|| m.gens.one.ca.stats(&e));
            let [s, c] = pairs(&mu, Some(&logvar.exp()));
            println!("  Stage-I conditioning: shape word only ‖Δμ‖ {:.3}, d′ {:.2}; colour word only ‖Δμ‖ {:.3}, d′ {:.2}", s.1, s.2, c.1, c.2);
        }
    }
    Ok(())
}
