//! The training loop on the toy family: a NaN loss or gradient under each non-finite policy
//! (roll-back, skip, abort), a stop request (what Ctrl-C sends), and resume, each checked
//! against a straight run or the files on disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use storyvis_core::config::Config;
use storyvis_core::precision::Runtime;
use storyvis_core::train::{train, Outcome, Start, TrainRequest};
use tch::Tensor;

mod common;

use common::toy::{dataset, turn};

fn toy(sets: &[&str]) -> Config {
    let s: Vec<String> = sets.iter().map(|x| x.to_string()).collect();
    Config::resolve("toy", None, &s).unwrap()
}

fn run_until(
    config: Config,
    data: &Path,
    start: Start,
    stop_at: Option<usize>,
) -> anyhow::Result<Outcome> {
    let stop = AtomicBool::new(false);
    let overrides = vec![format!("max_steps={}", config.run.max_steps)];
    let req = TrainRequest {
        config,
        overrides,
        data: data.to_path_buf(),
        start,
        runtime: Runtime::cpu(),
        group: None,
    };
    train(
        req,
        &|step, _, _| {
            if Some(step) == stop_at {
                stop.store(true, Ordering::SeqCst);
            }
        },
        &stop,
    )
}

fn run(config: Config, data: &Path, start: Start) -> anyhow::Result<Outcome> {
    run_until(config, data, start, None)
}

struct Fixture {
    root: tempfile::TempDir,
    data: PathBuf,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    dataset(&data);
    Fixture { root, data }
}

impl Fixture {
    fn runs(&self, name: &str) -> Start {
        Start::Fresh { runs: self.root.path().join(name) }
    }
}

/// Every tensor of a checkpoint (weights and optimiser state), by file and name.
fn state(ckpt: &Path) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for file in [
        "generator.safetensors",
        "discriminator.safetensors",
        "optimizer.safetensors",
        "generator_ema.safetensors",
    ] {
        // The average is there only in runs that keep one.
        if file == "generator_ema.safetensors" && !ckpt.join(file).exists() {
            continue;
        }
        let mut v = Tensor::read_safetensors(ckpt.join(file)).unwrap();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(v.into_iter().map(|(n, t)| (format!("{file}/{n}"), t)));
    }
    out
}

fn assert_same_state(a: &Path, b: &Path) {
    let (sa, sb) = (state(a), state(b));
    assert_eq!(sa.len(), sb.len());
    for ((na, ta), (nb, tb)) in sa.iter().zip(&sb) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs between {} and {}", a.display(), b.display());
    }
}

fn manifest(ckpt: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(ckpt.join("checkpoint.json")).unwrap()).unwrap()
}

/// The steps of `stats.jsonl`, in order.
fn logged_steps(run_dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(run_dir.join("stats.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect()
}

fn all_finite(ckpt: &Path) -> bool {
    state(ckpt).iter().all(|(_, t)| t.isfinite().all().int64_value(&[]) == 1)
}

#[test]
fn a_nan_gradient_with_a_finite_loss_is_caught_at_its_step() {
    let _turn = turn();
    let f = fixture();
    // abort: the error names the gradient and the step, and nothing after the last good
    // checkpoint is saved.
    let sets =
        ["nan_step=5", "nan_in=gradient", "nonfinite=abort", "checkpoint_every=2", "max_steps=8"];
    let e = format!("{:#}", run(toy(&sets), &f.data, f.runs("abort")).err().expect("an error"));
    assert!(e.contains("non-finite generator gradient (NaN) at step 5"), "{e}");
    let run_dir = f.root.path().join("abort/00000-toy");
    let ckpts: Vec<String> = std::fs::read_dir(run_dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        ckpts.contains(&"step-0000004".to_string())
            && !ckpts.iter().any(|c| c > &"step-0000004".to_string() && c.starts_with("step-")),
        "{ckpts:?}"
    );
    // A NaN loss is named as a loss.
    let e = format!(
        "{:#}",
        run(toy(&["nan_step=3", "nan_in=loss", "nonfinite=abort"]), &f.data, f.runs("abort-loss"))
            .err()
            .expect("an error")
    );
    assert!(e.contains("non-finite generator loss (NaN) at step 3"), "{e}");
}

#[test]
fn rollback_repeats_from_the_last_checkpoint_and_logs_each_step_once() {
    let _turn = turn();
    let f = fixture();
    let out = run(
        toy(&[
            "nan_step=5",
            "nonfinite=rollback",
            "checkpoint_every=2",
            "log_every=1",
            "max_steps=8",
        ]),
        &f.data,
        f.runs("rb"),
    )
    .unwrap();
    // Steps 5 (the NaN) back to the checkpoint at 4: one extra iteration.
    assert_eq!((out.steps, out.iterations), (8, 9));
    assert_eq!(logged_steps(&out.run_dir), (1..=8).collect::<Vec<u64>>());
    assert_eq!(manifest(&out.checkpoint)["rollbacks"], 1);
    assert!(all_finite(&out.checkpoint));
    assert!(out.run_dir.join("loss.png").is_file());
    // A NaN on every attempt: gives up after max_rollbacks.
    let e = format!(
        "{:#}",
        run(
            toy(&["nan_step=3", "nan_times=100", "max_rollbacks=2", "checkpoint_every=1"]),
            &f.data,
            f.runs("rb2")
        )
        .err()
        .expect("an error")
    );
    assert!(e.contains("gave up after 2 roll-backs"), "{e}");
    // Nothing to roll back to before the first checkpoint.
    let e = format!(
        "{:#}",
        run(toy(&["nan_step=1", "checkpoint_every=5"]), &f.data, f.runs("rb3"))
            .err()
            .expect("an error")
    );
    assert!(e.contains("no checkpoint to roll back to"), "{e}");
}

#[test]
fn skip_undoes_the_whole_iteration() {
    let _turn = turn();
    let f = fixture();
    // Iteration 5's discriminator update succeeds before the generator's gradient is NaN:
    // skipping must undo it too, so the state after step 5 is the state after step 4.
    let skipped = run(
        toy(&["nan_step=5", "nonfinite=skip", "max_steps=5", "log_every=1"]),
        &f.data,
        f.runs("skip"),
    )
    .unwrap();
    let clean = run(toy(&["max_steps=4"]), &f.data, f.runs("clean")).unwrap();
    assert_same_state(&skipped.checkpoint, &clean.checkpoint);
    assert_eq!(
        manifest(&skipped.checkpoint)["adam_steps"],
        manifest(&clean.checkpoint)["adam_steps"]
    );
    assert_eq!(logged_steps(&skipped.run_dir), vec![1, 2, 3, 4]);
    // And the run goes on past it.
    let on = run(toy(&["nan_step=5", "nonfinite=skip", "max_steps=9"]), &f.data, f.runs("skip9"))
        .unwrap();
    assert_eq!(on.steps, 9);
    assert!(all_finite(&on.checkpoint));
}

#[test]
fn a_stop_request_saves_and_the_resumed_run_ends_where_the_straight_one_does() {
    let _turn = turn();
    let f = fixture();
    let straight = run(toy(&["max_steps=10", "checkpoint_every=4"]), &f.data, f.runs("a")).unwrap();
    let stopped =
        run_until(toy(&["max_steps=10", "checkpoint_every=4"]), &f.data, f.runs("b"), Some(3))
            .unwrap();
    assert!(stopped.interrupted);
    assert_eq!(stopped.steps, 3);
    assert!(stopped.checkpoint.ends_with("step-0000003"), "{}", stopped.checkpoint.display());
    let resumed =
        run(toy(&["max_steps=10"]), &f.data, Start::Resume(stopped.run_dir.clone())).unwrap();
    assert_eq!((resumed.first_step, resumed.steps), (3, 10));
    assert_same_state(&straight.checkpoint, &resumed.checkpoint);
    // The families' other checks: a checkpoint of one family is not resumed as another's.
    let e = format!(
        "{:#}",
        run(
            Config::resolve("storygan-tiny", None, &[]).unwrap(),
            &f.data,
            Start::Resume(straight.run_dir.clone())
        )
        .err()
        .unwrap()
    );
    assert!(e.contains("from preset toy, not storygan-tiny"), "{e}");
    let e = format!(
        "{:#}",
        storyvis_models::storygan::sample::load(&straight.run_dir, tch::Device::Cpu).err().unwrap()
    );
    assert!(e.contains("is a toy checkpoint (preset toy), not a storygan one"), "{e}");
}

#[test]
fn a_time_budget_stops_and_saves_where_the_seeds_trajectory_was() {
    let _turn = turn();
    let f = fixture();
    // A million steps, but one second: it stops, saves, and is not an interruption.
    let t0 = std::time::Instant::now();
    let budget = run(
        toy(&["max_steps=1000000", "max_seconds=1", "checkpoint_every=1000000", "log_every=1"]),
        &f.data,
        f.runs("a"),
    )
    .unwrap();
    assert!(
        !budget.interrupted && budget.steps > 0 && budget.steps < 1_000_000,
        "{}",
        budget.steps
    );
    assert!(t0.elapsed().as_secs_f64() < 60.0);
    assert!(
        budget.checkpoint.ends_with(storyvis_core::checkpoint::step_name(budget.steps)),
        "{}",
        budget.checkpoint.display()
    );
    // Up to where it stopped, the run is the seed's: the same steps without a budget agree.
    let steps = format!("max_steps={}", budget.steps);
    let straight = run(toy(&[&steps, "checkpoint_every=1000000"]), &f.data, f.runs("b")).unwrap();
    assert_same_state(&straight.checkpoint, &budget.checkpoint);
    let e =
        format!("{:#}", Config::resolve("toy", None, &["max_seconds=-1".into()]).err().unwrap());
    assert!(e.contains("max_seconds"), "{e}");
}

/// The tensors of one safetensors file, by name.
fn weights(path: &Path) -> std::collections::BTreeMap<String, Tensor> {
    Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

#[test]
fn the_moving_average_follows_the_weights_by_its_formula_and_resumes_exactly() {
    let _turn = turn();
    let f = fixture();
    let (h, n) = (3usize, 40usize);
    let sets = ["ema_half_life=3", "max_steps=40", "checkpoint_every=1", "sample_every=7"];
    let out = run(toy(&sets), &f.data, f.runs("ema")).unwrap();
    let ckpt = |k: usize| out.run_dir.join("checkpoints").join(format!("step-{k:07}"));
    // By hand, in f64: a_k = w_k + β_k (a_{k−1} − w_k) from the weights w_k after each
    // iteration (the checkpoints), starting from the saved average after iteration 1.
    let to_f64 =
        |t: &Tensor| Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap();
    let mut avg: std::collections::BTreeMap<String, Vec<f64>> =
        weights(&ckpt(1).join("generator_ema.safetensors"))
            .iter()
            .map(|(k, t)| (k.clone(), to_f64(t)))
            .collect();
    for k in 2..=n {
        let beta = storyvis_core::train::ema_beta(h, k);
        for (name, w) in weights(&ckpt(k).join("generator.safetensors")) {
            for (a, w) in avg.get_mut(&name).unwrap().iter_mut().zip(to_f64(&w)) {
                *a = w + beta * (*a - w);
            }
        }
    }
    let (saved, live) = (
        weights(&ckpt(n).join("generator_ema.safetensors")),
        weights(&ckpt(n).join("generator.safetensors")),
    );
    let mut apart = 0f64;
    for (name, want) in &avg {
        let got = to_f64(&saved[name]);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{name}: {g} vs {w}");
        }
        apart = apart.max(
            got.iter().zip(to_f64(&live[name])).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max),
        );
    }
    assert!(apart > 1e-4, "the average is the weights themselves (apart by {apart})");
    // Drawing reads the average.
    let manifest: storyvis_core::checkpoint::Manifest =
        serde_json::from_value(manifest(&ckpt(n))).unwrap();
    use storyvis_core::checkpoint::{drawing_weights, Weights};
    assert_eq!(
        drawing_weights(&ckpt(n), &manifest, "generator", Weights::Average),
        (ckpt(n).join("generator_ema.safetensors"), true)
    );
    assert_eq!(
        drawing_weights(&ckpt(n), &manifest, "generator", Weights::Trained),
        (ckpt(n).join("generator.safetensors"), false)
    );
    // Keeping an average (and sampling with it every 7 steps) changes nothing in training.
    let plain = run(
        toy(&["max_steps=40", "checkpoint_every=1", "sample_every=7"]),
        &f.data,
        f.runs("plain"),
    )
    .unwrap();
    for (name, w) in weights(&plain.checkpoint.join("generator.safetensors")) {
        assert!(w.equal(&live[&name]), "{name}: the run with an average trained otherwise");
    }
    // A stopped and resumed run ends with the straight run's average, bit for bit.
    let stopped = run_until(toy(&sets), &f.data, f.runs("ema-b"), Some(17)).unwrap();
    let resumed = run(toy(&sets), &f.data, Start::Resume(stopped.run_dir.clone())).unwrap();
    assert_eq!(resumed.steps, n);
    assert_same_state(&out.checkpoint, &resumed.checkpoint);
    assert!(state(&resumed.checkpoint).iter().any(|(n, _)| n.starts_with("generator_ema")));
    // Standing statistics need an average to re-estimate: an error, and no run directory.
    let runs = f.root.path().join("standing");
    let err =
        run(toy(&["ema_standing=4", "max_steps=2"]), &f.data, Start::Fresh { runs: runs.clone() })
            .err()
            .expect("an error");
    assert!(
        format!("{err:#}").contains(
            "ema_standing = 4 re-estimates a moving average's statistics, but the run keeps none"
        ),
        "{err:#}"
    );
    assert!(
        !runs.exists() || std::fs::read_dir(&runs).unwrap().next().is_none(),
        "a run directory was made"
    );
}
