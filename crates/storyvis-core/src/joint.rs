//! Text encoders for the text-to-image families, trained before them with the deep symmetric
//! structured joint embedding (Reed et al., "Learning Deep Representations of Fine-Grained
//! Visual Descriptions", CVPR 2016, §3; used by Reed et al., ICML 2016, §3 and StackGAN):
//! an image encoder φ and a text encoder ψ scored by F(v, t) = φ(v)ᵀψ(t), trained so that each
//! image scores its own texts above every other image's, and each text its own image.
//!
//! Three text encoders: the paper's char-CNN-RNN (characters one-hot, three convolution and
//! max-pooling layers, a recurrent layer whose hidden states are averaged, a linear map to the
//! embedding), our word-level encoder (`text::SentenceEncoder`: word embeddings and a
//! bidirectional GRU), and the pretrained all-MiniLM-L6-v2 (`minilm`), kept frozen, so that
//! only the image encoder learns to meet its sentence space. The paper's image encoder is a pretrained GoogLeNet; none is available
//! here, so ours is a DCGAN-style convolution stack trained jointly from scratch.

use crate::checkpoint;
use crate::nn::{conv1d, linear, recurrent_linear, DownStack};
use crate::text::{SentenceEncoder, Vocab};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use storyvis_data::rng::Rng;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// The characters the char-CNN-RNN sees (the reference code's alphabet: lower-case letters,
/// digits, punctuation, space); any other character reads as all zeros.
pub const ALPHABET: &str =
    "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+=<>()[]{} ";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderKind {
    /// Reed et al. 2016's character-level CNN-RNN.
    CharCnnRnn,
    /// Word embeddings and a bidirectional GRU (`text::SentenceEncoder`).
    Word,
    /// The pretrained all-MiniLM-L6-v2 (`minilm`), frozen: only the image encoder trains.
    Minilm,
}

impl std::str::FromStr for EncoderKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "char-cnn-rnn" => Ok(EncoderKind::CharCnnRnn),
            "word" => Ok(EncoderKind::Word),
            "minilm" => Ok(EncoderKind::Minilm),
            other => anyhow::bail!("unknown text encoder {other:?} (char-cnn-rnn, word or minilm)"),
        }
    }
}

/// A text encoder's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    pub kind: EncoderKind,
    /// Embedding width (1024 in the paper).
    pub dim: i64,
    /// char-CNN-RNN: characters read (201 in the paper; longer texts are cut).
    pub max_chars: usize,
    /// Word encoder: word embedding width.
    pub word_dim: i64,
    /// Side of the images the joint image encoder reads.
    pub image_size: i64,
}

/// Texts as character indices [N, max_chars] (1-based into ALPHABET; 0: padding or a
/// character outside it), lower-cased and cut at `max_chars`.
pub fn char_ids(texts: &[&str], max_chars: usize) -> Tensor {
    let mut flat = vec![0i64; texts.len() * max_chars];
    for (i, t) in texts.iter().enumerate() {
        for (j, c) in t.to_lowercase().chars().take(max_chars).enumerate() {
            flat[i * max_chars + j] =
                ALPHABET.find(c).map_or(0, |k| ALPHABET[..k].chars().count() as i64 + 1);
        }
    }
    Tensor::from_slice(&flat).view([texts.len() as i64, max_chars as i64])
}

/// The char-CNN-RNN: one-hot characters → conv(384, 4) → max-pool 3 → conv(512, 4) → max-pool
/// 3 → conv(256, 4) → max-pool 2 (ReLU after each convolution) → a tanh RNN of 256 units over
/// the remaining positions → the mean hidden state → linear → `dim`.
#[derive(Debug)]
pub struct CharCnnRnn {
    convs: Vec<nn::Conv1D>,
    rnn_in: nn::Linear,
    rnn_hidden: nn::Linear,
    out: nn::Linear,
    alphabet: i64,
}

const CNN_WIDTHS: [i64; 3] = [384, 512, 256];
const POOLS: [i64; 3] = [3, 3, 2];

impl CharCnnRnn {
    pub fn new(p: nn::Path, dim: i64) -> CharCnnRnn {
        let alphabet = ALPHABET.chars().count() as i64;
        let ins = [alphabet, CNN_WIDTHS[0], CNN_WIDTHS[1]];
        let h = CNN_WIDTHS[2];
        CharCnnRnn {
            convs: (0..3)
                .map(|i| conv1d(&p / format!("conv{i}"), ins[i], CNN_WIDTHS[i], 4))
                .collect(),
            rnn_in: recurrent_linear(&p / "rnn_in", h, h, true),
            rnn_hidden: recurrent_linear(&p / "rnn_hidden", h, h, false),
            out: linear(&p / "out", h, dim, true),
            alphabet,
        }
    }

    /// Positions left for the RNN after the convolutions and pools (≥ 1 needed).
    pub fn steps(max_chars: usize) -> i64 {
        POOLS.iter().fold(max_chars as i64, |l, p| (l - 3) / p)
    }

    /// ids [N, L] (from `char_ids`) → the recurrent layer's hidden states [N, T, 256], one per
    /// position left by the convolutions and pools (`steps`).
    pub fn states(&self, ids: &Tensor) -> Tensor {
        // One-hot with index 0 (padding, unknown) all zeros: [N, alphabet, L].
        let x = ids
            .one_hot(self.alphabet + 1)
            .narrow(2, 1, self.alphabet)
            .to_kind(Kind::Float)
            .transpose(1, 2);
        let mut h = x;
        for (c, pool) in self.convs.iter().zip(POOLS) {
            h = c.forward(&h).relu().max_pool1d([pool], [pool], [0], [1], false);
        }
        let seq = h.transpose(1, 2); // [N, T, 256]
        let (n, t) = (seq.size()[0], seq.size()[1]);
        let mut state = Tensor::zeros([n, CNN_WIDTHS[2]], (Kind::Float, seq.device()));
        let mut states = Vec::with_capacity(t as usize);
        for k in 0..t {
            state =
                (self.rnn_in.forward(&seq.select(1, k)) + self.rnn_hidden.forward(&state)).tanh();
            states.push(state.shallow_clone());
        }
        Tensor::stack(&states, 1)
    }

    /// ids [N, L] (from `char_ids`) → [N, dim].
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        let states = self.states(ids);
        let t = states.size()[1];
        // Summed in order, then divided (as before `states` existed: the same rounding).
        let mut sum = states.select(1, 0).zeros_like();
        for k in 0..t {
            sum += states.select(1, k);
        }
        self.out.forward(&(sum / t as f64))
    }
}

/// A text encoder of either kind with what it needs to read text.
pub struct TextEncoder {
    pub cfg: EncoderConfig,
    pub vs: nn::VarStore,
    net: Net,
    /// Word encoder: the vocabulary.
    pub vocab: Option<Vocab>,
}

enum Net {
    Char(CharCnnRnn),
    Word(SentenceEncoder),
    /// Its weights stay in the cache (`minilm::default_dir`); `TextEncoder::vs` holds none.
    Minilm(Box<crate::minilm::MiniLm>),
}

impl TextEncoder {
    pub fn new(cfg: EncoderConfig, vocab: Option<Vocab>, device: Device) -> Result<TextEncoder> {
        let vs = nn::VarStore::new(device);
        let net = match cfg.kind {
            EncoderKind::CharCnnRnn => {
                ensure!(
                    CharCnnRnn::steps(cfg.max_chars) >= 1 && cfg.max_chars <= 4096,
                    "max_chars {} is out of range for the char-CNN-RNN (57 to 4096)",
                    cfg.max_chars
                );
                Net::Char(CharCnnRnn::new(vs.root() / "text", cfg.dim))
            }
            EncoderKind::Word => {
                ensure!(
                    (1..=4096).contains(&cfg.word_dim),
                    "word_dim {} is out of range (1 to 4096)",
                    cfg.word_dim
                );
                let v = vocab.as_ref().map_or(2, Vocab::len);
                Net::Word(SentenceEncoder::new(vs.root() / "text", v, cfg.word_dim, cfg.dim))
            }
            EncoderKind::Minilm => {
                ensure!(
                    cfg.dim == crate::minilm::DIM,
                    "the MiniLM encoder's embeddings are {} wide, not {}",
                    crate::minilm::DIM,
                    cfg.dim
                );
                Net::Minilm(Box::new(crate::minilm::MiniLm::load_default(device)?))
            }
        };
        ensure!(
            cfg.kind != EncoderKind::Word || vocab.is_some(),
            "a word encoder needs a vocabulary"
        );
        Ok(TextEncoder { cfg, vs, net, vocab })
    }

    /// Texts → inputs of `forward` on `device`: character ids, word ids (an error if a text
    /// has too many words), or MiniLM's token ids (0 at padding).
    pub fn inputs(&self, texts: &[&str]) -> Result<Tensor> {
        let t = match (&self.net, &self.vocab) {
            (Net::Char(_), _) => char_ids(texts, self.cfg.max_chars),
            (Net::Word(_), Some(v)) => v.batch(texts)?,
            (Net::Word(_), None) => unreachable!("checked in new"),
            (Net::Minilm(m), _) => m.ids(texts)?.0,
        };
        Ok(t.to_device(self.vs.device()))
    }

    /// Checks that every text can be read (a word encoder reads at most `text::MAX_WORDS`
    /// words; the char-CNN-RNN cuts at `max_chars`); an error names the text by `name(k)`.
    pub fn check_texts(&self, texts: &[&str], name: impl Fn(usize) -> String) -> Result<()> {
        if self.cfg.kind == EncoderKind::Word {
            for (k, t) in texts.iter().enumerate() {
                let words = crate::text::tokenize(t).len();
                ensure!(
                    words <= crate::text::MAX_WORDS,
                    "a caption of {} has {words} words; the word encoder reads at most {}",
                    name(k),
                    crate::text::MAX_WORDS
                );
            }
        }
        Ok(())
    }

    /// Inputs (from `inputs`) → embeddings [N, dim].
    pub fn forward(&self, inputs: &Tensor) -> Tensor {
        match &self.net {
            Net::Char(c) => c.forward(inputs),
            Net::Word(w) => w.forward(inputs),
            Net::Minilm(m) => m.encode_ids(inputs),
        }
    }

    /// Per-position text features of inputs (from `inputs`), the "word features" attention
    /// reads (SDGAN §3.3, after AttnGAN): [N, T, D] with a mask [N, T] (true where a position
    /// holds text). The word encoder's are its bidirectional GRU's states at each word (D =
    /// 2·dim); the char-CNN-RNN's its recurrent states, one per ~18 characters (D = 256);
    /// MiniLM's its last layer's states at each token (D = 384).
    pub fn word_features(&self, inputs: &Tensor) -> (Tensor, Tensor) {
        match &self.net {
            Net::Char(c) => {
                let s = c.states(inputs);
                let mask = Tensor::ones([s.size()[0], s.size()[1]], (Kind::Bool, s.device()));
                (s, mask)
            }
            Net::Word(w) => (w.states(inputs), inputs.ne(crate::text::PAD)),
            Net::Minilm(m) => m.states(inputs),
        }
    }

    /// Words of `text` outside a word encoder's vocabulary (read as unknown; the char-CNN-RNN
    /// and MiniLM read any word).
    /// The words a word encoder knows; none for the character and MiniLM encoders, which read
    /// any word.
    pub fn known_words(&self) -> Option<Vec<String>> {
        self.vocab.as_ref().map(Vocab::known)
    }

    pub fn unknown_words(&self, text: &str) -> Vec<String> {
        self.vocab.as_ref().map(|v| v.encode(text).unknown).unwrap_or_default()
    }

    /// Width of `word_features`.
    pub fn word_feature_dim(&self) -> i64 {
        match self.cfg.kind {
            EncoderKind::CharCnnRnn => CNN_WIDTHS[2],
            EncoderKind::Word => 2 * self.cfg.dim,
            EncoderKind::Minilm => crate::minilm::DIM,
        }
    }

    /// Embeddings of `texts` without gradients, in batches of 256.
    pub fn embed(&self, texts: &[&str]) -> Result<Tensor> {
        let mut out = Vec::new();
        for chunk in texts.chunks(256) {
            let x = self.inputs(chunk)?;
            out.push(tch::no_grad(|| self.forward(&x)));
        }
        ensure!(!out.is_empty(), "no texts to embed");
        Ok(Tensor::cat(&out, 0))
    }
}

/// The joint embedding's image encoder: a DCGAN convolution stack to 4×4 (from 32
/// channels), averaged over the 4×4 positions, then linear → dim.
#[derive(Debug)]
pub struct ImageEncoder {
    body: DownStack,
    out: nn::Linear,
}

impl ImageEncoder {
    pub fn new(p: nn::Path, size: i64, dim: i64) -> ImageEncoder {
        let body = DownStack::new(&p / "body", size, 32);
        let out = linear(&p / "out", body.out_channels, dim, true);
        ImageEncoder { body, out }
    }

    /// Images [N, 3, S, S] in [−1, 1] → [N, dim].
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.out.forward(&self.body.forward_t(x, train).flatten(2, -1).mean_dim(
            2,
            false,
            Kind::Float,
        ))
    }
}

/// The deep symmetric structured joint embedding loss over a batch of B pairs whose scores
/// are `scores[i][j]` = F(image i, text j) (the diagonal holds the matching pairs; every other
/// entry is a mismatch, Δ = 1): with `Hinge::Max` the structured hinge of Reed et al. 2016
/// (eq. 3–4) in both directions,
///   L = 1/B Σ_i max(0, max_{j≠i} 1 + S_ij − S_ii)  +  1/B Σ_i max(0, max_{j≠i} 1 + S_ji − S_ii);
/// with `Hinge::Mean` the max over j replaced by the mean over j ≠ i of max(0, 1 + S_ij − S_ii).
pub fn joint_embedding_loss(scores: &Tensor, hinge: Hinge) -> Tensor {
    let b = scores.size()[0];
    let diag = scores.diagonal(0, 0, 1);
    let eye = Tensor::eye(b, (Kind::Bool, scores.device()));
    match hinge {
        Hinge::Max => {
            // Mismatched pairs get 1 + score; matching pairs are excluded by −∞.
            let margins = (scores + 1.0).masked_fill(&eye, f64::NEG_INFINITY);
            let image_to_text = (margins.amax([1], false) - &diag).clamp_min(0.0).mean(Kind::Float);
            let text_to_image = (margins.amax([0], false) - &diag).clamp_min(0.0).mean(Kind::Float);
            image_to_text + text_to_image
        }
        Hinge::Mean => {
            let off = eye.logical_not().to_kind(Kind::Float);
            let image_to_text = ((scores + 1.0) - diag.unsqueeze(1)).clamp_min(0.0) * &off;
            let text_to_image = ((scores + 1.0) - diag.unsqueeze(0)).clamp_min(0.0) * &off;
            (image_to_text.sum(Kind::Float) + text_to_image.sum(Kind::Float)) / (b * (b - 1)) as f64
        }
    }
}

/// How the joint embedding loss combines the mismatched pairs of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hinge {
    /// The paper's structured hinge: the worst mismatch only (Reed et al. 2016, eq. 3–4).
    Max,
    /// Every mismatch's hinge, averaged: a gradient from each of them.
    Mean,
}

impl std::str::FromStr for Hinge {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "max" => Ok(Hinge::Max),
            "mean" => Ok(Hinge::Mean),
            other => anyhow::bail!("unknown hinge {other:?} (max or mean)"),
        }
    }
}

/// Groups of interchangeable words ("cube,sphere,cylinder"): a caption with one of its group
/// words replaced by another of the same group is a hard negative of the caption's image (it
/// differs from the true caption in that one attribute only), the "swap" negatives of
/// NegCLIP (Yuksekgonul et al., ICLR 2023, §4) used here so that a joint embedding trained from
/// scratch cannot tell captions apart by their colour words alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SwapGroups(pub Vec<Vec<String>>);

impl std::str::FromStr for SwapGroups {
    type Err = anyhow::Error;
    /// One group: its words, comma-separated.
    fn from_str(s: &str) -> Result<Self> {
        let words: Vec<String> = s.split(',').map(|w| w.trim().to_lowercase()).collect();
        ensure!(
            words.len() >= 2 && words.iter().all(|w| !w.is_empty() && w.chars().all(char::is_alphanumeric)),
            "a swap group is two or more single words, comma-separated (e.g. cube,sphere,cylinder), not {s:?}"
        );
        let distinct: std::collections::BTreeSet<&String> = words.iter().collect();
        ensure!(distinct.len() == words.len(), "the swap group {s:?} repeats a word");
        Ok(SwapGroups(vec![words]))
    }
}

impl SwapGroups {
    /// Joins groups given one by one (a word may belong to one group only).
    pub fn join(groups: Vec<SwapGroups>) -> Result<SwapGroups> {
        let all: Vec<Vec<String>> = groups.into_iter().flat_map(|g| g.0).collect();
        let mut seen = std::collections::BTreeSet::new();
        for w in all.iter().flatten() {
            ensure!(seen.insert(w.as_str()), "the word {w:?} is in two swap groups");
        }
        Ok(SwapGroups(all))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with one of its group words (chosen uniformly among the occurrences) replaced by
    /// another word of its group (chosen uniformly), keeping everything else byte for byte;
    /// None when no word of `text` is in a group. Words are maximal runs of alphanumeric
    /// characters, matched case-insensitively.
    pub fn swap(&self, text: &str, rng: &mut Rng) -> Option<String> {
        let mut spans = Vec::new(); // (start, end, group)
        let mut start = None;
        for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
            match (c.is_alphanumeric(), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    let w = text[s..i].to_lowercase();
                    if let Some(g) = self.0.iter().position(|g| g.contains(&w)) {
                        spans.push((s, i, g));
                    }
                    start = None;
                }
                _ => {}
            }
        }
        if spans.is_empty() {
            return None;
        }
        let (s, e, g) = spans[rng.below(spans.len())];
        let group = &self.0[g];
        let own =
            group.iter().position(|w| *w == text[s..e].to_lowercase()).expect("matched above");
        let other = (own + 1 + rng.below(group.len() - 1)) % group.len();
        Some(format!("{}{}{}", &text[..s], group[other], &text[e..]))
    }
}

/// The swap negatives' hinge (image-to-text): the mean over the rows that have one of
/// max(0, 1 + F(v_i, t'_i) − F(v_i, t_i)), where `own` holds F(v_i, t_i) of those rows and
/// `swapped` F(v_i, t'_i) of their swapped captions.
pub fn swap_loss(own: &Tensor, swapped: &Tensor) -> Tensor {
    (swapped + 1.0 - own).clamp_min(0.0).mean(Kind::Float)
}

pub const FORMAT: &str = "storyvis-text-encoder";
pub const TEXT_WEIGHTS: &str = "text_encoder.safetensors";
pub const IMAGE_WEIGHTS: &str = "image_encoder.safetensors";
pub const MANIFEST: &str = "text_encoder.json";

/// What `train-text-encoder` writes beside the weights (`text_encoder.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderManifest {
    pub format: String,
    pub version: u32,
    pub config: EncoderConfig,
    /// Word encoder: the vocabulary.
    pub vocab: Option<Vec<String>>,
    pub data: String,
    pub steps: usize,
    pub batch: i64,
    pub seed: u64,
    pub hinge: Hinge,
    /// R-precision (1 true + 99 random captions) of held-out images against their first
    /// captions, in the joint space.
    pub held_out_r_precision: f64,
    pub held_out_items: usize,
    /// The swap groups whose hard negatives joined the loss (none: the paper's loss).
    #[serde(default, skip_serializing_if = "SwapGroups::is_empty")]
    pub swaps: SwapGroups,
    /// With swaps: the share of held-out images whose first caption scores above that caption
    /// with one group word swapped (`swap_accuracy`; 0.5 is chance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_swap_accuracy: Option<f64>,
    /// File name → SHA-256.
    pub files: BTreeMap<String, String>,
}

/// Where a text encoder's manifest is: `text_encoder.json` inside a model checkpoint (which
/// carries the encoder), `checkpoint.json` in the directory `train-text-encoder` wrote.
fn manifest_path(dir: &Path) -> PathBuf {
    match dir.join(MANIFEST) {
        p if p.is_file() => p,
        _ => dir.join(checkpoint::MANIFEST),
    }
}

/// The encoder's files as a model checkpoint carries them: (name, bytes), its manifest as
/// `text_encoder.json`.
pub fn encoder_files(dir: &Path) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let read =
        |p: PathBuf| std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()));
    Ok(vec![
        (MANIFEST, read(manifest_path(dir))?),
        (TEXT_WEIGHTS, read(dir.join(TEXT_WEIGHTS))?),
        (IMAGE_WEIGHTS, read(dir.join(IMAGE_WEIGHTS))?),
    ])
}

/// A trained joint embedding: the text encoder and the image encoder it was trained with.
pub struct Joint {
    pub text: TextEncoder,
    pub image: ImageEncoder,
    pub image_vs: nn::VarStore,
    pub manifest: EncoderManifest,
}

impl Joint {
    /// Reads a directory written by `train_text_encoder` (digests checked).
    pub fn load(dir: &Path, device: Device) -> Result<Joint> {
        let path = manifest_path(dir);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (is {} a text encoder made by `storyvis train-text-encoder`?)",
                path.display(),
                dir.display()
            )
        })?;
        let m: EncoderManifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged", path.display()))?;
        ensure!(
            m.format == FORMAT && m.version == 1,
            "{} is not a storyvis text encoder (version 1)",
            path.display()
        );
        checkpoint::check_digests(dir, &m.files)?;
        let vocab = m.vocab.clone().map(Vocab::from_words);
        let mut enc = TextEncoder::new(m.config.clone(), vocab, device)?;
        checkpoint::load_store(&mut enc.vs, &dir.join(TEXT_WEIGHTS))?;
        let mut image_vs = nn::VarStore::new(device);
        let image = ImageEncoder::new(image_vs.root() / "image", m.config.image_size, m.config.dim);
        checkpoint::load_store(&mut image_vs, &dir.join(IMAGE_WEIGHTS))?;
        Ok(Joint { text: enc, image, image_vs, manifest: m })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_range_loop)] // the hand computation reads as the formula
    fn the_joint_embedding_loss_is_the_hand_computed_structured_hinge() {
        // Scores [image][text] for three pairs.
        let s = [[2.0, 1.5, -1.0], [0.5, 0.2, 0.9], [3.0, -2.0, 1.0]];
        let t = Tensor::from_slice(&s.concat()).view([3, 3]);
        let (mut want_v, mut want_t) = (0.0, 0.0);
        for i in 0..3 {
            let worst_text = (0..3)
                .filter(|&j| j != i)
                .map(|j| 1.0 + s[i][j] - s[i][i])
                .fold(f64::MIN, f64::max);
            let worst_image = (0..3)
                .filter(|&j| j != i)
                .map(|j| 1.0 + s[j][i] - s[i][i])
                .fold(f64::MIN, f64::max);
            want_v += worst_text.max(0.0) / 3.0;
            want_t += worst_image.max(0.0) / 3.0;
        }
        // Image 0: max(1 + 1.5 − 2, 1 − 1 − 2) = 0.5; image 1: 1 + 0.9 − 0.2 = 1.7; image 2:
        // 1 + 3 − 1 = 3. Texts: 0: max(1 + 0.5 − 2, 1 + 3 − 2) = 2; 1: 1 + 1.5 − 0.2 = 2.3;
        // 2: max(1 − 1 − 1, 1 + 0.9 − 1) = 0.9.
        assert!(
            (want_v - (0.5 + 1.7 + 3.0) / 3.0).abs() < 1e-12
                && (want_t - (2.0 + 2.3 + 0.9) / 3.0).abs() < 1e-12
        );
        let got = joint_embedding_loss(&t, Hinge::Max).double_value(&[]);
        assert!((got - (want_v + want_t)).abs() < 1e-5, "{got} vs {}", want_v + want_t);
        // The mean form: every mismatch's hinge, averaged over the 6 of each direction.
        let mut want = 0.0;
        for i in 0..3 {
            for j in (0..3).filter(|&j| j != i) {
                want += (1.0 + s[i][j] - s[i][i]).max(0.0) + (1.0 + s[j][i] - s[i][i]).max(0.0);
            }
        }
        let got = joint_embedding_loss(&t, Hinge::Mean).double_value(&[]);
        assert!((got - want / 6.0).abs() < 1e-5, "{got} vs {}", want / 6.0);
        // Well separated pairs cost nothing.
        let good = Tensor::eye(3, (Kind::Float, Device::Cpu)) * 5.0;
        assert_eq!(joint_embedding_loss(&good, Hinge::Max).double_value(&[]), 0.0);
        assert_eq!(joint_embedding_loss(&good, Hinge::Mean).double_value(&[]), 0.0);
    }

    #[test]
    fn characters_map_into_the_alphabet_and_the_char_cnn_rnn_reads_201() {
        let ids = char_ids(&["Ab, é!"], 8);
        let v: Vec<i64> = Vec::try_from(ids.view([-1])).unwrap();
        let pos = |c: char| ALPHABET.chars().position(|x| x == c).unwrap() as i64 + 1;
        assert_eq!(v, vec![pos('a'), pos('b'), pos(','), pos(' '), 0, pos('!'), 0, 0]);
        assert!(
            CharCnnRnn::steps(201) >= 2 && CharCnnRnn::steps(57) == 1 && CharCnnRnn::steps(56) < 1
        );
        let cfg = EncoderConfig {
            kind: EncoderKind::CharCnnRnn,
            dim: 16,
            max_chars: 201,
            word_dim: 8,
            image_size: 64,
        };
        let enc = TextEncoder::new(cfg, None, Device::Cpu).unwrap();
        let e = enc.embed(&["a red cube.", "a blue sphere."]).unwrap();
        assert_eq!(e.size(), [2, 16]);
        assert!(e.get(0).ne_tensor(&e.get(1)).any().int64_value(&[]) == 1);
    }

    fn group(s: &str) -> SwapGroups {
        s.parse().unwrap()
    }

    #[test]
    fn a_swap_changes_exactly_one_group_word_into_another_of_its_group() {
        let g =
            SwapGroups::join(vec![group("cube,sphere,cylinder"), group("Large, small")]).unwrap();
        assert_eq!(g.0, vec![vec!["cube", "sphere", "cylinder"], vec!["large", "small"]]);
        let text = "a large red Cube, left of a small cubed sphere.";
        let mut rng = Rng::new(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let out = g.swap(text, &mut rng).unwrap();
            // Word by word, exactly one differs, and it is another member of the same group.
            let words = |t: &str| t.split(' ').map(str::to_string).collect::<Vec<_>>();
            let (a, b) = (words(text), words(&out));
            assert_eq!(a.len(), b.len(), "{out}");
            let diff: Vec<usize> = (0..a.len()).filter(|&k| a[k] != b[k]).collect();
            assert_eq!(diff.len(), 1, "{out}");
            let k = diff[0];
            let bare = |w: &str| w.trim_end_matches([',', '.']).to_lowercase();
            let (old, new) = (bare(&a[k]), bare(&b[k]));
            assert_ne!(old, new);
            assert!(
                g.0.iter().any(|grp| grp.contains(&old) && grp.contains(&new)),
                "{old} → {new}"
            );
            assert_eq!(a[k].len() - old.len(), b[k].len() - new.len(), "punctuation kept: {out}");
            seen.insert(out);
        }
        // Occurrences: large, Cube, small, sphere ("cubed" is not "cube"); their alternatives:
        // 1 + 2 + 1 + 2 distinct captions, each drawn.
        assert_eq!(seen.len(), 6, "{seen:?}");
        assert_eq!(g.swap("a red metal thing.", &mut rng), None);
        assert_eq!(g.swap("", &mut rng), None);
    }

    #[test]
    fn bad_swap_groups_are_refused() {
        for bad in ["cube", "cube,", "cube,cube", "red cube,sphere", ""] {
            assert!(bad.parse::<SwapGroups>().is_err(), "{bad:?}");
        }
        let e = SwapGroups::join(vec![group("cube,sphere"), group("sphere,cylinder")]).unwrap_err();
        assert!(e.to_string().contains("\"sphere\" is in two swap groups"), "{e}");
    }

    #[test]
    fn the_swap_loss_is_the_hand_computed_hinge() {
        let own = [2.0f64, 0.5, -1.0];
        let swapped = [0.5f64, 1.0, -3.0];
        let want: f64 =
            own.iter().zip(&swapped).map(|(o, s)| (1.0 + s - o).max(0.0)).sum::<f64>() / 3.0;
        let t = |v: &[f64]| Tensor::from_slice(v).to_kind(Kind::Float);
        let got = swap_loss(&t(&own), &t(&swapped)).double_value(&[]);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        assert!((want - (0.0 + 1.5 + 0.0) / 3.0).abs() < 1e-12);
    }
}
