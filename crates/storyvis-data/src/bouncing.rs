//! Bouncing MNIST with captions, as Sync-DRAW (Mittal, Marwah & Balasubramanian 2017,
//! `dataset/mnist_caption_single.py` and `mnist_caption_two_digit.py`) defines it and TGANs-C
//! (Pan et al. 2017, §4.1, "SBMG" and "TBMG") uses it: one or two real 28×28 MNIST digits on a
//! black canvas, each moving along exactly one axis and bouncing off the borders, with the
//! caption "digit 3 is moving up and down" / "digit 1 is moving left and right and digit 7 is
//! moving up and down".
//!
//! Motion (Sync-DRAW's trajectory): a digit's position on each axis is a number in [0, 1]
//! (its top-left corner over the `size − 28` pixels it can travel), the static axis uniform, the
//! moving axis starting uniform with velocity ±0.2 a frame (speed 2 × step 0.1); each frame the
//! position moves by the velocity first, and a position past a border is set onto it and the
//! velocity reversed; the pixel is ⌊position × (size − 28)⌋. Sync-DRAW always starts the
//! digit towards the bottom or right; here the direction is drawn (either way the caption is
//! the same). Overlapping digits combine by the pixel-wise maximum.
//!
//! The split holds out whole (digit, motion) combinations, as Sync-DRAW's `create_dataset`
//! does: the digits (one digit) or ordered digit pairs (two digits; in the canonical order
//! below only pairs a ≤ b occur) are permuted by the seed,
//! and the i-th of them has motion `i mod 2` held out (one digit), or the second digit's motion
//! `i mod 2` held out whatever the first one does (two digits). Training clips show only the
//! other combinations; the test split alternates clips of seen combinations and clips of
//! held-out ones, so a model is scored on both. Training clips draw training digits, test clips
//! test digits (`mnist::pools`).
//!
//! Two digits are captioned and labelled in a canonical order, by class and, for two of one
//! class, up-and-down first (Sync-DRAW keeps the order it drew them in): the caption's first
//! digit is then a thing a clip shows (its smaller class), so a classifier's "digit1" and
//! "motion1" have one right answer per clip, and a generator is told the same pair one way.
//!
//! A clip is a dataset story: `frames` frames (PNG, grey in all three channels); every frame
//! carries the caption as its sentence, the clip's label and that frame's digit positions.

use crate::dataset::{DatasetWriter, Frame, Header, Split, StoryRecord};
use crate::mnist::{Digits, PIXELS, SIDE};
use crate::rng::Rng;
use anyhow::{ensure, Result};
use rayon::prelude::*;
use std::path::Path;

pub const KIND: &str = "bouncing-mnist";
/// Sync-DRAW's step: velocity 2 × step length 0.1 of the travel a frame.
pub const SPEED: f64 = 0.2;
/// Motions in label order.
pub const MOTIONS: [&str; 2] = ["up and down", "left and right"];
/// Their label names.
const MOTION_LABELS: [&str; 2] = ["up-down", "left-right"];
/// Labels per digit: its class (10) and its motion (2).
pub const PER_DIGIT: usize = 12;

#[derive(Clone, Debug)]
pub struct BouncingOptions {
    /// Digits per clip: 1 or 2.
    pub digits: usize,
    pub clips: usize,
    pub frames: usize,
    pub size: u32,
    pub seed: u64,
    /// Share of the clips in the training split.
    pub split: f64,
}

impl Default for BouncingOptions {
    fn default() -> Self {
        BouncingOptions { digits: 1, clips: 1000, frames: 16, size: 64, seed: 0, split: 0.9 }
    }
}

impl BouncingOptions {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.digits == 1 || self.digits == 2,
            "--digits must be 1 or 2 (got {})",
            self.digits
        );
        ensure!(self.clips >= 1, "--clips must be at least 1");
        ensure!((1..=64).contains(&self.frames), "--frames must be 1 to 64 (got {})", self.frames);
        ensure!(
            self.size as usize > SIDE && self.size <= 512,
            "--size must exceed the 28-pixel digit and be at most 512 (got {})",
            self.size
        );
        ensure!(
            self.split > 0.0 && self.split < 1.0,
            "--split must be between 0 and 1 exclusive (got {})",
            self.split
        );
        Ok(())
    }
}

/// A digit's motion: 0 up and down (the vertical axis moves), 1 left and right.
pub type Motion = usize;

/// One digit of a clip: its class, motion, and (x, y) top-left corner per frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    pub class: u8,
    pub motion: Motion,
    pub path: Vec<(usize, usize)>,
}

/// Positions (pixels) along the moving axis over `frames` frames: Sync-DRAW's update
/// (move, then clamp onto a crossed border and reverse).
pub fn bounce(mut p: f64, mut v: f64, frames: usize, travel: usize) -> Vec<usize> {
    (0..frames)
        .map(|_| {
            p += v;
            if p <= 0.0 {
                p = 0.0;
                v = -v;
            }
            if p >= 1.0 {
                p = 1.0;
                v = -v;
            }
            (p * travel as f64) as usize
        })
        .collect()
}

/// A digit's track: static axis uniform, moving axis from a uniform start, direction drawn.
pub fn track(rng: &mut Rng, class: u8, motion: Motion, frames: usize, travel: usize) -> Track {
    let fixed = (rng.uniform() * travel as f64) as usize;
    let start = rng.uniform();
    let v = if rng.below(2) == 0 { SPEED } else { -SPEED };
    let moving = bounce(start, v, frames, travel);
    let path =
        moving.into_iter().map(|m| if motion == 0 { (fixed, m) } else { (m, fixed) }).collect();
    Track { class, motion, path }
}

/// The caption of a clip's tracks.
pub fn caption(tracks: &[Track]) -> String {
    tracks
        .iter()
        .map(|t| format!("digit {} is moving {}", t.class, MOTIONS[t.motion]))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// A caption of a random clip of `digits` digits with distinct classes: an example of what
/// video models trained on Bouncing MNIST read.
pub fn example_caption(rng: &mut Rng, digits: usize) -> String {
    let mut classes: Vec<u8> = (0..10).collect();
    rng.shuffle(&mut classes);
    let tracks: Vec<Track> = (0..digits)
        .map(|d| Track { class: classes[d], motion: rng.below(MOTIONS.len()), path: Vec::new() })
        .collect();
    caption(&tracks)
}

/// Label names: "digit:0" … "motion:left-right" for one digit; "digit1:…", "motion1:…",
/// "digit2:…", "motion2:…" (in caption order) for two.
pub fn label_names(digits: usize) -> Vec<String> {
    let mut names = Vec::new();
    for k in 0..digits {
        let slot = if digits == 1 { String::new() } else { (k + 1).to_string() };
        names.extend((0..10).map(|c| format!("digit{slot}:{c}")));
        names.extend(MOTION_LABELS.iter().map(|m| format!("motion{slot}:{m}")));
    }
    names
}

/// The clip's label: per digit, one-hot class then one-hot motion.
pub fn label(tracks: &[Track]) -> Vec<u8> {
    let mut l = vec![0u8; PER_DIGIT * tracks.len()];
    for (k, t) in tracks.iter().enumerate() {
        l[PER_DIGIT * k + t.class as usize] = 1;
        l[PER_DIGIT * k + 10 + t.motion] = 1;
    }
    l
}

/// Reads a label back as (class, motion) per digit.
pub fn combination_of(label: &[u8]) -> Vec<(u8, Motion)> {
    label
        .chunks(PER_DIGIT)
        .map(|c| {
            let class = c[..10].iter().position(|&x| x > 0).unwrap_or(0) as u8;
            let motion = c[10..12].iter().position(|&x| x > 0).unwrap_or(0);
            (class, motion)
        })
        .collect()
}

/// The held-out combinations, as Sync-DRAW's `create_dataset` chooses them (module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct HeldOut {
    pub digits: usize,
    /// One digit: per class, the held-out motion. Two digits: per ordered pair (10·a + b), the
    /// second digit's held-out motion.
    pub motion: Vec<Motion>,
}

impl HeldOut {
    pub fn new(digits: usize, seed: u64) -> HeldOut {
        let n = if digits == 1 { 10 } else { 100 };
        let mut order: Vec<usize> = (0..n).collect();
        Rng::for_item(seed, u64::MAX).shuffle(&mut order);
        let mut motion = vec![0; n];
        for (i, &item) in order.iter().enumerate() {
            motion[item] = i % 2;
        }
        HeldOut { digits, motion }
    }

    /// Whether a clip's combination is held out.
    pub fn holds(&self, combo: &[(u8, Motion)]) -> bool {
        match combo {
            [(c, m)] => self.motion[*c as usize] == *m,
            [(a, _), (b, m)] => self.motion[10 * *a as usize + *b as usize] == *m,
            _ => false,
        }
    }

    /// The held-out combinations, each a list of (class, motion) per digit.
    pub fn list(&self) -> Vec<Vec<(u8, Motion)>> {
        let mut out = Vec::new();
        if self.digits == 1 {
            for c in 0..10u8 {
                out.push(vec![(c, self.motion[c as usize])]);
            }
        } else {
            for a in 0..10u8 {
                for b in 0..10u8 {
                    for m1 in 0..2 {
                        out.push(vec![(a, m1), (b, self.motion[10 * a as usize + b as usize])]);
                    }
                }
            }
        }
        out
    }
}

/// Draws the tracks' digits onto `frames` canvases: `size`² grey levels each.
pub fn render(
    tracks: &[Track],
    images: &[&[u8; PIXELS]],
    frames: usize,
    size: usize,
) -> Vec<Vec<u8>> {
    (0..frames)
        .map(|f| {
            let mut canvas = vec![0u8; size * size];
            for (t, img) in tracks.iter().zip(images) {
                let (x, y) = t.path[f];
                for r in 0..SIDE {
                    for c in 0..SIDE {
                        let px = &mut canvas[(y + r) * size + x + c];
                        *px = (*px).max(img[r * SIDE + c]);
                    }
                }
            }
            canvas
        })
        .collect()
}

/// Whether clip `index` of the test split shows a held-out combination (every other one).
pub fn test_clip_held_out(index: usize, opts: &BouncingOptions) -> bool {
    let first_test = (opts.clips as f64 * opts.split).round() as usize;
    (index - first_test) % 2 == 1
}

/// Samples clip `index`: its split, tracks and the digit images (indices into its pool).
pub fn sample_clip(
    opts: &BouncingOptions,
    held: &HeldOut,
    train: &Digits,
    test: &Digits,
    index: usize,
) -> (Split, Vec<Track>, Vec<usize>) {
    let split = Split::of(index, opts.clips, opts.split);
    let (pool, want_held) = match split {
        Split::Train => (train, false),
        // `Split::of` makes no validation clips.
        Split::Val | Split::Test => (test, test_clip_held_out(index, opts)),
    };
    let mut rng = Rng::for_item(opts.seed, index as u64);
    let mut picks: Vec<usize> = (0..opts.digits).map(|_| rng.below(pool.len())).collect();
    // The digits in canonical order (module docs): by class, and two of one class by motion.
    picks.sort_by_key(|&i| pool.labels[i]);
    let classes: Vec<u8> = picks.iter().map(|&i| pool.labels[i]).collect();
    // Every digit (pair) has seen and held-out motions: choose among those of the wanted kind
    // (and, for two digits of one class, in canonical order: up and down before left and right).
    let choices: Vec<Vec<Motion>> = (0..(1usize << opts.digits))
        .map(|bits| (0..opts.digits).map(|k| (bits >> k) & 1).collect::<Vec<_>>())
        .filter(|ms| {
            let combo: Vec<(u8, Motion)> =
                classes.iter().copied().zip(ms.iter().copied()).collect();
            held.holds(&combo) == want_held && combo.windows(2).all(|w| w[0] <= w[1])
        })
        .collect();
    let motions = rng.choose(&choices).clone();
    let travel = opts.size as usize - SIDE;
    let tracks = classes
        .iter()
        .zip(&motions)
        .map(|(&c, &m)| track(&mut rng, c, m, opts.frames, travel))
        .collect();
    (split, tracks, picks)
}

/// Renders a Bouncing MNIST dataset into `out` (in parallel across clips; the bytes do not
/// depend on the thread count). `tick` is called once per finished clip.
pub fn generate(
    opts: &BouncingOptions,
    train: &Digits,
    test: &Digits,
    out: &Path,
    force: bool,
    tick: &(dyn Fn() + Sync),
) -> Result<()> {
    opts.validate()?;
    train.check_classes()?;
    test.check_classes()?;
    let held = HeldOut::new(opts.digits, opts.seed);
    let writer = DatasetWriter::create(out, force)?;
    let size = opts.size as usize;
    let clips: Vec<StoryRecord> = (0..opts.clips)
        .into_par_iter()
        .map(|i| {
            let (split, tracks, picks) = sample_clip(opts, &held, train, test, i);
            let pool = if split == Split::Train { train } else { test };
            let images: Vec<&[u8; PIXELS]> = picks.iter().map(|&p| &pool.images[p]).collect();
            let id = format!("{i:06}");
            let text = caption(&tracks);
            let label = label(&tracks);
            let mut frames = Vec::with_capacity(opts.frames);
            for (f, grey) in render(&tracks, &images, opts.frames, size).into_iter().enumerate() {
                let rgb: Vec<u8> = grey.iter().flat_map(|&g| [g, g, g]).collect();
                let image = format!("images/{id}_{:02}.png", f + 1);
                writer.write_png(&image, &rgb, opts.size)?;
                let vector =
                    tracks.iter().flat_map(|t| [t.path[f].0 as f32, t.path[f].1 as f32]).collect();
                frames.push(Frame {
                    image,
                    vector,
                    label: label.clone(),
                    sentence: text.clone(),
                    captions: Vec::new(),
                    objects: Vec::new(),
                });
            }
            tick();
            Ok(StoryRecord { id, split, frames })
        })
        .collect::<Result<_>>()?;
    let source = serde_json::json!({
        "generator": "storyvis bouncing-mnist (Sync-DRAW's trajectories and split)",
        "digits": opts.digits,
        "seed": opts.seed,
        "split": opts.split,
        "speed": SPEED,
        "mnist": train.source,
        "train_digits": train.len(),
        "test_digits": test.len(),
        "held_out_motion": held.motion,
        "vector": "per digit, the top-left corner (x, y) of its 28×28 box in this frame, pixels",
    });
    let header = Header {
        format: crate::dataset::FORMAT.into(),
        version: crate::dataset::VERSION,
        kind: KIND.into(),
        frames_per_story: opts.frames,
        image_size: opts.size,
        vector_len: 2 * opts.digits,
        label_names: label_names(opts.digits),
        stories: opts.clips,
        source,
    };
    writer.finish(&header, &clips)
}

/// The held-out combinations a Bouncing MNIST dataset's header records.
pub fn held_out_of(header: &Header) -> Result<HeldOut> {
    ensure!(header.kind == KIND, "a {} dataset, not {KIND}", header.kind);
    let digits = header.source.get("digits").and_then(|d| d.as_u64()).unwrap_or(0) as usize;
    let motion: Vec<Motion> = header
        .source
        .get("held_out_motion")
        .and_then(|m| m.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_u64().map(|x| x as usize)).collect())
        .unwrap_or_default();
    ensure!(
        (digits == 1 && motion.len() == 10) || (digits == 2 && motion.len() == 100),
        "the dataset header records no held-out combinations"
    );
    Ok(HeldOut { digits, motion })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Dataset;

    /// Ten classes, `per` digits each, every pixel of a digit its pool's mark plus its class.
    fn pool(per: usize, mark: u8) -> Digits {
        let mut d = Digits { source: "test digits".into(), ..Digits::default() };
        for c in 0..10u8 {
            for _ in 0..per {
                d.images.push([mark + c; PIXELS]);
                d.labels.push(c);
            }
        }
        d
    }

    #[test]
    fn the_trajectory_bounces_as_computed_by_hand() {
        // Travel 36 px, start 0.5 moving +0.2: 0.7, 0.9, 1.1 → border (1.0, reversed), 0.8, 0.6.
        assert_eq!(bounce(0.5, 0.2, 5, 36), vec![25, 32, 36, 28, 21]);
        // Start 0.3 moving −0.2: 0.1, −0.1 → 0 (reversed), 0.2, 0.4.
        assert_eq!(bounce(0.3, -0.2, 4, 36), vec![3, 0, 7, 14]);
        // Every position stays on the canvas, and steps are the speed but at a border.
        let mut rng = Rng::new(3);
        for _ in 0..50 {
            let t = track(&mut rng, 4, 1, 40, 36);
            assert!(t.path.iter().all(|&(x, y)| x <= 36 && y <= 36));
            assert!(t.path.iter().all(|&(_, y)| y == t.path[0].1), "left and right: y is fixed");
            assert!(t.path.windows(2).all(|w| w[0].0.abs_diff(w[1].0) <= 8));
        }
    }

    #[test]
    fn captions_and_labels_agree() {
        let t = |class, motion| Track { class, motion, path: vec![(0, 0)] };
        let one = [t(3, 0)];
        assert_eq!(caption(&one), "digit 3 is moving up and down");
        let two = [t(1, 1), t(7, 0)];
        assert_eq!(
            caption(&two),
            "digit 1 is moving left and right and digit 7 is moving up and down"
        );
        let names = label_names(2);
        let on: Vec<&str> = label(&two)
            .iter()
            .zip(&names)
            .filter(|(&l, _)| l == 1)
            .map(|(_, n)| n.as_str())
            .collect();
        assert_eq!(on, vec!["digit1:1", "motion1:left-right", "digit2:7", "motion2:up-down"]);
        assert_eq!(combination_of(&label(&two)), vec![(1, 1), (7, 0)]);
        assert_eq!(label_names(1).len(), 12);
    }

    #[test]
    fn digits_are_drawn_where_the_track_says() {
        let img = {
            let mut d = [0u8; PIXELS];
            d[0] = 200; // top-left pixel
            d[PIXELS - 1] = 100; // bottom-right pixel
            d
        };
        let tracks = [
            Track { class: 0, motion: 1, path: vec![(5, 9), (6, 9)] },
            Track { class: 1, motion: 0, path: vec![(5, 9), (30, 2)] },
        ];
        let other = [50u8; PIXELS];
        let frames = render(&tracks, &[&img, &other], 2, 64);
        // Frame 0: both at (5, 9): maximum of 200 and 50 at the corner, 50 elsewhere in the box.
        assert_eq!(frames[0][9 * 64 + 5], 200);
        assert_eq!(frames[0][9 * 64 + 6], 50);
        assert_eq!(frames[0][(9 + 27) * 64 + 5 + 27], 100);
        assert_eq!(frames[0][8 * 64 + 5], 0);
        // Frame 1: the first digit moved one pixel right.
        assert_eq!(frames[1][9 * 64 + 6], 200);
        assert_eq!(frames[1][2 * 64 + 30], 50);
        assert_eq!(frames[1].iter().filter(|&&p| p > 0).count(), 2 + 28 * 28);
    }

    #[test]
    fn the_split_holds_out_whole_combinations() {
        for digits in [1, 2] {
            let held = HeldOut::new(digits, 7);
            let list = held.list();
            let total = if digits == 1 { 20 } else { 400 };
            assert_eq!(list.len(), total / 2, "half of the combinations are held out");
            assert!(list.iter().all(|c| held.holds(c)));
            // Every digit (pair) keeps a seen combination.
            for c in 0..10u8 {
                if digits == 1 {
                    assert!(!held.holds(&[(c, 1 - held.motion[c as usize])]));
                }
            }
            let opts = BouncingOptions {
                digits,
                clips: 400,
                frames: 3,
                seed: 7,
                ..BouncingOptions::default()
            };
            let (train, test) = (pool(3, 0), pool(2, 100));
            let mut test_kinds = [0, 0];
            for i in 0..opts.clips {
                let (split, tracks, picks) = sample_clip(&opts, &held, &train, &test, i);
                let combo: Vec<(u8, Motion)> = tracks.iter().map(|t| (t.class, t.motion)).collect();
                assert!(
                    combo.windows(2).all(|w| w[0] <= w[1]),
                    "clip {i}: digits out of canonical order {combo:?}"
                );
                match split {
                    Split::Train => {
                        assert!(!held.holds(&combo), "training clip {i} shows held-out {combo:?}");
                        assert!(picks
                            .iter()
                            .zip(&tracks)
                            .all(|(&p, t)| train.labels[p] == t.class));
                    }
                    Split::Val | Split::Test => {
                        assert_eq!(split, Split::Test);
                        assert_eq!(held.holds(&combo), test_clip_held_out(i, &opts));
                        test_kinds[held.holds(&combo) as usize] += 1;
                    }
                }
            }
            assert_eq!(test_kinds, [20, 20]);
        }
        // Another seed holds out other combinations.
        assert_ne!(HeldOut::new(1, 7), HeldOut::new(1, 8));
    }

    #[test]
    fn a_dataset_is_written_deterministically_with_its_held_out_list() {
        let dir = tempfile::tempdir().unwrap();
        let opts = BouncingOptions {
            digits: 2,
            clips: 10,
            frames: 4,
            seed: 1,
            ..BouncingOptions::default()
        };
        let (train, test) = (pool(2, 0), pool(1, 100));
        generate(&opts, &train, &test, &dir.path().join("a"), false, &|| {}).unwrap();
        generate(&opts, &train, &test, &dir.path().join("b"), false, &|| {}).unwrap();
        let a = Dataset::open(&dir.path().join("a")).unwrap();
        let b = Dataset::open(&dir.path().join("b")).unwrap();
        assert_eq!(a.stories, b.stories);
        assert_eq!(
            std::fs::read(dir.path().join("a/images/000009_04.png")).unwrap(),
            std::fs::read(dir.path().join("b/images/000009_04.png")).unwrap()
        );
        assert_eq!(
            (a.header.frames_per_story, a.header.vector_len, a.header.label_names.len()),
            (4, 4, 24)
        );
        let held = held_out_of(&a.header).unwrap();
        for s in &a.stories {
            let combo = combination_of(&s.frames[0].label);
            assert_eq!(
                s.frames[0].sentence,
                caption(
                    &combo
                        .iter()
                        .map(|&(class, motion)| Track { class, motion, path: vec![] })
                        .collect::<Vec<_>>()
                )
            );
            // Test digits are drawn from the test pool (grey 100 + class), training ones from the other.
            let img = a.load_image(&s.frames[0]).unwrap();
            let top = img.pixels().map(|p| p[0]).max().unwrap();
            assert_eq!(top >= 100, s.split == Split::Test, "clip {}", s.id);
            assert_eq!(
                held.holds(&combo),
                s.split == Split::Test && test_clip_held_out(s.id.parse().unwrap(), &opts)
            );
        }
    }

    #[test]
    fn bad_options_are_clear_errors() {
        let bad = |o: BouncingOptions| format!("{:#}", o.validate().unwrap_err());
        assert!(
            bad(BouncingOptions { frames: 0, ..BouncingOptions::default() }).contains("--frames")
        );
        assert!(bad(BouncingOptions { size: 28, ..BouncingOptions::default() }).contains("--size"));
        assert!(
            bad(BouncingOptions { digits: 3, ..BouncingOptions::default() }).contains("--digits")
        );
        assert!(bad(BouncingOptions { clips: 0, ..BouncingOptions::default() }).contains("--clips"));
    }
}
