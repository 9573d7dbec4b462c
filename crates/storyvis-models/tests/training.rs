//! Training end to end on storygan-tiny: it learns (overfits a 4-story set), and a resumed run
//! continues exactly as the straight run (CPU).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use storyvis_core::config::Config;
use storyvis_core::precision::Runtime;
use storyvis_core::train::{train, Start, TrainRequest};
use storyvis_data::clevr::{generate, GenerateOptions};
use storyvis_data::dataset::Dataset;
use storyvis_models::storygan::sample;
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
    let opts =
        GenerateOptions { stories, seed: 3, split, supersample: 1, ..GenerateOptions::default() };
    generate(&opts, dir, false, &|| {}).unwrap();
}

fn tiny(sets: &[&str]) -> Config {
    let s: Vec<String> = sets.iter().map(|x| x.to_string()).collect();
    Config::resolve("storygan-tiny", None, &s).unwrap()
}

fn run(config: Config, data: &Path, start: Start) -> storyvis_core::train::Outcome {
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
    .unwrap()
}

/// The code-path settings pinned for the overfit runs, where the caller has not set them:
/// MKL's conditional numerical reproducibility mode (the same results on any x86-64 CPU),
/// ATen's baseline (non-AVX) kernels and oneDNN's SSE4.1 kernels. A GAN trajectory of
/// hundreds of steps amplifies rounding differences, so AVX2 and AVX-512 machines would
/// otherwise each follow a trajectory of their own.
const PINNED_NUMERICS: [(&str, &str); 3] = [
    ("MKL_CBWR", "COMPATIBLE"),
    ("ATEN_CPU_CAPABILITY", "default"),
    ("ONEDNN_MAX_CPU_ISA", "SSE41"),
];
/// Seeds of the overfit runs.
const OVERFIT_SEEDS: [u64; 4] = [0, 1, 2, 3];
const OVERFIT_STEPS: usize = 300;
/// The best seed's (pixel error after OVERFIT_STEPS) / (after 1 step) must be below this.
///
/// Why the best of four and not every seed: a GAN trajectory of hundreds of steps amplifies
/// any rounding difference, so each CPU code path (AVX2 or AVX-512, Intel or AMD, MKL's and
/// oneDNN's kernel choice) follows a trajectory of its own, and some trajectories get stuck
/// near where they started. Measured (pixel error ≈ 0.12 after 1 step): on an AMD EPYC (AVX2),
/// 14 trajectories (seeds 0–8; native, pinned, MKL_CBWR=COMPATIBLE / AVX / AVX2, ATen baseline
/// kernels): after 300 steps 12 at 0.048–0.075 (ratio ≈ 0.4–0.6) and 2 stuck at 0.106–0.109
/// (≈ 0.9); on an Intel Xeon (AVX-512), unpinned, seed 0, after 400 steps: 0.072 native, 0.059
/// with MKL_CBWR=COMPATIBLE, 0.114 with AVX2 forced (stuck). With about one trajectory in five
/// stuck, all four seeds stuck has a chance of about 0.2 %.
const OVERFIT_RATIO: f64 = 0.7;
/// For some seed, the error from its own sentences must be below this share of its error
/// from the next story's sentences. Measured on this test's pinned path (AMD EPYC): 0.90,
/// 0.68, 0.83, 0.82 for seeds 0–3; a generator that ignores the text scores about 1.
const SHUFFLED_RATIO: f64 = 0.85;
/// No seed may end worse than this ratio: training that diverges fails even when another seed
/// learns (stuck trajectories measured at 0.89–0.93).
const DIVERGED_RATIO: f64 = 1.2;

/// What one overfit run reports.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Overfit {
    seed: u64,
    before: f64,
    after: f64,
    /// The error after OVERFIT_STEPS when each story is drawn from the next story's sentences
    /// (the same noise): as low as `after` if the generator ignored the text.
    shuffled: f64,
    text_first: f64,
    text_last: f64,
}

/// One overfit run, in its own process (run by `tiny_overfits_a_four_story_set`, which sets
/// the numerics before libtorch loads): does nothing unless STORYVIS_OVERFIT_SEED is set.
#[test]
#[ignore = "a worker of tiny_overfits_a_four_story_set"]
fn overfit_worker() {
    storyvis_models::install();
    let Ok(seed) = std::env::var("STORYVIS_OVERFIT_SEED") else { return };
    let seed: u64 = seed.parse().unwrap();
    let _turn = turn();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    dataset(&data, 4, 1.0);
    let ds = Dataset::open(&data).unwrap();
    let stories: Vec<_> = ds.stories.iter().collect();
    let seed_set = format!("seed={seed}");
    let steps = format!("max_steps={OVERFIT_STEPS}");
    let out = run(
        tiny(&["max_steps=1", &seed_set, "checkpoint_every=1000"]),
        &data,
        Start::Fresh { runs: root.path().join("one") },
    );
    let before =
        sample::pixel_error(&sample::load(&out.checkpoint, Device::Cpu).unwrap(), &ds, &stories, 0)
            .unwrap();
    let out = run(
        tiny(&[&steps, &seed_set, "checkpoint_every=1000", "sample_every=1000"]),
        &data,
        Start::Fresh { runs: root.path().join("runs") },
    );
    let after =
        sample::pixel_error(&sample::load(&out.checkpoint, Device::Cpu).unwrap(), &ds, &stories, 0)
            .unwrap();
    let stats = std::fs::read_to_string(out.run_dir.join("stats.jsonl")).unwrap();
    let text: Vec<f64> = stats
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss_text"].as_f64().unwrap()
        })
        .collect();
    let model = sample::load(&out.checkpoint, Device::Cpu).unwrap();
    let data =
        storyvis_models::storygan::data::StoryData::load(&ds, &stories, &model.cfg, &model.vocab)
            .unwrap();
    let (own, next) =
        (data.batch(&[0, 1, 2, 3], Device::Cpu), data.batch(&[1, 2, 3, 0], Device::Cpu));
    tch::manual_seed(0); // the noise of `pixel_error(…, 0)`
    let shuffled =
        (model.draw(&next.text) - &own.images).abs().mean(tch::Kind::Float).double_value(&[]) / 2.0;
    let report = Overfit {
        seed,
        before,
        after,
        shuffled,
        text_first: text[0],
        text_last: *text.last().unwrap(),
    };
    println!("OVERFIT {}", serde_json::to_string(&report).unwrap());
}

#[test]
fn tiny_overfits_a_four_story_set() {
    storyvis_models::install();
    // Each seed in a process of its own (so that the numerics can be pinned before libtorch
    // loads), two at a time.
    let spawn = |seed: u64| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "overfit_worker",
            "--include-ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ]);
        cmd.env("STORYVIS_OVERFIT_SEED", seed.to_string()).env("OMP_NUM_THREADS", "1");
        for (k, v) in PINNED_NUMERICS {
            if std::env::var_os(k).is_none() {
                cmd.env(k, v);
            }
        }
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut runs = Vec::new();
    for pair in OVERFIT_SEEDS.chunks(2) {
        let children: Vec<_> = pair.iter().map(|&s| spawn(s)).collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            let line = said
                .lines()
                // libtest prints "test overfit_worker ... " before the worker's own output.
                .find_map(|l| l.split_once("OVERFIT ").map(|(_, json)| json))
                .unwrap_or_else(|| {
                    panic!("a worker failed: {said}{}", String::from_utf8_lossy(&out.stderr))
                });
            runs.push(serde_json::from_str::<Overfit>(line).unwrap());
        }
    }
    let pinned: Vec<String> = PINNED_NUMERICS
        .iter()
        .map(|(k, v)| format!("{k}={}", std::env::var(k).unwrap_or_else(|_| v.to_string())))
        .collect();
    for r in &runs {
        eprintln!(
            "seed {}: pixel error {:.4} after 1 step, {:.4} after {OVERFIT_STEPS} (ratio {:.3}; {:.4} from the next story's sentences); text loss {:.3} → {:.3} [{}]",
            r.seed,
            r.before,
            r.after,
            r.after / r.before,
            r.shuffled,
            r.text_first,
            r.text_last,
            pinned.join(" ")
        );
        // The text head's loss is not adversarial: it falls on every path as the encoder
        // learns what each sentence names (measured: 0.67 → 0.02–0.03).
        assert!(
            r.text_last < 0.5 * r.text_first,
            "seed {}: text loss {} → {}",
            r.seed,
            r.text_first,
            r.text_last
        );
    }
    let ratios: Vec<f64> = runs.iter().map(|r| r.after / r.before).collect();
    let best = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        best < OVERFIT_RATIO,
        "samples stay far from their targets: best error ratio {best:.3} over seeds {OVERFIT_SEEDS:?} (bound {OVERFIT_RATIO}): {runs:?}"
    );
    // The pixel error alone cannot show that the sentences are used (the per-position median
    // of the four stories' frames scores 0.024, better than any run): each story's own
    // sentences must bring its frames closer to the targets than another story's do.
    let conditioned = runs.iter().map(|r| r.after / r.shuffled).fold(f64::INFINITY, f64::min);
    assert!(conditioned < SHUFFLED_RATIO, "no seed draws better from its own sentences than from others' (best {conditioned:.3}): {runs:?}");
    let worst = ratios.iter().copied().fold(0.0, f64::max);
    assert!(
        worst < DIVERGED_RATIO,
        "a seed diverged: error ratio {worst:.3} (bound {DIVERGED_RATIO}): {runs:?}"
    );
}

fn tensors(path: &Path) -> Vec<(String, Tensor)> {
    let mut v = Tensor::read_safetensors(path).unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn resume_continues_exactly() {
    storyvis_models::install();
    let _turn = turn();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    dataset(&data, 12, 0.75);
    // The paper's objective, and the quality levers (the previous frame, the added-object
    // head, the hinge loss, a moving average of the generator, the masked previous frame and
    // the average's standing statistics).
    for (k, extra) in [
        vec![],
        vec!["previous=generated", "aux_added_weight=1", "gan_loss=hinge", "ema_half_life=2"],
        vec!["previous=masked", "ema_half_life=2", "ema_standing=2"],
    ]
    .into_iter()
    .enumerate()
    {
        let with = |steps: usize| {
            let m = format!("max_steps={steps}");
            let mut s = vec!["checkpoint_every=3", "sample_every=1000", "log_every=1", m.as_str()];
            s.extend(&extra);
            tiny(&s)
        };
        let runs = |name: &str| root.path().join(format!("{name}{k}"));
        let straight = run(with(6), &data, Start::Fresh { runs: runs("a") });
        let half = run(with(3), &data, Start::Fresh { runs: runs("b") });
        let resumed = run(with(6), &data, Start::Resume(half.run_dir.clone()));
        assert_eq!((straight.steps, resumed.steps), (6, 6));
        assert_eq!(resumed.run_dir, half.run_dir);
        let mut files = vec![
            "generator.safetensors",
            "image_d.safetensors",
            "story_d.safetensors",
            "optimizer.safetensors",
        ];
        let averaged = !extra.is_empty();
        if averaged {
            files.push("generator_ema.safetensors");
        }
        assert_eq!(straight.checkpoint.join("generator_ema.safetensors").exists(), averaged);
        for file in files {
            let (a, b) =
                (tensors(&straight.checkpoint.join(file)), tensors(&resumed.checkpoint.join(file)));
            assert_eq!(a.len(), b.len());
            for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
                assert_eq!(na, nb);
                assert!(ta.equal(tb), "{extra:?} {file}: {na} differs after resume");
            }
        }
        // The stats of the resumed half match the straight run's.
        let lines = |dir: &Path| {
            std::fs::read_to_string(dir.join("stats.jsonl"))
                .unwrap()
                .lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v.as_object_mut().unwrap().remove("seconds_per_iteration");
                    v
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(lines(&straight.run_dir), lines(&resumed.run_dir));
        if averaged {
            // The average's batch-norm statistics: the trained network's, copied, unless the
            // run re-estimates them for the average's own weights (standing statistics).
            let (live, avg) = (
                tensors(&straight.checkpoint.join("generator.safetensors")),
                tensors(&straight.checkpoint.join("generator_ema.safetensors")),
            );
            let standing = extra.contains(&"ema_standing=2");
            let mut statistics = 0;
            for ((n, a), (_, b)) in live.iter().zip(&avg) {
                if n.ends_with("running_mean") || n.ends_with("running_var") {
                    statistics += 1;
                    assert_eq!(a.equal(b), !standing, "{extra:?}: {n}");
                }
            }
            assert!(statistics > 4, "{statistics} batch-norm statistics");
            if standing {
                // Re-estimating them changes nothing that training sees: the same run without
                // them has the same trained weights and optimiser state, bit for bit.
                let mut copied =
                    vec!["checkpoint_every=3", "sample_every=1000", "log_every=1", "max_steps=6"];
                copied.extend(extra.iter().filter(|s| **s != "ema_standing=2"));
                let plain = run(tiny(&copied), &data, Start::Fresh { runs: runs("c") });
                for file in [
                    "generator.safetensors",
                    "image_d.safetensors",
                    "story_d.safetensors",
                    "optimizer.safetensors",
                ] {
                    for ((n, a), (_, b)) in tensors(&straight.checkpoint.join(file))
                        .iter()
                        .zip(&tensors(&plain.checkpoint.join(file)))
                    {
                        assert!(a.equal(b), "{file}: {n} differs with standing statistics");
                    }
                }
            }
            // `generate` and `eval` draw with the average: the same stories as a generator
            // holding the average's weights, and other ones than the trained weights'.
            let model =
                storyvis_models::storygan::sample::load(&straight.run_dir, Device::Cpu).unwrap();
            let ds = Dataset::open(&data).unwrap();
            let stories: Vec<_> = ds.split(storyvis_data::dataset::Split::Test).collect();
            let cfg = model.cfg.clone();
            let batch =
                storyvis_models::storygan::data::StoryData::load(&ds, &stories, &cfg, &model.vocab)
                    .unwrap()
                    .batch(&[0, 1], Device::Cpu);
            let draw_with = |file: &str| {
                let mut vs = tch::nn::VarStore::new(Device::Cpu);
                let manifest: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(straight.checkpoint.join("checkpoint.json")).unwrap(),
                )
                .unwrap();
                let shape: storyvis_models::storygan::DataShape =
                    serde_json::from_value(manifest["shape"].clone()).unwrap();
                let g = storyvis_models::storygan::generator::Generator::new(
                    vs.root(),
                    &cfg,
                    shape.vocab,
                    shape.vector_len,
                    shape.labels,
                );
                storyvis_core::checkpoint::load_store(&mut vs, &straight.checkpoint.join(file))
                    .unwrap();
                tch::manual_seed(9);
                g.draw(&batch.text)
            };
            tch::manual_seed(9);
            let drawn = model.draw(&batch.text);
            assert!(
                model.averaged && drawn.equal(&draw_with("generator_ema.safetensors")),
                "generate does not draw with the average"
            );
            // `--weights trained` draws with the trained weights: other stories.
            let trained = storyvis_models::storygan::sample::load_with(
                &straight.run_dir,
                Device::Cpu,
                storyvis_core::checkpoint::Weights::Trained,
            )
            .unwrap();
            tch::manual_seed(9);
            let drawn_trained = trained.draw(&batch.text);
            assert!(!trained.averaged && drawn_trained.equal(&draw_with("generator.safetensors")));
            assert!(!drawn_trained.equal(&drawn));
        }
    }
}

#[test]
fn a_checkpoint_of_another_preset_or_a_damaged_one_is_refused() {
    storyvis_models::install();
    let _turn = turn();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    dataset(&data, 6, 0.5);
    let out = run(tiny(&["max_steps=2"]), &data, Start::Fresh { runs: root.path().join("runs") });
    let stop = AtomicBool::new(false);
    let small = Config::resolve("storygan-small", None, &[]).unwrap();
    let req = TrainRequest {
        config: small,
        overrides: vec![],
        data: data.clone(),
        start: Start::Resume(out.run_dir.clone()),
        runtime: Runtime::cpu(),
        group: None,
    };
    let e = format!("{:#}", train(req, &|_, _, _| {}, &stop).err().unwrap());
    assert!(e.contains("from preset storygan-tiny, not storygan-small"), "{e}");
    // A resumed run keeps its config.
    let req = TrainRequest {
        config: tiny(&[]),
        overrides: vec!["lr_g=0.1".into()],
        data: data.clone(),
        start: Start::Resume(out.run_dir.clone()),
        runtime: Runtime::cpu(),
        group: None,
    };
    let e = format!("{:#}", train(req, &|_, _, _| {}, &stop).err().unwrap());
    assert!(e.contains("a resumed run keeps its config"), "{e}");
    // Another dataset than the run's (other stories, same shape): refused on resume.
    let other = root.path().join("other");
    generate(
        &GenerateOptions {
            stories: 6,
            seed: 4,
            split: 0.5,
            supersample: 1,
            ..GenerateOptions::default()
        },
        &other,
        false,
        &|| {},
    )
    .unwrap();
    let req = TrainRequest {
        config: tiny(&[]),
        overrides: vec!["max_steps=3".into()],
        data: other,
        start: Start::Resume(out.run_dir.clone()),
        runtime: Runtime::cpu(),
        group: None,
    };
    let e = format!("{:#}", train(req, &|_, _, _| {}, &stop).err().unwrap());
    assert!(e.contains("trained on other data than"), "{e}");
    // Truncate a weights file: the digest check names it.
    let g = out.checkpoint.join("generator.safetensors");
    let bytes = std::fs::read(&g).unwrap();
    std::fs::write(&g, &bytes[..bytes.len() / 2]).unwrap();
    let e = format!("{:#}", sample::load(&out.run_dir, Device::Cpu).err().unwrap());
    assert!(e.contains("generator.safetensors is corrupt or truncated"), "{e}");
    // A dataset whose T differs from the model's.
    let req = TrainRequest {
        config: tiny(&["frames=3"]),
        overrides: vec![],
        data: data.clone(),
        start: Start::Fresh { runs: root.path().join("r2") },
        runtime: Runtime::cpu(),
        group: None,
    };
    let e = format!("{:#}", train(req, &|_, _, _| {}, &stop).err().unwrap());
    assert!(e.contains("4 frames per story, the model 3"), "{e}");
    assert!(!root.path().join("r2").exists(), "a refused run left a directory");
}

#[test]
fn attribute_classifier_learns_its_frames() {
    storyvis_models::install();
    use storyvis_core::fit::Fit;
    use storyvis_data::dataset::Split;
    use storyvis_eval::classifier::{
        count, fit_frames, frames_of, score_with, AttributeClassifier,
    };
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 4, 0.5);
    let ds = Dataset::open(dir.path()).unwrap();
    let stories: Vec<_> = ds.split(Split::Train).collect();
    let (images, labels) = frames_of(&ds, &stories).unwrap(); // 8 frames
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let net = AttributeClassifier::new(
        vs.root(),
        labels.size()[1],
        &storyvis_eval::classifier::FIRST_WIDTHS,
    );
    let before = count(&score_with(&net, &images, Device::Cpu).predictions(15), &labels).unwrap();
    let losses = std::cell::RefCell::new(Vec::new());
    let fit = Fit { steps: 120, batch: 8, lr: 1e-3, seed: 0, device: Device::Cpu };
    fit_frames(&fit, &net, &vs, &images, &labels, &|_, _, l| losses.borrow_mut().push(l));
    let after = count(&score_with(&net, &images, Device::Cpu).predictions(15), &labels).unwrap();
    let l = losses.borrow();
    eprintln!(
        "loss {:.4} → {:.4}; micro F1 {:.3} → {:.3}, exact {:.3}",
        l[0],
        l[l.len() - 1],
        before.micro().f1,
        after.micro().f1,
        after.exact_match()
    );
    assert!(l[l.len() - 1] < l[0] / 5.0);
    assert!(
        after.micro().f1 > 0.95 && after.exact_match() >= 0.75,
        "F1 {} exact {}",
        after.micro().f1,
        after.exact_match()
    );
}

#[test]
fn eval_scores_the_ground_truth_as_perfect_and_shuffled_frames_as_worse() {
    storyvis_models::install();
    use storyvis_data::dataset::Split;
    use storyvis_eval::classifier::{train_classifier, Classifier, ClassifierRequest};
    use storyvis_eval::eval::{score_frames, Reference};
    let _turn = turn();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    dataset(&data, 8, 0.5);
    let clf = root.path().join("clf");
    let req = ClassifierRequest {
        data: data.clone(),
        out: clf.clone(),
        steps: 150,
        batch: 8,
        lr: 1e-3,
        seed: 0,
        device: Device::Cpu,
        force: false,
        widths: storyvis_eval::classifier::FIRST_WIDTHS.to_vec(),
    };
    train_classifier(&req, &|_, _, _| {}).unwrap();
    let classifier = Classifier::load(&clf, Device::Cpu).unwrap();
    let ds = Dataset::open(&data).unwrap();
    let stories: Vec<_> = ds.split(Split::Test).collect();
    let reference = Reference::new(&ds, &stories, &classifier).unwrap();
    // [N·T, 3, 64, 64]
    let real = storyvis_core::data::to_unit(
        &storyvis_core::data::load_images(&ds, &stories).unwrap().flatten(0, 1),
    );
    // The ground truth as the drawing: every pixel metric at its ideal, the classifier columns
    // equal to the real-frames row; drawn twice (two "seeds"), the same means.
    let same = score_frames("same", &real, &reference, &classifier).unwrap();
    assert!(same.ssim.unwrap() > 1.0 - 1e-6 && same.psnr.unwrap() > 100.0, "{same:?}");
    assert!(same.frechet.unwrap().abs() < 1e-3, "{same:?}");
    assert_eq!(
        (same.micro_f1, same.frame_accuracy, same.consistency),
        (reference.real.micro_f1, reference.real.frame_accuracy, reference.real.consistency)
    );
    let twice =
        score_frames("twice", &Tensor::cat(&[&real, &real], 0), &reference, &classifier).unwrap();
    assert_eq!(
        (twice.frames, twice.ssim, twice.micro_f1, twice.consistency),
        (2 * stories.len() * 4, same.ssim, same.micro_f1, same.consistency)
    );
    // The same drawing at both "seeds": no diversity; one draw: none measured. The real row's
    // diversity is between different stories, far from 0.
    assert_eq!((twice.seed_diversity, same.seed_diversity), (Some(0.0), None));
    assert!(reference.real.seed_diversity.unwrap() > 1.0, "{:?}", reference.real);
    // Per attribute and persistence as on the real row; every CLEVR attribute reported.
    assert_eq!(
        (&same.attributes, same.persistence),
        (&reference.real.attributes, reference.real.persistence)
    );
    let names: Vec<&str> = same.attributes.iter().map(|a| a.attribute.as_str()).collect();
    assert_eq!(names, ["shape", "color", "material", "size"]);
    assert!(same.persistence.is_some_and(|p| (0.0..=1.0).contains(&p)), "{same:?}");
    // Persistence reads each frame's introduced object from the stories' encoding: four
    // attribute labels per object, all present in its own frame's label and every later one.
    let objects = storyvis_eval::eval::attributes::introduced_objects(&stories, 15).unwrap();
    for (s, objs) in stories.iter().zip(&objects) {
        assert_eq!(objs.len(), 4);
        for (k, obj) in objs.iter().enumerate() {
            assert_eq!(obj.len(), 4, "story {} object {k}: {obj:?}", s.id);
            assert!(
                (k..4).all(|t| obj.iter().all(|&l| s.frames[t].label[l] == 1)),
                "story {} object {k}",
                s.id
            );
        }
    }
    // The frames of each story in reverse order: the same pictures, so the same Fréchet
    // distance up to rounding, but every frame compared with another one, and objects that
    // "disappear" from frame to frame.
    let t = 4;
    let order: Vec<i64> =
        (0..stories.len() as i64).flat_map(|s| (0..t).rev().map(move |f| s * t + f)).collect();
    let reversed = real.index_select(0, &Tensor::from_slice(&order));
    let rev = score_frames("reversed", &reversed, &reference, &classifier).unwrap();
    assert!(rev.ssim.unwrap() < 0.99 && rev.psnr.unwrap() < 40.0, "{rev:?}");
    assert!(rev.frechet.unwrap().abs() < 1e-3, "{rev:?}");
    assert!(
        rev.micro_f1 < same.micro_f1 && rev.consistency < same.consistency,
        "{rev:?} vs {same:?}"
    );
    // Floors: the flat frame is one colour; the previous-frame floor is the truth one frame
    // late, so each frame lacks its newest object.
    let floors = storyvis_eval::eval::floors::floor_frames(&ds, &stories, &reference).unwrap();
    let late = score_frames("late", &floors[2].1, &reference, &classifier).unwrap();
    assert_eq!(floors[2].0, "floor: previous frame");
    let (frame, late_frames) = (|i: i64| real.get(i), &floors[2].1);
    assert!(
        late_frames.get(1).allclose(&frame(0), 1e-6, 1e-6, false)
            && late_frames.get(7).allclose(&frame(6), 1e-6, 1e-6, false)
    );
    assert!(late.ssim.unwrap() < 0.99, "{late:?}");
    let flat = &floors[0].1;
    assert!(
        flat.std(false).double_value(&[]) > 0.0
            && flat.get(0).std_dim([1i64, 2].as_slice(), false, false).max().double_value(&[])
                < 1e-6
    );
    // Frames that are not a whole number of draws of the stories are refused.
    assert!(score_frames("odd", &real.narrow(0, 0, 3), &reference, &classifier).is_err());
}
