//! TGANs-C: "To Create What You Tell: Generating Videos from Captions" (Pan, Qiu, Yao, Li & Mei,
//! ACM Multimedia 2017). A caption encoder (a bidirectional LSTM over the words, then an LSTM
//! over its outputs, §3.1), a generator of 3-D transposed convolutions from [z ; S] to a clip
//! (§3.2), and three matching-aware discriminators (§3.3): the video discriminator D0 (3-D
//! convolutions over the clip), the frame discriminator D1 (2-D convolutions on each frame) and
//! the motion discriminator D2 on the differences of adjacent frames' D1 feature maps, each
//! joined with its own embedding φ(S) of the sentence. Temporal coherence is either D2's
//! adversarial loss (TGANs-C, §3.4 "temporal coherence adversarial loss") or a constraint on the
//! generated clip's adjacent frame features (TGANs-C-C, §3.4 "temporal coherence constraint
//! loss"), or neither (the ablation without temporal coherence): `temporal`.
//!
//! Where the paper gives no number (widths, learning rates), the values are DCGAN's (Radford
//! et al. 2016), as in the rest of storyvis, and the presets say so.

pub mod draw;
pub mod family;
#[cfg(test)]
mod tests;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use storyvis_core::config::{check_adam, range};
use storyvis_core::nn::{
    bn1d, bn2d, conv, doublings, leaky, linear, BatchNorm, DownStack, LstmCell, INIT,
};
use storyvis_core::recipe::{AttributeHead, Labels};
use storyvis_core::text::PAD;
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

pub use family::FAMILY;

/// How adjacent frames are kept coherent (§3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Temporal {
    /// TGANs-C: the motion discriminator D2's matching-aware adversarial loss.
    Adversarial,
    /// TGANs-C-C: the generator also minimises the squared distance between adjacent frames'
    /// features (D2 is not trained).
    Constraint,
    /// Neither: video and frame discriminators only.
    None,
}

/// Where the caption encoder reads the sentence representation S off its second LSTM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sentence {
    /// Its state at the last word (§3.1).
    #[default]
    Last,
    /// Its states averaged over the words: every word reaches S in one step. (With the last
    /// state, a caption's digit is five words from the end of "digit 3 is moving up and down",
    /// and an encoder learning from the discriminators saturates on the motion words first.)
    Mean,
}

/// What reads the captions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptionText {
    /// The paper's caption encoder (§3.1), learning with the discriminators.
    #[default]
    Lstm,
    /// The pretrained all-MiniLM-L6-v2, frozen: S is its 384-wide sentence embedding.
    Minilm,
}

/// Which other caption a clip is judged with in the matching-aware terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mismatch {
    /// Another clip's of the batch, at random (Reed et al. 2016; TGANs-C §3.3).
    #[default]
    Random,
    /// The batch's caption with the fewest words changed (a hard negative: on single-digit
    /// Bouncing MNIST, another digit with the same motion where the batch has one).
    Closest,
}

/// TGANs-C's [model] section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Frames per clip (4, 8, 16 or 32; 16 in the paper).
    pub frames: i64,
    pub image_size: i64,
    /// 1 (grey, Bouncing MNIST) or 3.
    pub channels: i64,
    pub noise_dim: i64,
    /// Word embedding width.
    pub word_dim: i64,
    /// Hidden width of each direction of the bidirectional LSTM.
    pub lstm_dim: i64,
    /// Width of the sentence representation S (the second LSTM's state).
    pub sentence_dim: i64,
    /// Where S is read off the second LSTM ("last": the paper's; "mean").
    #[serde(default)]
    pub sentence: Sentence,
    /// What reads the captions ("lstm": the paper's caption encoder; "minilm").
    #[serde(default)]
    pub text: CaptionText,
    /// `text = "minilm"`: train MiniLM (at `lr_text`) instead of keeping it frozen.
    #[serde(default)]
    pub text_finetune: bool,
    /// Frozen MiniLM: centre its embeddings on the training captions' mean and scale them to
    /// unit variance (`recipe::TextNorm`; not in the paper, which trains its encoder).
    #[serde(default)]
    pub text_norm: bool,
    /// Width of each network's embedding φ(S) of the sentence.
    pub cond_dim: i64,
    /// Generator channels at the last up-step (8·ngf at the first).
    pub ngf: i64,
    /// Discriminator channels after the first convolution (8·ndf at 4×4).
    pub ndf: i64,
    pub temporal: Temporal,
    /// The mismatched captions ("random": the paper's; "closest").
    #[serde(default)]
    pub mismatch: Mismatch,
    /// With the recipe's attribute head: judge every frame's features (with the clip's video
    /// features) against the clip's labels, and average over the frames, instead of judging the
    /// frames' features averaged over the clip once; so a clip whose frames show different
    /// digits cannot pass as the right one on average.
    #[serde(default)]
    pub attributes_per_frame: bool,
    /// How the generator draws ("conv3d": the paper's; "sprite": one picture moved along a path).
    #[serde(default)]
    pub generator: GeneratorKind,
    /// How the sprite generator's path is read off its perceptron ("xy": a travel per axis,
    /// starting still; "polar": a direction and a speed, starting on the move).
    #[serde(default)]
    pub sprite_path: SpritePath,
    /// The sprite generator draws its picture in a centred window of this side (pixels; 0: the
    /// whole canvas): the ground outside it, so what moves is no larger than the window and
    /// the path alone says where it is.
    #[serde(default)]
    pub sprite_window: i64,
    /// Weight of the temporal coherence constraint (TGANs-C-C).
    pub constraint_weight: f64,
    pub batch: i64,
    pub lr_g: f64,
    pub lr_d: f64,
    /// The caption encoder's learning rate (it learns with the discriminators).
    pub lr_text: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// The learning rates halve every this many epochs.
    pub lr_halve_epochs: usize,
}

impl Config {
    pub fn of(cfg: &storyvis_core::config::Config) -> Result<Config> {
        let c: Config = cfg.model()?;
        ensure!(
            [4, 8, 16, 32].contains(&c.frames),
            "config: frames = {} is not supported (4, 8, 16 or 32)",
            c.frames
        );
        ensure!(
            [32, 64, 128].contains(&c.image_size),
            "config: image_size = {} is not supported (32, 64 or 128)",
            c.image_size
        );
        ensure!(
            c.channels == 1 || c.channels == 3,
            "config: channels must be 1 or 3 (got {})",
            c.channels
        );
        range("noise_dim", c.noise_dim, 1, 4096)?;
        range("word_dim", c.word_dim, 1, 4096)?;
        range("lstm_dim", c.lstm_dim, 1, 4096)?;
        range("sentence_dim", c.sentence_dim, 1, 4096)?;
        range("cond_dim", c.cond_dim, 1, 4096)?;
        range("ngf", c.ngf, 2, 1024)?;
        range("ndf", c.ndf, 2, 1024)?;
        range("constraint_weight", c.constraint_weight, 0.0, 1e6)?;
        range("batch", c.batch, 2, 4096)?;
        check_adam(
            &[("lr_g", c.lr_g), ("lr_d", c.lr_d), ("lr_text", c.lr_text)],
            c.beta1,
            c.beta2,
        )?;
        range("lr_halve_epochs", c.lr_halve_epochs, 1, 1_000_000)?;
        ensure!(
            c.sprite_path == SpritePath::Xy || c.generator == GeneratorKind::Sprite,
            "config: sprite_path = \"polar\" is for generator = \"sprite\" (the 3-D generator has no path)"
        );
        ensure!(
            c.sprite_window == 0 || (c.generator == GeneratorKind::Sprite && (4..=c.image_size).contains(&c.sprite_window)),
            "config: sprite_window = {} must be 0 (the whole canvas) or, with generator = \"sprite\", 4 to image_size ({})",
            c.sprite_window,
            c.image_size
        );
        ensure!(!c.text_finetune || c.text == CaptionText::Minilm, "config: text_finetune = true needs text = \"minilm\" (the caption encoder always trains)");
        ensure!(
            !c.text_norm || (c.text == CaptionText::Minilm && !c.text_finetune),
            "config: text_norm = true is for the frozen MiniLM (text = \"minilm\", text_finetune = false)"
        );
        ensure!(
            !c.text_finetune || c.lr_text <= 1e-3,
            "config: lr_text = {} would wreck MiniLM's pretrained weights; fine-tuning it wants about 2e-5 (--set lr_text=2e-5; at most 1e-3)",
            c.lr_text
        );
        Ok(c)
    }

    /// Whether a caption reader trains: the caption encoder, or MiniLM with `text_finetune`.
    pub fn trains_text(&self) -> bool {
        self.text == CaptionText::Lstm || self.text_finetune
    }

    /// Width of S: the caption encoder's `sentence_dim`, or MiniLM's 384.
    pub fn text_dim(&self) -> i64 {
        match self.text {
            CaptionText::Lstm => self.sentence_dim,
            CaptionText::Minilm => storyvis_core::minilm::DIM,
        }
    }

    /// Frames at the generator's first (and the video discriminator's last) layer: the clip
    /// is doubled in time by the first up-steps until it has `frames`.
    pub fn base_frames(&self) -> i64 {
        (self.frames >> doublings(self.image_size)).max(1)
    }

    /// Whether up-step (or down-step) `i` doubles (halves) time.
    fn temporal_step(&self, i: usize) -> bool {
        (i as u32) < (self.frames / self.base_frames()).trailing_zeros()
    }
}

/// The caption encoder (§3.1): word embeddings, a bidirectional LSTM, and an LSTM over the
/// bidirectional outputs whose state at the last word is the sentence representation S.
#[derive(Debug)]
pub struct CaptionEncoder {
    embed: nn::Embedding,
    forward: LstmCell,
    backward: LstmCell,
    sentence: LstmCell,
    pooling: Sentence,
}

impl CaptionEncoder {
    pub fn new(p: nn::Path, vocab: i64, c: &Config) -> CaptionEncoder {
        CaptionEncoder {
            embed: nn::embedding(
                &p / "embed",
                vocab,
                c.word_dim,
                nn::EmbeddingConfig {
                    ws_init: nn::Init::Randn { mean: 0.0, stdev: 1.0 },
                    ..Default::default()
                },
            ),
            forward: LstmCell::new(&p / "forward", c.word_dim, c.lstm_dim),
            backward: LstmCell::new(&p / "backward", c.word_dim, c.lstm_dim),
            sentence: LstmCell::new(&p / "sentence", 2 * c.lstm_dim, c.sentence_dim),
            pooling: c.sentence,
        }
    }

    /// Word ids [N, L] (right-padded) → S [N, sentence_dim] (zeros for a caption of no
    /// words). The backward LSTM reads each
    /// sentence reversed in place (padding stays at the end) and its outputs are put back in
    /// word order, so that position p holds both directions' states at word p.
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        let (n, l) = (ids.size()[0], ids.size()[1]);
        let words = self.embed.forward(ids);
        let lengths = ids.ne(PAD).sum_dim_intlist(1, false, Kind::Int64);
        let pos = Tensor::arange(l, (Kind::Int64, ids.device())).unsqueeze(0);
        let len = lengths.unsqueeze(1);
        let reversed = (&len - 1 - &pos).where_self(&pos.lt_tensor(&len), &pos); // [N, L], its own inverse
        let along = |x: &Tensor, w: i64| {
            x.gather(1, &reversed.unsqueeze(-1).expand([n, l, w], false), false)
        };
        let fwd = self.forward.sequence(&words);
        let bwd = along(
            &self.backward.sequence(&along(&words, words.size()[2])),
            self.backward.hidden_dim,
        );
        let states = self.sentence.sequence(&Tensor::cat(&[fwd, bwd], 2));
        let d = self.sentence.hidden_dim;
        match self.pooling {
            Sentence::Last => {
                let at = (&lengths - 1).clamp_min(0).view([n, 1, 1]).expand([n, 1, d], false);
                states.gather(1, &at, false).squeeze_dim(1)
                    * lengths.gt(0).to_kind(Kind::Float).unsqueeze(1)
            }
            Sentence::Mean => {
                let words = pos.lt_tensor(&len).to_kind(Kind::Float).unsqueeze(-1); // [N, L, 1]
                (states * words).sum_dim_intlist(1, false, Kind::Float)
                    / lengths.clamp_min(1).to_kind(Kind::Float).unsqueeze(1)
            }
        }
    }
}

/// The captions' reader: the caption encoder, or MiniLM, frozen (its weights stay in the cache;
/// with `text_norm`, its embeddings centred and scaled) or trained (`Tuned`: a copy in the text
/// store under `minilm.`, started from the pretrained weights, and the tokenizer).
#[derive(Debug)]
pub enum TextNet {
    Lstm(Box<CaptionEncoder>),
    Minilm(Box<storyvis_core::minilm::MiniLm>, Option<storyvis_core::recipe::TextNorm>),
    Tuned { pieces: Box<storyvis_core::minilm::WordPieces>, bert: Box<storyvis_core::minilm::Bert> },
}

impl TextNet {
    /// Token ids [N, L] (from `ids`) → S [N, text_dim]. The frozen MiniLM also takes its own
    /// embeddings [N, 384] (floats: a training set's, computed once) in place of ids.
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        match self {
            TextNet::Lstm(e) => e.forward(ids),
            TextNet::Minilm(model, norm) => {
                let e = if ids.is_floating_point() {
                    ids.shallow_clone()
                } else {
                    model.encode_ids(ids)
                };
                match norm {
                    Some(n) => n.apply(&e),
                    None => e,
                }
            }
            TextNet::Tuned { bert, .. } => bert.encode(ids),
        }
    }

    /// The frozen MiniLM's `TextNorm`, if it has one (saved with the run).
    pub fn norm(&self) -> Option<&storyvis_core::recipe::TextNorm> {
        match self {
            TextNet::Minilm(_, norm) => norm.as_ref(),
            _ => None,
        }
    }

    /// Sets the frozen MiniLM's `TextNorm` (nothing for the other readers).
    pub fn set_norm(&mut self, n: storyvis_core::recipe::TextNorm) {
        if let TextNet::Minilm(_, norm) = self {
            *norm = Some(n);
        }
    }

    /// Captions → token ids [N, L] on the CPU: the vocabulary's word ids, or MiniLM's.
    pub fn ids(&self, vocab: &storyvis_core::text::Vocab, captions: &[&str]) -> Result<Tensor> {
        match self {
            TextNet::Lstm(_) => vocab.batch(captions),
            TextNet::Minilm(model, _) => Ok(model.ids(captions)?.0),
            TextNet::Tuned { pieces, .. } => Ok(pieces.ids(captions)?.0),
        }
    }
}

/// φ(S): a linear layer and leaky ReLU, one per network (Reed et al. 2016 §3.1; TGANs-C §3.3).
fn embed_sentence(p: nn::Path, c: &Config) -> nn::Linear {
    linear(p, c.text_dim(), c.cond_dim, true)
}

/// A 3-D (transposed) convolution: 4×4 in space with stride 2; in time 4 with stride 2 where it
/// doubles (halves) time, else 3 with stride 1.
#[derive(Debug)]
struct Conv3 {
    ws: Tensor,
    bs: Option<Tensor>,
    doubles_time: bool,
    transposed: bool,
}

impl Conv3 {
    fn new(p: nn::Path, i: i64, o: i64, doubles_time: bool, transposed: bool) -> Conv3 {
        let kt = if doubles_time { 4 } else { 3 };
        let shape = if transposed { [i, o, kt, 4, 4] } else { [o, i, kt, 4, 4] };
        Conv3 { ws: p.var("weight", &shape, INIT), bs: None, doubles_time, transposed }
    }

    /// With a bias per output channel (a layer with no batch norm after it).
    fn with_bias(p: nn::Path, i: i64, o: i64, doubles_time: bool, transposed: bool) -> Conv3 {
        let bs = Some(p.zeros("bias", &[o]));
        Conv3 { bs, ..Conv3::new(p, i, o, doubles_time, transposed) }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let st = if self.doubles_time { 2 } else { 1 };
        if self.transposed {
            x.conv_transpose3d(
                &self.ws,
                self.bs.as_ref(),
                [st, 2, 2],
                [1, 1, 1],
                [0, 0, 0],
                1,
                [1, 1, 1],
            )
        } else {
            x.conv3d(&self.ws, self.bs.as_ref(), [st, 2, 2], [1, 1, 1], [1, 1, 1], 1)
        }
    }
}

/// How the generator draws a clip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorKind {
    /// §3.2: 3-D transposed convolutions draw every frame.
    #[default]
    Conv3d,
    /// One picture per clip (2-D transposed convolutions, DCGAN's generator) moved along a
    /// path with a spatial transformer (Jaderberg et al. 2015; transformation-based video
    /// models, van Amersfoort et al. 2017): a start and a velocity, read off [z ; φ(S)] by a
    /// small perceptron, the picture moving at that velocity and bouncing off the walls of a
    /// box (the motion of Bouncing MNIST, TGANs-C §4.1). What is drawn cannot change from frame
    /// to frame, only where it is; not in the paper.
    Sprite,
}

/// How the sprite generator reads its path off the perceptron's four outputs (o₁…o₄); both
/// start at (tanh o₁, tanh o₂)·`PATH_REACH`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpritePath {
    /// The travel over the clip is (tanh o₃, tanh o₄)·`PATH_TRAVEL`. The perceptron's last layer
    /// starts at zero, so every path starts still, and an axis the discriminators do not push
    /// hard stays nearly still (left-and-right clips moved a few pixels in `models/tganc-fast`).
    #[default]
    Xy,
    /// The travel is a direction and a length: (cos θ, sin θ)·sigmoid(o₄)·`PATH_TRAVEL` with
    /// θ = π·o₃. From the zero start every path moves at half the most travel (the speed is
    /// what the discriminators then tune), and turning it from one axis to the other is one
    /// smooth parameter. Not in the paper (nor is the sprite generator).
    Polar,
}

/// The sprite generator's path stays this far (in the canvas' normalised units, where the
/// canvas spans 2) each way from where the picture is drawn: the walls it bounces off.
const PATH_REACH: f64 = 0.5;
/// The most the sprite generator's picture travels over a clip (normalised units, before
/// bouncing): four widths of the box.
const PATH_TRAVEL: f64 = 4.0 * 2.0 * PATH_REACH;
/// Hidden width of the path's perceptron.
const PATH_HIDDEN: i64 = 128;

/// What follows G's shared first layers.
#[derive(Debug)]
enum Body {
    /// `GeneratorKind::Conv3d`.
    Clip { ups: Vec<Conv3>, bns: Vec<BatchNorm> },
    /// `GeneratorKind::Sprite`: the picture's up-steps, and the path's two layers.
    Sprite {
        ups: Vec<nn::ConvTranspose2D>,
        bns: Vec<BatchNorm>,
        hidden: nn::Linear,
        path: nn::Linear,
        frames: i64,
        kind: SpritePath,
        window: i64,
    },
}

/// G (§3.2): [z ; φ(S)] → linear → 8ngf × base_frames × 4 × 4 → 3-D transposed convolutions
/// halving the channels and doubling space (and time, first) → channels × frames × S × S,
/// batch-norm and ReLU between, tanh at the end. Or, `generator = "sprite"`, one picture by the
/// same steps in 2-D, moved along a path (`GeneratorKind::Sprite`).
#[derive(Debug)]
pub struct Generator {
    phi: nn::Linear,
    fc: nn::Linear,
    fc_bn: BatchNorm,
    body: Body,
    base: i64,
    base_frames: i64,
}

impl Generator {
    pub fn new(p: nn::Path, c: &Config) -> Generator {
        let k = doublings(c.image_size);
        let base = 8 * c.ngf;
        let widths: Vec<i64> = (0..k).map(|i| (base >> i).max(2)).chain([c.channels]).collect();
        let input = c.noise_dim + c.cond_dim;
        let t0 = match c.generator {
            GeneratorKind::Conv3d => c.base_frames(),
            GeneratorKind::Sprite => 1,
        };
        // The variables are drawn from the seed in a fixed order per generator (the paper's as
        // it always was, the sprite generator's as in the run that made models/tganc-fast), so
        // that a preset's command re-makes its run.
        let first = || {
            (
                embed_sentence(&p / "phi", c),
                linear(&p / "fc", input, base * t0 * 16, false),
                bn1d(&p / "fc_bn", base * t0 * 16),
            )
        };
        let bns =
            |p: &nn::Path| (0..k - 1).map(|i| bn2d(p / format!("bn{i}"), widths[i + 1])).collect();
        let ((phi, fc, fc_bn), body) = match c.generator {
            GeneratorKind::Conv3d => {
                let first = first();
                // The last layer has a bias, as VGAN's volumetric full convolutions (Vondrick
                // et al. 2016), which TGANs-C's generator follows: with kernel 4 and stride 2
                // in time the first and last frames get one temporal tap where the others get
                // two, and without it their ground could not be as dark as the rest.
                let ups = (0..k)
                    .map(|i| {
                        let (p, step) = (&p / format!("up{i}"), c.temporal_step(i));
                        if i + 1 == k {
                            Conv3::with_bias(p, widths[i], widths[i + 1], step, true)
                        } else {
                            Conv3::new(p, widths[i], widths[i + 1], step, true)
                        }
                    })
                    .collect();
                (first, Body::Clip { ups, bns: bns(&p) })
            }
            GeneratorKind::Sprite => {
                let bns = bns(&p);
                let ups = (0..k)
                    .map(|i| {
                        let bias = i + 1 == k;
                        let cfg = nn::ConvTransposeConfig {
                            stride: 2,
                            padding: 1,
                            bias,
                            ws_init: INIT,
                            ..Default::default()
                        };
                        nn::conv_transpose2d(
                            &p / format!("up{i}"),
                            widths[i],
                            widths[i + 1],
                            4,
                            cfg,
                        )
                    })
                    .collect();
                let hidden = linear(&p / "path_hidden", input, PATH_HIDDEN, true);
                // The path starts still (its last layer at zero): the motion discriminator
                // sets it going.
                let zero = nn::LinearConfig {
                    ws_init: nn::Init::Const(0.0),
                    bs_init: Some(nn::Init::Const(0.0)),
                    bias: true,
                };
                let path = nn::linear(&p / "path", PATH_HIDDEN, 4, zero);
                (
                    first(),
                    Body::Sprite {
                        ups,
                        bns,
                        hidden,
                        path,
                        frames: c.frames,
                        kind: c.sprite_path,
                        window: c.sprite_window,
                    },
                )
            }
        };
        Generator { phi, fc, fc_bn, body, base, base_frames: t0 }
    }

    /// z [B, noise_dim], S [B, sentence_dim] → clips [B, channels, frames, S, S] in [−1, 1].
    pub fn forward_t(&self, z: &Tensor, sentence: &Tensor, train: bool) -> Tensor {
        let s = leaky(&self.phi.forward(sentence));
        let input = Tensor::cat(&[z, &s], 1);
        let h = self.fc_bn.forward_t(&self.fc.forward(&input), train).relu();
        match &self.body {
            Body::Clip { ups, bns } => {
                let h = h.view([-1, self.base, self.base_frames, 4, 4]);
                storyvis_core::nn::dcgan_up(h, ups, bns, train, |up, x| up.forward(x))
            }
            Body::Sprite { ups, bns, hidden, path, frames, kind, window } => {
                let picture = windowed(
                    &storyvis_core::nn::dcgan_up(
                        h.view([-1, self.base, 4, 4]),
                        ups,
                        bns,
                        train,
                        |up, x| up.forward(x),
                    ),
                    *window,
                );
                let o = path.forward(&hidden.forward(&input).relu()); // [B, 4]
                let (start, travel) = sprite_travel(&o, *kind);
                along_path(&picture, &bouncing_path(&start, &travel, *frames, PATH_REACH))
            }
        }
    }

    /// The 3-D generator's layers (none for the sprite generator).
    #[cfg(test)]
    fn clip_layers(&self) -> &[Conv3] {
        match &self.body {
            Body::Clip { ups, .. } => ups,
            Body::Sprite { .. } => &[],
        }
    }
}

/// Pictures [B, C, S, S] in [−1, 1] with everything outside the centred `window`² square set to
/// the ground (−1); as they are for window 0 or S.
pub fn windowed(pictures: &Tensor, window: i64) -> Tensor {
    let s = pictures.size()[3];
    if window == 0 || window >= s {
        return pictures.shallow_clone();
    }
    let (lo, hi) = ((s - window) / 2, s - window - (s - window) / 2);
    // The window's pixels, shifted so the ground is 0, padded back to S × S with zeros.
    (pictures.narrow(2, lo, window).narrow(3, lo, window) + 1.0).constant_pad_nd([lo, hi, lo, hi])
        - 1.0
}

/// The sprite generator's perceptron outputs [B, 4] → (start [B, 2], travel [B, 2]) as `kind`
/// reads them.
pub fn sprite_travel(o: &Tensor, kind: SpritePath) -> (Tensor, Tensor) {
    let start = o.narrow(1, 0, 2).tanh() * PATH_REACH;
    let travel = match kind {
        SpritePath::Xy => o.narrow(1, 2, 2).tanh() * PATH_TRAVEL,
        SpritePath::Polar => {
            let theta = o.narrow(1, 2, 1) * std::f64::consts::PI;
            Tensor::cat(&[theta.cos(), theta.sin()], 1)
                * (o.narrow(1, 3, 1).sigmoid() * PATH_TRAVEL)
        }
    };
    (start, travel)
}

/// Paths [B, T, 2] that start at `start` [B, 2] and cover `travel` [B, 2] over the T frames at
/// a constant velocity, reflected at ±`reach` (a triangle wave: the walls of a box): frame t is
/// at reflect(start + travel · t / (T − 1)).
pub fn bouncing_path(start: &Tensor, travel: &Tensor, frames: i64, reach: f64) -> Tensor {
    let t = Tensor::arange(frames, (Kind::Float, start.device())).to_kind(start.kind())
        / (frames - 1).max(1) as f64;
    // [B, T, 2], unfolded: one period is 4·reach; the way out (2·reach) is kept, the way back
    // mirrored.
    let free = start.unsqueeze(1) + travel.unsqueeze(1) * t.view([1, frames, 1]);
    let u = (free + reach).remainder(4.0 * reach);
    (u.neg() + 4.0 * reach).where_self(&u.gt(2.0 * reach), &u) - reach
}

/// Pictures [B, C, S, S] in [−1, 1] moved along paths [B, T, 2] (x and y offsets in the
/// canvas' normalised units, where it spans 2) → clips [B, C, T, S, S]: frame t samples the
/// picture bilinearly at each pixel's position plus the offset (so the picture moves by minus
/// the offset), and the ground (−1) comes in at the edges.
pub fn along_path(pictures: &Tensor, paths: &Tensor) -> Tensor {
    let (b, ch, s) = (pictures.size()[0], pictures.size()[1], pictures.size()[3]);
    let t = paths.size()[1];
    let frames =
        (pictures + 1.0).unsqueeze(1).expand([b, t, ch, s, s], false).reshape([b * t, ch, s, s]);
    // interpolation 0: bilinear; zeros from outside are the ground once shifted back.
    let moved = storyvis_core::nn::translated(&frames, &paths.reshape([b * t, 2]), 0) - 1.0;
    moved.view([b, t, ch, s, s]).transpose(1, 2)
}

/// A discriminator's judgement of 4×4 feature maps with a sentence: φ(S) tiled over the map
/// and joined to it, a 1×1 convolution, batch-norm and leaky ReLU, and a 4×4 convolution to one
/// logit (Reed et al. 2016 §3.1, the matching-aware discriminator TGANs-C builds on).
#[derive(Debug)]
pub struct Judge {
    phi: nn::Linear,
    mix: nn::Conv2D,
    bn: BatchNorm,
    out: nn::Conv2D,
}

impl Judge {
    fn new(p: nn::Path, c: &Config, channels: i64) -> Judge {
        Judge {
            phi: embed_sentence(&p / "phi", c),
            mix: conv(&p / "mix", channels + c.cond_dim, 8 * c.ndf, 1, 1, 0),
            bn: bn2d(&p / "bn", 8 * c.ndf),
            out: conv(&p / "out", 8 * c.ndf, 1, 4, 1, 0),
        }
    }

    /// Maps [N, channels, 4, 4] and S [N, sentence_dim] → logits [N].
    pub fn forward_t(&self, maps: &Tensor, sentence: &Tensor, train: bool) -> Tensor {
        let s = leaky(&self.phi.forward(sentence));
        let tiled = s.view([s.size()[0], -1, 1, 1]).expand([-1, -1, 4, 4], false);
        let h =
            leaky(&self.bn.forward_t(&self.mix.forward(&Tensor::cat(&[maps, &tiled], 1)), train));
        self.out.forward(&h).view([-1])
    }
}

/// Frames per clip the projected frame discriminator judges (`[recipe] d_backbone`), drawn
/// afresh for every batch: the frozen backbone on all of a clip's frames would cost its whole
/// budget.
pub const PROJECTED_FRAMES: i64 = 2;

/// The three discriminators. D1's convolutions give the frame features that D2 reads the
/// motion from (the motion tensor of §3.3 is the difference of adjacent frames' D1 maps).
/// With the recipe's `aux_attributes` they share an attribute head (AC-GAN) over D0's video
/// features and D1's frame features averaged over the clip: it names the digit and the motion.
/// With `d_backbone` the frames are judged by the projected discriminator instead of D1's own
/// judge (`PROJECTED_FRAMES` of each clip); D1's convolutions still give D2 its motion.
#[derive(Debug)]
pub struct Discriminator {
    video: Vec<Conv3>,
    video_bns: Vec<BatchNorm>,
    video_judge: Judge,
    frames: DownStack,
    frame_judge: Judge,
    motion_judge: Judge,
    attributes: Option<AttributeHead>,
    /// `attributes_per_frame`.
    per_frame: bool,
    projected: Option<storyvis_core::recipe::projected::Projected>,
}

/// What the discriminators make of a batch of clips: D1's frame features and D0's video
/// features, computed once and judged against several sentences.
pub struct Features {
    /// [B·T, 8ndf, 4, 4], frame-major within each clip.
    pub frames: Tensor,
    /// [B, 8ndf·base_frames, 4, 4]
    pub video: Tensor,
    pub clips: i64,
    /// With `d_backbone`: the projected discriminator's features of `PROJECTED_FRAMES` frames
    /// of each clip, clip-major.
    pub projected: Option<Tensor>,
}

impl Features {
    /// The motion tensor: adjacent frames' feature differences, [B·(T − 1), 8ndf, 4, 4].
    pub fn motion(&self) -> Tensor {
        let f = self.frames.view([self.clips, -1, self.frames.size()[1], 4, 4]);
        let t = f.size()[1];
        (f.narrow(1, 1, t - 1) - f.narrow(1, 0, t - 1)).flatten(0, 1)
    }
}

impl Discriminator {
    /// `labels`: what the attribute head predicts (the dataset's labels), if it has one;
    /// `backbone`: the projected frame discriminator's frozen network and the seed of its
    /// random projections (none: D1's own judge).
    pub fn new(
        p: nn::Path,
        c: &Config,
        labels: Option<Labels>,
        backbone: Option<storyvis_core::recipe::projected::Backbone>,
    ) -> Result<Discriminator> {
        let k = doublings(c.image_size);
        let widths: Vec<i64> =
            std::iter::once(c.channels).chain((0..k).map(|i| c.ndf << i.min(3))).collect();
        let t0 = c.base_frames();
        let top = widths[k];
        let projected = match backbone {
            Some(b) => Some(storyvis_core::recipe::projected::Projected::new(
                &p / "projected",
                b,
                c.image_size,
                c.ndf,
                c.text_dim(),
                None,
            )?),
            None => None,
        };
        Ok(Discriminator {
            video: (0..k)
                .map(|i| {
                    Conv3::new(
                        &p / format!("video{i}"),
                        widths[i],
                        widths[i + 1],
                        c.temporal_step(i),
                        false,
                    )
                })
                .collect(),
            video_bns: (1..k).map(|i| bn2d(&p / format!("video_bn{i}"), widths[i + 1])).collect(),
            video_judge: Judge::new(&p / "video_judge", c, top * t0),
            frames: DownStack::with_widths(&p / "frames", c.channels, &widths[1..]),
            frame_judge: Judge::new(&p / "frame_judge", c, top),
            motion_judge: Judge::new(&p / "motion_judge", c, top),
            attributes: labels
                .map(|l| AttributeHead::new(&p / "attributes", (top * t0 + top) * 16, l)),
            per_frame: c.attributes_per_frame,
            projected,
        })
    }

    /// The attribute head's loss on clips' features whose clips carry `labels` [B, labels]
    /// (none without a head): on [video ; frames averaged over the clip], or, with
    /// `attributes_per_frame`, on [video ; frame t] for every t, averaged over the frames.
    pub fn attribute_loss(&self, f: &Features, labels: &Tensor) -> Option<Tensor> {
        let head = self.attributes.as_ref()?;
        let frames = f.frames.view([f.clips, -1, f.frames.size()[1] * 16]); // [B, T, 8ndf·16]
        let video = f.video.flatten(1, -1); // [B, 8ndf·t0·16]
        if !self.per_frame {
            return Some(head.loss(
                &Tensor::cat(&[video, frames.mean_dim(1, false, frames.kind())], 1),
                labels,
            ));
        }
        let t = frames.size()[1];
        let video = video.unsqueeze(1).expand([-1, t, -1], false);
        let rows = Tensor::cat(&[video, frames], 2).flatten(0, 1); // [B·T, …], clip-major
        Some(head.loss(&rows, &repeat_rows(labels, t)))
    }

    /// Clips [B, C, T, S, S] → their features.
    pub fn features(&self, clips: &Tensor, train: bool) -> Features {
        let b = clips.size()[0];
        let mut h = leaky(&self.video[0].forward(clips));
        for (conv, bn) in self.video[1..].iter().zip(&self.video_bns) {
            h = leaky(&bn.forward_t(&conv.forward(&h), train));
        }
        let video = h.view([b, -1, 4, 4]);
        let all = clips.transpose(1, 2).flatten(0, 1); // [B·T, C, S, S]
        let frames = self.frames.forward_t(&all, train);
        let projected = self.projected.as_ref().map(|p| {
            let t = clips.size()[2];
            let k = PROJECTED_FRAMES.min(t);
            // Per clip k distinct frames, uniformly (libtorch's generator).
            let picks = Tensor::rand([b, t], (Kind::Float, clips.device()))
                .argsort(1, false)
                .narrow(1, 0, k);
            let rows = (picks + Tensor::arange(b, (Kind::Int64, clips.device())).unsqueeze(1) * t)
                .flatten(0, 1);
            p.features(&all.index_select(0, &rows), train)
        });
        Features { frames, video, clips: b, projected }
    }

    /// D0's logits [B].
    pub fn video(&self, f: &Features, sentence: &Tensor, train: bool) -> Tensor {
        self.video_judge.forward_t(&f.video, sentence, train)
    }

    /// D1's logits [B·T]: each frame with its clip's sentence (with `d_backbone`: the
    /// projected discriminator's [B·PROJECTED_FRAMES·4], every scale of every judged frame).
    pub fn frame(&self, f: &Features, sentence: &Tensor, train: bool) -> Tensor {
        if let (Some(p), Some(features)) = (&self.projected, &f.projected) {
            let k = features.size()[0] / f.clips;
            return p.judge(features, &repeat_rows(sentence, k)).flatten(0, -1);
        }
        let t = f.frames.size()[0] / f.clips;
        self.frame_judge.forward_t(&f.frames, &repeat_rows(sentence, t), train)
    }

    /// D2's logits [B·(T − 1)]: each motion tensor with its clip's sentence.
    pub fn motion(&self, f: &Features, sentence: &Tensor, train: bool) -> Tensor {
        let t = f.frames.size()[0] / f.clips;
        self.motion_judge.forward_t(&f.motion(), &repeat_rows(sentence, t - 1), train)
    }

    pub fn set_channels_last(&mut self, on: bool) {
        self.frames.channels_last = on;
    }
}

/// Each row of `x` [B, D] repeated `k` times in place: [B·k, D].
fn repeat_rows(x: &Tensor, k: i64) -> Tensor {
    x.unsqueeze(1).expand([-1, k, -1], false).reshape([-1, x.size()[1]])
}

/// The temporal coherence constraint of TGANs-C-C (§3.4): the squared Euclidean distance
/// between adjacent frames' features, averaged over the pairs and the feature entries.
pub fn coherence_constraint(f: &Features) -> Tensor {
    f.motion().square().mean(Kind::Float)
}
