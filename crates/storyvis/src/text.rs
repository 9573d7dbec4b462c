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

impl Vocab {
    pub fn build<'a>(sentences: impl Iterator<Item = &'a str>) -> Vocab {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for s in sentences {
            for w in tokenize(s) {
                *counts.entry(w).or_default() += 1;
            }
        }
        let mut by_freq: Vec<(String, usize)> = counts.into_iter().collect();
        by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let words = ["<pad>", "<unk>"].iter().map(|s| s.to_string()).chain(by_freq.into_iter().map(|(w, _)| w)).collect();
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
            embed: nn::embedding(&p / "embed", vocab, word_dim, nn::EmbeddingConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: 1.0 }, ..Default::default() }),
            forward_gru: GruCell::new(&p / "forward", word_dim, dim),
            backward_gru: GruCell::new(&p / "backward", word_dim, dim),
            out: recurrent_linear(&p / "out", 2 * dim, dim, true),
        }
    }

    /// ids [N, L] → [N, dim].
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        let (n, l) = (ids.size()[0], ids.size()[1]);
        let words = self.embed.forward(ids); // [N, L, word_dim]
        let mask = ids.ne(PAD).to_kind(Kind::Float).unsqueeze(-1); // [N, L, 1]
        let d = self.forward_gru.hidden_dim;
        let zeros = Tensor::zeros([n, d], (Kind::Float, ids.device()));
        let (mut hf, mut hb) = (zeros.shallow_clone(), zeros);
        for t in 0..l {
            let m = mask.select(1, t);
            hf = &m * self.forward_gru.step(&words.select(1, t), &hf) + (1.0 - &m) * &hf;
            let tb = l - 1 - t;
            let mb = mask.select(1, tb);
            hb = &mb * self.backward_gru.step(&words.select(1, tb), &hb) + (1.0 - &mb) * &hb;
        }
        self.out.forward(&Tensor::cat(&[hf, hb], 1)).tanh()
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

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
