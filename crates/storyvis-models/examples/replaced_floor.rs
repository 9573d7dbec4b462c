//! What SSIM against the ground truth can a *perfect* story model reach on CLEVR-SV? The text
//! names each object and its relation to an earlier one (or its region of the scene), not where
//! it stands, so a model that draws every story exactly right may put the objects anywhere the
//! sentences allow. This re-renders held-out stories with the same camera and the same objects
//! (shape, colour, material, size) at other positions, kept only when every sentence the
//! renderer writes for the new placement is word for word the original one (the same regions
//! and relations) and the placement rules and visibility hold, and scores those frames by SSIM
//! and PSNR against the ground truth, beside a flat frame of the held-out frames' mean colour.
//!
//!   cargo run --release -p storyvis-models --example replaced_floor -- data/clevr-sv-10k-v3 [STORIES] [SEED]
//!
//! Each original story is first re-rendered from its seed and checked byte for byte against
//! the dataset's frames, so the placements are those of the data on disk.
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;
use storyvis_data::clevr::render::Renderer;
use storyvis_data::clevr::scene::{placement_ok, Object, Placement};
use storyvis_data::clevr::sentence::caption;
use storyvis_data::clevr::{sample_story, GenerateOptions};
use storyvis_data::dataset::{Dataset, Split};
use storyvis_data::rng::Rng;
use storyvis_metrics::ssim::{psnr, ssim, ImageShape};

/// Whole placements tried per story before giving up on it.
const TRIES: usize = 20_000;

/// Interleaved RGB bytes → channel-major floats in [0, 1].
fn planar(rgb: &[u8], s: usize) -> Vec<f32> {
    let mut out = vec![0.0; 3 * s * s];
    for (p, px) in rgb.chunks(3).enumerate() {
        for c in 0..3 {
            out[c * s * s + p] = px[c] as f32 / 255.0;
        }
    }
    out
}

fn main() -> Result<()> {
    storyvis_models::install();
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).context("usage: replaced_floor DATASET [STORIES] [SEED]")?;
    let limit: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let seed: u64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let ds = Dataset::open(Path::new(dir))?;
    let src = &ds.header.source;
    let opts = GenerateOptions {
        stories: ds.header.stories,
        seed: src
            .get("seed")
            .and_then(|v| v.as_u64())
            .context("the dataset names no render seed (is it rendered by prepare clevr-sv?)")?,
        size: ds.header.image_size,
        split: src.get("split").and_then(|v| v.as_f64()).unwrap_or(0.9),
        supersample: src.get("supersample").and_then(|v| v.as_u64()).unwrap_or(1) as u32,
        ..GenerateOptions::default()
    };
    let s = opts.size as usize;
    let shape = ImageShape { channels: 3, height: s, width: s };
    let rules = Placement::default();
    let min_px = opts.min_visible_pixels();
    let held_out: Vec<usize> = (0..opts.stories)
        .filter(|&i| Split::of(i, opts.stories, opts.split) == Split::Test)
        .take(limit)
        .collect();

    // The held-out frames and their re-placed versions, story by story.
    let mut truth: Vec<Vec<f32>> = Vec::new();
    let mut replaced: Vec<Vec<f32>> = Vec::new();
    let mut skipped = 0;
    for &i in &held_out {
        let (story, caption_rng) = sample_story(&opts, i)?;
        let record = &ds.stories[i];
        let frames = story.objects.len();
        let mut sentences = Vec::new();
        let mut r = caption_rng.clone();
        for t in 0..frames {
            let rgb = Renderer::new(&story.objects[..=t], &story.camera)
                .render(opts.size, opts.supersample);
            let stored = ds.load_image(&record.frames[t])?;
            ensure!(stored.as_raw() == &rgb, "story {i} frame {t}: the re-render differs from the dataset's frame (another renderer version?)");
            sentences.push(caption(&story.objects, t, &story.camera, &mut r).text);
            ensure!(
                sentences[t] == record.frames[t].sentence,
                "story {i} frame {t}: sentence differs from the dataset's"
            );
        }
        let mut rng = Rng::for_item(seed, i as u64);
        let mut found = None;
        'tries: for _ in 0..TRIES {
            let mut objects: Vec<Object> = Vec::with_capacity(frames);
            for o in &story.objects {
                let lim = rules.extent - o.radius();
                let moved = Object {
                    x: rng.range(-lim, lim),
                    y: rng.range(-lim, lim),
                    angle: rng.range(0.0, std::f64::consts::TAU),
                    ..*o
                };
                if !story.camera.sees_whole(&moved)
                    || !objects.iter().all(|p| placement_ok(&story.camera, p, &moved, &rules))
                {
                    continue 'tries;
                }
                objects.push(moved);
            }
            let mut r = caption_rng.clone();
            if (0..frames).any(|t| caption(&objects, t, &story.camera, &mut r).text != sentences[t])
            {
                continue;
            }
            if Renderer::new(&objects, &story.camera)
                .visible_pixels(opts.size)
                .iter()
                .any(|&v| v < min_px)
            {
                continue;
            }
            found = Some(objects);
            break;
        }
        let Some(objects) = found else {
            skipped += 1;
            continue;
        };
        for t in 0..frames {
            truth.push(planar(
                &Renderer::new(&story.objects[..=t], &story.camera)
                    .render(opts.size, opts.supersample),
                s,
            ));
            replaced.push(planar(
                &Renderer::new(&objects[..=t], &story.camera).render(opts.size, opts.supersample),
                s,
            ));
        }
    }
    if truth.is_empty() {
        bail!("no held-out story could be re-placed in {TRIES} tries");
    }
    // The flat floor: every frame the held-out frames' mean colour.
    let n = truth.len();
    let mut colour = [0f64; 3];
    for f in &truth {
        for (c, m) in colour.iter_mut().enumerate() {
            *m += f[c * s * s..(c + 1) * s * s].iter().map(|&x| x as f64).sum::<f64>()
                / (s * s * n) as f64;
        }
    }
    let flat: Vec<f32> = (0..3 * s * s).map(|k| colour[k / (s * s)] as f32).collect();
    let mut replaced_scores = (0.0, 0.0);
    let mut flat_scores = (0.0, 0.0);
    for (t, g) in truth.iter().zip(&replaced) {
        replaced_scores.0 += ssim(t, g, shape, 1.0)?;
        replaced_scores.1 += psnr(t, g, shape, 1.0)?;
        flat_scores.0 += ssim(t, &flat, shape, 1.0)?;
        flat_scores.1 += psnr(t, &flat, shape, 1.0)?;
    }
    let nf = n as f64;
    println!("{} held-out stories ({n} frames) re-placed, {skipped} without a placement in {TRIES} tries", held_out.len() - skipped);
    println!("| row | SSIM | PSNR |\n|---|---:|---:|");
    println!(
        "| the same story, other positions the sentences allow | {:.3} | {:.2} |",
        replaced_scores.0 / nf,
        replaced_scores.1 / nf
    );
    println!(
        "| flat frame of the held-out frames' mean colour | {:.3} | {:.2} |",
        flat_scores.0 / nf,
        flat_scores.1 / nf
    );
    Ok(())
}
