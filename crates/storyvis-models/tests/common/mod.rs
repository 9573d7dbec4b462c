//! Helpers the text-to-image tests share: one test at a time on one thread, a training run on
//! the loop, a safetensors file's tensors by name.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::AtomicBool;
use storyvis_core::config::Config;
use storyvis_core::precision::Runtime;
use storyvis_core::train::{train, Outcome, Start, TrainRequest};
use tch::Tensor;

pub mod toy;

#[path = "../../../storyvis-eval/tests/common/mod.rs"]
mod scorers;
#[allow(unused_imports)]
pub use scorers::tiny_classifier;

/// Runs the calling test alone (they share the machine's 2 cores) on one libtorch thread, with
/// storyvis' families registered.
pub fn turn() -> std::sync::MutexGuard<'static, ()> {
    storyvis_models::install();
    scorers::turn()
}

/// Trains `config` on `data` from `start` on the CPU.
pub fn run(config: Config, data: &Path, start: Start) -> anyhow::Result<Outcome> {
    let stop = AtomicBool::new(false);
    let overrides = vec![format!("max_steps={}", config.run.max_steps)];
    train(
        TrainRequest {
            config,
            overrides,
            data: data.to_path_buf(),
            start,
            runtime: Runtime::cpu(),
            group: None,
        },
        &|_, _, _| {},
        &stop,
    )
}

/// A safetensors file's tensors, sorted by name.
pub fn tensors(path: &Path) -> Vec<(String, Tensor)> {
    let mut v = Tensor::read_safetensors(path).unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A joint-embedding text encoder of `kind` trained for `steps` steps on `data` (16-wide
/// embeddings, 8-wide words; MiniLM's own 384), saved at `out`.
pub fn tiny_text_encoder(
    data: &Path,
    out: &Path,
    kind: storyvis_core::joint::EncoderKind,
    steps: usize,
) -> storyvis_core::joint::EncoderManifest {
    tiny_text_encoder_with(data, out, kind, steps, Default::default()).unwrap()
}

/// `tiny_text_encoder` with swap negatives (`train-text-encoder --swap`).
pub fn tiny_text_encoder_with(
    data: &Path,
    out: &Path,
    kind: storyvis_core::joint::EncoderKind,
    steps: usize,
    swaps: storyvis_core::joint::SwapGroups,
) -> anyhow::Result<storyvis_core::joint::EncoderManifest> {
    let req = storyvis_models::encoder_training::EncoderRequest {
        data: data.to_path_buf(),
        out: out.to_path_buf(),
        kind,
        dim: if kind == storyvis_core::joint::EncoderKind::Minilm {
            storyvis_core::minilm::DIM
        } else {
            16
        },
        max_chars: 201,
        word_dim: 8,
        steps,
        batch: 8,
        lr: 1e-3,
        seed: 0,
        hinge: storyvis_core::joint::Hinge::Max,
        swaps,
        device: tch::Device::Cpu,
        force: false,
    };
    storyvis_models::encoder_training::train_text_encoder(&req, &|_, _, _| {})
}
