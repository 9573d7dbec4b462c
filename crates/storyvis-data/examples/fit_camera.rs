//! Recovers the real CLEVR-SV camera from its frames: where each newly added object appears in
//! the 320×240 originals against the 3-D position the story's vectors give it.
//!
//!   cargo run --release -p storyvis-data --example fit_camera -- IMPORTED_DATASET ORIGINAL_IMAGES_DIR
//!
//! The camera's rotation is shared by every story (the vectors' "right" direction is the same
//! in all of them) and its position is jittered per story (CLEVR's `--camera_jitter`): the fit
//! solves for pitch, focal length and each story's eye position (yaw comes from the "right"
//! direction) by Levenberg–Marquardt on the reprojection error of the objects' centres.

#![allow(clippy::needless_range_loop)] // small dense linear algebra, written with indices

#[path = "common/solve.rs"]
mod solve;

use anyhow::{Context, Result};
use solve::solve;
use std::path::Path;
use storyvis_data::clevr::scene::decode_frame;
use storyvis_data::dataset::Dataset;

/// Centroid (x, y) in pixels of where frame `b` differs from frame `a` by more than `thr`
/// (summed over RGB), if more than 20 pixels do.
fn changed_centroid(a: &image::RgbImage, b: &image::RgbImage, thr: i32) -> Option<(f64, f64)> {
    let (mut sx, mut sy, mut n) = (0.0, 0.0, 0usize);
    for (x, y, p) in b.enumerate_pixels() {
        let q = a.get_pixel(x, y);
        let d: i32 = (0..3).map(|c| (p[c] as i32 - q[c] as i32).abs()).sum();
        if d > thr {
            sx += x as f64;
            sy += y as f64;
            n += 1;
        }
    }
    (n > 20).then(|| (sx / n as f64, sy / n as f64))
}

struct Obs {
    story: usize,
    p: [f64; 3],
    uv: (f64, f64),
}

const W: f64 = 320.0;
const H: f64 = 240.0;

/// Projects world point p for shared (pitch, focal) and eye e; yaw from the right vector.
fn project(right: [f64; 2], pitch: f64, focal: f64, e: [f64; 3], p: [f64; 3]) -> (f64, f64) {
    // Horizontal forward f with f × z = right: right turned 90° anticlockwise.
    let fh = [-right[1], right[0]];
    let (cp, sp) = (pitch.cos(), pitch.sin());
    let fwd = [fh[0] * cp, fh[1] * cp, -sp];
    let r = [right[0], right[1], 0.0];
    // up = right × forward
    let up = [
        r[1] * fwd[2] - r[2] * fwd[1],
        r[2] * fwd[0] - r[0] * fwd[2],
        r[0] * fwd[1] - r[1] * fwd[0],
    ];
    let d = [p[0] - e[0], p[1] - e[1], p[2] - e[2]];
    let dot = |a: [f64; 3], b: [f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    let z = dot(d, fwd);
    (W / 2.0 + focal * dot(d, r) / z, H / 2.0 - focal * dot(d, up) / z)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let ds = Dataset::open(Path::new(&args[1]))?;
    let orig = Path::new(&args[2]);
    let thr: i32 = args.get(3).map_or(Ok(90), |s| s.parse())?;
    let mut obs = Vec::new();
    let mut right = [0.0, 0.0];
    for (si, s) in ds.stories.iter().enumerate() {
        let load = |t: usize| -> Result<image::RgbImage> {
            let p = orig.join(format!("CLEVR_new_{}_{}.png", s.id, t + 1));
            Ok(image::open(&p).with_context(|| p.display().to_string())?.to_rgb8())
        };
        let (objects, _) = decode_frame(&s.frames[3].vector).map_err(anyhow::Error::msg)?;
        let v = &s.frames[3].vector;
        right = [v[72] as f64, v[73] as f64];
        let frames: Vec<image::RgbImage> = (0..4).map(load).collect::<Result<_>>()?;
        for t in 1..4 {
            let Some((x, y)) = changed_centroid(&frames[t - 1], &frames[t], thr) else { continue };
            let (_, o) = &objects[t];
            obs.push(Obs { story: si, p: [o.x, o.y, o.z()], uv: (x, y) });
        }
    }
    let stories = ds.stories.len();
    eprintln!("{} observations over {stories} stories; right = {right:?}", obs.len());
    // Parameters: pitch, focal, then eye per story.
    let mut x: Vec<f64> = vec![0.48, 400.0];
    for _ in 0..stories {
        x.extend([7.5, -7.0, 5.5]);
    }
    let resid = |x: &[f64]| -> Vec<f64> {
        obs.iter()
            .flat_map(|o| {
                let e = [x[2 + 3 * o.story], x[3 + 3 * o.story], x[4 + 3 * o.story]];
                let (u, v) = project(right, x[0], x[1], e, o.p);
                [u - o.uv.0, v - o.uv.1]
            })
            .collect()
    };
    // Weak prior keeping each eye near the mean (stories with few observations).
    let prior = 0.5;
    let mut lambda = 1e-2;
    for it in 0..200 {
        let r = resid(&x);
        let cost = |x: &[f64], r: &[f64]| -> f64 {
            let mean: [f64; 3] = std::array::from_fn(|k| {
                (0..stories).map(|s| x[2 + 3 * s + k]).sum::<f64>() / stories as f64
            });
            r.iter().map(|v| v * v).sum::<f64>()
                + prior
                    * (0..stories)
                        .flat_map(|s| (0..3).map(move |k| (s, k)))
                        .map(|(s, k)| (x[2 + 3 * s + k] - mean[k]).powi(2))
                        .sum::<f64>()
        };
        let c0 = cost(&x, &r);
        let n = x.len();
        let mut jt = vec![vec![0.0; r.len()]; n];
        for i in 0..n {
            let h = 1e-6 * x[i].abs().max(1.0);
            let mut xp = x.clone();
            xp[i] += h;
            let rp = resid(&xp);
            for k in 0..r.len() {
                jt[i][k] = (rp[k] - r[k]) / h;
            }
        }
        let mut a = vec![vec![0.0; n]; n];
        let mut g = vec![0.0; n];
        for i in 0..n {
            for j in i..n {
                let s: f64 = (0..r.len()).map(|k| jt[i][k] * jt[j][k]).sum();
                a[i][j] = s;
                a[j][i] = s;
            }
            g[i] = -(0..r.len()).map(|k| jt[i][k] * r[k]).sum::<f64>();
        }
        // The prior's gradient and (diagonal, with the mean held fixed) curvature.
        let mean: [f64; 3] = std::array::from_fn(|k| {
            (0..stories).map(|s| x[2 + 3 * s + k]).sum::<f64>() / stories as f64
        });
        for s in 0..stories {
            for k in 0..3 {
                a[2 + 3 * s + k][2 + 3 * s + k] += prior;
                g[2 + 3 * s + k] -= prior * (x[2 + 3 * s + k] - mean[k]);
            }
        }
        loop {
            let mut al = a.clone();
            for i in 0..n {
                al[i][i] *= 1.0 + lambda;
            }
            let step = solve(al, g.clone());
            let xn: Vec<f64> = x.iter().zip(&step).map(|(a, b)| a + b).collect();
            let c1 = cost(&xn, &resid(&xn));
            if c1 < c0 {
                x = xn;
                lambda = (lambda / 3.0).max(1e-9);
                break;
            }
            lambda *= 4.0;
            if lambda > 1e9 {
                break;
            }
        }
        if it % 20 == 0 {
            let rms = (resid(&x).iter().map(|v| v * v).sum::<f64>() / obs.len() as f64).sqrt();
            eprintln!(
                "it {it}: cost {c0:.1} rms {rms:.2} px pitch {:.2}° focal {:.1}",
                x[0].to_degrees(),
                x[1]
            );
        }
    }
    let r = resid(&x);
    let rms = (r.iter().map(|v| v * v).sum::<f64>() / obs.len() as f64).sqrt();
    let eyes: Vec<[f64; 3]> =
        (0..stories).map(|s| [x[2 + 3 * s], x[3 + 3 * s], x[4 + 3 * s]]).collect();
    let mean: [f64; 3] =
        std::array::from_fn(|k| eyes.iter().map(|e| e[k]).sum::<f64>() / stories as f64);
    let spread: [f64; 3] =
        std::array::from_fn(|k| eyes.iter().map(|e| (e[k] - mean[k]).abs()).fold(0.0, f64::max));
    let sd: [f64; 3] = std::array::from_fn(|k| {
        (eyes.iter().map(|e| (e[k] - mean[k]).powi(2)).sum::<f64>() / stories as f64).sqrt()
    });
    println!("rms reprojection {rms:.2} px over {} observations", obs.len());
    println!(
        "pitch {:.3}° below horizontal, focal {:.1} px (horizontal FOV {:.2}°)",
        x[0].to_degrees(),
        x[1],
        2.0 * (W / 2.0 / x[1]).atan().to_degrees()
    );
    println!(
        "eye mean {mean:.3?}, max |offset| {spread:.3?}, sd {sd:.3?} (uniform ±0.5 has sd 0.289)"
    );
    Ok(())
}
