//! GAN-INT-CLS: Generative Adversarial Text to Image Synthesis (Reed et al., ICML 2016), as the
//! paper (§3–4) and its configuration (reedscot/icml2016) describe: a DCGAN generator and
//! discriminator conditioned on a text embedding projected to 128 by a linear layer and leaky
//! ReLU, the matching-aware discriminator (GAN-CLS, §4.2), interpolated text embeddings in the
//! generator's objective (GAN-INT, §4.3), and a style encoder that inverts the generator
//! (§4.4). The four variants of the paper's experiments are the switches `cls` and `int`.

pub mod draw;
pub mod family;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use storyvis_core::config::{check_adam, range};
use storyvis_core::nn::{bn1d, bn2d, conv, doublings, leaky, linear, DownStack, SkipExcitation};
use storyvis_core::recipe::{AttributeHead, Labels};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

pub use family::FAMILY;

/// GAN-INT-CLS's [model] section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The text encoder (a directory made by `storyvis train-text-encoder`); copied into every
    /// checkpoint, so a checkpoint draws without it.
    pub text_encoder: String,
    /// Centre the text encoder's embeddings on the training captions' mean and scale them to
    /// unit variance (`recipe::TextNorm`; for a frozen encoder's unit-length embeddings, such as
    /// `train-text-encoder --encoder minilm`'s; not in the paper).
    #[serde(default)]
    pub text_norm: bool,
    /// GAN-CLS: the discriminator also learns that a real image with a mismatched text is fake
    /// (§4.2).
    pub cls: bool,
    /// GAN-INT: the generator is also trained on interpolations β t1 + (1 − β) t2 of two
    /// captions' embeddings (§4.3).
    pub int: bool,
    /// β of GAN-INT (0.5 in the paper).
    pub int_beta: f64,
    /// FastGAN's skip-layer excitation in the generator (Liu et al., ICLR 2021, §3.1): every
    /// map from 4×4 up gates the channels of the map two doublings above it (at 64×64: 4×4 →
    /// 16×16 and 8×8 → 32×32). Not in the paper; a lever of the fast recipe.
    #[serde(default)]
    pub sle: bool,
    /// Train the style encoder S on ‖z − S(G(z, φ(t)))‖² beside the GAN (§4.4).
    pub style: bool,
    pub image_size: i64,
    pub noise_dim: i64,
    /// Width of the projected text embedding (128).
    pub text_dim: i64,
    /// Generator channels at 32×32 at 64×64 (8·ngf at 4×4, halved by each up-step).
    pub ngf: i64,
    /// Discriminator channels after its first convolution (doubled by each down-step: 8·ndf
    /// at 4×4 for 64×64 images, 16·ndf for 128, 32·ndf for 256).
    pub ndf: i64,
    pub batch: i64,
    pub lr_g: f64,
    pub lr_d: f64,
    pub lr_style: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// The learning rates halve every this many epochs.
    pub lr_halve_epochs: usize,
}

impl Config {
    pub fn of(cfg: &storyvis_core::config::Config) -> Result<Config> {
        let c: Config = cfg.model()?;
        ensure!(
            [64, 128, 256].contains(&c.image_size),
            "config: image_size = {} is not supported (64, 128 or 256)",
            c.image_size
        );
        range("int_beta", c.int_beta, 0.0, 1.0)?;
        range("noise_dim", c.noise_dim, 1, 4096)?;
        range("text_dim", c.text_dim, 1, 4096)?;
        range("ngf", c.ngf, 8, 1024)?;
        range("ndf", c.ndf, 8, 1024)?;
        range("batch", c.batch, 2, 4096)?;
        check_adam(
            &[("lr_g", c.lr_g), ("lr_d", c.lr_d), ("lr_style", c.lr_style)],
            c.beta1,
            c.beta2,
        )?;
        range("lr_halve_epochs", c.lr_halve_epochs, 1, 1_000_000)?;
        ensure!(!c.text_encoder.trim().is_empty(), "config: text_encoder is empty (give the directory `storyvis train-text-encoder` wrote)");
        Ok(c)
    }
}

/// The text projection of G and D: linear → leaky ReLU 0.2 (§3.1).
fn project(p: nn::Path, embed_dim: i64, text_dim: i64) -> nn::Linear {
    linear(p, embed_dim, text_dim, true)
}

/// G: [z ; proj(φ(t))] → linear → 4×4×8ngf → 4×4 transposed convolutions (stride 2) halving the
/// channels → `image_size`², batch-norm and ReLU between, tanh at the end (DCGAN); with `sle`,
/// skip-layer excitations between the maps.
#[derive(Debug)]
pub struct Generator {
    proj: nn::Linear,
    fc: nn::Linear,
    fc_bn: storyvis_core::nn::BatchNorm,
    ups: Vec<nn::ConvTranspose2D>,
    bns: Vec<storyvis_core::nn::BatchNorm>,
    /// With `sle`: the excitation whose gates map i sends to map i + 2 (map 0 is the 4×4 one),
    /// for every map i + 2 below the picture.
    sle: Vec<SkipExcitation>,
    base: i64,
}

impl Generator {
    pub fn new(p: nn::Path, c: &Config, embed_dim: i64) -> Generator {
        let k = doublings(c.image_size);
        let base = 8 * c.ngf;
        // 64×64: 8ngf (4×4), 4ngf, 2ngf, ngf (32×32), then 3; larger sizes keep halving to ngf/2, ngf/4.
        let widths: Vec<i64> = (0..k).map(|i| (base >> i).max(8)).chain([3]).collect();
        let cfg = nn::ConvTransposeConfig {
            stride: 2,
            padding: 1,
            bias: false,
            ws_init: storyvis_core::nn::INIT,
            ..Default::default()
        };
        Generator {
            proj: project(&p / "proj", embed_dim, c.text_dim),
            fc: linear(&p / "fc", c.noise_dim + c.text_dim, base * 16, false),
            fc_bn: bn1d(&p / "fc_bn", base * 16),
            ups: (0..k)
                .map(|i| {
                    nn::conv_transpose2d(&p / format!("up{i}"), widths[i], widths[i + 1], 4, cfg)
                })
                .collect(),
            bns: (0..k - 1).map(|i| bn2d(&p / format!("bn{i}"), widths[i + 1])).collect(),
            sle: if c.sle {
                (0..k.saturating_sub(2))
                    .map(|i| SkipExcitation::new(&p / format!("sle{i}"), widths[i], widths[i + 2]))
                    .collect()
            } else {
                Vec::new()
            },
            base,
        }
    }

    /// z [B, noise_dim], text embeddings [B, embed_dim] → images [B, 3, S, S] in [−1, 1].
    pub fn forward_t(&self, z: &Tensor, text: &Tensor, train: bool) -> Tensor {
        let t = leaky(&self.proj.forward(text));
        let h = self.fc_bn.forward_t(&self.fc.forward(&Tensor::cat(&[z, &t], 1)), train).relu();
        let h = h.view([-1, self.base, 4, 4]);
        if self.sle.is_empty() {
            return storyvis_core::nn::dcgan_up(h, &self.ups, &self.bns, train, |up, x| {
                up.forward(x)
            });
        }
        let last = self.ups.len() - 1;
        let mut maps = vec![h];
        for (i, up) in self.ups[..last].iter().enumerate() {
            let x = self.bns[i].forward_t(&up.forward(&maps[i]), train).relu();
            // Map i + 1, gated by map i − 1 (FastGAN's SLE).
            let x = match i.checked_sub(1) {
                Some(low) => self.sle[low].forward(&maps[low], &x),
                None => x,
            };
            maps.push(x);
        }
        self.ups[last].forward(&maps[last]).tanh()
    }
}

/// D: strided convolutions to 4×4×8ndf; the projected text tiled over the 4×4 positions and
/// concatenated; a 1×1 convolution (batch-norm, leaky ReLU); a 4×4 convolution → one logit.
/// With the recipe's `aux_attributes`, an attribute head (AC-GAN) on the 4×4 image features.
#[derive(Debug)]
pub struct Discriminator {
    body: DownStack,
    proj: nn::Linear,
    joint: nn::Conv2D,
    joint_bn: storyvis_core::nn::BatchNorm,
    out: nn::Conv2D,
    attributes: Option<AttributeHead>,
}

impl Discriminator {
    /// `labels`: what the attribute head predicts (the dataset's labels), if it has one.
    pub fn new(p: nn::Path, c: &Config, embed_dim: i64, labels: Option<Labels>) -> Discriminator {
        let body = DownStack::new(&p / "body", c.image_size, c.ndf);
        let ch = body.out_channels;
        Discriminator {
            proj: project(&p / "proj", embed_dim, c.text_dim),
            joint: conv(&p / "joint", ch + c.text_dim, ch, 1, 1, 0),
            joint_bn: bn2d(&p / "joint_bn", ch),
            out: conv(&p / "out", ch, 1, 4, 1, 0),
            attributes: labels.map(|l| AttributeHead::new(&p / "attributes", ch * 16, l)),
            body,
        }
    }

    /// The attribute head's loss on image features of items carrying `labels` (none without
    /// a head).
    pub fn attribute_loss(&self, features: &Tensor, labels: &Tensor) -> Option<Tensor> {
        self.attributes.as_ref().map(|h| h.loss(features, labels))
    }

    /// The image features [B, 8ndf, 4, 4] (real images' are shared by their right and wrong
    /// pairs).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        self.body.forward_t(x, train)
    }

    /// Logits [B] of (features, text embedding) pairs.
    pub fn judge(&self, features: &Tensor, text: &Tensor, train: bool) -> Tensor {
        let t = leaky(&self.proj.forward(text));
        let tiled = t.view([-1, t.size()[1], 1, 1]).expand([-1, -1, 4, 4], false);
        let h = leaky(
            &self
                .joint_bn
                .forward_t(&self.joint.forward(&Tensor::cat(&[features, &tiled], 1)), train),
        );
        self.out.forward(&h).view([-1])
    }

    pub fn forward_t(&self, x: &Tensor, text: &Tensor, train: bool) -> Tensor {
        self.judge(&self.features(x, train), text, train)
    }

    pub fn set_channels_last(&mut self, on: bool) {
        self.body.channels_last = on;
    }
}

/// The discriminator a run trains: the paper's, or the projected one on a frozen pretrained
/// backbone (`[recipe] d_backbone`), with the same matching-aware use (a real image's features
/// judged with its own and a wrong caption).
#[derive(Debug)]
pub enum Judge {
    Own(Box<Discriminator>),
    Projected(Box<storyvis_core::recipe::projected::Projected>),
}

impl Judge {
    /// The image features (real images' are shared by their right and wrong pairs).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Judge::Own(d) => d.features(x, train),
            Judge::Projected(d) => d.features(x, train),
        }
    }

    /// Logits ([B], or [B, scales] for the projected discriminator) of (features, text) pairs.
    pub fn judge(&self, features: &Tensor, text: &Tensor, train: bool) -> Tensor {
        match self {
            Judge::Own(d) => d.judge(features, text, train),
            Judge::Projected(d) => d.judge(features, text),
        }
    }

    pub fn forward_t(&self, x: &Tensor, text: &Tensor, train: bool) -> Tensor {
        self.judge(&self.features(x, train), text, train)
    }

    pub fn attribute_loss(&self, features: &Tensor, labels: &Tensor) -> Option<Tensor> {
        match self {
            Judge::Own(d) => d.attribute_loss(features, labels),
            Judge::Projected(d) => d.attribute_loss(features, labels),
        }
    }

    pub fn set_channels_last(&mut self, on: bool) {
        if let Judge::Own(d) = self {
            d.set_channels_last(on);
        }
    }
}

/// S: the style encoder, an image → z regressor (the discriminator's body, then linear).
#[derive(Debug)]
pub struct StyleEncoder {
    body: DownStack,
    out: nn::Linear,
}

impl StyleEncoder {
    pub fn new(p: nn::Path, c: &Config) -> StyleEncoder {
        let body = DownStack::new(&p / "body", c.image_size, c.ndf);
        let out = linear(&p / "out", body.out_channels * 16, c.noise_dim, true);
        StyleEncoder { body, out }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.out.forward(&self.body.forward_t(x, train).flatten(1, -1))
    }
}

/// The GAN-INT interpolation β t1 + (1 − β) t2 (§4.3).
pub fn interpolate(t1: &Tensor, t2: &Tensor, beta: f64) -> Tensor {
    t1 * beta + t2 * (1.0 - beta)
}

/// The style loss ‖z − S(x)‖², averaged over the batch.
pub fn style_loss(z: &Tensor, predicted: &Tensor) -> Tensor {
    (z - predicted).square().sum_dim_intlist(1, false, tch::Kind::Float).mean(tch::Kind::Float)
}

#[cfg(test)]
mod tests;
