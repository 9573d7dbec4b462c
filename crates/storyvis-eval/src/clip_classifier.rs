//! The classifier that scores generated video clips (Bouncing MNIST): each digit's class and
//! motion, trained by storyvis on real clips of the training split. A small convolution stack
//! reads every frame, a linear layer each frame's map, and the frames' vectors in order (so
//! that the motion between them can be read) go through a linear layer to the clip's features
//! (the Fréchet distance's space) and a head with one softmax per label group ("digit",
//! "motion", or "digit1" … "motion2" for two digits).

use crate::attributes::attribute_groups;
use crate::classifier::{check_widths, ClassifierRequest};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use storyvis_core::checkpoint::{self, MANIFEST};
use storyvis_core::data::{load_clips, to_network};
use storyvis_core::fit::Fit;
use storyvis_core::nn::{leaky, linear, DownStack};
use storyvis_data::bouncing::{self, HeldOut};
use storyvis_data::dataset::{Dataset, Split, StoryRecord};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

pub const FORMAT: &str = "storyvis-clip-classifier";
const WEIGHTS: &str = "classifier.safetensors";
/// Length of the motion features (the clip features are the digits' look and these).
pub const FEATURES: i64 = 128;
/// Labels per digit: its class (10) and its motion (2).
const PER_DIGIT: i64 = bouncing::PER_DIGIT as i64;
/// Length of each frame's vector.
const PER_FRAME: i64 = 32;
/// Clips per batch when scoring.
const SCORE_BATCH: i64 = 64;

/// The network (module docs).
pub struct ClipNet {
    frames: DownStack,
    per_frame: nn::Linear,
    features: nn::Linear,
    digits: nn::Linear,
    motions: nn::Linear,
    /// Label order: per digit, 10 class labels then 2 motion labels.
    digit_count: i64,
}

impl ClipNet {
    pub fn new(p: nn::Path, channels: i64, frames: i64, labels: i64, widths: &[i64]) -> ClipNet {
        let top = *widths.last().expect("widths");
        let digit_count = labels / PER_DIGIT;
        ClipNet {
            frames: DownStack::with_widths(&p / "frames", channels, widths),
            per_frame: linear(&p / "per_frame", top * 16, PER_FRAME, true),
            features: linear(&p / "features", frames * PER_FRAME, FEATURES, true),
            digits: linear(&p / "digits", top, 10 * digit_count, true),
            motions: linear(&p / "motions", FEATURES, 2 * digit_count, true),
            digit_count,
        }
    }

    /// Clips [B, C, T, 64, 64] in [−1, 1] → (features [B, top + FEATURES], logits [B, labels]).
    /// The class logits read only the frames' maps averaged over space and time (what the
    /// digits look like, wherever and however they move); the motion logits read the frames'
    /// maps in order. So neither can lean on the other: in training every digit moves one way
    /// only, and a classifier free to combine them scores held-out combinations by the motion.
    pub fn forward_t(&self, clips: &Tensor, train: bool) -> (Tensor, Tensor) {
        let b = clips.size()[0];
        let maps = self.frames.forward_t(&clips.transpose(1, 2).flatten(0, 1), train); // [B·T, top, 4, 4]
        let look = maps
            .mean_dim([2i64, 3].as_slice(), false, Kind::Float)
            .view([b, -1, maps.size()[1]])
            .mean_dim(1, false, Kind::Float);
        let per = leaky(&self.per_frame.forward(&maps.flatten(1, -1)));
        let f = self.features.forward(&per.view([b, -1])).relu();
        let (d, m) = (self.digits.forward(&look), self.motions.forward(&f));
        let logits = Tensor::cat(
            &(0..self.digit_count)
                .flat_map(|k| [d.narrow(1, 10 * k, 10), m.narrow(1, 2 * k, 2)])
                .collect::<Vec<_>>(),
            1,
        );
        (Tensor::cat(&[look, f], 1), logits)
    }
}

/// Label groups as (name, first label, labels): "digit" (10) and "motion" (2) per digit.
pub fn groups(label_names: &[String]) -> Vec<(String, i64, i64)> {
    attribute_groups(label_names)
        .into_iter()
        .map(|(g, idx)| (g, idx[0] as i64, idx.len() as i64))
        .collect()
}

/// The summed softmax cross-entropy of every group (targets: each group's one-hot labels).
pub fn group_loss(logits: &Tensor, labels: &Tensor, groups: &[(String, i64, i64)]) -> Tensor {
    groups
        .iter()
        .map(|(_, start, len)| {
            let target = labels.narrow(1, *start, *len).argmax(1, false);
            logits.narrow(1, *start, *len).log_softmax(1, Kind::Float).nll_loss(&target)
        })
        .reduce(|a, b| a + b)
        .expect("at least one label group")
}

/// Each clip's predicted value per group (argmax within the group), [N][groups].
pub fn predicted_values(logits: &Tensor, groups: &[(String, i64, i64)]) -> Vec<Vec<i64>> {
    let cols: Vec<Vec<i64>> = groups
        .iter()
        .map(|(_, s, l)| {
            Vec::try_from(logits.narrow(1, *s, *l).argmax(1, false)).expect("i64 argmax")
        })
        .collect();
    (0..logits.size()[0] as usize).map(|i| cols.iter().map(|c| c[i]).collect()).collect()
}

/// Each clip's true value per group, from its label.
pub fn true_values(label: &[u8], groups: &[(String, i64, i64)]) -> Vec<i64> {
    groups
        .iter()
        .map(|(_, s, l)| {
            label[*s as usize..(*s + *l) as usize].iter().position(|&x| x > 0).unwrap_or(0) as i64
        })
        .collect()
}

/// Shares of clips whose digits (every "digit…" group), motions (every "motion…" group), and
/// both are predicted right.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClipAccuracy {
    pub clips: usize,
    pub digit: f64,
    pub motion: f64,
    pub both: f64,
}

impl ClipAccuracy {
    pub fn of(
        predicted: &[Vec<i64>],
        truth: &[Vec<i64>],
        groups: &[(String, i64, i64)],
    ) -> ClipAccuracy {
        let n = predicted.len();
        if n == 0 {
            return ClipAccuracy::default();
        }
        let right = |prefix: &str| {
            let hits = predicted
                .iter()
                .zip(truth)
                .filter(|(p, t)| {
                    groups
                        .iter()
                        .enumerate()
                        .filter(|(_, g)| g.0.starts_with(prefix))
                        .all(|(k, _)| p[k] == t[k])
                })
                .count();
            hits as f64 / n as f64
        };
        ClipAccuracy { clips: n, digit: right("digit"), motion: right("motion"), both: right("") }
    }
}

impl std::fmt::Display for ClipAccuracy {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "({}) digit {:.4} motion {:.4} both {:.4}",
            self.clips, self.digit, self.motion, self.both
        )
    }
}

/// Accuracies on clips of seen combinations, of held-out ones, and on all.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitAccuracy {
    pub seen: ClipAccuracy,
    pub held_out: ClipAccuracy,
    pub all: ClipAccuracy,
}

impl SplitAccuracy {
    /// `held[i]`: whether clip i shows a held-out combination.
    pub fn of(
        predicted: &[Vec<i64>],
        truth: &[Vec<i64>],
        held: &[bool],
        groups: &[(String, i64, i64)],
    ) -> SplitAccuracy {
        let part = |want: bool| {
            let (p, t): (Vec<Vec<i64>>, Vec<Vec<i64>>) = predicted
                .iter()
                .zip(truth)
                .zip(held)
                .filter(|(_, &h)| h == want)
                .map(|((p, t), _)| (p.clone(), t.clone()))
                .unzip();
            ClipAccuracy::of(&p, &t, groups)
        };
        SplitAccuracy {
            seen: part(false),
            held_out: part(true),
            all: ClipAccuracy::of(predicted, truth, groups),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipManifest {
    pub format: String,
    pub version: u32,
    pub labels: Vec<String>,
    pub channels: i64,
    pub frames: i64,
    pub widths: Vec<i64>,
    pub data: String,
    pub steps: usize,
    pub batch: usize,
    pub seed: u64,
    /// On the test split's real clips.
    pub held_out: SplitAccuracy,
    pub files: BTreeMap<String, String>,
}

/// A video dataset's clips [N, C, T, S, S] in [−1, 1] (C: 1, the grey level).
pub fn real_clips(ds: &Dataset, clips: &[&StoryRecord]) -> Result<Tensor> {
    Ok(to_network(&load_clips(ds, clips, 1)?).contiguous())
}

/// Whether each clip shows a combination the dataset holds out of training.
pub fn held_out_flags(held: &HeldOut, clips: &[&StoryRecord]) -> Vec<bool> {
    clips.iter().map(|s| held.holds(&bouncing::combination_of(&s.frames[0].label))).collect()
}

/// A trained clip classifier, ready to score clips.
pub struct ClipClassifier {
    pub manifest: ClipManifest,
    pub dir: PathBuf,
    pub net: ClipNet,
    _vs: VarStore,
    device: Device,
}

/// What the classifier says about clips.
pub struct ClipScored {
    /// [N, dim] f32, flat.
    pub features: Vec<f32>,
    /// Length of each clip's features.
    pub dim: usize,
    /// Per clip, the predicted value of each label group.
    pub values: Vec<Vec<i64>>,
}

fn score_with(
    net: &ClipNet,
    clips: &Tensor,
    groups: &[(String, i64, i64)],
    device: Device,
) -> ClipScored {
    let (mut features, mut values, mut dim) = (Vec::new(), Vec::new(), 0);
    tch::no_grad(|| {
        for chunk in clips.split(SCORE_BATCH, 0) {
            let (f, logits) = net.forward_t(&chunk.to_device(device), false);
            dim = f.size()[1] as usize;
            features.extend(
                Vec::<f32>::try_from(f.to_device(Device::Cpu).flatten(0, -1))
                    .expect("f32 features"),
            );
            values.extend(predicted_values(&logits.to_device(Device::Cpu), groups));
        }
    });
    ClipScored { features, values, dim }
}

impl ClipClassifier {
    pub fn load(path: &Path, device: Device) -> Result<ClipClassifier> {
        let mpath = path.join(MANIFEST);
        let text = std::fs::read_to_string(&mpath).with_context(|| {
            format!(
                "cannot read {} (train one with `storyvis train-classifier` on a video dataset)",
                mpath.display()
            )
        })?;
        // Another scorer or a model says what it is before its fields are read.
        let other = match checkpoint::format_of(&text).as_deref() {
            Some(FORMAT) | None => None,
            Some(checkpoint::CLASSIFIER_FORMAT) => {
                Some("the CLEVR-SV attribute classifier (it scores frames)")
            }
            Some(checkpoint::FORMAT) => Some("a model checkpoint"),
            Some(_) => Some("another storyvis file"),
        };
        if let Some(what) = other {
            anyhow::bail!(
                "{} is not a clip classifier but {what}: video data is scored with a clip classifier (the shipped {}, or `storyvis train-classifier` on a video dataset)",
                path.display(),
                crate::DEFAULT_CLIP_CLASSIFIER
            );
        }
        let manifest: ClipManifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a clip classifier (train one with `storyvis train-classifier --data` on a video dataset)", path.display()))?;
        ensure!(
            manifest.format == FORMAT && manifest.version == 1,
            "{} is not a storyvis clip classifier (version 1)",
            mpath.display()
        );
        checkpoint::check_digests(path, &manifest.files)?;
        check_widths(&manifest.widths).with_context(|| format!("in {}", mpath.display()))?;
        let mut vs = VarStore::new(device);
        let net = ClipNet::new(
            vs.root(),
            manifest.channels,
            manifest.frames,
            manifest.labels.len() as i64,
            &manifest.widths,
        );
        checkpoint::load_store(&mut vs, &path.join(WEIGHTS))?;
        Ok(ClipClassifier { manifest, dir: path.to_path_buf(), net, _vs: vs, device })
    }

    /// Scores clips [N, C, T, 64, 64] in [−1, 1] (any device) in batches.
    pub fn score(&self, clips: &Tensor) -> ClipScored {
        score_with(&self.net, clips, &groups(&self.manifest.labels), self.device)
    }
}

/// Trains the clip classifier on a video dataset's training clips (softmax cross-entropy per
/// label group, the attribute classifier's Adam and cosine schedule, no flips: a mirrored digit
/// is another picture), scores its test clips, and saves both into `req.out`.
pub fn train_clip_classifier(
    req: &ClassifierRequest,
    on_step: &dyn Fn(usize, usize, f64),
) -> Result<ClipManifest> {
    ensure!(req.steps > 0 && req.batch > 0, "steps and batch must be positive");
    check_widths(&req.widths)?;
    let ds = Dataset::open(&req.data)?;
    ensure!(
        ds.header.kind == bouncing::KIND,
        "{} is a {} dataset; the clip classifier trains on video datasets ({})",
        req.data.display(),
        ds.header.kind,
        bouncing::KIND
    );
    ensure!(
        ds.header.image_size == 64,
        "the clip classifier reads 64×64 frames; {} holds {}×{}",
        req.data.display(),
        ds.header.image_size,
        ds.header.image_size
    );
    let held = bouncing::held_out_of(&ds.header)?;
    let train: Vec<&StoryRecord> = ds.split(Split::Train).collect();
    let test: Vec<&StoryRecord> = ds.split(Split::Test).collect();
    ensure!(
        !train.is_empty() && !test.is_empty(),
        "{} needs training and test clips",
        req.data.display()
    );
    let clips = real_clips(&ds, &train)?;
    let labels = Tensor::from_slice(
        &train.iter().flat_map(|s| s.frames[0].label.iter().map(|&x| x as f32)).collect::<Vec<_>>(),
    )
    .view([train.len() as i64, -1]);
    let names = ds.header.label_names.clone();
    let g = groups(&names);
    let frames = ds.header.frames_per_story as i64;
    tch::manual_seed(req.seed as i64);
    let vs = VarStore::new(req.device);
    let net = ClipNet::new(vs.root(), 1, frames, names.len() as i64, &req.widths);
    let fit =
        Fit { steps: req.steps, batch: req.batch, lr: req.lr, seed: req.seed, device: req.device };
    let loss_of = |idx: &Tensor| {
        let x = clips.index_select(0, idx).to_device(req.device);
        let y = labels.index_select(0, idx).to_device(req.device);
        group_loss(&net.forward_t(&x, true).1, &y, &g)
    };
    fit.run_with(&vs, train.len(), &loss_of, on_step);
    let scored = score_with(&net, &real_clips(&ds, &test)?, &g, req.device);
    let truth: Vec<Vec<i64>> = test.iter().map(|s| true_values(&s.frames[0].label, &g)).collect();
    let held_out = SplitAccuracy::of(&scored.values, &truth, &held_out_flags(&held, &test), &g);
    let manifest = |files| ClipManifest {
        format: FORMAT.into(),
        version: 1,
        labels: names,
        channels: 1,
        frames,
        widths: req.widths.clone(),
        data: req.data.display().to_string(),
        steps: req.steps,
        batch: req.batch,
        seed: req.seed,
        held_out,
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

    #[test]
    fn accuracies_count_digits_motions_and_both_per_split() {
        let names: Vec<String> = bouncing::label_names(2);
        let g = groups(&names);
        assert_eq!(
            g.iter().map(|x| (x.0.as_str(), x.1, x.2)).collect::<Vec<_>>(),
            vec![("digit1", 0, 10), ("motion1", 10, 2), ("digit2", 12, 10), ("motion2", 22, 2)]
        );
        let truth = vec![vec![3, 0, 7, 1], vec![1, 1, 2, 0], vec![5, 0, 5, 0], vec![9, 1, 0, 1]];
        // Clip 0 all right; clip 1 one digit wrong; clip 2 one motion wrong; clip 3 all wrong.
        let predicted =
            vec![vec![3, 0, 7, 1], vec![1, 1, 4, 0], vec![5, 1, 5, 0], vec![8, 0, 1, 0]];
        let a = ClipAccuracy::of(&predicted, &truth, &g);
        assert_eq!((a.clips, a.digit, a.motion, a.both), (4, 0.5, 0.5, 0.25));
        let s = SplitAccuracy::of(&predicted, &truth, &[false, true, false, true], &g);
        assert_eq!((s.seen.digit, s.seen.motion, s.seen.both), (1.0, 0.5, 0.5));
        assert_eq!((s.held_out.digit, s.held_out.motion, s.held_out.both), (0.0, 0.5, 0.0));
        assert_eq!(s.all, a);
    }

    #[test]
    fn predictions_are_the_argmax_of_each_group_and_the_loss_its_cross_entropy() {
        let names: Vec<String> = bouncing::label_names(1);
        let g = groups(&names);
        let mut row = vec![0f32; 12];
        row[7] = 3.0; // digit 7
        row[11] = 1.0; // left and right
        let logits = Tensor::from_slice(&row).view([1, 12]);
        assert_eq!(predicted_values(&logits, &g), vec![vec![7, 1]]);
        let mut label = vec![0u8; 12];
        label[7] = 1;
        label[10] = 1;
        assert_eq!(true_values(&label, &g), vec![7, 0]);
        // −log softmax at the true entries, summed over the two groups, by hand.
        let y =
            Tensor::from_slice(&label.iter().map(|&x| x as f32).collect::<Vec<_>>()).view([1, 12]);
        let digit = -(3.0f64 - (9.0 + 3f64.exp()).ln());
        let motion = -(0.0f64 - (1.0 + 1f64.exp()).ln());
        assert!((group_loss(&logits, &y, &g).double_value(&[]) - (digit + motion)).abs() < 1e-5);
    }

    #[test]
    fn the_network_reads_frames_in_order() {
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let net = ClipNet::new(vs.root(), 1, 4, 12, &[4, 8, 8, 8]);
        // Weights far from DCGAN's small initialisation, so that no ReLU is dead everywhere.
        tch::no_grad(|| {
            vs.trainable_variables().iter_mut().for_each(|v| _ = v.g_mul_scalar_(30.0))
        });
        let clip = Tensor::randn([2, 1, 4, 64, 64], (Kind::Float, Device::Cpu));
        let (f, logits) = net.forward_t(&clip, false);
        assert_eq!((f.size(), logits.size()), (vec![2, 8 + FEATURES], vec![2, 12]));
        // Reversing the frames (the motion) changes the motion logits, never the class ones:
        // those see the frames averaged.
        let (_, reversed) = net.forward_t(&clip.flip([2]), false);
        let diff = (&logits - reversed).abs();
        assert!(
            diff.narrow(1, 10, 2).max().double_value(&[])
                > 1e-3 * logits.abs().max().double_value(&[])
        );
        let scale = logits.abs().max().double_value(&[]);
        assert!(
            diff.narrow(1, 0, 10).max().double_value(&[]) < 1e-5 * scale,
            "class logits moved (scale {scale})"
        );
        // Two digits: logits in label order, class then motion per digit.
        let net2 = ClipNet::new(vs.root() / "two", 1, 4, 24, &[4, 8, 8, 8]);
        assert_eq!(net2.forward_t(&clip, false).1.size(), [2, 24]);
    }
}
