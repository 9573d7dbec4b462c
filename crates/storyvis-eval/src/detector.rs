//! The CLEVR object detector that scores where generated frames put their objects and what
//! each object is, as GeNeVA-GAN's evaluation does with its object localiser (El-Nouby et al.,
//! ICCV 2019, §5). A CenterNet-style network (Zhou et al., "Objects as Points", 2019): from a
//! 64×64 frame, a heat map of object centres at half the frame's resolution, a sub-cell offset
//! and shape, colour, material and size logits at every cell; an object is a local maximum of
//! the heat map above a threshold, read with the offset and the attributes at its cell.
//!
//! Trained by storyvis on rendered frames only (the renderer writes every object's projected
//! centre, `Frame::objects`), with its held-out scores on real frames stored beside it; like the
//! attribute classifier it never takes part in training a generator.

use crate::classifier::{at_size, check_size};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use storyvis_core::checkpoint::{self, MANIFEST};
use storyvis_core::data::{load_images, to_unit};
use storyvis_core::fit::Fit;
use storyvis_core::nn::{bn2d, conv, leaky};
use storyvis_data::dataset::{Dataset, FrameObject, Split, StoryRecord};
use tch::nn::{self, Module, ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

pub const FORMAT: &str = "storyvis-detector";
const WEIGHTS: &str = "detector.safetensors";
/// The side of the frames it reads (larger ones are averaged down, `classifier::at_size`).
pub const SIZE: i64 = 64;
/// Frame pixels per heat-map cell: centres of objects as close as 3 pixels still fall in
/// separate cells.
pub const STRIDE: i64 = 2;
/// Cells across the heat map.
pub const CELLS: i64 = SIZE / STRIDE;
/// The attribute groups' sizes: shape, colour, material, size (the CLEVR label groups).
pub const GROUPS: [i64; 4] = [3, 8, 2, 2];
/// Output channels: heat, offset (x, y), then the attribute logits.
const OUTPUTS: i64 = 3 + 15;
/// At most this many objects per frame are read.
pub const MAX_OBJECTS: usize = 8;
/// The default heat above which a local maximum is an object.
pub const THRESHOLD: f64 = 0.3;
/// A detection and a true object match when their centres are at most this many pixels (of a
/// 64×64 frame) apart.
pub const MATCH_PIXELS: f64 = 4.0;
/// The Gaussian's standard deviation (heat-map cells) around a large and a small object's
/// centre in the training target.
const SIGMA: [f64; 2] = [1.0, 0.7];
/// Frames per batch when detecting.
const DETECT_BATCH: i64 = 256;

/// Channels of the network's two stride-2 convolutions when none are given.
pub const WIDTHS: [i64; 2] = [32, 64];

/// The network: two stride-2 4×4 convolutions to 16×16 (batch-norm, leaky ReLU), two 3×3 ones
/// there (the second dilated, for context), upsampled ×2 and joined with the 32×32 map of the
/// first convolution by a 1×1 convolution, then a 3×3 convolution to the outputs per cell.
pub struct DetectorNet {
    down: [nn::Conv2D; 2],
    mid: [nn::Conv2D; 2],
    norms: Vec<storyvis_core::nn::BatchNorm>,
    fuse: nn::Conv2D,
    head: nn::Conv2D,
    head_bias: Tensor,
}

impl DetectorNet {
    pub fn new(p: nn::Path, widths: &[i64]) -> DetectorNet {
        let (a, b) = (widths[0], widths[1]);
        let dilated = nn::ConvConfig {
            padding: 2,
            dilation: 2,
            bias: false,
            ws_init: storyvis_core::nn::INIT,
            ..Default::default()
        };
        // The heat channel starts at σ⁻¹(0.01), CenterNet's prior, so the empty cells' loss
        // does not swamp the first updates.
        let mut bias = vec![0f32; OUTPUTS as usize];
        bias[0] = -(99f32.ln());
        DetectorNet {
            down: [conv(&p / "down0", 3, a, 4, 2, 1), conv(&p / "down1", a, b, 4, 2, 1)],
            mid: [conv(&p / "mid0", b, b, 3, 1, 1), nn::conv2d(&p / "mid1", b, b, 3, dilated)],
            norms: ["norm0", "norm1", "norm2", "norm3", "norm4"]
                .iter()
                .zip([a, b, b, b, a])
                .map(|(n, c)| bn2d(&p / *n, c))
                .collect(),
            fuse: conv(&p / "fuse", a + b, a, 1, 1, 0),
            head: conv(&p / "head", a, OUTPUTS, 3, 1, 1),
            head_bias: p.var_copy("head_bias", &Tensor::from_slice(&bias)),
        }
    }

    /// Frames [B, 3, 64, 64] in [−1, 1] → outputs [B, OUTPUTS, CELLS, CELLS].
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let act = |i: usize, h: Tensor| leaky(&self.norms[i].forward_t(&h, train));
        let fine = act(0, self.down[0].forward(x)); // [B, a, 32, 32]
        let mut h = act(1, self.down[1].forward(&fine)); // [B, b, 16, 16]
        h = act(2, self.mid[0].forward(&h));
        h = act(3, self.mid[1].forward(&h));
        let up = h.upsample_nearest2d([CELLS, CELLS], None, None);
        let joined = act(4, self.fuse.forward(&Tensor::cat(&[up, fine], 1)));
        self.head.forward(&joined) + self.head_bias.view([1, OUTPUTS, 1, 1])
    }
}

/// One object found in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Detection {
    /// Its centre in the pixels of a 64×64 frame (x to the right, y downwards, pixel i's centre
    /// at i + ½), as `Frame::objects` gives them.
    pub centre: [f32; 2],
    /// Its heat (0 to 1).
    pub score: f32,
    /// Shape, colour, material, size indices (the label groups' order).
    pub attributes: [u8; 4],
}

/// The objects of each frame in a batch of outputs [B, OUTPUTS, CELLS, CELLS]: cells whose heat
/// is the greatest of their 3×3 neighbourhood and above `threshold`, the `MAX_OBJECTS` hottest,
/// each read with its offset and attributes.
pub fn decode(outputs: &Tensor, threshold: f64) -> Vec<Vec<Detection>> {
    let outputs = outputs.to_device(Device::Cpu).to_kind(Kind::Float);
    let heat = outputs.narrow(1, 0, 1).sigmoid();
    let peaks = heat
        .eq_tensor(&heat.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false))
        .logical_and(&heat.gt(threshold));
    let b = outputs.size()[0];
    let all: Vec<f32> = Vec::try_from(outputs.flatten(0, -1)).expect("f32 outputs");
    let heat: Vec<f32> = Vec::try_from(heat.flatten(0, -1)).expect("f32 heat");
    let peaks: Vec<bool> = Vec::try_from(peaks.flatten(0, -1)).expect("bool peaks");
    let cells = (CELLS * CELLS) as usize;
    (0..b as usize)
        .map(|n| {
            let mut found: Vec<(usize, f32)> = (0..cells)
                .filter(|&c| peaks[n * cells + c])
                .map(|c| (c, heat[n * cells + c]))
                .collect();
            found.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
            found.truncate(MAX_OBJECTS);
            found
                .into_iter()
                .map(|(c, score)| {
                    let at = |k: usize| all[(n * OUTPUTS as usize + k) * cells + c];
                    let (i, j) = ((c % CELLS as usize) as f32, (c / CELLS as usize) as f32);
                    let centre =
                        [(i + 0.5 + at(1)) * STRIDE as f32, (j + 0.5 + at(2)) * STRIDE as f32];
                    let mut start = 3;
                    let attributes = GROUPS.map(|g| {
                        let best = (0..g as usize)
                            .max_by(|&x, &y| at(start + x).total_cmp(&at(start + y)))
                            .expect("a group");
                        start += g as usize;
                        best as u8
                    });
                    Detection { centre, score, attributes }
                })
                .collect()
        })
        .collect()
}

/// The training targets of frames: heat maps [N, 1, CELLS, CELLS] (a Gaussian around each
/// object's centre cell, the greatest where two overlap, exactly 1 at the centre) and, per
/// object, (frame, cell, offset x, offset y, attributes).
pub struct Targets {
    pub heat: Tensor,
    pub objects: Vec<ObjectTarget>,
    /// The rows of `objects` of each frame.
    pub of_frame: Vec<Vec<usize>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ObjectTarget {
    pub frame: usize,
    pub cell: i64,
    pub offset: [f32; 2],
    pub attributes: [u8; 4],
}

impl Targets {
    /// `frames[n]`: frame n's objects, centres in the pixels of a `size`×`size` frame.
    pub fn new(frames: &[&[FrameObject]], size: u32) -> Result<Targets> {
        let scale = SIZE as f64 / size as f64;
        let n = CELLS as usize;
        let mut heat = vec![0f32; frames.len() * n * n];
        let mut objects = Vec::new();
        let mut of_frame = vec![Vec::new(); frames.len()];
        for (f, objs) in frames.iter().enumerate() {
            for o in objs.iter() {
                ensure!(
                    (o.attributes[0] as i64) < GROUPS[0]
                        && (o.attributes[1] as i64) < GROUPS[1]
                        && (o.attributes[2] as i64) < GROUPS[2]
                        && (o.attributes[3] as i64) < GROUPS[3],
                    "an object's attributes {:?} are not CLEVR's",
                    o.attributes
                );
                // Continuous cell coordinates: cell i's centre is at pixel (i + ½)·STRIDE.
                let cx = o.centre[0] as f64 * scale / STRIDE as f64 - 0.5;
                let cy = o.centre[1] as f64 * scale / STRIDE as f64 - 0.5;
                let (i, j) = (cx.round(), cy.round());
                if !(0.0..n as f64).contains(&i) || !(0.0..n as f64).contains(&j) {
                    continue; // its centre is outside the frame
                }
                let sigma = SIGMA[o.attributes[3] as usize];
                for y in 0..n {
                    for x in 0..n {
                        let d2 = (x as f64 - i).powi(2) + (y as f64 - j).powi(2);
                        let g = (-d2 / (2.0 * sigma * sigma)).exp() as f32;
                        let h = &mut heat[(f * n + y) * n + x];
                        *h = h.max(g);
                    }
                }
                of_frame[f].push(objects.len());
                objects.push(ObjectTarget {
                    frame: f,
                    cell: (j as i64) * CELLS + i as i64,
                    offset: [(cx - i) as f32, (cy - j) as f32],
                    attributes: o.attributes,
                });
            }
        }
        Ok(Targets {
            heat: Tensor::from_slice(&heat).view([frames.len() as i64, 1, CELLS, CELLS]),
            objects,
            of_frame,
        })
    }
}

/// CenterNet's penalty-reduced focal loss (Zhou et al. 2019, eq. 1; α = 2, β = 4) of heat
/// logits against target heat maps of the same shape, summed and divided by `objects` (at
/// least 1).
pub fn focal_loss(logits: &Tensor, target: &Tensor, objects: usize) -> Tensor {
    let p = logits.sigmoid().clamp(1e-6, 1.0 - 1e-6);
    let pos = target.ge(1.0 - 1e-6).to_kind(Kind::Float);
    let q: Tensor = 1.0 - &p;
    let pos_loss = -(q.square() * p.log() * &pos).sum(Kind::Float);
    let (away, neg): (Tensor, Tensor) = (1.0 - target, 1.0 - &pos);
    let neg_loss = -(away.pow_tensor_scalar(4) * p.square() * q.log() * neg).sum(Kind::Float);
    (pos_loss + neg_loss) / objects.max(1) as f64
}

/// The detector's loss on a batch: outputs [B, OUTPUTS, CELLS, CELLS], the batch's target heat
/// maps and its objects (`batch_pos`: each object's row in the batch): the focal loss, the L1
/// of the offsets at the objects' cells, and the cross-entropy of each attribute group there.
pub fn loss(
    outputs: &Tensor,
    heat: &Tensor,
    objects: &[ObjectTarget],
    batch_pos: &[i64],
) -> Tensor {
    let focal = focal_loss(&outputs.narrow(1, 0, 1), heat, objects.len());
    if objects.is_empty() {
        return focal;
    }
    let device = outputs.device();
    let b = outputs.size()[0];
    let flat = outputs.permute([0, 2, 3, 1]).reshape([b * CELLS * CELLS, OUTPUTS]);
    let rows: Vec<i64> =
        objects.iter().zip(batch_pos).map(|(o, &p)| p * CELLS * CELLS + o.cell).collect();
    let at = flat.index_select(0, &Tensor::from_slice(&rows).to_device(device));
    let offsets: Vec<f32> = objects.iter().flat_map(|o| o.offset).collect();
    let offset = (at.narrow(1, 1, 2)
        - Tensor::from_slice(&offsets).view([-1, 2]).to_device(device))
    .abs()
    .mean(Kind::Float);
    let mut start = 3;
    let mut total = focal + offset;
    for (g, &width) in GROUPS.iter().enumerate() {
        let truth: Vec<i64> = objects.iter().map(|o| o.attributes[g] as i64).collect();
        let logits = at.narrow(1, start, width);
        total += logits
            .log_softmax(1, Kind::Float)
            .nll_loss(&Tensor::from_slice(&truth).to_device(device));
        start += width;
    }
    total
}

/// How well detections match true objects over a set of frames.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DetectionScores {
    pub frames: usize,
    pub objects: usize,
    pub detections: usize,
    /// Detections matched to a true object (centres at most `MATCH_PIXELS` apart, Hungarian).
    pub matched: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Frames with as many detections as objects.
    pub count_accuracy: f64,
    /// Over matched objects: the share whose shape, colour, material, size is named right.
    pub shape: f64,
    pub colour: f64,
    pub material: f64,
    pub size: f64,
    /// Shape accuracy over matched large and small objects.
    pub shape_large: f64,
    pub shape_small: f64,
}

/// Pairs each frame's detections with its true objects by centre distance (Hungarian, gated at
/// `MATCH_PIXELS`; centres in the pixels of a 64×64 frame): for each frame the (object,
/// detection) pairs.
pub fn match_frames(
    truth: &[Vec<FrameObject>],
    found: &[Vec<Detection>],
) -> Result<Vec<Vec<(usize, usize)>>> {
    truth
        .iter()
        .zip(found)
        .map(|(t, d)| {
            let cost: Vec<f64> = t
                .iter()
                .flat_map(|o| {
                    d.iter().map(move |x| {
                        ((o.centre[0] - x.centre[0]) as f64)
                            .hypot((o.centre[1] - x.centre[1]) as f64)
                    })
                })
                .collect();
            Ok(storyvis_metrics::match_within(&cost, t.len(), d.len(), MATCH_PIXELS)?)
        })
        .collect()
}

/// The scores of detections against true objects (centres in 64×64 pixels).
pub fn score(truth: &[Vec<FrameObject>], found: &[Vec<Detection>]) -> Result<DetectionScores> {
    ensure!(
        truth.len() == found.len(),
        "{} frames of objects against {} of detections",
        truth.len(),
        found.len()
    );
    let pairs = match_frames(truth, found)?;
    let mut s = DetectionScores { frames: truth.len(), ..Default::default() };
    let (mut right, mut by_size) = ([0usize; 4], [(0usize, 0usize); 2]);
    for ((t, d), p) in truth.iter().zip(found).zip(&pairs) {
        s.objects += t.len();
        s.detections += d.len();
        s.matched += p.len();
        s.count_accuracy += (t.len() == d.len()) as usize as f64;
        for &(i, j) in p {
            let (a, b) = (t[i].attributes, d[j].attributes);
            for k in 0..4 {
                right[k] += (a[k] == b[k]) as usize;
            }
            let size = &mut by_size[a[3] as usize];
            *size = (size.0 + (a[0] == b[0]) as usize, size.1 + 1);
        }
    }
    let share = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    s.precision = share(s.matched, s.detections);
    s.recall = share(s.matched, s.objects);
    s.f1 = if s.precision + s.recall > 0.0 {
        2.0 * s.precision * s.recall / (s.precision + s.recall)
    } else {
        0.0
    };
    s.count_accuracy = share(s.count_accuracy as usize, s.frames);
    [s.shape, s.colour, s.material, s.size] = right.map(|r| share(r, s.matched));
    (s.shape_large, s.shape_small) =
        (share(by_size[0].0, by_size[0].1), share(by_size[1].0, by_size[1].1));
    Ok(s)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorManifest {
    pub format: String,
    pub version: u32,
    pub widths: Vec<i64>,
    pub threshold: f64,
    /// The dataset directory and the generator seed it was rendered from.
    pub data: String,
    pub data_seed: Option<u64>,
    pub steps: usize,
    pub batch: usize,
    pub seed: u64,
    /// Its scores on the dataset's held-out frames.
    pub held_out: DetectionScores,
    pub files: BTreeMap<String, String>,
}

/// Checks the network's widths: two, each 4 to 512.
pub fn check_widths(widths: &[i64]) -> Result<()> {
    ensure!(
        widths.len() == 2,
        "the detector has 2 stride-2 convolutions; {} widths were given ({widths:?})",
        widths.len()
    );
    ensure!(
        widths.iter().all(|w| (4..=512).contains(w)),
        "detector widths must be 4 to 512 (got {widths:?})"
    );
    Ok(())
}

/// A trained detector, ready to find objects.
pub struct Detector {
    pub manifest: DetectorManifest,
    pub dir: PathBuf,
    net: DetectorNet,
    _vs: VarStore,
    device: Device,
}

impl Detector {
    pub fn load(path: &Path, device: Device) -> Result<Detector> {
        let mpath = path.join(MANIFEST);
        let text = std::fs::read_to_string(&mpath).with_context(|| {
            format!("cannot read {} (train one with `storyvis train-detector`)", mpath.display())
        })?;
        let format = checkpoint::format_of(&text);
        ensure!(
            format.as_deref() == Some(FORMAT),
            "{} is {}, not an object detector (train one with `storyvis train-detector`)",
            path.display(),
            match format.as_deref() {
                Some(checkpoint::FORMAT) => "a model checkpoint".to_string(),
                Some(crate::classifier::FORMAT) => "an attribute classifier".to_string(),
                Some(f) => format!("a {f:?} directory"),
                None => "no storyvis directory".to_string(),
            }
        );
        let manifest: DetectorManifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a detector manifest", mpath.display()))?;
        ensure!(
            manifest.version == 1,
            "{} is a detector of version {}; this storyvis reads version 1",
            mpath.display(),
            manifest.version
        );
        checkpoint::check_digests(path, &manifest.files)?;
        check_widths(&manifest.widths).with_context(|| format!("in {}", mpath.display()))?;
        let mut vs = VarStore::new(device);
        let net = DetectorNet::new(vs.root(), &manifest.widths);
        checkpoint::load_store(&mut vs, &path.join(WEIGHTS))?;
        Ok(Detector { manifest, dir: path.to_path_buf(), net, _vs: vs, device })
    }

    /// The objects of frames [N, 3, S, S] (u8, or floats in [−1, 1]; S = 64·2^k) in batches.
    pub fn detect(&self, frames: &Tensor) -> Vec<Vec<Detection>> {
        detect_with(&self.net, frames, self.manifest.threshold, self.device)
    }
}

pub fn detect_with(
    net: &DetectorNet,
    frames: &Tensor,
    threshold: f64,
    device: Device,
) -> Vec<Vec<Detection>> {
    let mut out = Vec::new();
    tch::no_grad(|| {
        for chunk in frames.split(DETECT_BATCH, 0) {
            let x = if chunk.kind() == Kind::Uint8 {
                to_unit(&at_size(&chunk))
            } else {
                at_size(&chunk)
            };
            out.extend(decode(&net.forward_t(&x.to_device(device), false), threshold));
        }
    });
    out
}

/// Every frame of `stories` [N·T, 3, 64, 64] in [−1, 1] with its objects (an error naming the
/// dataset when its frames list none: rendered before objects were written).
pub fn frames_with_objects(
    ds: &Dataset,
    stories: &[&StoryRecord],
) -> Result<(Tensor, Vec<Vec<FrameObject>>)> {
    check_size(ds)?;
    ensure!(!stories.is_empty(), "{} has no stories in this split", ds.dir.display());
    let objects: Vec<Vec<FrameObject>> =
        stories.iter().flat_map(|s| s.frames.iter().map(|f| f.objects.clone())).collect();
    ensure!(
        objects.iter().any(|o| !o.is_empty()),
        "{} lists no objects in its frames (rendered before December 7 2026, or not a CLEVR dataset): prepare it again",
        ds.dir.display()
    );
    let scale = SIZE as f32 / ds.header.image_size as f32;
    let objects = objects
        .into_iter()
        .map(|o| {
            o.into_iter()
                .map(|x| FrameObject { centre: x.centre.map(|c| c * scale), ..x })
                .collect()
        })
        .collect();
    Ok((to_unit(&at_size(&load_images(ds, stories)?.flatten(0, 1))), objects))
}

pub struct DetectorRequest {
    pub data: PathBuf,
    pub out: PathBuf,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    pub device: Device,
    pub force: bool,
    pub widths: Vec<i64>,
}

/// Fits a detector to frames [N, 3, 64, 64] in [−1, 1] and their objects (centres in 64×64
/// pixels) with `Fit`'s loop (Adam, cosine decay, per-epoch shuffles); returns it in `vs`.
pub fn fit(
    fit: &Fit,
    vs: &VarStore,
    net: &DetectorNet,
    images: &Tensor,
    objects: &[Vec<FrameObject>],
    on_step: &dyn Fn(usize, usize, f64),
) -> Result<()> {
    let refs: Vec<&[FrameObject]> = objects.iter().map(Vec::as_slice).collect();
    let targets = Targets::new(&refs, SIZE as u32)?;
    let loss_of = |idx: &Tensor| {
        let picked: Vec<i64> = Vec::try_from(idx).expect("i64 indices");
        let mut batch_objects = Vec::new();
        let mut batch_pos = Vec::new();
        for (pos, &f) in picked.iter().enumerate() {
            for &row in &targets.of_frame[f as usize] {
                batch_objects.push(targets.objects[row]);
                batch_pos.push(pos as i64);
            }
        }
        let x = images.index_select(0, idx).to_device(fit.device);
        let heat = targets.heat.index_select(0, idx).to_device(fit.device);
        loss(&net.forward_t(&x, true), &heat, &batch_objects, &batch_pos)
    };
    fit.run_with(vs, images.size()[0] as usize, &loss_of, on_step);
    Ok(())
}

/// Trains the detector on the training split's frames, scores the test split, and saves both
/// into `out`. `on_step(step, steps, loss)` reports progress.
pub fn train_detector(
    req: &DetectorRequest,
    on_step: &dyn Fn(usize, usize, f64),
) -> Result<DetectorManifest> {
    ensure!(req.steps > 0 && req.batch > 0, "steps and batch must be positive");
    check_widths(&req.widths)?;
    let ds = Dataset::open(&req.data)?;
    let train: Vec<&StoryRecord> = ds.split(Split::Train).collect();
    let test: Vec<&StoryRecord> = ds.split(Split::Test).collect();
    let (images, objects) = frames_with_objects(&ds, &train)?;
    let (test_images, test_objects) = frames_with_objects(&ds, &test)?;
    tch::manual_seed(req.seed as i64);
    let vs = VarStore::new(req.device);
    let net = DetectorNet::new(vs.root(), &req.widths);
    let fitter =
        Fit { steps: req.steps, batch: req.batch, lr: req.lr, seed: req.seed, device: req.device };
    fit(&fitter, &vs, &net, &images, &objects, on_step)?;
    let held_out = score(&test_objects, &detect_with(&net, &test_images, THRESHOLD, req.device))?;
    let manifest = |files| DetectorManifest {
        format: FORMAT.into(),
        version: 1,
        widths: req.widths.clone(),
        threshold: THRESHOLD,
        data: req.data.display().to_string(),
        data_seed: ds.header.source.get("seed").and_then(|s| s.as_u64()),
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
mod tests;
