//! Training end to end on storygan-tiny: it learns (overfits a 4-story set), and a resumed run
//! continues exactly as the straight run (CPU).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use storyvis::config::Config;
use storyvis::precision::Runtime;
use storyvis::sample;
use storyvis::train::{train, Start, TrainRequest};
use storyvis_data::clevr::{generate, GenerateOptions};
use storyvis_data::dataset::Dataset;
use tch::{Device, Tensor};

/// libtorch's random generator is global: training tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the turn and pins libtorch to one thread, so that results (summation order) do not
/// depend on the machine's core count.
fn turn() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    guard
}

fn dataset(dir: &Path, stories: usize, split: f64) {
    let opts = GenerateOptions { stories, seed: 3, split, supersample: 1, ..GenerateOptions::default() };
    generate(&opts, dir, false, &|| {}).unwrap();
}

fn tiny(sets: &[&str]) -> Config {
    let s: Vec<String> = sets.iter().map(|x| x.to_string()).collect();
    Config::resolve("storygan-tiny", None, &s).unwrap()
}

fn run(config: Config, data: &Path, start: Start) -> storyvis::train::Outcome {
    let stop = AtomicBool::new(false);
    let overrides = vec![format!("max_steps={}", config.max_steps)];
    train(TrainRequest { config, overrides, data: data.to_path_buf(), start, runtime: Runtime::cpu() }, &|_, _, _| {}, &stop).unwrap()
}

#[test]
fn tiny_overfits_a_four_story_set() {
    let _turn = turn();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    dataset(&data, 4, 1.0);
    let ds = Dataset::open(&data).unwrap();
    let stories: Vec<_> = ds.stories.iter().collect();
    let runs = root.path().join("runs");
    let cfg = tiny(&["max_steps=1", "checkpoint_every=1000"]);
    let first = run(cfg, &data, Start::Fresh { runs: runs.clone() });
    let before = sample::pixel_error(&sample::load(&first.checkpoint, Device::Cpu).unwrap(), &ds, &stories, 0).unwrap();
    let steps = format!("max_steps={OVERFIT_STEPS}");
    let cfg = tiny(&[&steps, "checkpoint_every=1000", "sample_every=1000"]);
    let out = run(cfg, &data, Start::Fresh { runs });
    let model = sample::load(&out.checkpoint, Device::Cpu).unwrap();
    let after = sample::pixel_error(&model, &ds, &stories, 0).unwrap();
    eprintln!("pixel error: {before:.4} after 1 step, {after:.4} after {OVERFIT_STEPS}");
    assert!(after < OVERFIT_BOUND, "samples stay far from their targets: error {after:.4} (bound {OVERFIT_BOUND})");
    assert!(after < 0.6 * before, "error did not fall enough: {before:.4} → {after:.4}");
    // The text head's loss falls as the encoder learns what each sentence names.
    let stats = std::fs::read_to_string(out.run_dir.join("stats.jsonl")).unwrap();
    let text: Vec<f64> = stats.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss_text"].as_f64().unwrap()).collect();
    assert!(text.last().unwrap() < &(0.5 * text[0]), "text loss {text:?}");
}
const OVERFIT_STEPS: usize = 400;
const OVERFIT_BOUND: f64 = 0.06;

fn tensors(path: &Path) -> Vec<(String, Tensor)> {
    let mut v = Tensor::read_safetensors(path).unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn resume_continues_exactly() {
    let _turn = turn();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    dataset(&data, 12, 0.75);
    let sets = ["checkpoint_every=3", "sample_every=1000", "log_every=1"];
    let with = |steps: usize| {
        let mut s = sets.to_vec();
        let m = format!("max_steps={steps}");
        s.push(&m);
        tiny(&s)
    };
    let straight = run(with(6), &data, Start::Fresh { runs: root.path().join("a") });
    let half = run(with(3), &data, Start::Fresh { runs: root.path().join("b") });
    let resumed = run(with(6), &data, Start::Resume(half.run_dir.clone()));
    assert_eq!((straight.steps, resumed.steps), (6, 6));
    assert_eq!(resumed.run_dir, half.run_dir);
    for file in ["generator.safetensors", "image_d.safetensors", "story_d.safetensors", "optimizer.safetensors"] {
        let (a, b) = (tensors(&straight.checkpoint.join(file)), tensors(&resumed.checkpoint.join(file)));
        assert_eq!(a.len(), b.len());
        for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            assert!(ta.equal(tb), "{file}: {na} differs after resume");
        }
    }
    // The stats of the resumed half match the straight run's.
    let lines = |dir: &Path| std::fs::read_to_string(dir.join("stats.jsonl")).unwrap().lines().map(|l| {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        v.as_object_mut().unwrap().remove("seconds_per_iteration");
        v
    }).collect::<Vec<_>>();
    assert_eq!(lines(&straight.run_dir), lines(&resumed.run_dir));
}

#[test]
fn a_checkpoint_of_another_preset_or_a_damaged_one_is_refused() {
    let _turn = turn();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    dataset(&data, 6, 0.5);
    let out = run(tiny(&["max_steps=2"]), &data, Start::Fresh { runs: root.path().join("runs") });
    let stop = AtomicBool::new(false);
    let small = Config::resolve("storygan-small", None, &[]).unwrap();
    let req = TrainRequest { config: small, overrides: vec![], data: data.clone(), start: Start::Resume(out.run_dir.clone()), runtime: Runtime::cpu() };
    let e = format!("{:#}", train(req, &|_, _, _| {}, &stop).err().unwrap());
    assert!(e.contains("from preset storygan-tiny, not storygan-small"), "{e}");
    // A resumed run keeps its config.
    let req = TrainRequest { config: tiny(&[]), overrides: vec!["lr_g=0.1".into()], data: data.clone(), start: Start::Resume(out.run_dir.clone()), runtime: Runtime::cpu() };
    let e = format!("{:#}", train(req, &|_, _, _| {}, &stop).err().unwrap());
    assert!(e.contains("a resumed run keeps its config"), "{e}");
    // Truncate a weights file: the digest check names it.
    let g = out.checkpoint.join("generator.safetensors");
    let bytes = std::fs::read(&g).unwrap();
    std::fs::write(&g, &bytes[..bytes.len() / 2]).unwrap();
    let e = format!("{:#}", sample::load(&out.run_dir, Device::Cpu).err().unwrap());
    assert!(e.contains("generator.safetensors is corrupt or truncated"), "{e}");
    // A dataset whose T differs from the model's.
    let req = TrainRequest { config: tiny(&["frames=3"]), overrides: vec![], data: data.clone(), start: Start::Fresh { runs: root.path().join("r2") }, runtime: Runtime::cpu() };
    let e = format!("{:#}", train(req, &|_, _, _| {}, &stop).err().unwrap());
    assert!(e.contains("4 frames per story, the model 3"), "{e}");
    assert!(!root.path().join("r2").exists(), "a refused run left a directory");
}

#[test]
fn attribute_classifier_learns_its_frames() {
    use storyvis::classifier::{count, frames_of, score_with, AttributeClassifier, Fit};
    use storyvis_data::dataset::Split;
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 4, 0.5);
    let ds = Dataset::open(dir.path()).unwrap();
    let stories: Vec<_> = ds.split(Split::Train).collect();
    let (images, labels) = frames_of(&ds, &stories).unwrap(); // 8 frames
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let net = AttributeClassifier::new(vs.root(), labels.size()[1]);
    let before = count(&score_with(&net, &images, Device::Cpu).predictions(15), &labels).unwrap();
    let losses = std::cell::RefCell::new(Vec::new());
    let fit = Fit { steps: 120, batch: 8, lr: 1e-3, seed: 0, device: Device::Cpu };
    fit.run(&net, &vs, &images, &labels, &|_, _, l| losses.borrow_mut().push(l));
    let after = count(&score_with(&net, &images, Device::Cpu).predictions(15), &labels).unwrap();
    let l = losses.borrow();
    eprintln!("loss {:.4} → {:.4}; micro F1 {:.3} → {:.3}, exact {:.3}", l[0], l[l.len() - 1], before.micro().f1, after.micro().f1, after.exact_match());
    assert!(l[l.len() - 1] < l[0] / 5.0);
    assert!(after.micro().f1 > 0.95 && after.exact_match() >= 0.75, "F1 {} exact {}", after.micro().f1, after.exact_match());
}
