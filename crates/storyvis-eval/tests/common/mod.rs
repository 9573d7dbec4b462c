//! Helpers the scorers' tests share (and the families' tests, through `#[path]`): one test at
//! a time on one thread, a small attribute classifier.
#![allow(dead_code)]

use std::path::Path;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs the calling test alone (they share the machine's 2 cores) on one libtorch thread.
pub fn turn() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    guard
}

/// A small attribute classifier trained for `steps` iterations on `data`, written to `out`.
pub fn tiny_classifier(data: &Path, out: &Path, steps: usize) {
    let req = storyvis_eval::classifier::ClassifierRequest {
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
    storyvis_eval::classifier::train_classifier(&req, &|_, _, _| {}).unwrap();
}
