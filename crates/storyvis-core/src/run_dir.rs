//! Run directories: `runs/NNNNN-<preset>/`, numbered and never reused, holding the
//! resolved config, the vocabulary, `run.json`, `stats.jsonl`, samples and `checkpoints/`.
//!
//! Resuming keeps the record exact: `stats.jsonl` is cut back to the resumed step (a killed run
//! may have logged steps after its last checkpoint, which the resumed run logs again), and
//! resuming from a checkpoint older than the run's newest continues in a new run directory, so
//! that the newer checkpoints and their record are neither overwritten nor mixed in.

use crate::checkpoint;
use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use storyvis_data::atomic;

pub const STATS: &str = "stats.jsonl";
/// The files of a run directory that a fork copies as they are (run.json gains `forked_from`,
/// stats are cut back).
const RUN_FILES: [&str; 2] = ["config.toml", "vocab.json"];

/// A fresh numbered run directory `runs/NNNNN-<preset>`; never reuses a number.
pub fn new_run_dir(runs: &Path, preset: &str) -> Result<PathBuf> {
    atomic::create_dir_all(runs)?;
    let mut next = 0;
    for e in fs::read_dir(runs)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .split('-')
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(|n| n.checked_add(1))
        {
            next = next.max(n);
        }
    }
    loop {
        let dir = runs.join(format!("{next:05}-{preset}"));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                next = next.checked_add(1).context("run numbers are exhausted")?
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
}

/// The newest run directory under `runs` made from `preset` (the highest number).
pub fn latest_run(runs: &Path, preset: &str) -> Result<PathBuf> {
    let mut best: Option<(u32, PathBuf)> = None;
    for e in fs::read_dir(runs).with_context(|| format!("no runs in {}", runs.display()))? {
        let p = e?.path();
        let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if let Some((n, rest)) = name.split_once('-') {
            if let (Ok(n), true) = (n.parse::<u32>(), rest == preset) {
                if best.as_ref().is_none_or(|b| n > b.0) {
                    best = Some((n, p));
                }
            }
        }
    }
    best.map(|b| b.1)
        .with_context(|| format!("no run of preset {preset} under {} to resume", runs.display()))
}

/// Rewrites `stats.jsonl` atomically without the lines logged after `step` (and any line that
/// is not a complete record, as a kill mid-write leaves), and opens it for appending.
pub fn cut_stats(run_dir: &Path, step: usize) -> Result<fs::File> {
    let path = run_dir.join(STATS);
    let text = fs::read_to_string(&path).unwrap_or_default();
    let kept = stats_up_to(&text, step);
    if kept != text {
        atomic::write_file(&path, kept.as_bytes())?;
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// The complete records of `stats.jsonl` text logged at or before `step`.
fn stats_up_to(text: &str, step: usize) -> String {
    text.lines()
        .filter(|l| {
            let v: Option<serde_json::Value> = serde_json::from_str(l).ok();
            v.and_then(|v| v["step"].as_u64()).is_some_and(|s| s as usize <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Starts a new run directory next to `run_dir` that continues from its checkpoint `ckpt`:
/// the run's files, its stats up to the checkpoint's step, and the checkpoint itself (hard
/// links where the filesystem allows, copies otherwise) as the new run's `latest`.
pub fn fork(run_dir: &Path, ckpt: &Path, step: usize, preset: &str) -> Result<PathBuf> {
    let runs = run_dir.parent().context("a run directory has a parent")?;
    let new = new_run_dir(runs, preset)?;
    for f in RUN_FILES {
        let src = run_dir.join(f);
        if src.is_file() {
            let bytes = fs::read(&src).with_context(|| format!("cannot read {}", src.display()))?;
            atomic::write_file(&new.join(f), &bytes)?;
        }
    }
    let info = fs::read_to_string(run_dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    if let Some(mut info) = info {
        info["forked_from"] =
            serde_json::json!({ "run": run_dir.display().to_string(), "step": step });
        atomic::write_file(&new.join("run.json"), serde_json::to_string_pretty(&info)?.as_bytes())?;
    }
    let stats = fs::read_to_string(run_dir.join(STATS)).unwrap_or_default();
    atomic::write_file(&new.join(STATS), stats_up_to(&stats, step).as_bytes())?;
    let dest = new.join("checkpoints").join(checkpoint::step_name(step));
    let stage = atomic::StagedDir::new(&dest, false)?;
    for e in fs::read_dir(ckpt).with_context(|| format!("cannot read {}", ckpt.display()))? {
        let src = e?.path();
        let to = stage.path().join(src.file_name().context("a file name")?);
        if fs::hard_link(&src, &to).is_err() {
            fs::copy(&src, &to).with_context(|| format!("cannot copy {}", src.display()))?;
        }
    }
    stage.commit()?;
    atomic::write_file(
        &new.join("checkpoints").join("latest"),
        checkpoint::step_name(step).as_bytes(),
    )?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_cut_back_to_the_resumed_step() {
        let dir = tempfile::tempdir().unwrap();
        let lines = ["{\"step\":1}", "{\"step\":2}", "{\"step\":3}", "{\"ste"];
        fs::write(dir.path().join(STATS), lines.join("\n")).unwrap();
        use std::io::Write;
        let mut f = cut_stats(dir.path(), 2).unwrap();
        writeln!(f, "{{\"step\":3}}").unwrap();
        drop(f);
        assert_eq!(
            fs::read_to_string(dir.path().join(STATS)).unwrap(),
            "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n"
        );
    }

    #[test]
    fn run_numbers_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = new_run_dir(dir.path(), "p").unwrap();
        fs::create_dir(dir.path().join("00007-other")).unwrap();
        let b = new_run_dir(dir.path(), "p").unwrap();
        assert_eq!(
            (a.file_name().unwrap(), b.file_name().unwrap()),
            ("00000-p".as_ref(), "00008-p".as_ref())
        );
        assert_eq!(latest_run(dir.path(), "p").unwrap(), b);
        assert!(latest_run(dir.path(), "q").is_err());
        // A number at the end of the range is no panic: the next free one is taken.
        fs::create_dir(dir.path().join("4294967295-p")).unwrap();
        assert_eq!(new_run_dir(dir.path(), "p").unwrap().file_name().unwrap(), "00009-p");
    }
}
