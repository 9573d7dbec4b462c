//! Per-pixel median of the real CLEVR-SV frames (objects mostly removed): the empty scene's
//! floor shading, written as a PNG, with its brightness along the centre column and row.
//!
//!   cargo run --release -p storyvis-data --example real_background -- ORIGINAL_IMAGES_DIR OUT.png
#![allow(clippy::needless_range_loop)] // small dense linear algebra, written with indices

#[path = "common/solve.rs"]
mod solve;

use anyhow::Result;
use std::path::Path;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mut frames = Vec::new();
    for e in std::fs::read_dir(Path::new(&args[1]))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "png") {
            frames.push(image::open(&p)?.to_rgb8());
        }
    }
    let (w, h) = frames[0].dimensions();
    let mut out = image::RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let mut px = [0u8; 3];
            for (c, v) in px.iter_mut().enumerate() {
                let mut vals: Vec<u8> = frames.iter().map(|f| f.get_pixel(x, y)[c]).collect();
                vals.sort_unstable();
                *v = vals[vals.len() / 2];
            }
            out.put_pixel(x, y, image::Rgb(px));
        }
    }
    out.save(&args[2])?;
    println!("{} frames {w}×{h}", frames.len());
    print!("centre column (top→bottom, every 20 px):");
    for y in (0..h).step_by(20) {
        print!(" {}", out.get_pixel(w / 2, y)[0]);
    }
    print!("\ncentre row (left→right):");
    for x in (0..w).step_by(20) {
        print!(" {}", out.get_pixel(x, h / 2)[0]);
    }
    print!("\nbottom row:");
    for x in (0..w).step_by(20) {
        print!(" {}", out.get_pixel(x, h - 5)[0]);
    }
    print!("\ntop row:");
    for x in (0..w).step_by(20) {
        print!(" {}", out.get_pixel(x, 4)[0]);
    }
    println!();
    // Least-squares fit of linear light per channel to a cubic in the pixel's normalised
    // coordinates (x right, y up, both in [-1, 1]).
    let terms = |x: f64, y: f64| {
        [1.0, x, y, x * x, x * y, y * y, x * x * x, x * x * y, x * y * y, y * y * y]
    };
    let lin = |v: u8| (v as f64 / 255.0).powf(2.2);
    for c in 0..3 {
        let mut a = [[0.0f64; 10]; 10];
        let mut b = [0.0f64; 10];
        for y in 0..h {
            for x in 0..w {
                let t = terms(
                    2.0 * (x as f64 + 0.5) / w as f64 - 1.0,
                    1.0 - 2.0 * (y as f64 + 0.5) / h as f64,
                );
                let v = lin(out.get_pixel(x, y)[c]);
                for i in 0..10 {
                    b[i] += t[i] * v;
                    for j in 0..10 {
                        a[i][j] += t[i] * t[j];
                    }
                }
            }
        }
        let coef = solve::solve(a.iter().map(|r| r.to_vec()).collect(), b.to_vec());
        let mut err = 0.0;
        for y in 0..h {
            for x in 0..w {
                let t = terms(
                    2.0 * (x as f64 + 0.5) / w as f64 - 1.0,
                    1.0 - 2.0 * (y as f64 + 0.5) / h as f64,
                );
                let v: f64 = t.iter().zip(&coef).map(|(a, b)| a * b).sum();
                let s = 255.0 * v.max(0.0).powf(1.0 / 2.2);
                err += (s - out.get_pixel(x, y)[c] as f64).powi(2);
            }
        }
        println!(
            "channel {c}: {:?} rms {:.2} grey levels",
            coef.iter().map(|v| (v * 1e4).round() / 1e4).collect::<Vec<_>>(),
            (err / (w * h) as f64).sqrt()
        );
    }
    Ok(())
}
