//! Helpers the text-to-image tests share: one test at a time on one thread, a training run on
//! the loop, a safetensors file's tensors by name.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::AtomicBool;
use storyvis::config::Config;
use storyvis::precision::Runtime;
use storyvis::train::{train, Outcome, Start, TrainRequest};
use tch::Tensor;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs the calling test alone (they share the machine's 2 cores) on one libtorch thread.
pub fn turn() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    guard
}

/// Trains `config` on `data` from `start` on the CPU.
pub fn run(config: Config, data: &Path, start: Start) -> anyhow::Result<Outcome> {
    let stop = AtomicBool::new(false);
    let overrides = vec![format!("max_steps={}", config.run.max_steps)];
    train(TrainRequest { config, overrides, data: data.to_path_buf(), start, runtime: Runtime::cpu() }, &|_, _, _| {}, &stop)
}

/// A safetensors file's tensors, sorted by name.
pub fn tensors(path: &Path) -> Vec<(String, Tensor)> {
    let mut v = Tensor::read_safetensors(path).unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A small attribute classifier trained for `steps` iterations on `data`, written to `out`.
pub fn tiny_classifier(data: &Path, out: &Path, steps: usize) {
    let req = storyvis::classifier::ClassifierRequest {
        data: data.to_path_buf(),
        out: out.to_path_buf(),
        steps,
        batch: 8,
        lr: 1e-3,
        seed: 0,
        device: tch::Device::Cpu,
        force: false,
        widths: vec![8, 8, 16, 16],
    };
    storyvis::classifier::train_classifier(&req, &|_, _, _| {}).unwrap();
}

/// A joint-embedding text encoder of `kind` trained for `steps` steps on `data` (16-wide
/// embeddings, 8-wide words; MiniLM's own 384), saved at `out`.
pub fn tiny_text_encoder(data: &Path, out: &Path, kind: storyvis::joint::EncoderKind, steps: usize) -> storyvis::joint::EncoderManifest {
    tiny_text_encoder_with(data, out, kind, steps, Default::default()).unwrap()
}

/// `tiny_text_encoder` with swap negatives (`train-text-encoder --swap`).
pub fn tiny_text_encoder_with(
    data: &Path,
    out: &Path,
    kind: storyvis::joint::EncoderKind,
    steps: usize,
    swaps: storyvis::joint::SwapGroups,
) -> anyhow::Result<storyvis::joint::EncoderManifest> {
    let req = storyvis::joint::EncoderRequest {
        data: data.to_path_buf(),
        out: out.to_path_buf(),
        kind,
        dim: if kind == storyvis::joint::EncoderKind::Minilm { storyvis::minilm::DIM } else { 16 },
        max_chars: 201,
        word_dim: 8,
        steps,
        batch: 8,
        lr: 1e-3,
        seed: 0,
        hinge: storyvis::joint::Hinge::Max,
        swaps,
        device: tch::Device::Cpu,
        force: false,
    };
    storyvis::joint::train_text_encoder(&req, &|_, _, _| {})
}
