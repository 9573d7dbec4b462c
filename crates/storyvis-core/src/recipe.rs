//! The budget-first recipe, one set of parts that any family switches on in its config's
//! `[recipe]` section (a family lists the parts it reads in `FamilyEntry::recipe`):
//!
//! - **DiffAugment** (Zhao, Liu, Lin, Zhu & Han, "Differentiable Augmentation for Data-Efficient
//!   GAN Training", NeurIPS 2020, §3): the same differentiable colour, translation and cutout
//!   transforms on everything the discriminator sees, real and generated, in its update and the
//!   generator's. One draw serves a batch's real and fake items alike, and a clip or story is
//!   transformed as one picture (the same shift, the same hole in every frame).
//! - **Auxiliary attributes** (AC-GAN: Odena, Olah & Shlens, ICML 2017, §3): a head on the
//!   discriminator's features predicts the dataset's labels; the discriminator learns it on real
//!   items, and the generator is charged the same loss on what it drew for those labels. The
//!   head is the model's own, trained from labels; the evaluation classifiers never train.
//! - **Mode seeking** (MSGAN: Mao, Lee, Tseng, Ma & Yang, CVPR 2019, eq. 3): two noises per
//!   condition, and the generator pays 1 / (mean|G(c, z1) − G(c, z2)| / mean|z1 − z2| + ε), so
//!   it cannot draw one picture whatever the noise.
//! - **A pretrained-feature discriminator** (`d_backbone`; Projected GAN: Sauer et al., NeurIPS
//!   2021): the discriminator judges a frozen EfficientNet-Lite's features through fixed random
//!   projections (`projected`).
//! - **The matching-aware gradient penalty** (`ma_gp`; DF-GAN: Tao et al., CVPR 2022, §3.3,
//!   eq. 2): the discriminator pays k·E[‖(∇ₓD(x, e), ∇ₑD(x, e))‖^p] on real images x with
//!   their own captions e, so its verdict is flat around the real, matching pairs and the
//!   generator's gradient towards them is smooth in both the picture and the text (p = 6 as
//!   the paper; k is the weight, 2 in the paper).
//! - **Frozen text at a usable scale** (`TextNorm`): a frozen encoder's unit-length sentence
//!   embeddings differ little between captions that differ in one word, and a projection
//!   initialised at N(0, 0.02) passes almost nothing of that difference on; centred on the
//!   training captions' mean and scaled to unit variance, they do.

pub mod projected;

use crate::checks::range;
use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// The `[recipe]` section (every part off by default: a preset without the section is the
/// paper's recipe).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recipe {
    /// DiffAugment's transforms, comma-separated: "color", "translation", "cutout" ("": off).
    pub diffaugment: String,
    /// Weight of the auxiliary attribute loss, in the discriminator's loss on real items and
    /// in the generator's on its drawings (0: no head).
    pub aux_attributes: f64,
    /// Weight of the mode-seeking term in the generator's loss (0: off).
    pub mode_seeking: f64,
    /// A bound τ on the ratio the mode-seeking term rewards (0: none): the generator pays
    /// 1 / (min(ratio, τ) + ε), so once two noises' drawings differ by τ per unit of noise it
    /// is pushed no further (the bounded diversity term of DSGAN, Yang et al., ICLR 2019).
    pub mode_seeking_cap: f64,
    /// The discriminator's frozen pretrained backbone: "none" (or "": the family's own
    /// discriminator), "efficientnet-lite0" or "efficientnet-lite1" (`projected`).
    pub d_backbone: String,
    /// The side the pictures are resized to (bilinear) before the backbone (0: their own).
    /// Projected GAN resizes every picture to 224×224; at 64×64 the backbone's stride-2 stem
    /// and ¼-side first map see little of a picture's finest detail.
    pub d_backbone_size: i64,
    /// Weight k of DF-GAN's matching-aware gradient penalty on the discriminator (0: off;
    /// `matching_aware_penalty`).
    pub ma_gp: f64,
    /// Generator updates per discriminator update (1: the papers'; each with fresh noise on
    /// the iteration's captions).
    pub g_steps: i64,
}

impl Default for Recipe {
    fn default() -> Recipe {
        Recipe {
            diffaugment: String::new(),
            aux_attributes: 0.0,
            mode_seeking: 0.0,
            mode_seeking_cap: 0.0,
            d_backbone: String::new(),
            d_backbone_size: 0,
            ma_gp: 0.0,
            g_steps: 1,
        }
    }
}

/// Whether `d_backbone` names no backbone ("none" or "").
fn backbone_off(name: &str) -> bool {
    matches!(name, "" | "none")
}

/// The section's keys, as `--set` and the families name them.
pub const KEYS: [&str; 8] = [
    "diffaugment",
    "aux_attributes",
    "mode_seeking",
    "mode_seeking_cap",
    "d_backbone",
    "d_backbone_size",
    "ma_gp",
    "g_steps",
];

impl Recipe {
    /// Checks ranges and that `family` reads every part that is switched on (`reads`: its
    /// `FamilyEntry::recipe`).
    pub fn check(&self, family: &str, reads: &[&str]) -> Result<()> {
        Augment::parse(&self.diffaugment)?;
        let backbone = self.backbone()?;
        ensure!(
            self.d_backbone_size == 0 || ((64..=512).contains(&self.d_backbone_size) && self.d_backbone_size & (self.d_backbone_size - 1) == 0),
            "config: d_backbone_size = {} is not 0 (the pictures' own) or a power of two from 64 to 512",
            self.d_backbone_size
        );
        ensure!(
            self.d_backbone_size == 0 || backbone.is_some(),
            "config: [recipe] d_backbone_size sizes the pictures for the backbone, which is off (d_backbone = \"none\")"
        );
        range("aux_attributes", self.aux_attributes, 0.0, 1e3)?;
        range("mode_seeking", self.mode_seeking, 0.0, 1e3)?;
        range("mode_seeking_cap", self.mode_seeking_cap, 0.0, 1e3)?;
        range("ma_gp", self.ma_gp, 0.0, 1e3)?;
        range("g_steps", self.g_steps, 1, 16)?;
        ensure!(
            self.mode_seeking_cap == 0.0 || self.mode_seeking > 0.0,
            "config: [recipe] mode_seeking_cap bounds the mode-seeking term, which is off (mode_seeking = 0)"
        );
        for key in self.switched_on() {
            ensure!(
                reads.contains(&key),
                "config: [recipe] {key} is set, but the {family} family does not use it yet (it reads {})",
                if reads.is_empty() { "no [recipe] key".to_string() } else { reads.join(", ") }
            );
        }
        Ok(())
    }

    /// The keys whose part is on.
    pub fn switched_on(&self) -> Vec<&'static str> {
        let on = [
            !self.diffaugment.trim().is_empty(),
            self.aux_attributes > 0.0,
            self.mode_seeking > 0.0,
            self.mode_seeking_cap > 0.0,
            !backbone_off(&self.d_backbone),
            self.d_backbone_size > 0,
            self.ma_gp > 0.0,
            self.g_steps > 1,
        ];
        KEYS.iter().zip(on).filter(|(_, on)| *on).map(|(k, _)| *k).collect()
    }

    /// The discriminator's backbone network (none: the family's own discriminator).
    pub fn backbone(&self) -> Result<Option<crate::backbone::Variant>> {
        if backbone_off(&self.d_backbone) {
            return Ok(None);
        }
        crate::backbone::Variant::parse(&self.d_backbone).map(Some)
    }

    /// The projected discriminator a run of `seed` builds, if `d_backbone` is on.
    pub fn projected(&self, seed: u64) -> Result<Option<projected::Backbone>> {
        Ok(self.backbone()?.map(|variant| projected::Backbone {
            variant,
            size: self.d_backbone_size,
            seed,
        }))
    }

    /// DiffAugment's transforms (none when off).
    pub fn augment(&self) -> Augment {
        Augment::parse(&self.diffaugment).expect("checked when the config was resolved")
    }

    /// What the discriminator's attribute head predicts (none when `aux_attributes` is off), from
    /// the dataset's label names and its training items' labels [N, L]; an error if the data
    /// has no labels (`data` names it).
    pub fn attribute_labels(
        &self,
        names: &[String],
        labels: &Tensor,
        data: &std::path::Path,
    ) -> Result<Option<Labels>> {
        if self.aux_attributes <= 0.0 {
            return Ok(None);
        }
        ensure!(
            !names.is_empty() && labels.numel() > 0,
            "[recipe] aux_attributes needs labelled data; {} has no labels",
            data.display()
        );
        Ok(Some(Labels::of(names, labels)))
    }

    /// The rows a generator update draws from a batch of `b` items: with mode seeking the
    /// first ⌈b/2⌉ twice (`paired_rows`), else none (every item as it is; `select_rows`).
    pub fn generator_rows(&self, b: i64, device: Device) -> Option<Tensor> {
        (self.mode_seeking > 0.0).then(|| Tensor::from_slice(&paired_rows(b)).to_device(device))
    }

    /// The rows of a generator update's batch (`items`, each [B, …]): `generator_rows` of each.
    pub fn generator_batch(&self, items: &[&Tensor]) -> Vec<Tensor> {
        let rows = self.generator_rows(items[0].size()[0], items[0].device());
        items.iter().map(|t| select_rows(t, rows.as_ref())).collect()
    }

    /// Adds the generator's recipe terms to its loss `total`: the attribute head's loss on its
    /// drawings (`attributes`, unweighted, if the discriminator has a head) and the mode-seeking
    /// term of `fake` [B, …] drawn from `z` [B, noise] by `generator_batch`'s rows; each
    /// unweighted value is reported under `keys.0` and `keys.1`.
    pub fn add_generator_terms(
        &self,
        total: &mut Tensor,
        attributes: Option<&Tensor>,
        fake: &Tensor,
        z: &Tensor,
        report: &mut crate::report::Report,
        keys: (&str, &str),
    ) {
        if let Some(a) = attributes {
            report.set(keys.0, a);
            *total += a * self.aux_attributes;
        }
        if self.mode_seeking > 0.0 {
            let ms = mode_seeking_pairs(fake, z, self.mode_seeking_cap);
            report.set(keys.1, &ms);
            *total += ms * self.mode_seeking;
        }
    }
}

/// The exponent p of DF-GAN's matching-aware gradient penalty (§3.3; 6 in the paper and its
/// code).
pub const MA_GP_POWER: i32 = 6;

/// DF-GAN's matching-aware gradient penalty (§3.3, eq. 2, without its weight):
/// mean over the batch of ‖(∇ₓ judge(x, e), ∇ₑ judge(x, e))‖^`MA_GP_POWER`, the gradient of each
/// item's logit taken at the real images `images` [B, …] and their own captions' embeddings
/// `text` [B, D] together. Built with the graph kept, so that its own gradient reaches the
/// judge's weights (a second derivative).
pub fn matching_aware_penalty(
    images: &Tensor,
    text: &Tensor,
    judge: impl Fn(&Tensor, &Tensor) -> Tensor,
) -> Tensor {
    let x = images.detach().set_requires_grad(true);
    let e = text.detach().set_requires_grad(true);
    let out = judge(&x, &e).sum(Kind::Float);
    let grads = Tensor::run_backward(&[out], &[&x, &e], true, true);
    let square_sum = |g: &Tensor| g.square().flatten(1, -1).sum_dim_intlist(1, false, g.kind());
    let squares = square_sum(&grads[0]) + square_sum(&grads[1]);
    // ‖g‖^p as (‖g‖²)^(p/2): no square root, whose gradient at a zero norm is not finite.
    squares.pow_tensor_scalar((MA_GP_POWER / 2) as i64).mean(squares.kind())
}

/// One of DiffAugment's transforms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// Brightness (+U(−½, ½)), saturation (×U(0, 2) about the pixel's channel mean) and
    /// contrast (×U(½, 3⁄2) about the picture's mean).
    Color,
    /// A shift of up to ⅛ of the side in each direction (whole pixels), zeros shifted in.
    Translation,
    /// A square of half the side set to zero, its centre anywhere in the picture.
    Cutout,
}

/// A DiffAugment policy: the transforms, applied in the order given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    pub transforms: Vec<Transform>,
}

impl Augment {
    /// "color,translation,cutout" (any subset, any order; "" for none).
    pub fn parse(policy: &str) -> Result<Augment> {
        let mut transforms = Vec::new();
        for name in policy.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let t = match name {
                "color" | "colour" => Transform::Color,
                "translation" => Transform::Translation,
                "cutout" => Transform::Cutout,
                other => bail!("config: diffaugment has an unknown transform {other:?} (allowed: color, translation, cutout, comma-separated)"),
            };
            ensure!(!transforms.contains(&t), "config: diffaugment names {name:?} twice");
            transforms.push(t);
        }
        Ok(Augment { transforms })
    }

    pub fn is_off(&self) -> bool {
        self.transforms.is_empty()
    }

    /// `pictures` (each [B, C, S, S] or clips [B, C, T, S, S], the same B and S) under one draw
    /// (as they are when the policy is empty): a phase's real items and its fakes alike.
    pub fn same_draw(&self, pictures: &[&Tensor]) -> Vec<Tensor> {
        if self.is_off() {
            return pictures.iter().map(|x| x.shallow_clone()).collect();
        }
        let shape = pictures[0].size();
        let draw = self.draw(shape[0], shape[shape.len() - 1], pictures[0].device());
        pictures.iter().map(|x| draw.apply(x)).collect()
    }

    /// The random parameters for `b` pictures of `size`² (libtorch's generator): one draw that
    /// `Draw::apply` gives to a batch's real items and to its fakes alike.
    pub fn draw(&self, b: i64, size: i64, device: Device) -> AugmentDraw {
        let uniform = |lo: f64, hi: f64| Tensor::rand([b], (Kind::Float, device)) * (hi - lo) + lo;
        let mut steps = Vec::new();
        for t in &self.transforms {
            steps.push(match t {
                Transform::Color => Step::Color {
                    brightness: uniform(-0.5, 0.5),
                    saturation: uniform(0.0, 2.0),
                    contrast: uniform(0.5, 1.5),
                },
                Transform::Translation => {
                    let s = (size as f64 * 0.125 + 0.5) as i64;
                    Step::Shift(Tensor::randint_low(-s, s + 1, [b, 2], (Kind::Int64, device)))
                }
                Transform::Cutout => {
                    let side = (size as f64 * 0.5 + 0.5) as i64;
                    // The square's top-left corner: its centre falls anywhere in the picture.
                    let corner =
                        Tensor::randint_low(0, size, [b, 2], (Kind::Int64, device)) - side / 2;
                    Step::Cutout { corner, side }
                }
            });
        }
        AugmentDraw { steps, size }
    }
}

enum Step {
    Color {
        brightness: Tensor,
        saturation: Tensor,
        contrast: Tensor,
    },
    /// Per picture (dy, dx): output pixel (y, x) reads input (y − dy, x − dx).
    Shift(Tensor),
    /// Per picture the square's top-left (y, x).
    Cutout {
        corner: Tensor,
        side: i64,
    },
}

/// One draw of a policy's parameters, for a batch.
pub struct AugmentDraw {
    steps: Vec<Step>,
    size: i64,
}

impl AugmentDraw {
    /// Pictures [B, C, S, S] or clips [B, C, T, S, S] (every frame of a clip alike), in the
    /// network's range; differentiable in `x`.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let shape = x.size();
        let (b, s) = (shape[0], self.size);
        assert_eq!(shape[shape.len() - 1], s, "a DiffAugment draw for {s}² pictures");
        // Per-picture factors broadcast over every other axis.
        let broadcast: Vec<i64> =
            std::iter::once(b).chain(std::iter::repeat_n(1, shape.len() - 1)).collect();
        let per = |t: &Tensor| t.view(broadcast.as_slice()).to_kind(x.kind());
        let picture: Vec<i64> = (1..shape.len() as i64).collect();
        let mut x = x.shallow_clone();
        for step in &self.steps {
            x = match step {
                Step::Color { brightness, saturation, contrast } => {
                    let x = &x + per(brightness);
                    let mean = x.mean_dim(1, true, x.kind());
                    let x = (&x - &mean) * per(saturation) + mean;
                    let mean = x.mean_dim(picture.as_slice(), true, x.kind());
                    (&x - &mean) * per(contrast) + mean
                }
                Step::Shift(shift) => shifted(&x, shift),
                Step::Cutout { corner, side } => {
                    let inside = |axis: i64| {
                        let at = Tensor::arange(s, (Kind::Int64, x.device())).unsqueeze(0); // [1, S]
                        let lo = corner.select(1, axis).unsqueeze(1); // [B, 1]
                        at.ge_tensor(&lo).logical_and(&at.lt_tensor(&(&lo + *side)))
                    };
                    let hole = inside(0).unsqueeze(2).logical_and(&inside(1).unsqueeze(1)); // [B, S, S]
                    let keep = hole.logical_not().to_kind(x.kind());
                    let mut view = vec![b];
                    view.extend(std::iter::repeat_n(1, shape.len() - 3));
                    view.extend([s, s]);
                    &x * keep.view(view.as_slice())
                }
            };
        }
        x
    }
}

/// `x` [B, …, S, S] with picture i shifted by `shift[i]` = (dy, dx) whole pixels, zeros shifted
/// in: nearest-neighbour sampling at exact pixel centres, so no value is blended.
fn shifted(x: &Tensor, shift: &Tensor) -> Tensor {
    let shape = x.size();
    let (b, s) = (shape[0], shape[shape.len() - 1]);
    // Content moves by (dy, dx) pixels: sample at minus that, as (x, y) in normalised units.
    let offsets = shift.flip([1]).to_kind(Kind::Float) * (-2.0 / s as f64);
    // interpolation 1: nearest.
    crate::nn::translated(&x.reshape([b, -1, s, s]), &offsets, 1).reshape(shape.as_slice())
}

/// MSGAN's mode-seeking term (Mao et al. 2019, eq. 3): 1 / (mean|a − b| / mean|z_a − z_b| + ε)
/// for drawings `a`, `b` of the same conditions from noises `z_a`, `z_b`.
/// With `cap` > 0 the ratio counts up to `cap` only (DSGAN's bound; 0: no bound).
pub fn mode_seeking(a: &Tensor, b: &Tensor, z_a: &Tensor, z_b: &Tensor, cap: f64) -> Tensor {
    let ratio = (a - b).abs().mean(Kind::Float) / (z_a - z_b).abs().mean(Kind::Float);
    let ratio = if cap > 0.0 { ratio.clamp_max(cap) } else { ratio };
    (ratio + 1e-5).reciprocal()
}

/// The auxiliary attribute head (AC-GAN): a linear layer from the discriminator's features to
/// one logit per label. Where the labels come in exclusive groups (`exclusive_groups`: a
/// digit's class, its motion) each group is a softmax over its labels, trained by
/// cross-entropy as AC-GAN's class head; otherwise (CLEVR's attributes of several objects) each
/// label is a yes/no, trained by the multi-label loss.
#[derive(Debug)]
pub struct AttributeHead {
    out: nn::Linear,
    groups: Option<Vec<(i64, i64)>>,
}

impl AttributeHead {
    pub fn new(p: nn::Path, features: i64, labels: Labels) -> AttributeHead {
        AttributeHead {
            out: crate::nn::linear(p, features, labels.count, true),
            groups: labels.groups,
        }
    }

    /// Features [N, …] (flattened) → logits [N, labels].
    pub fn forward(&self, features: &Tensor) -> Tensor {
        self.out.forward(&features.flatten(1, -1))
    }

    /// The head's loss on features whose items carry `labels` [N, labels] (0/1): the summed
    /// cross-entropy of every group, or the multi-label loss.
    pub fn loss(&self, features: &Tensor, labels: &Tensor) -> Tensor {
        let logits = self.forward(features).to_kind(Kind::Float);
        match &self.groups {
            Some(groups) => groups
                .iter()
                .map(|&(start, len)| {
                    logits
                        .narrow(1, start, len)
                        .log_softmax(1, Kind::Float)
                        .nll_loss(&labels.narrow(1, start, len).argmax(1, false))
                })
                .reduce(|a, b| a + b)
                .expect("at least one group"),
            None => crate::loss::multi_label(&logits, labels),
        }
    }
}

/// What an attribute head predicts: how many labels, and their exclusive groups if they have
/// them.
#[derive(Clone, Debug, PartialEq)]
pub struct Labels {
    pub count: i64,
    pub groups: Option<Vec<(i64, i64)>>,
}

impl Labels {
    /// From a dataset's label names (`group:value`) and its training items' labels [N, L].
    pub fn of(names: &[String], labels: &Tensor) -> Labels {
        Labels { count: names.len() as i64, groups: exclusive_groups(names, labels) }
    }
}

/// The runs of consecutive label names that share a group (the part before ':') as (first,
/// count), if every item has exactly one label of every group on; otherwise none.
pub fn exclusive_groups(names: &[String], labels: &Tensor) -> Option<Vec<(i64, i64)>> {
    let group = |n: &String| n.split_once(':').map(|(g, _)| g.to_string());
    let mut groups: Vec<(i64, i64)> = Vec::new();
    for (k, n) in names.iter().enumerate() {
        let g = group(n)?;
        match groups.last_mut() {
            Some((start, len)) if group(&names[*start as usize]).as_ref() == Some(&g) => *len += 1,
            _ => groups.push((k as i64, 1)),
        }
    }
    let exclusive = !groups.is_empty()
        && labels.size().len() == 2
        && labels.size()[1] == names.len() as i64
        && groups.iter().all(|&(start, len)| {
            len > 1
                && bool::try_from(
                    labels
                        .narrow(1, start, len)
                        .sum_dim_intlist(1, false, Kind::Float)
                        .eq(1.0)
                        .all(),
                )
                .unwrap_or(false)
        });
    exclusive.then_some(groups)
}

/// The condition rows of a generator update with mode seeking: the batch's first ⌈B/2⌉
/// conditions twice (rows into the batch, B of them), each time with its own noise; the
/// mode-seeking pairs are items i and i + ⌈B/2⌉. The update costs what one without it does.
pub fn paired_rows(b: i64) -> Vec<i64> {
    let half = (b + 1) / 2;
    (0..b).map(|i| i % half).collect()
}

/// `t`'s items at `rows` (a [B] index), or all of them as they are for none.
pub fn select_rows(t: &Tensor, rows: Option<&Tensor>) -> Tensor {
    match rows {
        Some(r) => t.index_select(0, r),
        None => t.shallow_clone(),
    }
}

/// The mode-seeking term over a batch drawn with `paired_rows`: `fake` [B, …], `z` [B, dim].
pub fn mode_seeking_pairs(fake: &Tensor, z: &Tensor, cap: f64) -> Tensor {
    let b = fake.size()[0];
    let half = (b + 1) / 2;
    let n = b - half;
    mode_seeking(
        &fake.narrow(0, 0, n),
        &fake.narrow(0, half, n),
        &z.narrow(0, 0, n),
        &z.narrow(0, half, n),
        cap,
    )
}

/// Frozen sentence embeddings centred on the training captions' mean and scaled so that their
/// variance, averaged over the dimensions, is 1 (one scale for every dimension: the geometry
/// between captions is kept, only its origin and unit change). Saved with a run
/// (`TextNorm::FILE`), so typed captions are read the way the training ones were.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextNorm {
    pub mean: Vec<f32>,
    pub scale: f32,
}

impl TextNorm {
    pub const FILE: &'static str = "text-norm.json";

    /// Fitted to the distinct training captions' embeddings [U, D] (one caption: scale 1).
    pub fn fit(distinct: &Tensor) -> TextNorm {
        let e = distinct.to_kind(Kind::Double).to_device(Device::Cpu);
        let mean = e.mean_dim(0, false, Kind::Double);
        let var = if e.size()[0] > 1 {
            (&e - &mean).square().mean(Kind::Double).double_value(&[])
        } else {
            0.0
        };
        let scale = if var > 1e-12 { 1.0 / var.sqrt() } else { 1.0 };
        TextNorm {
            mean: Vec::<f32>::try_from(mean.to_kind(Kind::Float)).expect("a float vector"),
            scale: scale as f32,
        }
    }

    /// A run's norm: a resumed run's own (read from its checkpoint `from`), else fitted to
    /// `distinct()`, the distinct training captions' embeddings.
    pub fn resumed_or_fit(
        from: Option<&std::path::Path>,
        distinct: impl FnOnce() -> Tensor,
    ) -> Result<TextNorm> {
        match from {
            Some(dir) => TextNorm::load(dir),
            None => Ok(TextNorm::fit(&distinct())),
        }
    }

    /// Embeddings [N, D] → (e − mean) · scale.
    pub fn apply(&self, e: &Tensor) -> Tensor {
        let mean = Tensor::from_slice(&self.mean).to_device(e.device()).to_kind(e.kind());
        (e - mean) * self.scale as f64
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a text norm serialises")
    }

    /// Reads a run's or checkpoint's `FILE` (an error names it).
    pub fn load(dir: &std::path::Path) -> Result<TextNorm> {
        let path = dir.join(Self::FILE);
        let bytes = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let n: TextNorm = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{} is damaged: {e}", path.display()))?;
        ensure!(
            n.scale.is_finite() && n.scale > 0.0 && n.mean.iter().all(|m| m.is_finite()),
            "{} is damaged: a non-finite or non-positive value",
            path.display()
        );
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
