//! The attribute classifier that scores generated frames (docs/EVALUATION.md): which labels are
//! present in a frame, as independent yes/no outputs (CLEVR-SV's 15 shapes, colours, materials
//! and sizes; Pororo-SV's nine characters; any labelled story dataset's).
//! Trained by storyvis on real frames of the training split; its held-out scores on real frames
//! are stored with it, so every number it produces on generated frames has a ceiling beside it.
//!
//! Its penultimate layer is the feature space of the Fréchet distance `eval` reports, and its
//! label probabilities the input of the Inception-score formula: classifier numbers, not
//! Inception-v3 ones.

use crate::attributes::{attribute_accuracy, attribute_groups, AttributeAccuracy};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use storyvis_core::checkpoint::{self, MANIFEST};
use storyvis_core::data::{load_images, load_labels, to_unit};
use storyvis_core::fit::Fit;
use storyvis_core::nn::{bn2d, conv, leaky, linear};
use storyvis_data::dataset::{Dataset, Split, StoryRecord};
use storyvis_metrics::MultiLabelCounts;
use tch::nn::{self, Module, ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

pub const FORMAT: &str = storyvis_core::checkpoint::CLASSIFIER_FORMAT;
const WEIGHTS: &str = "classifier.safetensors";
/// Channels after each stride-2 convolution (64 → 32 → 16 → 8 → 4 pixels) of classifiers whose
/// manifest names none (those trained before the widths were a choice).
pub const FIRST_WIDTHS: [i64; 4] = [32, 64, 128, 128];
/// Length of the feature vector the Fréchet distance uses.
pub const FEATURES: i64 = 128;
/// A label counts as present when its probability exceeds this.
pub const THRESHOLD: f64 = 0.5;
/// Frames per batch when scoring.
const SCORE_BATCH: i64 = 256;

/// A small conv net: four stride-2 4×4 convolutions (batch-norm and leaky ReLU after each but
/// the first's norm), a linear layer to the features (ReLU), and a linear head to one logit per
/// label.
pub struct AttributeClassifier {
    convs: Vec<nn::Conv2D>,
    norms: Vec<storyvis_core::nn::BatchNorm>,
    features: nn::Linear,
    head: nn::Linear,
}

impl AttributeClassifier {
    /// `widths`: the channels after each of the four convolutions.
    pub fn new(p: nn::Path, labels: i64, widths: &[i64]) -> AttributeClassifier {
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        let mut input = 3;
        for (i, &w) in widths.iter().enumerate() {
            convs.push(conv(&p / format!("conv{i}"), input, w, 4, 2, 1));
            if i > 0 {
                norms.push(bn2d(&p / format!("norm{i}"), w));
            }
            input = w;
        }
        AttributeClassifier {
            convs,
            norms,
            features: linear(&p / "features", input * 16, FEATURES, true),
            head: linear(&p / "head", FEATURES, labels, true),
        }
    }

    /// Images [B, 3, 64, 64] in [−1, 1] → (features [B, FEATURES], logits [B, labels]).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut h = leaky(&self.convs[0].forward(x)); // [B, w0, 32, 32]
        for (c, n) in self.convs[1..].iter().zip(&self.norms) {
            h = leaky(&n.forward_t(&c.forward(&h), train));
        } // [B, w3, 4, 4]
        let f = self.features.forward(&h.flatten(1, -1)).relu();
        let logits = self.head.forward(&f);
        (f, logits)
    }
}

/// Held-out scores of the classifier on real frames.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeldOut {
    pub frames: usize,
    pub micro_f1: f64,
    pub macro_f1: f64,
    pub exact_match: f64,
    /// Per attribute (shape, colour, material, size): the share of frames whose set of values
    /// is exactly right (absent in manifests from before it was measured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeAccuracy>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierManifest {
    pub format: String,
    pub version: u32,
    pub labels: Vec<String>,
    pub features: i64,
    /// Channels of the four convolutions.
    #[serde(default = "first_widths")]
    pub widths: Vec<i64>,
    /// The dataset directory and the generator seed it was rendered from.
    pub data: String,
    pub data_seed: Option<u64>,
    pub steps: usize,
    pub batch: usize,
    pub seed: u64,
    pub held_out: HeldOut,
    pub files: BTreeMap<String, String>,
}

fn first_widths() -> Vec<i64> {
    FIRST_WIDTHS.to_vec()
}

/// Checks a classifier's convolution widths: four, each 4 to 1024.
pub fn check_widths(widths: &[i64]) -> Result<()> {
    ensure!(
        widths.len() == 4,
        "the classifier has 4 convolutions; {} widths were given ({widths:?})",
        widths.len()
    );
    ensure!(
        widths.iter().all(|w| (4..=1024).contains(w)),
        "classifier widths must be 4 to 1024 (got {widths:?})"
    );
    Ok(())
}

/// A trained classifier, ready to score frames.
pub struct Classifier {
    pub manifest: ClassifierManifest,
    pub dir: PathBuf,
    net: AttributeClassifier,
    _vs: VarStore,
    device: Device,
}

/// What the classifier says about a set of frames.
pub struct Scored {
    /// [N, FEATURES] f32, flat.
    pub features: Vec<f32>,
    /// [N, labels] probabilities, flat.
    pub probabilities: Vec<f32>,
}

impl Scored {
    /// Present / absent per label, row by row.
    pub fn predictions(&self, labels: usize) -> Vec<Vec<bool>> {
        self.probabilities
            .chunks(labels)
            .map(|r| r.iter().map(|&p| p as f64 > THRESHOLD).collect())
            .collect()
    }
}

impl Classifier {
    pub fn load(path: &Path, device: Device) -> Result<Classifier> {
        let mpath = path.join(MANIFEST);
        let text = std::fs::read_to_string(&mpath).with_context(|| {
            format!("cannot read {} (train one with `storyvis train-classifier`)", mpath.display())
        })?;
        ensure!(
            checkpoint::format_of(&text).as_deref() != Some(checkpoint::FORMAT),
            "{} is a model checkpoint, not an attribute classifier (train one with `storyvis train-classifier`)",
            path.display()
        );
        let manifest: ClassifierManifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a classifier manifest", mpath.display()))?;
        ensure!(
            manifest.format == FORMAT && manifest.version == 1,
            "{} is not a storyvis classifier (version 1)",
            mpath.display()
        );
        checkpoint::check_digests(path, &manifest.files)?;
        check_widths(&manifest.widths).with_context(|| format!("in {}", mpath.display()))?;
        let mut vs = VarStore::new(device);
        let net =
            AttributeClassifier::new(vs.root(), manifest.labels.len() as i64, &manifest.widths);
        checkpoint::load_store(&mut vs, &path.join(WEIGHTS))?;
        Ok(Classifier { manifest, dir: path.to_path_buf(), net, _vs: vs, device })
    }

    /// Scores frames [N, 3, 64, 64] in [−1, 1] (any device) in batches.
    pub fn score(&self, frames: &Tensor) -> Scored {
        score_with(&self.net, frames, self.device)
    }
}

pub fn score_with(net: &AttributeClassifier, frames: &Tensor, device: Device) -> Scored {
    let mut features = Vec::new();
    let mut probabilities = Vec::new();
    tch::no_grad(|| {
        for chunk in frames.split(SCORE_BATCH, 0) {
            let (f, logits) = net.forward_t(&chunk.to_device(device), false);
            features.extend(
                Vec::<f32>::try_from(f.to_device(Device::Cpu).flatten(0, -1))
                    .expect("f32 features"),
            );
            probabilities.extend(
                Vec::<f32>::try_from(logits.sigmoid().to_device(Device::Cpu).flatten(0, -1))
                    .expect("f32 probabilities"),
            );
        }
    });
    Scored { features, probabilities }
}

/// The side of the images the classifier reads.
pub const SIZE: i64 = 64;

/// The classifier reads 64×64 images; datasets of 128×128 and 256×256 are scored at 64×64
/// (`at_size`). An error naming the dataset's size for any other.
pub fn check_size(ds: &Dataset) -> Result<()> {
    let s = ds.header.image_size as i64;
    ensure!(
        scorable(s),
        "the attribute classifier reads 64×64 images (and 128×128, 256×256, … ones averaged down to 64×64); {} holds {s}×{s} ones",
        ds.dir.display()
    );
    Ok(())
}

/// Whether images of side `s` can be scored: 64·2^k.
pub fn scorable(s: i64) -> bool {
    s >= SIZE && s % SIZE == 0 && (s / SIZE).count_ones() == 1
}

/// Images [N, 3, S, S] (S = 64·2^k, see [`scorable`]) averaged down to the classifier's 64×64,
/// each output pixel the mean of its S/64 × S/64 block (area resampling); 64×64 images are
/// returned as they are. Larger images are converted and pooled a chunk at a time, so the
/// float copy is never the whole full-size batch.
pub fn at_size(images: &Tensor) -> Tensor {
    let s = images.size()[3];
    assert!(scorable(s), "images of side {s} cannot be averaged down to {SIZE}×{SIZE}");
    if s == SIZE {
        return images.shallow_clone();
    }
    storyvis_core::data::block_mean(images, SIZE)
}

/// Every frame of `stories` with its labels: ([N·T, 3, 64, 64] in [−1, 1] (`at_size`), [N·T, labels]).
pub fn frames_of(ds: &Dataset, stories: &[&StoryRecord]) -> Result<(Tensor, Tensor)> {
    check_size(ds)?;
    ensure!(!stories.is_empty(), "{} has no stories in this split", ds.dir.display());
    let images = to_unit(&at_size(&load_images(ds, stories)?.flatten(0, 1)));
    let labels = load_labels(stories).view([images.size()[0], -1]);
    Ok((images, labels))
}

pub struct ClassifierRequest {
    pub data: PathBuf,
    pub out: PathBuf,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    pub device: Device,
    pub force: bool,
    /// Channels of the four convolutions.
    pub widths: Vec<i64>,
}

/// Fits the classifier `net` (whose variables are `vs`) to frames [N, 3, 64, 64] in [−1, 1] and
/// labels [N, labels] on the scorers' loop (`Fit`): binary cross-entropy per label, random
/// horizontal flips (presence labels do not change under a flip); `on_step(step, steps, loss)`
/// after each update.
pub fn fit_frames(
    fit: &Fit,
    net: &AttributeClassifier,
    vs: &VarStore,
    images: &Tensor,
    labels: &Tensor,
    on_step: &dyn Fn(usize, usize, f64),
) {
    let loss_of = |idx: &Tensor| {
        let x = images.index_select(0, idx).to_device(fit.device);
        let y = labels.index_select(0, idx).to_device(fit.device);
        let flip = Tensor::rand([fit.batch as i64, 1, 1, 1], (Kind::Float, fit.device)).lt(0.5);
        let x = x.flip([3]).where_self(&flip, &x);
        let (_, logits) = net.forward_t(&x, true);
        logits.binary_cross_entropy_with_logits::<Tensor>(&y, None, None, tch::Reduction::Mean)
    };
    fit.run_with(vs, images.size()[0] as usize, &loss_of, on_step);
}

/// Multi-label counts of predictions against true labels [N, labels].
pub fn count(predicted: &[Vec<bool>], truth: &Tensor) -> Result<MultiLabelCounts> {
    let labels = truth.size()[1] as usize;
    let t: Vec<f32> = Vec::try_from(truth.flatten(0, -1)).context("labels")?;
    let mut counts = MultiLabelCounts::new(labels);
    for (p, row) in predicted.iter().zip(t.chunks(labels)) {
        let truth: Vec<bool> = row.iter().map(|&x| x > 0.5).collect();
        counts.add(p, &truth)?;
    }
    Ok(counts)
}

/// Trains the classifier on the training split's frames (see [`Fit`]), scores the test split,
/// and saves both into `out`. `on_step(step, steps, loss)` reports progress.
pub fn train_classifier(
    req: &ClassifierRequest,
    on_step: &dyn Fn(usize, usize, f64),
) -> Result<ClassifierManifest> {
    ensure!(req.steps > 0 && req.batch > 0, "steps and batch must be positive");
    check_widths(&req.widths)?;
    let ds = Dataset::open(&req.data)?;
    let train: Vec<&StoryRecord> = ds.split(Split::Train).collect();
    let test: Vec<&StoryRecord> = ds.split(Split::Test).collect();
    let (images, labels) = frames_of(&ds, &train)?;
    let (test_images, test_labels) = frames_of(&ds, &test)?;
    let label_count = labels.size()[1];
    let names = ds.header.label_names.clone();
    ensure!(
        names.len() as i64 == label_count,
        "the dataset names {} labels but its frames carry {label_count}",
        names.len()
    );

    tch::manual_seed(req.seed as i64);
    let vs = VarStore::new(req.device);
    let net = AttributeClassifier::new(vs.root(), label_count, &req.widths);
    let fit =
        Fit { steps: req.steps, batch: req.batch, lr: req.lr, seed: req.seed, device: req.device };
    fit_frames(&fit, &net, &vs, &images, &labels, on_step);
    let scored = score_with(&net, &test_images, req.device);
    let predictions = scored.predictions(label_count as usize);
    let counts = count(&predictions, &test_labels)?;
    let truth: Vec<f32> = Vec::try_from(test_labels.flatten(0, -1)).context("labels")?;
    let attributes = attribute_accuracy(&predictions, &truth, &attribute_groups(&names));
    let manifest = |files| ClassifierManifest {
        format: FORMAT.into(),
        version: 1,
        labels: names,
        features: FEATURES,
        widths: req.widths.clone(),
        data: req.data.display().to_string(),
        data_seed: ds.header.source.get("seed").and_then(|s| s.as_u64()),
        steps: req.steps,
        batch: req.batch,
        seed: req.seed,
        held_out: HeldOut {
            frames: counts.samples as usize,
            micro_f1: counts.micro().f1,
            macro_f1: counts.macro_avg().f1,
            exact_match: counts.exact_match(),
            attributes,
        },
        files,
    };
    checkpoint::write_dir(
        &req.out,
        req.force,
        |dir| checkpoint::write_store(&dir.join(WEIGHTS), &vs),
        manifest,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn at_size_is_the_block_mean() {
        // [2, 3, 128, 128] u8 → [2, 3, 64, 64]: each output pixel the mean of its 2×2 block.
        let x = Tensor::randint(256, [2, 3, 128, 128], (Kind::Uint8, Device::Cpu));
        let y = at_size(&x);
        assert_eq!(y.size(), [2, 3, 64, 64]);
        let v = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let (xv, yv) = (v(&x), v(&y));
        for n in 0..2 {
            for c in 0..3 {
                for i in 0..64 {
                    for j in 0..64 {
                        let at = |r: usize, q: usize| xv[((n * 3 + c) * 128 + r) * 128 + q];
                        let want = (at(2 * i, 2 * j)
                            + at(2 * i, 2 * j + 1)
                            + at(2 * i + 1, 2 * j)
                            + at(2 * i + 1, 2 * j + 1))
                            / 4.0;
                        let got = yv[((n * 3 + c) * 64 + i) * 64 + j];
                        assert!((got - want).abs() < 1e-4, "{n} {c} {i} {j}: {got} vs {want}");
                    }
                }
            }
        }
        // 64×64 passes unchanged; 256×256 averages 4×4 blocks (a constant stays that constant).
        assert!(at_size(&x.narrow(2, 0, 64).narrow(3, 0, 64))
            .equal(&x.narrow(2, 0, 64).narrow(3, 0, 64)));
        let flat = Tensor::full([1, 3, 256, 256], 7.0, (Kind::Float, Device::Cpu));
        assert!(at_size(&flat).equal(&Tensor::full(
            [1, 3, 64, 64],
            7.0,
            (Kind::Float, Device::Cpu)
        )));
    }
}
