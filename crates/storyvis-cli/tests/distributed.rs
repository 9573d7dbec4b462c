//! Multi-process training through the binary: `train --nproc 2` (gloo on loopback) trains and
//! resumes in one run directory, the torchrun environment is read, and a rank that is killed
//! ends the run with an error naming it, leaving only whole checkpoints.

mod common;

use common::{fails, ok, p, small_data, storyvis, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run_dirs(runs: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(runs).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    v.sort();
    v
}

/// The steps `stats.jsonl` records.
fn logged_steps(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("stats.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect()
}

/// `storyvis train --preset storygan-tiny --data DATA --runs RUNS` and `extra`.
fn tiny<'a>(data: &'a Path, runs: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--preset", "storygan-tiny", "--data", p(data), "--runs", p(runs)];
    args.extend(extra);
    args
}

#[test]
fn two_processes_train_and_resume_in_one_run_directory() {
    let root = tempfile::tempdir().unwrap();
    let data = small_data(root.path(), 8);
    let runs = root.path().join("runs");
    let train = |extra: &[&str]| ok(&tiny(&data, &runs, extra));
    let out = train(&["--nproc", "2", "--set", "max_steps=6", "--set", "log_every=2"]);
    assert!(out.contains("training as 2 processes"), "{out}");
    assert!(out.contains("trained at step 6"), "{out}");
    // Rank 0 alone reports and writes.
    assert_eq!(out.matches("trained at step").count(), 1, "{out}");
    let dirs = run_dirs(&runs);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert!(dirs[0].join("checkpoints/step-0000006/checkpoint.json").is_file());
    assert_eq!(logged_steps(&dirs[0]), vec![2, 4, 6]);

    let out = train(&["--nproc", "2", "--resume", "latest", "--set", "max_steps=8"]);
    assert!(out.contains("trained at step 8 (2 iterations run, resumed at step 6)"), "{out}");
    assert_eq!(run_dirs(&runs), dirs, "the resumed run continues in its own directory");
    assert_eq!(logged_steps(&dirs[0]), vec![2, 4, 6, 8]);
    // And with another number of processes (one: no group at all).
    let out = train(&["--resume", "latest", "--set", "max_steps=10"]);
    assert!(out.contains("trained at step 10"), "{out}");
    assert_eq!(run_dirs(&runs), dirs);

    // A batch that does not split is refused before any run directory is made.
    let runs3 = root.path().join("runs3");
    fails(
        &tiny(&data, &runs3, &["--nproc", "3"]),
        "story_batch = 4 does not split across 3 processes",
    );
    assert!(run_dirs(&runs3).is_empty());
    fails(&tiny(&data, &runs3, &["--nproc", "0"]), "--nproc 0");
    fails(&tiny(&data, &runs3, &["--dist-backend", "mpi"]), "unknown distributed backend \"mpi\"");
}

/// The ranks started by hand with torchrun's variables, as torchrun (or a cluster's launcher)
/// starts them: they meet at MASTER_ADDR:MASTER_PORT and train as one run.
#[test]
fn ranks_started_with_torchruns_environment_train_as_one_run() {
    let root = tempfile::tempdir().unwrap();
    let data = small_data(root.path(), 8);
    let runs = root.path().join("runs");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ranks: Vec<_> = (0..2)
        .map(|rank| {
            Command::new(env!("CARGO_BIN_EXE_storyvis"))
                .args(tiny(&data, &runs, &["--set", "max_steps=3", "--threads", "1"]))
                .env("WORLD_SIZE", "2")
                .env("RANK", rank.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = ranks.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for (rank, o) in outs.iter().enumerate() {
        assert!(o.status.success(), "rank {rank}: {}", text(o));
    }
    assert!(text(&outs[0]).contains("trained at step 3"), "{}", text(&outs[0]));
    assert!(!text(&outs[1]).contains("trained at step"), "{}", text(&outs[1]));
    assert_eq!(run_dirs(&runs).len(), 1);
    // A rank of another world, or without a rendezvous, is told what is missing.
    let o = Command::new(env!("CARGO_BIN_EXE_storyvis"))
        .args(tiny(&data, &runs, &[]))
        .env("WORLD_SIZE", "2")
        .env("RANK", "1")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("MASTER_ADDR is not"), "{}", text(&o));
}

/// The processes `pid` started (Linux: /proc).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect()
}

/// Whether process `pid` has `RANK=rank` in its environment.
fn is_rank(pid: u32, rank: usize) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .any(|kv| kv == format!("RANK={rank}").as_bytes())
}

/// `train --nproc 2` on a small set, from a long run, once its ranks have logged 3 steps
/// (checkpoints every 2): the launcher, the data and the runs directory.
fn training_as_two(root: &Path) -> (std::process::Child, PathBuf, PathBuf) {
    let data = small_data(root, 8);
    let runs = root.join("runs");
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_storyvis"))
        .args(tiny(&data, &runs, &["--nproc", "2", "--dist-timeout", "60"]))
        .args(["--set", "max_steps=100000", "--set", "checkpoint_every=2", "--set", "log_every=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while run_dirs(&runs).first().is_none_or(|d| logged_steps(d).len() < 3) {
        assert!(started.elapsed() < Duration::from_secs(120), "the ranks never trained");
        assert!(launcher.try_wait().unwrap().is_none(), "the launcher ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    (launcher, data, runs)
}

/// Ctrl-C to the launcher reaches both ranks once: they stop at the same step, rank 0 saves
/// it, and the run exits 130 like a one-process run.
#[test]
fn ctrl_c_to_the_launcher_stops_every_rank_at_one_saved_step() {
    let root = tempfile::tempdir().unwrap();
    let (launcher, _, runs) = training_as_two(root.path());
    let pid = launcher.id();
    let ranks = children(pid);
    assert_eq!(ranks.len(), 2);
    assert!(Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap().success());
    let out = launcher.wait_with_output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(130), "{t}");
    assert_eq!(t.matches("stopped at step").count(), 1, "{t}");
    let run = &run_dirs(&runs)[0];
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    let step: u64 = latest.trim_start_matches("step-").parse().unwrap();
    assert_eq!(logged_steps(run).last(), Some(&step), "{t}");
    assert!(ranks.iter().all(|r| gone(*r)), "ranks {ranks:?} left behind");
}

/// Whether process `pid` has ended (no such process, or a zombie waiting to be reaped).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S …": the state follows the command's closing parenthesis.
        Ok(stat) => {
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        }
    }
}

/// A launcher that is killed outright takes its ranks with it (they are sent SIGTERM, stop
/// together and save), leaving no rank training on.
#[test]
fn ranks_end_when_their_launcher_is_killed() {
    let root = tempfile::tempdir().unwrap();
    let (mut launcher, _, _) = training_as_two(root.path());
    let ranks = children(launcher.id());
    assert_eq!(ranks.len(), 2);
    launcher.kill().unwrap();
    launcher.wait().unwrap();
    let killed = Instant::now();
    while !ranks.iter().all(|r| gone(*r)) {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "ranks {ranks:?} outlived their launcher"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_rank_ends_the_run_with_an_error_and_only_whole_checkpoints() {
    let root = tempfile::tempdir().unwrap();
    let (launcher, data, runs) = training_as_two(root.path());
    let rank1 = children(launcher.id())
        .into_iter()
        .find(|&c| is_rank(c, 1))
        .expect("the launcher's rank 1");
    let killed = Instant::now();
    assert!(Command::new("kill").args(["-9", &rank1.to_string()]).status().unwrap().success());
    let out = launcher.wait_with_output().unwrap();
    // A dead peer's closed connections end the others' waits long before the timeout.
    assert!(killed.elapsed() < Duration::from_secs(50), "{:?}", killed.elapsed());
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("rank 1 of 2 was killed (signal 9"), "{t}");
    assert!(t.contains("another rank has probably exited or stopped answering"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    // Every checkpoint left is whole: it loads (checksums verified) and resumes.
    let run = &run_dirs(&runs)[0];
    for c in std::fs::read_dir(run.join("checkpoints")).unwrap() {
        let c = c.unwrap().path();
        if c.file_name().unwrap() != "latest" {
            storyvis_core::checkpoint::verify(&c).unwrap();
        }
    }
    let o = storyvis(&tiny(
        &data,
        &runs,
        &[
            "--resume",
            "latest",
            "--nproc",
            "2",
            "--set",
            "max_steps=100000",
            "--set",
            "max_seconds=1",
        ],
    ));
    assert!(o.status.success(), "{}", text(&o));
}
