//! Text: a vocabulary built from the training sentences, and the learned sentence encoder
//! (word embeddings and a bidirectional GRU, trained with the GAN).

use crate::nn::{recurrent_linear, GruCell};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

pub const PAD: i64 = 0;
pub const UNK: i64 = 1;
/// Longest sentence, in words, that the encoder reads.
pub const MAX_WORDS: usize = 48;

/// Lower-cased words: runs of letters and digits; punctuation separates and is dropped.
pub fn tokenize(sentence: &str) -> Vec<String> {
    sentence
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vocab {
    /// Index 0 is padding, 1 unknown; then words by decreasing frequency, ties alphabetical.
    pub words: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, i64>,
}

/// A sentence as word ids, with the words the vocabulary lacks.
#[derive(Debug, PartialEq)]
pub struct Encoded {
    pub ids: Vec<i64>,
    pub unknown: Vec<String>,
}

/// The file a model's vocabulary is saved in, beside its config in runs and checkpoints.
pub const VOCAB: &str = "vocab.json";

/// The vocabulary saved beside a checkpoint's config.
pub fn load_vocab(dir: &std::path::Path) -> Result<Vocab> {
    let path = dir.join(VOCAB);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Vocab::load_json(&text).with_context(|| format!("in {}", path.display()))
}

impl Vocab {
    /// The words themselves (without padding and the unknown token).
    pub fn known(&self) -> Vec<String> {
        self.words.iter().skip(2).cloned().collect()
    }

    pub fn build<'a>(sentences: impl Iterator<Item = &'a str>) -> Vocab {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for s in sentences {
            for w in tokenize(s) {
                *counts.entry(w).or_default() += 1;
            }
        }
        let mut by_freq: Vec<(String, usize)> = counts.into_iter().collect();
        by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let words = ["<pad>", "<unk>"]
            .iter()
            .map(|s| s.to_string())
            .chain(by_freq.into_iter().map(|(w, _)| w))
            .collect();
        Vocab::from_words(words)
    }

    pub fn from_words(words: Vec<String>) -> Vocab {
        let index = words.iter().enumerate().map(|(i, w)| (w.clone(), i as i64)).collect();
        Vocab { words, index }
    }

    pub fn len(&self) -> i64 {
        self.words.len() as i64
    }

    pub fn is_empty(&self) -> bool {
        self.words.len() <= 2
    }

    pub fn encode(&self, sentence: &str) -> Encoded {
        let mut ids = Vec::new();
        let mut unknown = Vec::new();
        for w in tokenize(sentence) {
            match self.index.get(&w) {
                Some(&i) => ids.push(i),
                None => {
                    ids.push(UNK);
                    unknown.push(w);
                }
            }
        }
        Encoded { ids, unknown }
    }

    /// Sentences → a padded id tensor [N, max_len] (max_len ≥ 1). Sentences longer than
    /// MAX_WORDS are an error.
    pub fn batch(&self, sentences: &[&str]) -> Result<Tensor> {
        let enc: Vec<Vec<i64>> = sentences.iter().map(|s| self.encode(s).ids).collect();
        let len = enc.iter().map(Vec::len).max().unwrap_or(1).max(1);
        ensure!(len <= MAX_WORDS, "a sentence has {len} words; at most {MAX_WORDS} are allowed");
        let mut flat = vec![PAD; enc.len() * len];
        for (i, e) in enc.iter().enumerate() {
            flat[i * len..i * len + e.len()].copy_from_slice(e);
        }
        Ok(Tensor::from_slice(&flat).view([enc.len() as i64, len as i64]))
    }

    pub fn save_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("vocab serialises")
    }

    pub fn load_json(text: &str) -> Result<Vocab> {
        let v: Vocab = serde_json::from_str(text).context("vocab.json is not a vocabulary")?;
        if v.words.len() < 2 || v.words[0] != "<pad>" || v.words[1] != "<unk>" {
            bail!("vocab.json must start with <pad>, <unk>");
        }
        Ok(Vocab::from_words(v.words))
    }
}

/// Embedding + bidirectional GRU; the sentence vector is a projection of both directions'
/// final states (padding positions leave the state unchanged).
#[derive(Debug)]
pub struct SentenceEncoder {
    embed: nn::Embedding,
    forward_gru: GruCell,
    backward_gru: GruCell,
    out: nn::Linear,
}

impl SentenceEncoder {
    pub fn new(p: nn::Path, vocab: i64, word_dim: i64, dim: i64) -> SentenceEncoder {
        SentenceEncoder {
            embed: nn::embedding(
                &p / "embed",
                vocab,
                word_dim,
                nn::EmbeddingConfig {
                    ws_init: nn::Init::Randn { mean: 0.0, stdev: 1.0 },
                    ..Default::default()
                },
            ),
            forward_gru: GruCell::new(&p / "forward", word_dim, dim),
            backward_gru: GruCell::new(&p / "backward", word_dim, dim),
            out: recurrent_linear(&p / "out", 2 * dim, dim, true),
        }
    }

    /// ids [N, L] (right-padded) → [N, dim]: a GRU reads each sentence forwards and one
    /// backwards, skipping padding; their last states, joined, go through a linear layer and
    /// tanh. Each direction is one libtorch RNN call over the whole batch: the backward one
    /// reads every sentence reversed in place (padding stays at the end), and each state is
    /// taken at its sentence's last word.
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        let (hf, hb) = self.directions(ids, true);
        self.out.forward(&Tensor::cat(&[hf, hb], 1)).tanh()
    }

    /// ids [N, L] → each word's states of both directions, joined: [N, L, 2·dim] (padding
    /// positions hold what the GRUs leave there; mask them).
    pub fn states(&self, ids: &Tensor) -> Tensor {
        let (hf, hb) = self.directions(ids, false);
        Tensor::cat(&[hf, hb], 2)
    }

    /// The forward and backward GRUs' states: at each sentence's end ([N, dim] each, `last`), or
    /// at every word in reading order ([N, L, dim] each).
    fn directions(&self, ids: &Tensor, last_only: bool) -> (Tensor, Tensor) {
        let (n, l) = (ids.size()[0], ids.size()[1]);
        let words = self.embed.forward(ids); // [N, L, word_dim]
        let lengths = ids.ne(PAD).sum_dim_intlist(1, false, Kind::Int64); // [N]
        let d = self.forward_gru.hidden_dim;
        let h0 = Tensor::zeros([n, d], (Kind::Float, ids.device()));
        // Position p of the reversed sentence reads word len−1−p (p < len), else itself.
        let pos = Tensor::arange(l, (Kind::Int64, ids.device())).unsqueeze(0);
        let len = lengths.unsqueeze(1);
        let reversed = (&len - 1 - &pos).where_self(&pos.lt_tensor(&len), &pos); // [N, L]
        let words_rev =
            words.gather(1, &reversed.unsqueeze(-1).expand([n, l, words.size()[2]], false), false);
        let last = |states: Tensor| -> Tensor {
            let at = (&lengths - 1).clamp_min(0).view([n, 1, 1]).expand([n, 1, d], false);
            // A sentence without words keeps the zero state.
            states.gather(1, &at, false).squeeze_dim(1)
                * lengths.gt(0).to_kind(Kind::Float).unsqueeze(1)
        };
        let hf = self.forward_gru.sequence(&words, &h0);
        let hb = self.backward_gru.sequence(&words_rev, &h0);
        if last_only {
            return (last(hf), last(hb));
        }
        // The backward states back in reading order (the reversal is its own inverse).
        let back = hb.gather(1, &reversed.unsqueeze(-1).expand([n, l, d], false), false);
        (hf, back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// The encoder as a naive loop: one cell step per word and direction, padding skipped by
    /// masking.
    fn encode_by_steps(enc: &SentenceEncoder, ids: &Tensor) -> Tensor {
        let (n, l) = (ids.size()[0], ids.size()[1]);
        let words = enc.embed.forward(ids);
        let mask = ids.ne(PAD).to_kind(Kind::Float).unsqueeze(-1);
        let zeros = Tensor::zeros([n, enc.forward_gru.hidden_dim], (Kind::Float, ids.device()));
        let (mut hf, mut hb) = (zeros.shallow_clone(), zeros);
        for t in 0..l {
            let m = mask.select(1, t);
            hf = &m * enc.forward_gru.step(&words.select(1, t), &hf) + (1.0 - &m) * &hf;
            let (tb, mb) = (l - 1 - t, mask.select(1, l - 1 - t));
            hb = &mb * enc.backward_gru.step(&words.select(1, tb), &hb) + (1.0 - &mb) * &hb;
        }
        enc.out.forward(&Tensor::cat(&[hf, hb], 1)).tanh()
    }

    #[test]
    fn sentence_encoder_equals_the_step_by_step_loop() {
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = SentenceEncoder::new(vs.root(), 12, 5, 7);
        // Sentences of 1 to 6 words, right-padded, plus one of padding only.
        let ids = Tensor::from_slice(&[
            3i64, 4, 5, 6, 7, 8, 2, 9, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 10, 3,
            4, 5, 0,
        ])
        .view([5, 6]);
        let got = enc.forward(&ids);
        let want = encode_by_steps(&enc, &ids);
        let err = (&got - &want).abs().max().double_value(&[]);
        assert!(err < 1e-6, "max difference {err}");
        // And the gradients agree.
        let (g1, g2) = (got.sum(Kind::Float), want.sum(Kind::Float));
        let w = enc.embed.ws.shallow_clone();
        let a = Tensor::run_backward(&[g1], &[&w], false, false).remove(0);
        let b = Tensor::run_backward(&[g2], &[&w], false, false).remove(0);
        assert!((a - b).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn tokenize_and_vocab() {
        assert_eq!(tokenize("Next, a LARGE red cube."), ["next", "a", "large", "red", "cube"]);
        let v = Vocab::build(["a red cube.", "a blue cube", "a red sphere"].into_iter());
        assert_eq!(&v.words[..4], ["<pad>", "<unk>", "a", "cube"]);
        let e = v.encode("a purple cube");
        assert_eq!(e.unknown, ["purple"]);
        assert_eq!(e.ids[1], UNK);
        let back = Vocab::load_json(&v.save_json()).unwrap();
        assert_eq!(back.encode("a red cube"), v.encode("a red cube"));
        let t = v.batch(&["a red cube", "cube"]).unwrap();
        assert_eq!(t.size(), [2, 3]);
        assert_eq!(t.int64_value(&[1, 1]), PAD);
        let long = "a ".repeat(MAX_WORDS + 1);
        assert!(v.batch(&[long.as_str()]).is_err());
        assert!(Vocab::load_json("{\"words\":[\"x\"]}").is_err());
    }

    #[test]
    fn padding_does_not_change_the_encoding() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = SentenceEncoder::new(vs.root(), 10, 4, 6);
        let short = Tensor::from_slice(&[3i64, 4, 5]).view([1, 3]);
        let padded = Tensor::from_slice(&[3i64, 4, 5, PAD, PAD]).view([1, 5]);
        let d = (enc.forward(&short) - enc.forward(&padded)).abs().max().double_value(&[]);
        assert!(d < 1e-6, "{d}");
    }
}
