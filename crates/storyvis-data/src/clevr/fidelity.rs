//! How close our renders are to the real CLEVR-SV: every story of an imported real dataset is
//! drawn again from its vectors by our renderer (mean camera: the real per-story jitter is not
//! recorded), and the two are compared where it matters for a model trained on ours:
//! the colour of each added object (where frame t differs from frame t − 1, in both), per
//! material, and the floor's brightness.

use super::render::Renderer;
use super::scene::{decode_frame, Camera, FRAMES};
use crate::dataset::{Dataset, StoryRecord};
use anyhow::{ensure, Result};

/// Summed RGB change (0–765) above which a pixel counts as changed between two frames.
const CHANGED: i32 = 60;

/// Mean colour of the pixels of `b` that differ from `a` by more than `CHANGED`; `None` when
/// fewer than 3 do.
fn changed_mean(a: &[u8], b: &[u8]) -> Option<[f64; 3]> {
    let (mut sum, mut n) = ([0.0; 3], 0usize);
    for (pa, pb) in a.chunks(3).zip(b.chunks(3)) {
        if (0..3).map(|c| (pa[c] as i32 - pb[c] as i32).abs()).sum::<i32>() > CHANGED {
            for c in 0..3 {
                sum[c] += pb[c] as f64;
            }
            n += 1;
        }
    }
    (n >= 3).then(|| sum.map(|s| s / n as f64))
}

/// One material's added objects: mean colours, real and ours.
#[derive(Clone, Debug, Default)]
pub struct Colours {
    pub real: Vec<[f64; 3]>,
    pub ours: Vec<[f64; 3]>,
}

impl Colours {
    /// Root mean square difference per channel, in grey levels.
    pub fn rms(&self) -> f64 {
        let (sum, n) = self.real.iter().zip(&self.ours).fold((0.0, 0usize), |(s, n), (r, o)| {
            (s + (0..3).map(|c| (r[c] - o[c]).powi(2)).sum::<f64>(), n + 3)
        });
        (sum / n.max(1) as f64).sqrt()
    }
}

#[derive(Clone, Debug)]
pub struct Fidelity {
    /// Per material (rubber, metal).
    pub objects: [Colours; 2],
    /// Mean brightness (0–255) of frame 1, real and ours.
    pub first_frame: (f64, f64),
    /// Root mean square pixel difference over all frames (the objects sit a few pixels apart:
    /// the camera's jitter is not recorded).
    pub frame_rms: f64,
}

/// Our drawing of a story's scenes from its vectors (mean camera): its frames as RGB8 at
/// `size`×`size`, and each frame's added object's material.
pub fn redraw(story: &StoryRecord, size: u32) -> Result<(Vec<Vec<u8>>, Vec<usize>)> {
    ensure!(story.frames.len() == FRAMES, "story {} has {} frames", story.id, story.frames.len());
    let (decoded, _) = decode_frame(&story.frames[FRAMES - 1].vector)
        .map_err(|e| anyhow::anyhow!("story {}: {e}", story.id))?;
    let objs: Vec<_> = decoded.iter().map(|(_, o)| *o).collect();
    ensure!(objs.len() == FRAMES, "story {}: {} objects in its last frame", story.id, objs.len());
    let frames = (0..FRAMES)
        .map(|t| Renderer::new(&objs[..=t], &Camera { jitter: [0.0; 3] }).render(size, 1))
        .collect();
    Ok((frames, objs.iter().map(|o| o.material).collect()))
}

/// Compares the real frames of `real` (an imported CLEVR-SV) with our drawings of the same scenes.
pub fn compare(real: &Dataset) -> Result<Fidelity> {
    ensure!(!real.stories.is_empty(), "{} has no stories", real.dir.display());
    let size = real.header.image_size;
    let mut objects: [Colours; 2] = Default::default();
    let (mut first_real, mut first_ours, mut sq, mut frames) = (0.0, 0.0, 0.0, 0usize);
    for s in &real.stories {
        let (ours, materials) = redraw(s, size)?;
        let theirs: Vec<Vec<u8>> = s
            .frames
            .iter()
            .map(|f| real.load_image(f).map(|i| i.into_raw()))
            .collect::<Result<_>>()?;
        for (a, b) in theirs.iter().zip(&ours) {
            sq += a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>()
                / a.len() as f64;
            frames += 1;
        }
        let mean = |v: &[u8]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        first_real += mean(&theirs[0]);
        first_ours += mean(&ours[0]);
        for t in 1..FRAMES {
            if let (Some(r), Some(o)) =
                (changed_mean(&theirs[t - 1], &theirs[t]), changed_mean(&ours[t - 1], &ours[t]))
            {
                let m = &mut objects[materials[t]];
                m.real.push(r);
                m.ours.push(o);
            }
        }
    }
    let n = real.stories.len() as f64;
    Ok(Fidelity {
        objects,
        first_frame: (first_real / n, first_ours / n),
        frame_rms: (sq / frames as f64).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_pixels_and_rms() {
        let a = [10u8, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10];
        let b = [100u8, 20, 20, 10, 10, 10, 90, 30, 30, 80, 40, 40];
        // Pixels 0, 2 and 3 changed by more than 60 in sum; pixel 1 did not.
        assert_eq!(changed_mean(&a, &b), Some([90.0, 30.0, 30.0]));
        assert_eq!(changed_mean(&a, &a), None);
        let c = Colours { real: vec![[10.0, 20.0, 30.0]], ours: vec![[13.0, 24.0, 30.0]] };
        assert!((c.rms() - (25.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}
