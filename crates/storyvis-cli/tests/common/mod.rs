//! Helpers the CLI tests share: run the binary, expect success or a clear error, and a
//! small trained storygan-tiny run.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn storyvis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_storyvis"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("storyvis runs")
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub fn ok(args: &[&str]) -> String {
    let o = storyvis(args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    text(&o)
}

pub fn fails(args: &[&str], want: &str) {
    let o = storyvis(args);
    let t = text(&o);
    assert!(!o.status.success(), "{args:?} succeeded: {t}");
    assert!(t.contains(want), "{args:?}: expected {want:?} in: {t}");
    assert!(!t.contains("panicked"), "{args:?} panicked: {t}");
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A small rendered dataset of `stories` stories in `root/data`.
pub fn small_data(root: &Path, stories: usize) -> PathBuf {
    let data = root.join("data");
    ok(&[
        "prepare",
        "clevr-sv",
        "--out",
        p(&data),
        "--stories",
        &stories.to_string(),
        "--seed",
        "2",
        "--supersample",
        "1",
    ]);
    data
}

/// A small dataset and a storygan-tiny run of a few iterations on it.
pub fn trained(root: &Path) -> (PathBuf, PathBuf) {
    let data = small_data(root, 8);
    let runs = root.join("runs");
    let out = ok(&[
        "train",
        "--preset",
        "storygan-tiny",
        "--data",
        p(&data),
        "--runs",
        p(&runs),
        "--set",
        "max_steps=4",
        "--set",
        "checkpoint_every=2",
    ]);
    assert!(out.contains("trained at step 4 (4 iterations run)"), "{out}");
    (data, runs.join("00000-storygan-tiny"))
}

/// IDX bytes (unsigned bytes) of the given dimensions and values.
pub fn idx(dims: &[u32], values: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(values);
    b
}

/// MNIST-format training files of `per` made-up digits a class: class c is a bar at column
/// 2c + 4 (any 28×28 grey levels will do for the pipeline).
pub fn write_mnist(dir: &Path, per: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for c in 0..10u8 {
        for k in 0..per {
            let mut d = [0u8; 784];
            for r in 4..24 {
                d[r * 28 + 2 * c as usize + 4] = 255 - k as u8;
            }
            pixels.extend(d);
            labels.push(c);
        }
    }
    let n = labels.len() as u32;
    std::fs::write(dir.join("train-images-idx3-ubyte"), idx(&[n, 28, 28], &pixels)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(&[n], &labels)).unwrap();
}
