//! The projected discriminator (`[recipe] d_backbone`): Projected GAN (Sauer, Chitta, Müller &
//! Geiger, "Projected GANs Converge Faster", NeurIPS 2021, §3) on a frozen EfficientNet-Lite
//! (`crate::backbone`).
//!
//! - The backbone's four feature maps (¼ … 1⁄32 of the picture's side).
//! - Cross-channel mixing (CCM, §3.2): a fixed random 1×1 convolution per map, to c, 2c, 4c,
//!   8c channels (c = the family's `ndf`).
//! - Cross-scale mixing (CSM, §3.2): from the deepest map up, U-Net-like, each map added to the
//!   one below it, upsampled ×2 (bilinear) and mixed by a fixed random 1×1 convolution that
//!   halves its channels (the reference code's `FeatureFusionBlock`), so the four mixed maps
//!   are twice the side of the backbone's, with c, c, 2c, 4c channels.
//! - A small learned discriminator per mixed map (§3.1, "multi-scale discriminators"): strided
//!   4×4 convolutions down to 4×4, then a 4×4 convolution to a 64-wide vector that is scored
//!   against the text by projection (Miyato & Koyama, "cGANs with Projection Discriminator",
//!   ICLR 2018; the reference code's `SingleDiscCond`): logit = ⟨vector, embed(text)⟩ / 8.
//!
//! The random projections are drawn from the run's seed by storyvis's own generator (so a
//! resumed run, or a drawing of the same config, has the same ones), with PyTorch's default
//! initialisation for convolutions (U(−1/√fan_in, 1/√fan_in) for weights and biases), and are
//! frozen like the backbone: neither is a variable of any store nor part of a checkpoint.
//!
//! Departures from the reference code, for the CPU budget: the picture goes to the backbone at
//! its own size unless `d_backbone_size` says otherwise (the reference resizes every picture to
//! 224×224), the small discriminators end
//! at 4×4 (one logit each, not 5×5) with `ndf`-scaled widths, and their convolutions are not
//! spectrally normalised.

use super::{AttributeHead, Labels};
use crate::backbone::{EfficientNetLite, Variant};
use crate::nn::{leaky, DownStack};
use anyhow::Result;
use storyvis_data::rng::Rng;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// The width of the vector each small discriminator scores against the text (the reference's
/// `cmap_dim`).
const CMAP: i64 = 64;

/// What a run's projected discriminator is built from: the backbone, the side pictures are
/// resized to before it (0: their own) and the seed its random projections are drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backbone {
    pub variant: Variant,
    pub size: i64,
    pub seed: u64,
}

/// A fixed random 1×1 convolution.
#[derive(Debug)]
struct Fixed {
    weight: Tensor,
    bias: Tensor,
}

impl Fixed {
    /// PyTorch's default for a convolution of `i` → `o` channels (kernel 1): U(−1/√i, 1/√i).
    fn draw(rng: &mut Rng, i: i64, o: i64, device: Device) -> Fixed {
        let k = 1.0 / (i as f64).sqrt();
        let mut values = |n: i64| -> Tensor {
            let v: Vec<f32> = (0..n).map(|_| rng.range(-k, k) as f32).collect();
            Tensor::from_slice(&v).to_device(device)
        };
        let weight = values(o * i).view([o, i, 1, 1]);
        Fixed { weight, bias: values(o) }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(&self.weight, Some(&self.bias), [1, 1], [0, 0], [1, 1], 1)
    }
}

/// One small discriminator on a mixed map.
#[derive(Debug)]
struct Small {
    /// Strided convolutions down to 4×4 (none for a 4×4 map).
    down: Option<DownStack>,
    /// 4×4 → the CMAP-wide vector.
    out: nn::Conv2D,
    /// The text's embedding → CMAP (then leaky ReLU).
    embed: nn::Linear,
}

/// The projected discriminator: frozen backbone and projections, learned small discriminators
/// and (with the recipe's `aux_attributes`) an attribute head on their 4×4 features.
#[derive(Debug)]
pub struct Projected {
    backbone: EfficientNetLite,
    /// The side pictures are resized to before the backbone.
    size: i64,
    ccm: Vec<Fixed>,
    /// Deepest first, as they are applied.
    csm: Vec<Fixed>,
    small: Vec<Small>,
    /// Channels of each small discriminator's 4×4 features (in `features`, concatenated).
    widths: Vec<i64>,
    attributes: Option<AttributeHead>,
}

impl Projected {
    /// For `picture`×`picture` pictures, texts embedded in `text_dim`, base width `ndf`;
    /// `labels`: what the attribute head predicts. The side the backbone sees (`b.size`, else
    /// the picture's) must be a power of two ≥ 64.
    pub fn new(
        p: nn::Path,
        b: Backbone,
        picture: i64,
        ndf: i64,
        text_dim: i64,
        labels: Option<Labels>,
    ) -> Result<Projected> {
        let size = if b.size > 0 { b.size } else { picture };
        anyhow::ensure!(
            size >= 64 && size & (size - 1) == 0,
            "d_backbone needs pictures of a power-of-two side ≥ 64; these are {picture}×{picture} (set d_backbone_size to resize them)"
        );
        let device = p.device();
        let backbone = EfficientNetLite::load(b.variant, device)?;
        // A stream of its own, so the projections do not depend on what else the seed draws.
        let mut rng = Rng::new(b.seed ^ 0x5052_4f4a_4543_5444);
        let mixed = [ndf, 2 * ndf, 4 * ndf, 8 * ndf];
        let ccm: Vec<Fixed> = EfficientNetLite::CHANNELS
            .iter()
            .zip(mixed)
            .map(|(&i, o)| Fixed::draw(&mut rng, i, o, device))
            .collect();
        // CSM, deepest first: 8c → 4c, 4c → 2c, 2c → c, and c → c at the top (not halved).
        let csm: Vec<Fixed> = [(8 * ndf, 4 * ndf), (4 * ndf, 2 * ndf), (2 * ndf, ndf), (ndf, ndf)]
            .iter()
            .map(|&(i, o)| Fixed::draw(&mut rng, i, o, device))
            .collect();
        let channels = [ndf, ndf, 2 * ndf, 4 * ndf];
        let mut small = Vec::new();
        let mut widths = Vec::new();
        for (k, (&reduction, &c)) in EfficientNetLite::REDUCTIONS.iter().zip(&channels).enumerate()
        {
            let q = &p / format!("scale{k}");
            // The mixed map's side: twice the backbone map's.
            let side = (2 * size / reduction).max(1);
            let halvings = (side / 4).max(1).trailing_zeros() as usize;
            // The reference's widths per side (4, 8: 512; 16: 256; 32: 128; 64: 64 at ndf 64).
            let width = |s: i64| ndf * (64 / s).clamp(1, 8);
            let down = (halvings > 0).then(|| {
                DownStack::with_widths(
                    &q / "down",
                    c,
                    &(1..=halvings).map(|h| width(side >> h)).collect::<Vec<_>>(),
                )
            });
            let w = down.as_ref().map_or(c, |d| d.out_channels);
            small.push(Small {
                out: crate::nn::conv(&q / "out", w, CMAP, 4, 1, 0),
                embed: crate::nn::linear(&q / "embed", text_dim, CMAP, true),
                down,
            });
            widths.push(w);
        }
        let features = widths.iter().sum::<i64>() * 16;
        let attributes = labels.map(|l| AttributeHead::new(&p / "attributes", features, l));
        Ok(Projected { backbone, size, ccm, csm, small, widths, attributes })
    }

    pub fn variant(&self) -> Variant {
        self.backbone.variant
    }

    /// The four mixed maps of pictures `x` [B, C, S, S] in [−1, 1] (frozen, differentiable in
    /// `x`).
    pub fn mixed(&self, x: &Tensor) -> Vec<Tensor> {
        let side = x.size()[x.dim() - 1];
        // Resized as the reference does (bilinear, corners not aligned).
        let x = if side == self.size {
            x.shallow_clone()
        } else {
            x.upsample_bilinear2d([self.size, self.size], false, None, None)
        };
        let maps: Vec<Tensor> =
            self.backbone.features(&x).iter().zip(&self.ccm).map(|(f, p)| p.forward(f)).collect();
        let up = |t: &Tensor| {
            let s = t.size();
            t.upsample_bilinear2d([s[2] * 2, s[3] * 2], true, None, None)
        };
        let mut out: Vec<Tensor> = Vec::with_capacity(4);
        for (k, p) in (0..4).rev().zip(&self.csm) {
            let h = match out.last() {
                Some(below) => below + &maps[k],
                None => maps[k].shallow_clone(),
            };
            out.push(p.forward(&up(&h)));
        }
        out.reverse();
        out
    }

    /// The small discriminators' 4×4 features of pictures `x`, concatenated over the channels
    /// [B, Σ widths, 4, 4] (real pictures' are shared by their right and wrong texts).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        let maps = self.mixed(x);
        let f: Vec<Tensor> = maps
            .iter()
            .zip(&self.small)
            .map(|(m, s)| match &s.down {
                Some(d) => d.forward_t(m, train),
                None => m.shallow_clone(),
            })
            .collect();
        Tensor::cat(&f, 1)
    }

    /// Logits [B, 4] (one per scale) of (features, text embedding) pairs, by projection.
    pub fn judge(&self, features: &Tensor, text: &Tensor) -> Tensor {
        let parts = features.split_with_sizes(&self.widths, 1);
        let logits: Vec<Tensor> = parts
            .iter()
            .zip(&self.small)
            .map(|(f, s)| {
                let v = s.out.forward(f).flatten(1, -1); // [B, CMAP]
                let t = leaky(&s.embed.forward(text));
                (v * t).sum_dim_intlist(1, true, Kind::Float) / (CMAP as f64).sqrt()
            })
            .collect();
        Tensor::cat(&logits, 1)
    }

    /// The attribute head's loss on features of items carrying `labels` (none without a head).
    pub fn attribute_loss(&self, features: &Tensor, labels: &Tensor) -> Option<Tensor> {
        self.attributes.as_ref().map(|h| h.loss(features, labels))
    }

    /// Every frozen tensor: the backbone's and the projections'.
    pub fn frozen(&self) -> Vec<&Tensor> {
        let mut t = self.backbone.tensors();
        for f in self.ccm.iter().chain(&self.csm) {
            t.extend([&f.weight, &f.bias]);
        }
        t
    }
}
