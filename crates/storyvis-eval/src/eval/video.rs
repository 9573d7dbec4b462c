//! `storyvis eval` on a video dataset (Bouncing MNIST): each held-out clip's caption drawn by
//! every video model at each seed (through its family's evaluation hook), and scored by the clip classifier: digit accuracy, motion
//! accuracy and both-correct, separately on clips of combinations the training split showed
//! (seen) and of held-out ones; and the Fréchet distance between the classifier's features of
//! the generated and the real held-out clips. A "real clips" row gives the classifier's own
//! scores on the ground truth: the ceiling of every other row. A floor row, the real clips with
//! their first frame held still, says what the columns give a model that draws the right digit
//! and never moves it (the motion classifier reads a still clip as one of its two motions).

use super::EvalRequest;
use crate::clip_classifier::{
    groups, held_out_flags, real_clips, true_values, ClipClassifier, SplitAccuracy,
};
use anyhow::{ensure, Result};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;
use storyvis_data::bouncing;
use storyvis_data::dataset::{Dataset, Split, StoryRecord};
use storyvis_metrics::{frechet_distance, Gaussian};
use tch::{Kind, Tensor};

/// Clips drawn per generator call.
const DRAW_BATCH: usize = 50;

#[derive(Clone, Debug, Serialize)]
pub struct VideoRow {
    pub name: String,
    pub checkpoint: String,
    pub step: usize,
    /// adversarial (TGANs-C), constraint (TGANs-C-C) or none.
    pub temporal: String,
    pub accuracy: SplitAccuracy,
    /// Classifier-feature Fréchet distance to the real held-out clips; absent for them.
    pub frechet: Option<f64>,
    pub seconds: f64,
}

impl VideoRow {
    /// A row no model drew (the real clips, a floor), timed from `started`.
    fn reference(
        name: &str,
        accuracy: SplitAccuracy,
        frechet: Option<f64>,
        started: Instant,
    ) -> VideoRow {
        VideoRow {
            name: name.into(),
            checkpoint: String::new(),
            step: 0,
            temporal: String::new(),
            accuracy,
            frechet,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct VideoReport {
    pub data: String,
    pub clips: usize,
    pub seeds: usize,
    pub classifier: String,
    pub note: String,
    pub real: VideoRow,
    /// Rows that draw what ignores the model: the real clips' first frames held still.
    pub floors: Vec<VideoRow>,
    pub models: Vec<VideoRow>,
}

/// Scores every TGANs-C model of `req` on the first `req.stories` held-out clips of a video
/// dataset; `on_batch(done, total)` after each batch drawn.
pub fn evaluate_video(req: &EvalRequest, on_batch: &dyn Fn(usize, usize)) -> Result<VideoReport> {
    ensure!(!req.checkpoints.is_empty(), "nothing to evaluate: give --checkpoint");
    ensure!(req.stories > 0 && req.seeds > 0, "--stories and --seeds must be positive");
    let ds = Dataset::open(&req.data)?;
    let held = bouncing::held_out_of(&ds.header)?;
    let clips: Vec<&StoryRecord> = ds.split(Split::Test).take(req.stories).collect();
    ensure!(
        clips.len() >= 2,
        "{} has {} held-out clips; eval needs at least 2",
        req.data.display(),
        clips.len()
    );
    let classifier = ClipClassifier::load(&req.classifier, req.device)?;
    ensure!(
        classifier.manifest.labels == ds.header.label_names && classifier.manifest.frames == ds.header.frames_per_story as i64,
        "the clip classifier at {} was trained on other clips (labels or frames) than the dataset at {}",
        req.classifier.display(),
        req.data.display()
    );
    let g = groups(&ds.header.label_names);
    let truth: Vec<Vec<i64>> = clips.iter().map(|s| true_values(&s.frames[0].label, &g)).collect();
    let flags = held_out_flags(&held, &clips);
    let started = Instant::now();
    let real_tensor = real_clips(&ds, &clips)?;
    let real = classifier.score(&real_tensor);
    let real_gaussian = Gaussian::fit(&real.features, real.dim)?;
    let real_row = VideoRow::reference(
        "real clips",
        SplitAccuracy::of(&real.values, &truth, &flags, &g),
        None,
        started,
    );
    let started = Instant::now();
    let still = classifier.score(&held_still(&real_tensor));
    let still_frechet =
        frechet_distance(&real_gaussian, &Gaussian::fit(&still.features, real_gaussian.dim)?)?;
    let still_row = VideoRow::reference(
        "floor: first frame held still",
        SplitAccuracy::of(&still.values, &truth, &flags, &g),
        Some(still_frechet),
        started,
    );
    let total = req.checkpoints.len() * req.seeds * clips.len().div_ceil(DRAW_BATCH);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let tick = || on_batch(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, total);
    let models = req
        .checkpoints
        .iter()
        .map(|path| {
            let started = Instant::now();
            let model = super::load_for(path, req, &ds)?;
            // "Seen" is what the model's training data showed, where its checkpoint says.
            let flags =
                model.held_out().map_or_else(|| flags.clone(), |h| held_out_flags(h, &clips));
            let (mut values, mut features, mut all_truth, mut all_flags) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            // Batches come seed by seed, each seed's in clip order.
            let mut at = 0;
            model.draw_items(&ds, &clips, req.seeds, DRAW_BATCH, &mut |fake| {
                let n = fake.size()[0] as usize;
                let start = at % clips.len();
                let scored = classifier.score(&fake);
                values.extend(scored.values);
                features.extend(scored.features);
                all_truth.extend_from_slice(&truth[start..start + n]);
                all_flags.extend_from_slice(&flags[start..start + n]);
                at += n;
                tick();
                Ok(())
            })?;
            Ok(VideoRow {
                name: super::display_name(path, model.about().checkpoint),
                checkpoint: model.about().checkpoint.display().to_string(),
                step: model.about().step,
                temporal: model.variant(),
                accuracy: SplitAccuracy::of(&values, &all_truth, &all_flags, &g),
                frechet: Some(frechet_distance(
                    &real_gaussian,
                    &Gaussian::fit(&features, real_gaussian.dim)?,
                )?),
                seconds: started.elapsed().as_secs_f64(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(VideoReport {
        data: req.data.display().to_string(),
        clips: clips.len(),
        seeds: req.seeds,
        classifier: classifier.dir.display().to_string(),
        note: "Accuracies and the Fréchet distance use storyvis' clip classifier (digit and motion per digit), trained on real clips. A model's seen and held-out combinations are those of its own training data where its checkpoint records them (the dataset's otherwise).".into(),
        real: real_row,
        floors: vec![still_row],
        models,
    })
}

/// Clips [N, C, T, S, S] with every frame replaced by the first.
pub fn held_still(clips: &Tensor) -> Tensor {
    clips.narrow(2, 0, 1).expand_as(clips).contiguous()
}

/// The report as a markdown table: the real clips first, then each model.
pub fn markdown(r: &VideoReport) -> String {
    let mut s = format!(
        "{} held-out clips of {} × {} seed(s); classifier {}\n\n| row | step | digit (seen) | motion (seen) | both (seen) | digit (held-out) | motion (held-out) | both (held-out) | FD (clf) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        r.clips, r.data, r.seeds, r.classifier
    );
    for row in std::iter::once(&r.real).chain(&r.floors).chain(&r.models) {
        let a = &row.accuracy;
        s.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} |\n",
            row.name,
            if row.checkpoint.is_empty() { "—".to_string() } else { row.step.to_string() },
            a.seen.digit,
            a.seen.motion,
            a.seen.both,
            a.held_out.digit,
            a.held_out.motion,
            a.held_out.both,
            row.frechet.map_or("—".into(), |f| format!("{f:.2}"))
        ));
    }
    s.push_str(&format!("\n{}\n", r.note));
    s
}

/// The generative adversarial metric (Im, Kim, Jiang & Memisevic 2016, §4; the comparison
/// TGANs-C §4.3 reports): two models' discriminators judge the held-out real clips and each
/// other's generated clips. A verdict is "real" when the discriminators' mean probability
/// exceeds ½ (`tganc::draw::Loaded::judge`).
#[derive(Clone, Debug, Serialize)]
pub struct Gam {
    pub a: String,
    pub b: String,
    pub clips: usize,
    /// Share of real held-out clips that A's and B's discriminators call fake.
    pub test_error: [f64; 2],
    /// Share of B's clips A's discriminators call real, and of A's clips B's call real.
    pub sample_error: [f64; 2],
    /// ε(D_A on real) / ε(D_B on real): near 1 when the discriminators are comparable.
    pub test_ratio: f64,
    /// ε(D_A on G_B) / ε(D_B on G_A): below 1 when A's generator fools B's discriminators more
    /// than B's fools A's (A wins).
    pub sample_ratio: f64,
    pub verdict: String,
}

/// How far from 1 the test ratio may be for the sample ratio to decide (Im et al. require the
/// two discriminators to be comparable on real data).
pub const GAM_TEST_TOLERANCE: f64 = 0.2;

/// Ratios and verdict from the four error rates.
pub fn gam_verdict(
    a: &str,
    b: &str,
    test_error: [f64; 2],
    sample_error: [f64; 2],
) -> (f64, f64, String) {
    let ratio = |x: f64, y: f64| (x + 1e-6) / (y + 1e-6);
    let (rt, rs) = (ratio(test_error[0], test_error[1]), ratio(sample_error[0], sample_error[1]));
    let verdict = if (rt - 1.0).abs() > GAM_TEST_TOLERANCE {
        format!("no verdict: the discriminators disagree on real clips (test ratio {rt:.3}, outside 1 ± {GAM_TEST_TOLERANCE})")
    } else if rs < 1.0 {
        format!("{a} wins (sample ratio {rs:.3} < 1)")
    } else if rs > 1.0 {
        format!("{b} wins (sample ratio {rs:.3} > 1)")
    } else {
        "a tie (sample ratio 1)".to_string()
    };
    (rt, rs, verdict)
}

/// GAM between two TGANs-C training checkpoints on the first `req.stories` held-out clips
/// (noise seed 0).
pub fn gam(a: &Path, b: &Path, req: &EvalRequest) -> Result<Gam> {
    let ds = Dataset::open(&req.data)?;
    let clips: Vec<&StoryRecord> = ds.split(Split::Test).take(req.stories).collect();
    ensure!(
        clips.len() >= 2,
        "{} has {} held-out clips; GAM needs at least 2",
        req.data.display(),
        clips.len()
    );
    let real = real_clips(&ds, &clips)?;
    let mut models =
        [a, b].iter().map(|p| super::load_for(p, req, &ds)).collect::<Result<Vec<_>>>()?;
    // Each model's discriminators judge one real clip first: a copy without them (an export)
    // is an error before anything is drawn.
    for m in &mut models {
        let _ = m.judge(&real.narrow(0, 0, 1), &clips[..1])?;
    }
    // Each model's clips (noise seed 0), then its verdicts: real clips, then the other's clips.
    let mut drawn = Vec::new();
    for m in &models {
        let mut parts = Vec::new();
        m.draw_items(&ds, &clips, 1, DRAW_BATCH, &mut |x| {
            parts.push(x);
            Ok(())
        })?;
        drawn.push(Tensor::cat(&parts, 0));
    }
    let mut share_real = |k: usize, x: &Tensor| -> Result<f64> {
        let mut real_calls = 0.0;
        for start in (0..clips.len()).step_by(DRAW_BATCH) {
            let n = (clips.len() - start).min(DRAW_BATCH);
            let p =
                models[k].judge(&x.narrow(0, start as i64, n as i64), &clips[start..start + n])?;
            real_calls += p.gt(0.5).to_kind(Kind::Float).sum(Kind::Float).double_value(&[]);
        }
        Ok(real_calls / clips.len() as f64)
    };
    let test_error = [1.0 - share_real(0, &real)?, 1.0 - share_real(1, &real)?];
    let sample_error = [share_real(0, &drawn[1])?, share_real(1, &drawn[0])?];
    let (na, nb) = (
        super::display_name(a, models[0].about().checkpoint),
        super::display_name(b, models[1].about().checkpoint),
    );
    let (test_ratio, sample_ratio, verdict) = gam_verdict(&na, &nb, test_error, sample_error);
    Ok(Gam {
        a: na,
        b: nb,
        clips: clips.len(),
        test_error,
        sample_error,
        test_ratio,
        sample_ratio,
        verdict,
    })
}

/// The GAM result as a markdown table.
pub fn gam_markdown(g: &Gam) -> String {
    format!(
        "GAM on {} held-out clips\n\n| | A = {} | B = {} |\n|---|---:|---:|\n| error of its discriminators on real clips | {:.3} | {:.3} |\n| error of its discriminators on the other's clips | {:.3} | {:.3} |\n\ntest ratio {:.3}, sample ratio {:.3}: {}\n",
        g.clips, g.a, g.b, g.test_error[0], g.test_error[1], g.sample_error[0], g.sample_error[1], g.test_ratio, g.sample_ratio, g.verdict
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_still_floor_repeats_each_clips_first_frame() {
        let clips = Tensor::randn([2, 1, 4, 3, 3], (Kind::Float, tch::Device::Cpu));
        let still = held_still(&clips);
        assert_eq!(still.size(), clips.size());
        let (c, s) = (
            Vec::<f32>::try_from(clips.flatten(0, -1)).unwrap(),
            Vec::<f32>::try_from(still.flatten(0, -1)).unwrap(),
        );
        for n in 0..2 {
            for t in 0..4 {
                for p in 0..9 {
                    assert_eq!(
                        s[(n * 4 + t) * 9 + p],
                        c[n * 4 * 9 + p],
                        "clip {n} frame {t} pixel {p}"
                    );
                }
            }
        }
    }

    #[test]
    fn gam_follows_the_ratios() {
        // Comparable discriminators on real data; A's fool B's more than B's fool A's.
        let (rt, rs, v) = gam_verdict("A", "B", [0.10, 0.11], [0.05, 0.20]);
        assert!((rt - 0.10 / 0.11).abs() < 1e-4 && (rs - 0.25).abs() < 1e-4);
        assert!(v.starts_with("A wins"), "{v}");
        let (_, rs, v) = gam_verdict("A", "B", [0.10, 0.10], [0.30, 0.15]);
        assert!((rs - 2.0).abs() < 1e-4 && v.starts_with("B wins"), "{v}");
        // Discriminators far apart on real data: no verdict, whatever the samples say.
        let (rt, _, v) = gam_verdict("A", "B", [0.10, 0.40], [0.05, 0.20]);
        assert!((rt - 0.25).abs() < 1e-4 && v.starts_with("no verdict"), "{v}");
        // Zero errors do not divide by zero.
        let (rt, rs, v) = gam_verdict("A", "B", [0.0, 0.0], [0.0, 0.0]);
        assert_eq!((rt, rs), (1.0, 1.0));
        assert!(v.starts_with("a tie"), "{v}");
    }
}
