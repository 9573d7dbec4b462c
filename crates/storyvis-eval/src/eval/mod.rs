//! `storyvis eval`: draws held-out stories with trained generators of any family (through the
//! family registry) and scores them.
//!
//! Per model: SSIM and PSNR of every generated frame against its ground-truth frame (the
//! StoryGAN CLEVR-SV metric); the attribute classifier's verdicts on generated frames against
//! the true labels (micro/macro F1, exact-match frame accuracy, story accuracy: all T frames
//! exact); the Fréchet distance between classifier features of real and generated frames and
//! the Inception-score formula over its label probabilities (classifier numbers, not
//! Inception-v3 ones); and a consistency score: of the labels detected at frame t, the share
//! still detected at t + 1 (CLEVR-SV stories only add objects, so real stories score 1 up to
//! classifier error).
//!
//! Beside those (`attributes`): per-attribute accuracy, persistence of earlier frames' objects
//! and seed diversity; and floor rows (`floors`: a flat frame, the mean frame, the previous
//! ground-truth frame) that every model must clear for its numbers to mean anything.
//!
//! Every model draws the same stories with the same seeds; a "real frames" row shows what the
//! classifier-based numbers are on the ground truth itself.

pub use crate::attributes;
pub mod floors;
pub mod objects;
pub mod video;

use crate::attributes::{
    attribute_accuracy, attribute_groups, grey_level_difference, introduced_objects,
    persistence_counts, seed_diversity, AttributeAccuracy,
};
use crate::classifier::{count, Classifier, Scored};
use anyhow::{ensure, Result};
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use storyvis_core::checkpoint;
use storyvis_core::evaluation::Evaluated;
use storyvis_core::registry;
use storyvis_data::dataset::{Dataset, Split, StoryRecord};
use storyvis_metrics::{frechet_distance, inception_score, psnr, ssim, Gaussian, ImageShape};
use tch::{Device, Kind, Tensor};

/// The seed of the random-places floor's placements.
const RANDOM_PLACES_SEED: u64 = 0x9A1D;
/// Stories drawn per generator call.
const DRAW_BATCH: usize = 100;
/// Splits of the Inception-score formula (as the original code).
const IS_SPLITS: usize = 10;
/// Frames are scored at the classifier's size: models of 128×128 or 256×256 images are averaged
/// down to it (`classifier::at_size`), SSIM and PSNR included.
const FRAME: ImageShape = ImageShape {
    channels: 3,
    height: crate::classifier::SIZE as usize,
    width: crate::classifier::SIZE as usize,
};

pub struct EvalRequest {
    /// Runs or checkpoints to score, in table order.
    pub checkpoints: Vec<PathBuf>,
    pub data: PathBuf,
    pub classifier: PathBuf,
    /// The first N held-out stories (all when larger).
    pub stories: usize,
    /// Noise seeds 0..K per story.
    pub seeds: usize,
    pub device: Device,
    /// Which generator weights draw (a run's moving average, by default, where it has one).
    pub weights: checkpoint::Weights,
    /// The object detector that finds where drawn objects are (`objects`): the object columns
    /// of every row, on datasets whose frames list their objects.
    pub detector: Option<Detector>,
}

/// Which object detector an evaluation uses.
pub enum Detector {
    /// This one: a dataset whose frames list no objects is an error.
    Given(PathBuf),
    /// The shipped one, where the dataset's frames list their objects.
    Shipped(PathBuf),
}

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Scores {
    pub name: String,
    pub checkpoint: String,
    pub variant: String,
    pub step: usize,
    /// Mean SSIM and PSNR (dB) over generated frames; absent for the real frames.
    pub ssim: Option<f64>,
    pub psnr: Option<f64>,
    pub precision: f64,
    pub recall: f64,
    pub micro_f1: f64,
    pub macro_f1: f64,
    pub frame_accuracy: f64,
    pub story_accuracy: f64,
    /// Classifier-feature Fréchet distance to the real frames; absent for the real frames.
    pub frechet: Option<f64>,
    pub inception_score: f64,
    pub inception_score_std: f64,
    pub consistency: f64,
    /// Per attribute (shape, color, material, size on CLEVR): the share of frames whose values
    /// of it are all predicted right.
    pub attributes: Vec<AttributeAccuracy>,
    /// Of the objects introduced in frames 1..t−1, the share whose labels are all still
    /// detected at frame t (stories of CLEVR-SV kind only).
    pub persistence: Option<f64>,
    /// Mean grey-level difference (0–255) between the same frame drawn with consecutive seeds;
    /// on the real-frames row, between frames of different stories (a wholly other picture).
    pub seed_diversity: Option<f64>,
    /// Text-to-image models: R-precision (1 true + 99 random captions) in the model's joint
    /// embedding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r_precision: Option<f64>,
    /// Where the objects are, by the object detector (`objects`), on datasets whose frames list
    /// their objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<objects::ObjectScores>,
    pub frames: usize,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub data: String,
    pub stories: usize,
    pub seeds: usize,
    pub frames_per_story: usize,
    pub classifier: String,
    /// What the classifier's labels are, as later papers name their scores: "character" on
    /// Pororo-SV (character F1, frame accuracy: all nine characters right), "attribute" on
    /// CLEVR-SV and other labelled data.
    pub labels: String,
    pub note: String,
    pub real: Scores,
    pub models: Vec<Scores>,
    /// Rows of drawings that ignore the story (`floors`).
    pub floors: Vec<Scores>,
    /// Said on standard error and in the table.
    pub warnings: Vec<String>,
}

/// Of the labels detected at frame t, the share still detected at t + 1 (numerator,
/// denominator), over stories of `t` frames whose predictions are consecutive rows.
fn consistency_counts(predictions: &[Vec<bool>], t: usize) -> (u64, u64) {
    let (mut kept, mut seen) = (0, 0);
    for story in predictions.chunks(t) {
        for pair in story.windows(2) {
            for (now, next) in pair[0].iter().zip(&pair[1]) {
                if *now {
                    seen += 1;
                    kept += u64::from(*next);
                }
            }
        }
    }
    (kept, seen)
}

/// What the classifier-based columns read beyond the labels: the attribute groups and, for
/// CLEVR-SV stories, each frame's introduced object.
struct LabelInfo {
    groups: Vec<(String, Vec<usize>)>,
    objects: Option<Vec<Vec<Vec<usize>>>>,
}

/// The classifier-based part of a row, from its verdicts on frames in story order.
fn classifier_scores(
    name: &str,
    scored: &Scored,
    labels: &Tensor,
    t: usize,
    info: &LabelInfo,
) -> Result<Scores> {
    let l = labels.size()[1] as usize;
    let predictions = scored.predictions(l);
    let counts = count(&predictions, labels)?;
    let truth: Vec<f32> = Vec::try_from(labels.flatten(0, -1))?;
    let exact: Vec<bool> = predictions
        .iter()
        .zip(truth.chunks(l))
        .map(|(p, row)| p.iter().zip(row).all(|(&a, &b)| a == (b > 0.5)))
        .collect();
    let stories = exact.chunks(t).filter(|s| s.iter().all(|&e| e)).count();
    let (kept, seen) = consistency_counts(&predictions, t);
    let (stayed, introduced) =
        info.objects.as_ref().map_or((0, 0), |o| persistence_counts(&predictions, o));
    let splits = IS_SPLITS.min(predictions.len());
    // The formula needs distributions: each frame's label probabilities, normalised.
    let normalised: Vec<f32> = scored
        .probabilities
        .chunks(l)
        .flat_map(|r| {
            let s: f32 = r.iter().sum::<f32>().max(f32::MIN_POSITIVE);
            r.iter().map(move |&p| p / s).collect::<Vec<_>>()
        })
        .collect();
    let (is_mean, is_std) = inception_score(&normalised, l, splits)?;
    let (micro, mac) = (counts.micro(), counts.macro_avg());
    Ok(Scores {
        name: name.to_string(),
        checkpoint: String::new(),
        variant: String::new(),
        step: 0,
        ssim: None,
        psnr: None,
        precision: micro.precision,
        recall: micro.recall,
        micro_f1: micro.f1,
        macro_f1: mac.f1,
        frame_accuracy: counts.exact_match(),
        story_accuracy: stories as f64 / (predictions.len() / t).max(1) as f64,
        frechet: None,
        inception_score: is_mean,
        inception_score_std: is_std,
        consistency: if seen == 0 { 0.0 } else { kept as f64 / seen as f64 },
        attributes: attribute_accuracy(&predictions, &truth, &info.groups),
        persistence: (introduced > 0).then(|| stayed as f64 / introduced as f64),
        seed_diversity: None,
        r_precision: None,
        objects: None,
        frames: predictions.len(),
        seconds: 0.0,
    })
}

/// A run directory's name (`00003-storygan-small`), or the checkpoint path.
fn display_name(path: &Path, checkpoint: &Path) -> String {
    let run = checkpoint.parent().and_then(Path::parent);
    match run.and_then(Path::file_name) {
        Some(n)
            if checkpoint
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|c| c == "checkpoints") =>
        {
            n.to_string_lossy().into_owned()
        }
        _ => path.display().to_string(),
    }
}

/// Rows of different checkpoints whose names collide (runs of one preset under different roots
/// are all `00000-<preset>`) are named by the path they were given instead, keeping the suffix.
/// `rows`: (name, checkpoint directory).
fn distinct_names(rows: &[(String, String)], paths: &[PathBuf]) -> Vec<String> {
    let suffix = |n: &str| {
        [AVERAGE_SUFFIX, TRAINED_SUFFIX].into_iter().find(|s| n.ends_with(s)).unwrap_or("")
    };
    rows.iter()
        .zip(paths)
        .map(|((name, ckpt), path)| match rows.iter().any(|(n, c)| n == name && c != ckpt) {
            false => name.clone(),
            true => format!("{}{}", path.display(), suffix(name)),
        })
        .collect()
}

const AVERAGE_SUFFIX: &str = " (average)";
const TRAINED_SUFFIX: &str = " (trained)";

/// A row's name says when it draws with a moving average, or with the trained weights asked
/// for by `--weights trained` (which may be a run without an average).
fn weights_name(name: String, averaged: bool, asked: checkpoint::Weights) -> String {
    match (averaged, asked) {
        (true, _) => format!("{name}{AVERAGE_SUFFIX}"),
        (false, checkpoint::Weights::Trained) => format!("{name}{TRAINED_SUFFIX}"),
        (false, checkpoint::Weights::Average) => name,
    }
}

/// Frames [N, 3, H, W] in [−1, 1] → flat [0, 1] values, frame by frame.
fn unit_frames(x: &Tensor) -> Vec<f32> {
    let y = ((x.to_device(Device::Cpu).to_kind(Kind::Float) + 1.0) / 2.0).clamp(0.0, 1.0);
    Vec::try_from(y.flatten(0, -1)).expect("f32 frames")
}

/// The held-out stories' ground truth, as every row is scored against it.
pub struct Reference {
    /// Frames in story order as flat [0, 1] values.
    pixels: Vec<f32>,
    /// The classifier's features of the real frames, as a Gaussian.
    gaussian: Gaussian,
    /// [N·T, labels] f32.
    labels: Tensor,
    frames_per_story: usize,
    info: LabelInfo,
    /// The frames' objects and the detector that looks for them (`with_objects`).
    objects: Option<ObjectTruth>,
    /// The "real frames" row.
    pub real: Scores,
}

/// What the object columns compare drawings with.
struct ObjectTruth {
    detector: crate::detector::Detector,
    /// Each frame's objects, centres in 64×64 pixels.
    truth: Vec<Vec<storyvis_data::dataset::FrameObject>>,
    /// The relation each frame's sentence states, if any.
    stated: Vec<Option<storyvis_data::clevr::sentence::Stated>>,
}

impl ObjectTruth {
    /// The object columns of frames [K·N·T, 3, 64, 64] in [−1, 1]: K draws of the frames.
    fn score(&self, frames: &Tensor) -> Result<objects::ObjectScores> {
        let found = self.detector.detect(frames);
        let n = self.truth.len();
        ensure!(
            !found.is_empty() && found.len() % n == 0,
            "{} frames for {n} with objects",
            found.len()
        );
        let truth: Vec<_> = self.truth.iter().cycle().take(found.len()).cloned().collect();
        let stated: Vec<_> = self.stated.iter().cycle().take(found.len()).copied().collect();
        objects::object_scores(&truth, &stated, &found)
    }
}

impl Reference {
    pub fn new(
        ds: &Dataset,
        stories: &[&StoryRecord],
        classifier: &Classifier,
    ) -> Result<Reference> {
        let started = Instant::now();
        crate::classifier::check_size(ds)?;
        let t = ds.header.frames_per_story;
        // [N·T, 3, 64, 64] floats: the u8 values at 64×64, the block means of larger frames
        let images = crate::classifier::at_size(
            &storyvis_core::data::load_images(ds, stories)?.flatten(0, 1),
        )
        .to_kind(Kind::Float);
        let labels = storyvis_core::data::load_labels(stories).view([images.size()[0], -1]);
        let scored = classifier.score(&storyvis_core::data::to_unit(&images));
        let info = LabelInfo {
            groups: attribute_groups(&ds.header.label_names),
            objects: introduced_objects(stories, ds.header.label_names.len()),
        };
        let mut real = classifier_scores("real frames", &scored, &labels, t, &info)?;
        let gaussian = Gaussian::fit(&scored.features, classifier.manifest.features as usize)?;
        let pixels = Vec::<f32>::try_from((images / 255.0).flatten(0, -1))?;
        // The scale of a wholly different picture: each story's frames against the next story's.
        let story = t * FRAME.len();
        real.seed_diversity = (pixels.len() >= 2 * story)
            .then(|| grey_level_difference(&pixels[..pixels.len() - story], &pixels[story..]));
        real.seconds = started.elapsed().as_secs_f64();
        Ok(Reference { pixels, gaussian, labels, frames_per_story: t, info, objects: None, real })
    }

    /// The object columns from here on, by `detector`, for the frames of `stories` (those
    /// `new` was given): the real row's now, every scored row's after. An error naming the
    /// dataset when its frames list no objects.
    pub fn with_objects(
        mut self,
        detector: crate::detector::Detector,
        ds: &Dataset,
        stories: &[&StoryRecord],
    ) -> Result<Reference> {
        let started = Instant::now();
        let frames: Vec<&storyvis_data::dataset::Frame> =
            stories.iter().flat_map(|s| &s.frames).collect();
        ensure!(
            frames.iter().any(|f| !f.objects.is_empty()),
            "{} lists no objects in its frames (rendered before December 7 2026, or not a CLEVR dataset): prepare it again for the object columns",
            ds.dir.display()
        );
        let scale = crate::detector::SIZE as f32 / ds.header.image_size as f32;
        let truth = frames
            .iter()
            .map(|f| {
                f.objects
                    .iter()
                    .map(|o| storyvis_data::dataset::FrameObject {
                        centre: o.centre.map(|c| c * scale),
                        ..*o
                    })
                    .collect()
            })
            .collect();
        let stated = frames
            .iter()
            .map(|f| storyvis_data::clevr::sentence::stated_relation(&f.sentence))
            .collect();
        let o = ObjectTruth { detector, truth, stated };
        self.real.objects = Some(o.score(&self.frames())?);
        self.real.seconds += started.elapsed().as_secs_f64();
        self.objects = Some(o);
        Ok(self)
    }

    /// The held-out frames as read, [N·T, 3, 64, 64] in [−1, 1].
    pub fn frames(&self) -> Tensor {
        let side = FRAME.height as i64;
        Tensor::from_slice(&self.pixels).view([-1, 3, side, side]) * 2.0 - 1.0
    }
}

/// Scores generated frames `fake` [K·N·T, 3, S, S] in [−1, 1] (scored at 64×64: `at_size`): K
/// draws (seeds) of the reference's N stories of T frames, in story order. The row's name is
/// `name`; the checkpoint fields are left for the caller.
pub fn score_frames(
    name: &str,
    fake: &Tensor,
    reference: &Reference,
    classifier: &Classifier,
) -> Result<Scores> {
    let side = fake.size().get(3).copied().unwrap_or(0);
    ensure!(
        fake.dim() == 4 && crate::classifier::scorable(side),
        "frames of side {side} cannot be scored (64, 128, 256, …)"
    );
    let fake = &crate::classifier::at_size(fake);
    let Reference {
        pixels: real_pixels,
        gaussian: real_gaussian,
        labels,
        frames_per_story: t,
        info,
        ..
    } = reference;
    let per_frame = FRAME.len();
    let frames_per_seed = real_pixels.len() / per_frame;
    let n_fake = fake.size()[0] as usize;
    ensure!(
        n_fake > 0 && n_fake % frames_per_seed == 0,
        "{n_fake} generated frames for {frames_per_seed} real ones"
    );
    let pixels = unit_frames(fake);
    let pairs: Vec<(f64, f64)> = pixels
        .par_chunks(per_frame)
        .enumerate()
        .map(|(i, f)| {
            let g = &real_pixels[(i % frames_per_seed) * per_frame..][..per_frame];
            Ok((ssim(f, g, FRAME, 1.0)?, psnr(f, g, FRAME, 1.0)?))
        })
        .collect::<Result<_, storyvis_metrics::MetricError>>()?;
    let n = pairs.len() as f64;
    let scored = classifier.score(fake);
    let all_labels = labels.repeat([(n_fake / frames_per_seed) as i64, 1]);
    let mut row = classifier_scores(name, &scored, &all_labels, *t, info)?;
    row.seed_diversity = seed_diversity(&pixels, real_pixels.len());
    let gaussian = Gaussian::fit(&scored.features, classifier.manifest.features as usize)?;
    row.ssim = Some(pairs.iter().map(|p| p.0).sum::<f64>() / n);
    row.psnr = Some(pairs.iter().map(|p| p.1).sum::<f64>() / n);
    row.frechet = Some(frechet_distance(real_gaussian, &gaussian)?);
    if let Some(o) = &reference.objects {
        row.objects = Some(o.score(fake)?);
    }
    Ok(row)
}

/// What a dataset holds, in words: "stories of 4 frames (clevr-sv)".
fn data_kind(ds: &Dataset) -> String {
    let h = &ds.header;
    let what = match (h.kind == storyvis_data::bouncing::KIND, h.frames_per_story) {
        (true, t) => format!("video clips of {t} frames"),
        (false, 1) => "captioned images".to_string(),
        (false, t) => format!("stories of {t} frames"),
    };
    format!("{what} ({})", h.kind)
}

/// Loads the checkpoint at `path` for evaluation on `ds` through its family's hook: an error
/// that says what each is where the model draws another kind of item than the data holds.
pub fn load_for(path: &Path, req: &EvalRequest, ds: &Dataset) -> Result<Box<dyn Evaluated>> {
    use storyvis_core::drawer::Input;
    let model = load_evaluated(path, req)?;
    let h = &ds.header;
    let video = h.kind == storyvis_data::bouncing::KIND;
    let (fits, draws) = match model.input() {
        Input::Story { frames } => {
            (!video && h.frames_per_story == frames, format!("stories of {frames} frames"))
        }
        Input::Caption => (!video && h.frames_per_story == 1, "images from captions".to_string()),
        Input::Video { frames } => {
            (video && h.frames_per_story == frames, format!("video clips of {frames} frames"))
        }
    };
    let about = model.about();
    ensure!(
        fits,
        "{} is a {} checkpoint, which draws {draws}; {} holds {}",
        about.checkpoint.display(),
        about.family,
        req.data.display(),
        data_kind(ds)
    );
    Ok(model)
}

/// Loads the checkpoint at `path` for evaluation through its family's hook.
pub fn load_evaluated(path: &Path, req: &EvalRequest) -> Result<Box<dyn Evaluated>> {
    // A scorer or a damaged checkpoint is named by `family_of`; the family's loader verifies
    // every file's digest.
    registry::load_evaluated(path, req.device, req.weights)
}

/// Scores one generator: every held-out item drawn at every seed through its family's hook;
/// `on_batch` is called after each drawn batch.
fn score_model(
    path: &Path,
    req: &EvalRequest,
    ds: &Dataset,
    stories: &[&StoryRecord],
    classifier: &Classifier,
    reference: &Reference,
    on_batch: &dyn Fn(),
) -> Result<Scores> {
    let started = Instant::now();
    let model = load_for(path, req, ds)?;
    let mut fakes = Vec::new();
    model.draw_items(ds, stories, req.seeds, DRAW_BATCH, &mut |fake| {
        // Stories [B, T, 3, S, S] → frames; images [B, 3, S, S] as they are.
        fakes.push(if fake.dim() == 5 { fake.flatten(0, 1) } else { fake });
        on_batch();
        Ok(())
    })?;
    let fake = Tensor::cat(&fakes, 0); // [seeds · N · T, 3, S, S]
    ensure!(
        fake.size()[0] as usize == req.seeds * stories.len() * reference.frames_per_story,
        "{} drew {} frames for {} items of {} frames at {} seeds",
        path.display(),
        fake.size()[0],
        stories.len(),
        reference.frames_per_story,
        req.seeds
    );
    let mut row = score_frames(
        &weights_name(
            display_name(path, model.about().checkpoint),
            model.about().averaged,
            req.weights,
        ),
        &fake,
        reference,
        classifier,
    )?;
    if reference.frames_per_story == 1 {
        // Captioned images: no ground truth to compare pixels with (a caption has many pictures).
        let captions =
            storyvis_core::captioned::first_captions(model.about().checkpoint, ds, stories)?;
        let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
        (row.ssim, row.psnr) = (None, None);
        row.r_precision = model.r_precision(&fake, &refs)?;
    }
    row.checkpoint = model.about().checkpoint.display().to_string();
    row.variant = model.variant();
    row.step = model.about().step;
    row.seconds = started.elapsed().as_secs_f64();
    Ok(row)
}

/// Scores every model of `req`; `on_batch(done, total)` after each batch of stories drawn.
pub fn evaluate(req: &EvalRequest, on_batch: &dyn Fn(usize, usize)) -> Result<EvalReport> {
    ensure!(!req.checkpoints.is_empty(), "nothing to evaluate: give --checkpoint");
    ensure!(req.stories > 0 && req.seeds > 0, "--stories and --seeds must be positive");
    let ds = Dataset::open(&req.data)?;
    let stories: Vec<&StoryRecord> = ds.split(Split::Test).take(req.stories).collect();
    ensure!(
        stories.len() >= 2,
        "{} has {} held-out stories; eval needs at least 2",
        req.data.display(),
        stories.len()
    );
    let classifier = Classifier::load(&req.classifier, req.device)?;
    ensure!(
        classifier.manifest.labels == ds.header.label_names,
        "the classifier at {} knows other labels than the dataset at {}",
        req.classifier.display(),
        req.data.display()
    );
    let mut reference = Reference::new(&ds, &stories, &classifier)?;
    let mut warnings: Vec<String> =
        floors::classifier_warning(classifier.manifest.held_out.micro_f1, reference.real.micro_f1)
            .into_iter()
            .collect();
    let lists_objects = stories.iter().any(|s| s.frames.iter().any(|f| !f.objects.is_empty()));
    match &req.detector {
        Some(Detector::Given(path)) => reference = reference.with_objects(crate::detector::Detector::load(path, req.device)?, &ds, &stories)?,
        Some(Detector::Shipped(path)) if lists_objects => reference = reference.with_objects(crate::detector::Detector::load(path, req.device)?, &ds, &stories)?,
        Some(Detector::Shipped(_)) if matches!(ds.header.kind.as_str(), "clevr-sv" | "clevr-captions") => warnings.push(format!(
            "{} lists no objects in its frames (rendered before December 7 2026): prepare it again for the object columns (where drawn objects are, and the relations)",
            req.data.display()
        )),
        _ => {}
    }
    let mut floor_frames = floors::floor_frames(&ds, &stories, &reference)?;
    if let Some(o) = &reference.objects {
        floor_frames
            .push((objects::RANDOM_PLACES, objects::random_places(&o.truth, RANDOM_PLACES_SEED)?));
    }
    let floors = floor_frames
        .into_iter()
        .map(|(name, frames)| {
            let mut row = score_frames(name, &frames, &reference, &classifier)?;
            row.variant = "floor".into();
            Ok(row)
        })
        .collect::<Result<Vec<_>>>()?;
    let total = req.checkpoints.len() * req.seeds * stories.len().div_ceil(DRAW_BATCH);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let tick = || on_batch(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, total);
    let mut models = req
        .checkpoints
        .iter()
        .map(|p| score_model(p, req, &ds, &stories, &classifier, &reference, &tick))
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<(String, String)> =
        models.iter().map(|m| (m.name.clone(), m.checkpoint.clone())).collect();
    let names = distinct_names(&rows, &req.checkpoints);
    for (m, n) in models.iter_mut().zip(names) {
        m.name = n;
    }
    Ok(EvalReport {
        data: req.data.display().to_string(),
        stories: stories.len(),
        seeds: req.seeds,
        frames_per_story: reference.frames_per_story,
        classifier: classifier.dir.display().to_string(),
        labels: label_kind(&ds.header.label_names).into(),
        note: format!(
            "F1, accuracies, consistency, the Fréchet distance and IS use storyvis' {} classifier trained on the \
             dataset's labels (features and label probabilities), not Inception-v3: they are not comparable to \
             FID/IS numbers of other papers.",
            label_kind(&ds.header.label_names)
        ),
        real: reference.real.clone(),
        models,
        floors,
        warnings,
    })
}

/// "character" when every label names a character (Pororo-SV), else "attribute".
pub fn label_kind(label_names: &[String]) -> &'static str {
    if !label_names.is_empty() && label_names.iter().all(|n| n.starts_with("character:")) {
        "character"
    } else {
        "attribute"
    }
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".into(), |x| format!("{x:.digits$}"))
}

/// The report as a markdown table, one row per model and the real frames last.
pub fn markdown(report: &EvalReport) -> String {
    let mut s = format!(
        "{} held-out stories of {} × {} seed(s), {} frames each; classifier {}.\n\n",
        report.stories, report.data, report.seeds, report.frames_per_story, report.classifier
    );
    // Later papers' names on Pororo-SV: character F1 and frame accuracy (every character of
    // the frame right, none extra).
    let (f1, frame) = if report.labels == "character" {
        ("character F1 micro ↑ | character F1 macro ↑", "frame acc. (all characters) ↑")
    } else {
        ("F1 micro ↑ | F1 macro ↑", "frame acc. ↑")
    };
    s.push_str(&format!(
        "| model | variant | step | SSIM ↑ | PSNR ↑ | {f1} | {frame} | story acc. ↑ | FD (clf) ↓ | IS (clf) | consistency ↑ | R-prec. ↑ |\n",
    ));
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let rows = || report.models.iter().chain(&report.floors).chain(std::iter::once(&report.real));
    for r in rows() {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {} | {:.3} ± {:.3} | {:.4} | {} |\n",
            r.name,
            if r.variant.is_empty() { "—" } else { &r.variant },
            if r.checkpoint.is_empty() { "—".to_string() } else { r.step.to_string() },
            cell(r.ssim, 4),
            cell(r.psnr, 2),
            r.micro_f1,
            r.macro_f1,
            r.frame_accuracy,
            r.story_accuracy,
            cell(r.frechet, 3),
            r.inception_score,
            r.inception_score_std,
            r.consistency,
            cell(r.r_precision, 3),
        ));
    }
    // What the headline numbers hide: which attributes are right, whether objects stay, and
    // whether the noise changes anything.
    let attributes: Vec<String> =
        report.real.attributes.iter().map(|a| a.attribute.clone()).collect();
    s.push_str(&format!(
        "\n| model | {} | persistence ↑ | seed diversity |\n",
        attributes.iter().map(|a| format!("{a} acc. ↑")).collect::<Vec<_>>().join(" | ")
    ));
    s.push_str(&format!("|---|{}---:|---:|\n", "---:|".repeat(attributes.len())));
    for r in rows() {
        let acc: Vec<String> = r.attributes.iter().map(|a| format!("{:.4}", a.accuracy)).collect();
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.name,
            acc.join(" | "),
            cell(r.persistence, 4),
            cell(r.seed_diversity, 2)
        ));
    }
    s.push_str(&format!(
        "\nSeed diversity: grey levels (0–255) between the same frame drawn with consecutive seeds (needs --seeds ≥ 2); \
         on the real-frames row, between frames of different stories. Floor rows draw what ignores the story: \
         a model's numbers mean something where they clear them.\n\n{}\n",
        report.note
    ));
    if report.real.objects.is_some() {
        s.push_str(&objects_table(rows().collect::<Vec<_>>().as_slice()));
    }
    for w in &report.warnings {
        s.push_str(&format!("\n**Warning:** {w}\n"));
    }
    s
}

/// The object columns as a markdown table.
fn objects_table(rows: &[&Scores]) -> String {
    let mut s = String::from(
        "\n| model | objects P ↑ | R ↑ | F1 ↑ | count acc. ↑ | shape (per object) ↑ | colour ↑ | material ↑ | size ↑ | relation acc. ↑ | RSIM ↑ |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        if let Some(o) = &r.objects {
            s.push_str(&format!(
                "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} | {:.4} |\n",
                r.name,
                o.placed.precision,
                o.placed.recall,
                o.placed.f1,
                o.placed.count_accuracy,
                o.placed.shape,
                o.placed.colour,
                o.placed.material,
                o.placed.size,
                cell(o.relation_accuracy, 4),
                o.rsim
            ));
        }
    }
    s.push_str(&format!(
        "\nObject columns by the object detector: detections matched to the true objects by centre (Hungarian, within {} pixels of 64) for \
         precision, recall, F1, the count and per-object attributes; each relation a sentence states checked on the ground places of \
         the two objects it names, found in the drawing by their attributes (at most one of shape and colour wrong); RSIM as GeNeVA-GAN defines it.\n",
        crate::detector::MATCH_PIXELS
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_counts_labels_kept_to_the_next_frame() {
        // Two stories of 3 frames over 2 labels.
        let p = |a: bool, b: bool| vec![a, b];
        let preds = vec![
            p(true, false),
            p(true, true),
            p(false, true), // label 0 dropped at frame 3
            p(false, false),
            p(true, false),
            p(true, false),
        ];
        // Story 1: frame1→2 keeps 1 of 1, frame2→3 keeps 1 of 2; story 2: 0 of 0, then 1 of 1.
        assert_eq!(consistency_counts(&preds, 3), (3, 4));
    }

    #[test]
    fn rows_are_named_by_run_weights_and_path_where_runs_share_a_name() {
        use checkpoint::Weights::{Average, Trained};
        assert_eq!(weights_name("r".into(), true, Average), "r (average)");
        assert_eq!(weights_name("r".into(), false, Trained), "r (trained)");
        assert_eq!(weights_name("r".into(), false, Average), "r");
        let row = |n: &str, c: &str| (n.to_string(), c.to_string());
        let rows = [
            row("00000-p (average)", "a/ck"),
            row("00000-p (average)", "b/ck"),
            row("00001-p", "c/ck"),
            row("00001-p", "c/ck"),
        ];
        let paths: Vec<PathBuf> = [
            "runs/a/00000-p",
            "runs/b/00000-p",
            "runs/c/00001-p",
            "runs/c/00001-p/checkpoints/latest",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        // Two checkpoints under one name: their paths; one checkpoint twice: its name.
        assert_eq!(
            distinct_names(&rows, &paths),
            ["runs/a/00000-p (average)", "runs/b/00000-p (average)", "00001-p", "00001-p"]
        );
    }
}
