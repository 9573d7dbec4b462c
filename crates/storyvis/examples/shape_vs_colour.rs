//! How far a text encoder moves a caption's embedding when only its shape word changes, against
//! when only its colour word changes: over the 24 captions "a large {colour} metal {shape}."
//! (8 CLEVR colours × 3 shapes), the mean cosine similarity and L2 distance of the pairs that
//! differ in the shape word only, and of those that differ in the colour word only.
//!
//!   cargo run --release --example shape_vs_colour -p storyvis -- models/text-encoder-clevr [DIR …]
use anyhow::{ensure, Result};
use storyvis::joint::Joint;
use storyvis_data::clevr::scene::{COLORS, SHAPES};
use tch::{Device, Kind};

fn main() -> Result<()> {
    let dirs: Vec<String> = std::env::args().skip(1).collect();
    ensure!(!dirs.is_empty(), "usage: shape_vs_colour TEXT_ENCODER_DIR [DIR …]");
    let texts: Vec<String> = COLORS.iter().flat_map(|c| SHAPES.iter().map(move |s| format!("a large {c} metal {s}."))).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for dir in dirs {
        let joint = Joint::load(std::path::Path::new(&dir), Device::Cpu)?;
        let e = joint.text.embed(&refs)?.to_kind(Kind::Float);
        let unit = &e / e.square().sum_dim_intlist(1, true, Kind::Float).sqrt();
        let cos = unit.matmul(&unit.tr());
        // [shape differs only, colour differs only] × (cosine sum, L2 sum, count)
        let mut acc = [(0.0, 0.0, 0usize); 2];
        for a in 0..texts.len() {
            for b in a + 1..texts.len() {
                let same_colour = a / SHAPES.len() == b / SHAPES.len();
                let same_shape = a % SHAPES.len() == b % SHAPES.len();
                let k = match (same_colour, same_shape) {
                    (true, false) => 0,
                    (false, true) => 1,
                    _ => continue,
                };
                let (i, j) = (a as i64, b as i64);
                let l2 = (e.get(i) - e.get(j)).square().sum(Kind::Float).sqrt().double_value(&[]);
                acc[k].0 += cos.double_value(&[i, j]);
                acc[k].1 += l2;
                acc[k].2 += 1;
            }
        }
        let [s, c] = acc.map(|(cs, l2, n)| (cs / n as f64, l2 / n as f64));
        println!("{dir}: shape word only: cosine {:.4}, L2 {:.3}; colour word only: cosine {:.4}, L2 {:.3}", s.0, s.1, c.0, c.1);
    }
    Ok(())
}
