//! `storyvis eval` on a video dataset (Bouncing MNIST): each held-out clip's caption drawn by
//! every TGANs-C model at each seed, and scored by the clip classifier: digit accuracy, motion
//! accuracy and both-correct, separately on clips of combinations the training split showed
//! (seen) and of held-out ones; and the Fréchet distance between the classifier's features of
//! the generated and the real held-out clips. A "real clips" row gives the classifier's own
//! scores on the ground truth: the ceiling of every other row.

use super::EvalRequest;
use crate::clip_classifier::{groups, held_out_flags, real_clips, true_values, ClipClassifier, SplitAccuracy};
use crate::models::tganc;
use anyhow::{ensure, Result};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;
use storyvis_data::bouncing;
use storyvis_data::dataset::{Dataset, Split, StoryRecord};
use storyvis_metrics::{frechet_distance, Gaussian};
use tch::{Device, Kind, Tensor};

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

#[derive(Clone, Debug, Serialize)]
pub struct VideoReport {
    pub data: String,
    pub clips: usize,
    pub seeds: usize,
    pub classifier: String,
    pub note: String,
    pub real: VideoRow,
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
    ensure!(clips.len() >= 2, "{} has {} held-out clips; eval needs at least 2", req.data.display(), clips.len());
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
    let real = classifier.score(&real_clips(&ds, &clips)?);
    let real_gaussian = Gaussian::fit(&real.features, real.dim)?;
    let real_row = VideoRow {
        name: "real clips".into(),
        checkpoint: String::new(),
        step: 0,
        temporal: String::new(),
        accuracy: SplitAccuracy::of(&real.values, &truth, &flags, &g),
        frechet: None,
        seconds: started.elapsed().as_secs_f64(),
    };
    let total = req.checkpoints.len() * req.seeds * clips.len().div_ceil(DRAW_BATCH);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let tick = || on_batch(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, total);
    let captions: Vec<&str> = clips.iter().map(|s| s.frames[0].sentence.as_str()).collect();
    let models = req
        .checkpoints
        .iter()
        .map(|path| {
            let started = Instant::now();
            let model = tganc::draw::load_with(path, req.device, req.weights)?;
            ensure!(
                model.cfg.frames == ds.header.frames_per_story as i64 && model.cfg.image_size == ds.header.image_size as i64,
                "{} draws {} frames of {}×{}; the dataset's clips are {} frames of {}×{}",
                path.display(),
                model.cfg.frames,
                model.cfg.image_size,
                model.cfg.image_size,
                ds.header.frames_per_story,
                ds.header.image_size,
                ds.header.image_size
            );
            let ids = model.vocab.batch(&captions)?.to_device(model.device());
            let (mut values, mut features, mut all_truth, mut all_flags) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for seed in 0..req.seeds {
                tch::manual_seed(seed as i64);
                for start in (0..clips.len()).step_by(DRAW_BATCH) {
                    let n = (clips.len() - start).min(DRAW_BATCH) as i64;
                    let z = Tensor::randn([n, model.cfg.noise_dim], (Kind::Float, model.device()));
                    let fake = model.draw(&z, &ids.narrow(0, start as i64, n)).to_device(Device::Cpu);
                    let scored = classifier.score(&fake);
                    values.extend(scored.values);
                    features.extend(scored.features);
                    all_truth.extend_from_slice(&truth[start..start + n as usize]);
                    all_flags.extend_from_slice(&flags[start..start + n as usize]);
                    tick();
                }
            }
            Ok(VideoRow {
                name: run_name(path, &model.checkpoint),
                checkpoint: model.checkpoint.display().to_string(),
                step: model.step,
                temporal: format!("{:?}", model.cfg.temporal).to_lowercase(),
                accuracy: SplitAccuracy::of(&values, &all_truth, &all_flags, &g),
                frechet: Some(frechet_distance(&real_gaussian, &Gaussian::fit(&features, real_gaussian.dim)?)?),
                seconds: started.elapsed().as_secs_f64(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(VideoReport {
        data: req.data.display().to_string(),
        clips: clips.len(),
        seeds: req.seeds,
        classifier: classifier.dir.display().to_string(),
        note: "Accuracies and the Fréchet distance use storyvis' clip classifier (digit and motion per digit), trained on real clips.".into(),
        real: real_row,
        models,
    })
}

/// A run's directory name for a checkpoint inside it, else the path given.
fn run_name(path: &Path, checkpoint: &Path) -> String {
    let in_run = checkpoint.parent().and_then(Path::file_name).is_some_and(|c| c == "checkpoints");
    match checkpoint.parent().and_then(Path::parent).and_then(Path::file_name) {
        Some(n) if in_run => n.to_string_lossy().into_owned(),
        _ => path.display().to_string(),
    }
}

/// The report as a markdown table: the real clips first, then each model.
pub fn markdown(r: &VideoReport) -> String {
    let mut s = format!(
        "{} held-out clips of {} × {} seed(s); classifier {}\n\n| row | step | digit (seen) | motion (seen) | both (seen) | digit (held-out) | motion (held-out) | both (held-out) | FD (clf) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        r.clips, r.data, r.seeds, r.classifier
    );
    for row in std::iter::once(&r.real).chain(&r.models) {
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
