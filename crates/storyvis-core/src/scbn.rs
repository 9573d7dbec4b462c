//! Semantic-conditioned batch normalisation (SCBN; Yin et al., SDGAN, CVPR 2019, §3.3): batch
//! norm whose scale and shift are predicted from the text, BN(x | e) = γ(e) · (x − μ(x)) / σ(x)
//! + β(e), at two levels:
//! - sentence level: γ(e), β(e) from the sentence embedding ē by linear maps, one per channel
//!   (eq. 7: γ_c = γ + λ_γ(ē), β_c = β + λ_β(ē));
//! - word level: per spatial region j, the visual-semantic embedding vse_j = Σ_t a_jt f(w_t) of
//!   the word features w_t, with attention a_jt = softmax_t(v_j · f(w_t)) (eq. 8–9; f a
//!   perceptron that maps words into the image features' space), and γ, β from vse_j by 1×1
//!   convolutions: a scale and shift per channel and position.
//!
//! With SCBN off, `CondNorm` is the plain batch norm StackGAN's generators use.

use crate::nn::{bn2d, linear, BatchNorm};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

/// Which text cues the generator's batch norms take (the SDGAN ablation's switch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scbn {
    /// Plain batch norm (StackGAN).
    None,
    Sentence,
    Word,
    /// Sentence- and word-level shifts added together.
    Both,
}

impl Scbn {
    fn sentence(self) -> bool {
        matches!(self, Scbn::Sentence | Scbn::Both)
    }
    fn word(self) -> bool {
        matches!(self, Scbn::Word | Scbn::Both)
    }
}

/// What the generator's norms read: the sentence condition [B, c] and, for word-level SCBN,
/// word features [B, T, D] with their mask [B, T] (true at a word).
pub struct Cond<'a> {
    pub sentence: &'a Tensor,
    pub words: Option<(&'a Tensor, &'a Tensor)>,
}

/// Word-level attention (SDGAN eq. 8): f(w_t) = W w_t maps words to the C channels of the
/// visual features v; each region j attends over the words with a_jt = softmax_t(v_j · f(w_t)).
#[derive(Debug)]
pub struct WordAttention {
    f: nn::Linear,
}

impl WordAttention {
    pub fn new(p: nn::Path, word_dim: i64, channels: i64) -> WordAttention {
        WordAttention { f: linear(p / "f", word_dim, channels, false) }
    }

    /// v [B, C, H, W], words [B, T, D], mask [B, T] → (vse [B, C, H, W], weights [B, H·W, T];
    /// each region's weights sum to 1, masked words get 0).
    pub fn forward(&self, v: &Tensor, words: &Tensor, mask: &Tensor) -> (Tensor, Tensor) {
        let (b, c, h, w) = v.size4().expect("[B, C, H, W]");
        let fw = self.f.forward(words); // [B, T, C]
        let regions = v.flatten(2, 3).transpose(1, 2); // [B, HW, C]
        let scores = regions.bmm(&fw.transpose(1, 2)); // [B, HW, T]
        let scores = scores.masked_fill(&mask.logical_not().unsqueeze(1), f64::NEG_INFINITY);
        let a = scores.softmax(-1, Kind::Float);
        let vse = a.bmm(&fw).transpose(1, 2).reshape([b, c, h, w]);
        (vse, a)
    }
}

/// A generator's batch norm: plain, or semantic-conditioned.
#[derive(Debug)]
pub struct CondNorm {
    bn: BatchNorm,
    /// Sentence level: ē → Δγ, Δβ [C].
    sentence: Option<(nn::Linear, nn::Linear)>,
    /// Word level: attention, then vse → Δγ, Δβ by 1×1 convolutions.
    word: Option<(WordAttention, nn::Conv2D, nn::Conv2D)>,
}

impl CondNorm {
    /// Over `channels`, reading a sentence condition of `cond_dim` and words of `word_dim`.
    pub fn new(p: nn::Path, channels: i64, mode: Scbn, cond_dim: i64, word_dim: i64) -> CondNorm {
        let conv1 = |name: &str| crate::nn::conv(&p / name, channels, channels, 1, 1, 0);
        CondNorm {
            bn: bn2d(&p / "bn", channels),
            sentence: mode.sentence().then(|| {
                (
                    linear(&p / "sentence_gamma", cond_dim, channels, true),
                    linear(&p / "sentence_beta", cond_dim, channels, true),
                )
            }),
            word: mode.word().then(|| {
                (
                    WordAttention::new(&p / "attention", word_dim, channels),
                    conv1("word_gamma"),
                    conv1("word_beta"),
                )
            }),
        }
    }

    /// x [B, C, H, W] → the same shape.
    pub fn forward_t(&self, x: &Tensor, cond: &Cond, train: bool) -> Tensor {
        if self.sentence.is_none() && self.word.is_none() {
            return self.bn.forward_t(x, train);
        }
        let c = x.size()[1];
        // The predicted shifts of γ and β (added to new tensors: γ and β are the layer's own).
        let mut shifts: Vec<(Tensor, Tensor)> = Vec::new();
        if let Some((lg, lb)) = &self.sentence {
            shifts.push((
                lg.forward(cond.sentence).view([-1, c, 1, 1]),
                lb.forward(cond.sentence).view([-1, c, 1, 1]),
            ));
        }
        if let Some((att, cg, cb)) = &self.word {
            let (words, mask) = cond.words.expect("word-level SCBN reads word features");
            let (vse, _) = att.forward(x, words, mask);
            shifts.push((cg.forward(&vse), cb.forward(&vse)));
        }
        let (g, b) = self.bn.affine();
        let gamma = shifts.iter().fold(g.view([1, c, 1, 1]), |acc, (dg, _)| acc + dg);
        let beta = shifts.iter().fold(b.view([1, c, 1, 1]), |acc, (_, db)| acc + db);
        self.bn.normalise(x, train) * gamma + beta
    }
}

#[cfg(test)]
mod tests;
