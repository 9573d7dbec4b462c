//! StackGAN: Text to Photo-realistic Image Synthesis with Stacked Generative Adversarial Networks
//! (Zhang et al., ICCV 2017), as the paper (§3) and hanzhanggit/StackGAN-Pytorch build it:
//! - conditioning augmentation (§3.1): the text embedding φ_t → (μ, log σ²) by a linear layer,
//!   ĉ = μ + σ ⊙ ε, and the regulariser KL(N(μ, σ²) ‖ N(0, I)) in the generator's loss
//!   (weight 2.0, the reference code's COEFF.KL);
//! - Stage I (§3.2): [ĉ ; z] → linear → 4×4×8ngf → four up-blocks (nearest ×2, 3×3 conv, batch
//!   norm, ReLU) → 3×3 conv → tanh: a 64×64 sketch; its discriminator encodes the image to
//!   4×4×8ndf, joins μ tiled over the 4×4 positions, and judges (image, text) pairs,
//!   matching-aware (real, mismatched-text and fake pairs, as GAN-CLS);
//! - Stage II (§3.3): encodes the Stage-I image to 16×16×4ngf, joins the tiled ĉ of its own
//!   conditioning augmentation, residual blocks, up-blocks to 64·2^k (256×256 in the paper,
//!   128×128 on small machines); no noise. Its discriminator judges the pair and, as the
//!   reference code's, the image alone (an unconditional logit). Stage II trains on a frozen
//!   Stage-I run.
//!
//! SDGAN (`models::sdgan`) runs on the same networks with its switches on: the generators'
//! batch norms are `storyvis_core::scbn::CondNorm`s, plain batch norms unless `scbn` is set.

pub mod draw;
pub mod family;

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use storyvis_core::config::{check_adam, range};
use storyvis_core::loss::Contrastive;
use storyvis_core::nn::{bn1d, bn2d, conv, leaky, linear, BatchNorm, CondAug, DownStack};
use storyvis_core::recipe::{AttributeHead, Labels};
use storyvis_core::scbn::{Cond, CondNorm, Scbn};
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

pub const FAMILY: storyvis_core::family::FamilyEntry = storyvis_core::family::FamilyEntry {
    name: "stackgan",
    about: "text to image: StackGAN Stage I / Stage II (Zhang et al., ICCV 2017)",
    presets: &[
        ("stackgan-clevr", include_str!("../../../../presets/stackgan-clevr.toml")),
        ("stackgan-clevr-stage2", include_str!("../../../../presets/stackgan-clevr-stage2.toml")),
        ("stackgan-small", include_str!("../../../../presets/stackgan-small.toml")),
        ("stackgan-small-stage2", include_str!("../../../../presets/stackgan-small-stage2.toml")),
        ("stackgan-tiny", include_str!("../../../../presets/stackgan-tiny.toml")),
        ("stackgan-fast", include_str!("../../../../presets/stackgan-fast.toml")),
        ("stackgan-fast-stage2", include_str!("../../../../presets/stackgan-fast-stage2.toml")),
    ],
    check: |cfg| Config::of(cfg).map(drop),
    build: family::build,
    training_only: |_| vec!["discriminator"],
    drawer: Some(draw::load_drawer),
    recipe: &RECIPE,
    evaluated: Some(draw::load_evaluated),
    synthetic: None,
};

/// The parts of the budget-first recipe (`[recipe]`) the stackgan and sdgan families read:
/// DiffAugment on every image the discriminator sees, an attribute head in the discriminator
/// (AC-GAN) and mode seeking (MSGAN) in the generator's loss. None is in the papers.
pub const RECIPE: [&str; 4] = ["diffaugment", "aux_attributes", "mode_seeking", "mode_seeking_cap"];

/// The [model] section of the stackgan and sdgan families.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The text encoder (a directory made by `storyvis train-text-encoder`), copied into every
    /// checkpoint. Stage II reads its Stage-I run's.
    pub text_encoder: String,
    /// 1: the 64×64 Stage-I GAN; 2: Stage II on a frozen Stage-I run.
    pub stage: u8,
    /// Stage II: the Stage-I run directory or checkpoint it refines.
    #[serde(default)]
    pub stage1: String,
    /// Stage I draws 64×64; Stage II 64·2^k (128 or 256).
    pub image_size: i64,
    /// z's width (100).
    pub noise_dim: i64,
    /// ĉ's width, the conditioning augmentation's output (128).
    pub condition_dim: i64,
    /// Generator width (the reference's GF_DIM, 128): Stage I has 8·ngf channels at 4×4,
    /// Stage II 4·ngf at 16×16.
    pub ngf: i64,
    /// Discriminator width (DF_DIM, 64): ndf after its first convolution, 8·ndf at 4×4.
    pub ndf: i64,
    /// Stage II's residual blocks (R_NUM).
    pub residual_blocks: i64,
    /// Weight of the conditioning augmentation's KL term (2.0).
    pub kl_weight: f64,
    pub batch: i64,
    pub lr_g: f64,
    pub lr_d: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// The learning rates halve every this many epochs (100 in the paper).
    pub lr_halve_epochs: usize,
    /// SDGAN: the siamese discriminator and its contrastive loss.
    #[serde(default)]
    pub siamese: bool,
    #[serde(default = "defaults::contrastive")]
    pub contrastive: Contrastive,
    /// The contrastive term's weight in both players' losses.
    #[serde(default = "defaults::one")]
    pub contrastive_weight: f64,
    /// ε, the margin different-image pairs are pushed beyond (1.0).
    #[serde(default = "defaults::one")]
    pub margin: f64,
    /// α of the modified contrastive loss (0.1).
    #[serde(default = "defaults::alpha")]
    pub alpha: f64,
    /// SDGAN: semantic-conditioned batch norm in the generators.
    #[serde(default = "defaults::scbn")]
    pub scbn: Scbn,
    /// Not in either paper (0 there): the share of the discriminator's mismatched-text pairs
    /// whose text is the right caption with one word of the text encoder's swap groups changed
    /// (`train-text-encoder --swap`), so that a caption naming the wrong shape is judged wrong
    /// even when its colours match. The rest are another image's caption, as GAN-CLS.
    #[serde(default)]
    pub wrong_swap: f64,
    /// Not in either paper: the sentence embeddings centred on the training captions' mean and
    /// scaled to unit variance (`recipe::TextNorm`), for a frozen encoder's unit-length
    /// embeddings (MiniLM), whose few-hundredths-sized components the conditioning
    /// augmentation's KL term otherwise flattens to noise. Stage II reads its Stage-I run's norm.
    #[serde(default)]
    pub text_norm: bool,
}

mod defaults {
    pub fn contrastive() -> super::Contrastive {
        super::Contrastive::Modified
    }
    pub fn one() -> f64 {
        1.0
    }
    pub fn alpha() -> f64 {
        0.1
    }
    pub fn scbn() -> super::Scbn {
        super::Scbn::None
    }
}

/// Whether `s` is 64·2^k, k ≥ 0, at most 1024.
pub fn valid_size(s: i64) -> bool {
    (64..=1024).contains(&s) && (s / 64).count_ones() == 1 && s % 64 == 0
}

impl Config {
    pub fn of(cfg: &storyvis_core::config::Config) -> Result<Config> {
        let c: Config = cfg.model()?;
        match c.stage {
            1 => {
                ensure!(c.image_size == 64, "config: stage 1 draws 64×64 images (image_size = {}; Stage II draws larger ones)", c.image_size);
                ensure!(c.stage1.is_empty(), "config: stage1 = {:?} is for stage = 2 (the Stage-I run that Stage II refines)", c.stage1);
            }
            2 => {
                ensure!(
                    valid_size(c.image_size) && c.image_size > 64,
                    "config: image_size = {} is not 64·2^k above 64 (Stage II draws 128, 256, …)",
                    c.image_size
                );
            }
            s => bail!("config: stage = {s} (1 or 2)"),
        }
        if cfg.family == "stackgan" {
            ensure!(
                !c.siamese && c.scbn == Scbn::None,
                "config: siamese and scbn are SDGAN's: use family = \"sdgan\" (preset sdgan-clevr)"
            );
        }
        range("noise_dim", c.noise_dim, 1, 4096)?;
        range("condition_dim", c.condition_dim, 1, 4096)?;
        range("ngf", c.ngf, 4, 1024)?;
        range("ndf", c.ndf, 4, 1024)?;
        range("residual_blocks", c.residual_blocks, 0, 64)?;
        range("kl_weight", c.kl_weight, 0.0, 1000.0)?;
        range("batch", c.batch, 2, 4096)?;
        check_adam(&[("lr_g", c.lr_g), ("lr_d", c.lr_d)], c.beta1, c.beta2)?;
        range("lr_halve_epochs", c.lr_halve_epochs, 1, 1_000_000)?;
        range("contrastive_weight", c.contrastive_weight, 0.0, 1000.0)?;
        range("margin", c.margin, 0.0, 100.0)?;
        range("alpha", c.alpha, 0.0, 100.0)?;
        range("wrong_swap", c.wrong_swap, 0.0, 1.0)?;
        ensure!(!c.text_encoder.trim().is_empty(), "config: text_encoder is empty (give the directory `storyvis train-text-encoder` wrote)");
        Ok(c)
    }
}

/// Nearest ×2, 3×3 convolution, (conditioned) batch norm, ReLU: StackGAN's upBlock.
#[derive(Debug)]
struct Up {
    conv: nn::Conv2D,
    norm: CondNorm,
}

impl Up {
    fn new(p: nn::Path, i: i64, o: i64, n: &Norms) -> Up {
        Up { conv: conv(&p / "conv", i, o, 3, 1, 1), norm: n.make(&p / "norm", o) }
    }

    fn forward_t(&self, x: &Tensor, cond: &Cond, train: bool) -> Tensor {
        let (h, w) = (x.size()[2], x.size()[3]);
        self.norm
            .forward_t(
                &self.conv.forward(&x.upsample_nearest2d([2 * h, 2 * w], None, None)),
                cond,
                train,
            )
            .relu()
    }
}

/// How a generator's batch norms are made.
pub struct Norms {
    pub mode: Scbn,
    pub cond_dim: i64,
    pub word_dim: i64,
}

impl Norms {
    fn make(&self, p: nn::Path, channels: i64) -> CondNorm {
        CondNorm::new(p, channels, self.mode, self.cond_dim, self.word_dim)
    }
}

/// The Stage-I generator.
#[derive(Debug)]
pub struct StageOne {
    pub ca: CondAug,
    fc: nn::Linear,
    fc_bn: BatchNorm,
    ups: Vec<Up>,
    img: nn::Conv2D,
    base: i64,
}

impl StageOne {
    /// Over text embeddings of `embed_dim` (word features of `word_dim` for word-level SCBN).
    pub fn new(p: nn::Path, c: &Config, embed_dim: i64, word_dim: i64) -> StageOne {
        let base = 8 * c.ngf;
        let n = Norms { mode: c.scbn, cond_dim: c.condition_dim, word_dim };
        // 8ngf (4×4) → 4ngf → 2ngf → ngf → ngf/2 (64×64).
        let w: Vec<i64> = (0..5).map(|i| (base >> i).max(4)).collect();
        StageOne {
            ca: CondAug::new(&p / "ca", embed_dim, c.condition_dim),
            fc: linear(&p / "fc", c.condition_dim + c.noise_dim, base * 16, false),
            fc_bn: bn1d(&p / "fc_bn", base * 16),
            ups: (0..4).map(|i| Up::new(&p / format!("up{i}"), w[i], w[i + 1], &n)).collect(),
            img: conv(&p / "img", w[4], 3, 3, 1, 1),
            base,
        }
    }

    /// z [B, noise_dim], text embeddings [B, E], ε [B, condition_dim], word features (for
    /// word-level SCBN) → (images [B, 3, 64, 64] in [−1, 1], μ, log σ²).
    pub fn forward_t(
        &self,
        z: &Tensor,
        text: &Tensor,
        eps: &Tensor,
        words: Option<(&Tensor, &Tensor)>,
        train: bool,
    ) -> (Tensor, Tensor, Tensor) {
        let (c, mu, logvar) = augment(&self.ca, text, eps);
        let cond = Cond { sentence: &c, words };
        let h = self.fc_bn.forward_t(&self.fc.forward(&Tensor::cat(&[&c, z], 1)), train).relu();
        let mut h = h.view([-1, self.base, 4, 4]);
        for up in &self.ups {
            h = up.forward_t(&h, &cond, train);
        }
        (self.img.forward(&h).tanh(), mu, logvar)
    }
}

/// Conditioning augmentation with the given ε: (ĉ = μ + σ ⊙ ε, μ, log σ²).
pub fn augment(ca: &CondAug, text: &Tensor, eps: &Tensor) -> (Tensor, Tensor, Tensor) {
    let (mu, logvar) = ca.stats(text);
    let c = &mu + (&logvar * 0.5).exp() * eps;
    (c, mu, logvar)
}

/// A residual block of Stage II: x + (3×3 conv, norm, ReLU, 3×3 conv, norm)(x), then ReLU.
#[derive(Debug)]
struct Residual {
    convs: [nn::Conv2D; 2],
    norms: [CondNorm; 2],
}

impl Residual {
    fn forward_t(&self, x: &Tensor, cond: &Cond, train: bool) -> Tensor {
        let h = self.norms[0].forward_t(&self.convs[0].forward(x), cond, train).relu();
        (x + self.norms[1].forward_t(&self.convs[1].forward(&h), cond, train)).relu()
    }
}

/// The Stage-II generator.
#[derive(Debug)]
pub struct StageTwo {
    pub ca: CondAug,
    enc0: nn::Conv2D,
    down: Vec<(nn::Conv2D, CondNorm)>,
    joint: (nn::Conv2D, CondNorm),
    res: Vec<Residual>,
    ups: Vec<Up>,
    img: nn::Conv2D,
}

impl StageTwo {
    pub fn new(p: nn::Path, c: &Config, embed_dim: i64, word_dim: i64) -> StageTwo {
        let n = Norms { mode: c.scbn, cond_dim: c.condition_dim, word_dim };
        let g = c.ngf;
        let k = storyvis_core::nn::doublings(c.image_size) - 2; // 16×16 → image_size
                                                                // 4ngf (16×16) → 2ngf → ngf → ngf/2 → ngf/4 (256×256).
        let w: Vec<i64> = (0..=k).map(|i| ((4 * g) >> i).max(4)).collect();
        let c3 = |name: String, i: i64, o: i64| conv(&p / name, i, o, 3, 1, 1);
        StageTwo {
            ca: CondAug::new(&p / "ca", embed_dim, c.condition_dim),
            enc0: c3("enc0".into(), 3, g),
            down: (0..2)
                .map(|i| {
                    (
                        conv(&p / format!("down{i}"), g << i, g << (i + 1), 4, 2, 1),
                        n.make(&p / format!("down{i}_norm"), g << (i + 1)),
                    )
                })
                .collect(),
            joint: (
                c3("joint".into(), 4 * g + c.condition_dim, 4 * g),
                n.make(&p / "joint_norm", 4 * g),
            ),
            res: (0..c.residual_blocks)
                .map(|i| Residual {
                    convs: [
                        c3(format!("res{i}_conv0"), 4 * g, 4 * g),
                        c3(format!("res{i}_conv1"), 4 * g, 4 * g),
                    ],
                    norms: [
                        n.make(&p / format!("res{i}_norm0"), 4 * g),
                        n.make(&p / format!("res{i}_norm1"), 4 * g),
                    ],
                })
                .collect(),
            ups: (0..k).map(|i| Up::new(&p / format!("up{i}"), w[i], w[i + 1], &n)).collect(),
            img: c3("img".into(), w[k], 3),
        }
    }

    /// Stage-I images [B, 3, 64, 64], text embeddings [B, E], ε [B, condition_dim], word
    /// features → (images [B, 3, S, S], μ, log σ²).
    pub fn forward_t(
        &self,
        stage1: &Tensor,
        text: &Tensor,
        eps: &Tensor,
        words: Option<(&Tensor, &Tensor)>,
        train: bool,
    ) -> (Tensor, Tensor, Tensor) {
        let (c, mu, logvar) = augment(&self.ca, text, eps);
        let cond = Cond { sentence: &c, words };
        let mut h = self.enc0.forward(stage1).relu();
        for (cv, norm) in &self.down {
            h = norm.forward_t(&cv.forward(&h), &cond, train).relu(); // → [B, 4ngf, 16, 16]
        }
        let (s, d) = (h.size()[2], c.size()[1]);
        let tiled = c.view([-1, d, 1, 1]).expand([-1, d, s, s], false);
        let mut h = self
            .joint
            .1
            .forward_t(&self.joint.0.forward(&Tensor::cat(&[&h, &tiled], 1)), &cond, train)
            .relu();
        for r in &self.res {
            h = r.forward_t(&h, &cond, train);
        }
        for up in &self.ups {
            h = up.forward_t(&h, &cond, train);
        }
        (self.img.forward(&h).tanh(), mu, logvar)
    }
}

/// A stage's discriminator: strided convolutions to 4×4 (then a 3×3 convolution back to 8ndf
/// channels above 64×64); μ tiled over the 4×4 positions and joined; 3×3 conv, batch norm,
/// leaky ReLU; a 4×4 convolution → the pair's logit. With `unconditional`, a 4×4 convolution
/// of the image features alone → a second logit (Stage II, as the reference code).
#[derive(Debug)]
pub struct Discriminator {
    body: DownStack,
    reduce: Option<(nn::Conv2D, BatchNorm)>,
    joint: nn::Conv2D,
    joint_bn: BatchNorm,
    cond_out: nn::Conv2D,
    uncond_out: Option<nn::Conv2D>,
    /// With the recipe's `aux_attributes`, an attribute head (AC-GAN) on the 4×4 features.
    attributes: Option<AttributeHead>,
}

impl Discriminator {
    /// `labels`: what the attribute head predicts (the dataset's labels), if it has one.
    pub fn new(
        p: nn::Path,
        c: &Config,
        unconditional: bool,
        labels: Option<Labels>,
    ) -> Discriminator {
        let body = DownStack::new(&p / "body", c.image_size, c.ndf);
        let ch = 8 * c.ndf;
        let reduce = (body.out_channels != ch).then(|| {
            (conv(&p / "reduce", body.out_channels, ch, 3, 1, 1), bn2d(&p / "reduce_bn", ch))
        });
        Discriminator {
            body,
            reduce,
            joint: conv(&p / "joint", ch + c.condition_dim, ch, 3, 1, 1),
            joint_bn: bn2d(&p / "joint_bn", ch),
            cond_out: conv(&p / "cond_out", ch, 1, 4, 4, 0),
            uncond_out: unconditional.then(|| conv(&p / "uncond_out", ch, 1, 4, 4, 0)),
            attributes: labels.map(|l| AttributeHead::new(&p / "attributes", ch * 16, l)),
        }
    }

    /// Images [B, 3, S, S] → features [B, 8ndf, 4, 4].
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.body.forward_t(x, train);
        match &self.reduce {
            Some((cv, bn)) => leaky(&bn.forward_t(&cv.forward(&h), train)),
            None => h,
        }
    }

    /// The (image, condition μ [B, condition_dim]) pairs' logits [B].
    pub fn judge(&self, features: &Tensor, mu: &Tensor, train: bool) -> Tensor {
        let d = mu.size()[1];
        let tiled = mu.view([-1, d, 1, 1]).expand([-1, d, 4, 4], false);
        let h = leaky(
            &self
                .joint_bn
                .forward_t(&self.joint.forward(&Tensor::cat(&[features, &tiled], 1)), train),
        );
        self.cond_out.forward(&h).view([-1])
    }

    /// The attribute head's loss on features of items carrying `labels` (none without a head).
    pub fn attribute_loss(&self, features: &Tensor, labels: &Tensor) -> Option<Tensor> {
        self.attributes.as_ref().map(|h| h.loss(features, labels))
    }

    /// The images' unconditional logits [B] (Stage II).
    pub fn unconditional(&self, features: &Tensor) -> Option<Tensor> {
        self.uncond_out.as_ref().map(|o| o.forward(features).view([-1]))
    }

    /// The siamese branches' feature vectors: features averaged over the 4×4 positions and
    /// scaled to unit length (so that the contrastive margin ε = 1 has a fixed scale) [B, 8ndf].
    pub fn embedding(features: &Tensor) -> Tensor {
        let v = features.mean_dim(&[2i64, 3][..], false, Kind::Float);
        let norm = v.square().sum_dim_intlist(1, true, Kind::Float).sqrt().clamp_min(1e-8);
        v / norm
    }

    pub fn set_channels_last(&mut self, on: bool) {
        self.body.channels_last = on;
    }
}

#[cfg(test)]
mod tests;
