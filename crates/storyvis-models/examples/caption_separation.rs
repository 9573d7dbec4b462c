//! How far a TGANs-C checkpoint's caption encoder and generator tell single-digit Bouncing
//! MNIST captions apart: the mean distance between sentence representations S of captions
//! that differ only in the digit, and of captions that differ only in the motion (and the
//! same for a freshly initialised encoder of the run's configuration); then the RMS difference
//! of the clips drawn for another noise, another digit and another motion.
//!
//! ```text
//! cargo run --release -p storyvis-models --example caption_separation -- RUN/checkpoints/step-N
//! ```

use anyhow::{Context, Result};
use std::path::PathBuf;
use storyvis_core::checkpoint::Weights;
use storyvis_models::tganc::{draw::load_with, CaptionEncoder};
use tch::{Device, Kind, Tensor};

fn caption(digit: u8, motion: &str) -> String {
    format!("digit {digit} is moving {motion}")
}

/// Mean distances of S between captions differing in the digit only, and in the motion only.
fn separation(encode: &dyn Fn(&str) -> Result<Tensor>) -> Result<(f64, f64, f64)> {
    let dist = |a: &Tensor, b: &Tensor| (a - b).square().sum(Kind::Float).sqrt().double_value(&[]);
    let (mut digits, mut motions) = (Vec::new(), Vec::new());
    for a in 0..10u8 {
        let up = encode(&caption(a, "up and down"))?;
        motions.push(dist(&up, &encode(&caption(a, "left and right"))?));
        for b in a + 1..10 {
            digits.push(dist(&up, &encode(&caption(b, "up and down"))?));
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let norm =
        encode(&caption(3, "up and down"))?.square().sum(Kind::Float).sqrt().double_value(&[]);
    Ok((norm, mean(&digits), mean(&motions)))
}

fn main() -> Result<()> {
    storyvis_models::install();
    let path =
        PathBuf::from(std::env::args().nth(1).context("usage: caption_separation CHECKPOINT")?);
    let m = load_with(&path, Device::Cpu, Weights::Trained)?;
    let (norm, digit, motion) = separation(&|c| Ok(m.sentence(&m.encode(c)?)))?;
    println!("step {}: |S| {norm:.3}; S distance between captions differing in the digit {digit:.4}, in the motion {motion:.4}", m.step);
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let fresh = CaptionEncoder::new(vs.root(), m.vocab.len() as i64, &m.cfg);
    let (norm, digit, motion) = separation(&|c| {
        let ids = m.encode(c)?;
        Ok(tch::no_grad(|| fresh.forward(&ids)))
    })?;
    println!("initialised (seed 0): |S| {norm:.3}; digit {digit:.4}, motion {motion:.4}");
    let rms = |a: &Tensor, b: &Tensor| (a - b).square().mean(Kind::Float).sqrt().double_value(&[]);
    let (z0, z1) = (m.noise(0), m.noise(1));
    let three = m.encode(&caption(3, "up and down"))?;
    let clip = m.draw(&z0, &three);
    println!(
        "clip RMS difference (eval mode): other noise {:.4}; other digit {:.4}; other motion {:.4}",
        rms(&clip, &m.draw(&z1, &three)),
        rms(&clip, &m.draw(&z0, &m.encode(&caption(5, "up and down"))?)),
        rms(&clip, &m.draw(&z0, &m.encode(&caption(3, "left and right"))?))
    );
    Ok(())
}
