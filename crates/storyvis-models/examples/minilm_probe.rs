//! How far frozen all-MiniLM-L6-v2 features carry a CLEVR-SV sentence's new object into words
//! the training never used: probes trained on the standard wording of a training set, scored
//! on held-out sentences in the standard and the paraphrased wording (`prepare clevr-sv
//! --phrasing paraphrase`). The labels are the first-named object's size, colour, material and
//! shape, read from the words (both wordings name the new object first).
//!
//! Features: the pooled sentence embedding (what `text_pool = "mean"` reads), under a linear
//! probe and under an MLP; and MiniLM's last token states under the attention pooling of
//! `text_pool = "attention"` (`TokenAttention`, one query per attribute) with a linear probe.
//!
//! cargo run --release -p storyvis-models --example minilm_probe -- TRAIN STANDARD PARAPHRASE
//! (RESULTS.md, "Words a story model never trained on", gives the command and its output.)

use anyhow::{Context, Result};
use std::collections::BTreeSet;
use storyvis_core::minilm::{MiniLm, DIM};
use storyvis_models::storygan::generator::TokenAttention;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// Per attribute, its classes, each as (standard word, paraphrase word).
const ATTRIBUTES: [(&str, &[(&str, &str)]); 4] = [
    ("size", &[("large", "big"), ("small", "tiny")]),
    (
        "colour",
        &[
            ("gray", "gray"),
            ("red", "red"),
            ("blue", "blue"),
            ("green", "green"),
            ("brown", "brown"),
            ("purple", "purple"),
            ("cyan", "cyan"),
            ("yellow", "yellow"),
        ],
    ),
    ("material", &[("rubber", "matte"), ("metal", "shiny")]),
    ("shape", &[("cube", "block"), ("sphere", "ball"), ("cylinder", "tube")]),
];
const STEPS: usize = 3000;
const BATCH: i64 = 128;

/// The first-named object's class of each attribute, if the sentence names all four.
fn labels(sentence: &str) -> Option<[i64; 4]> {
    let words: Vec<&str> = sentence.split(|c: char| !c.is_alphanumeric()).collect();
    let mut out = [0; 4];
    for (slot, (_, classes)) in out.iter_mut().zip(ATTRIBUTES) {
        let class = |w: &str| classes.iter().position(|(a, b)| *a == w || *b == w);
        *slot = words.iter().find_map(|w| class(w))? as i64;
    }
    Some(out)
}

/// Up to `limit` distinct sentences of the dataset at `dir` that name all four attributes,
/// with their labels [N, 4].
fn sentences(dir: &str, limit: usize) -> Result<(Vec<String>, Tensor)> {
    let ds = storyvis_data::dataset::Dataset::open(std::path::Path::new(dir))
        .with_context(|| format!("opening {dir}"))?;
    let all: BTreeSet<&str> =
        ds.stories.iter().flat_map(|s| s.frames.iter().map(|f| f.sentence.as_str())).collect();
    let kept: Vec<String> =
        all.into_iter().filter(|s| labels(s).is_some()).take(limit).map(String::from).collect();
    let y: Vec<i64> = kept.iter().flat_map(|s| labels(s).unwrap()).collect();
    Ok((kept, Tensor::from_slice(&y).view([-1, 4])))
}

/// A set's features: the pooled embeddings [N, 384], the last token states [N, L, 384] and
/// their mask [N, L], and the labels.
struct Set {
    pooled: Tensor,
    states: Tensor,
    mask: Tensor,
    y: Tensor,
}

fn features(m: &MiniLm, dir: &str, limit: usize) -> Result<Set> {
    let (s, y) = sentences(dir, limit)?;
    let refs: Vec<&str> = s.iter().map(String::as_str).collect();
    let (ids, _) = m.ids(&refs)?;
    let (mut states, mut masks) = (Vec::new(), Vec::new());
    for chunk in ids.split(256, 0) {
        let (h, mask) = tch::no_grad(|| m.states(&chunk));
        states.push(h);
        masks.push(mask);
    }
    eprintln!("{dir}: {} sentences", s.len());
    Ok(Set {
        pooled: m.embed(&refs)?,
        states: Tensor::cat(&states, 0),
        mask: Tensor::cat(&masks, 0),
        y,
    })
}

/// Trains `logits(set, rows, attribute)` (its variables in `vs`) with Adam on `train`; returns
/// each attribute's accuracy on each of `tests`.
fn probe(
    vs: &nn::VarStore,
    train: &Set,
    tests: &[&Set],
    logits: &dyn Fn(&Set, &Tensor, usize) -> Tensor,
) -> Result<Vec<Vec<f64>>> {
    let mut opt = nn::Adam::default().build(vs, 2e-3)?;
    let n = train.y.size()[0];
    for _ in 0..STEPS {
        let rows = Tensor::randint(n, [BATCH], (Kind::Int64, Device::Cpu));
        let y = train.y.index_select(0, &rows);
        let loss = (0..ATTRIBUTES.len())
            .map(|a| logits(train, &rows, a).cross_entropy_for_logits(&y.select(1, a as i64)))
            .fold(Tensor::from(0f32), |l, x| l + x);
        opt.backward_step(&loss);
    }
    Ok(tests
        .iter()
        .map(|set| {
            let rows = Tensor::arange(set.y.size()[0], (Kind::Int64, Device::Cpu));
            (0..ATTRIBUTES.len())
                .map(|a| {
                    let guess = tch::no_grad(|| logits(set, &rows, a)).argmax(1, false);
                    guess
                        .eq_tensor(&set.y.select(1, a as i64))
                        .to_kind(Kind::Double)
                        .mean(Kind::Double)
                        .double_value(&[])
                })
                .collect()
        })
        .collect())
}

fn main() -> Result<()> {
    storyvis_models::install();
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() == 3,
        "usage: minilm_probe TRAIN STANDARD PARAPHRASE (dataset directories)"
    );
    tch::manual_seed(0);
    let m = MiniLm::load_default(Device::Cpu)?;
    let train = features(&m, &args[0], 8000)?;
    let tests = [features(&m, &args[1], 4000)?, features(&m, &args[2], 4000)?];
    let tests = [&tests[0], &tests[1]];
    let classes = |a: usize| ATTRIBUTES[a].1.len() as i64;
    let mut rows = Vec::new();

    let vs = nn::VarStore::new(Device::Cpu);
    let heads: Vec<nn::Linear> =
        (0..4).map(|a| nn::linear(vs.root() / a, DIM, classes(a), Default::default())).collect();
    rows.push((
        "pooled embedding, linear",
        probe(&vs, &train, &tests, &|s, r, a| heads[a].forward(&s.pooled.index_select(0, r)))?,
    ));

    let vs = nn::VarStore::new(Device::Cpu);
    let mlps: Vec<nn::Sequential> = (0..4)
        .map(|a| {
            let p = vs.root() / a;
            nn::seq()
                .add(nn::linear(&p / "a", DIM, 96, Default::default()))
                .add_fn(|x| x.relu())
                .add(nn::linear(&p / "b", 96, classes(a), Default::default()))
        })
        .collect();
    rows.push((
        "pooled embedding, MLP (96 hidden)",
        probe(&vs, &train, &tests, &|s, r, a| mlps[a].forward(&s.pooled.index_select(0, r)))?,
    ));

    let vs = nn::VarStore::new(Device::Cpu);
    let pools: Vec<TokenAttention> =
        (0..4).map(|a| TokenAttention::new(vs.root() / a, 1, DIM, classes(a))).collect();
    rows.push((
        "token states, attention + linear",
        probe(&vs, &train, &tests, &|s, r, a| {
            pools[a].forward(&s.states.index_select(0, r), &s.mask.index_select(0, r))
        })?,
    ));

    println!("| features, probe | wording | size | colour | material | shape |\n|---|---|---:|---:|---:|---:|");
    for (name, accs) in rows {
        for (wording, acc) in ["standard", "paraphrase"].iter().zip(accs) {
            println!(
                "| {name} | {wording} | {} |",
                acc.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(" | ")
            );
        }
    }
    Ok(())
}
