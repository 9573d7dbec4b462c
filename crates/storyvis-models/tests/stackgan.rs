//! StackGAN and SDGAN end to end on tiny settings: a Stage-I run, a Stage-II run on it (frozen
//! Stage I, exact resume), SDGAN's siamese branches and SCBN on the loop, drawing both stages,
//! evaluation at 128×128, and their bad inputs.

mod common;

use storyvis_core::evaluation::Evaluated;

use common::{run, tensors, tiny_classifier, tiny_text_encoder, tiny_text_encoder_with, turn};
use std::path::{Path, PathBuf};
use storyvis_core::config::Config;
use storyvis_core::joint::EncoderKind;
use storyvis_core::train::Start;
use storyvis_data::clevr::captions::{generate_captions, CaptionOptions};
use storyvis_models::stackgan::draw;
use tch::Device;

fn captions(root: &Path, name: &str, size: u32, captions: usize) -> PathBuf {
    let data = root.join(name);
    let opts = CaptionOptions { images: 24, seed: 2, size, supersample: 1, split: 0.75, captions };
    generate_captions(&opts, &data, false, &|| {}).unwrap();
    data
}

/// 24 captioned images at 128×128 and a word encoder (whose per-word states feed word-level
/// SCBN) trained on them.
fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let data = captions(root.path(), "captions", 128, 3);
    let encoder = root.path().join("encoder");
    tiny_text_encoder(&data, &encoder, EncoderKind::Word, 3);
    (root, data, encoder)
}

fn config(preset: &str, encoder: &Path, sets: &[String]) -> anyhow::Result<Config> {
    let mut s = sets.to_vec();
    s.push(format!("text_encoder={:?}", encoder.display().to_string()));
    Config::resolve(preset, None, &s)
}

fn same_tensors(a: &Path, b: &Path) {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs");
    }
}

fn last_stats(run: &Path) -> serde_json::Value {
    let stats = std::fs::read_to_string(run.join("stats.jsonl")).unwrap();
    serde_json::from_str(stats.lines().last().unwrap()).unwrap()
}

fn err<T>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.err().expect("an error"))
}

#[test]
fn stage_two_trains_on_a_frozen_stage_one_resumes_exactly_draws_and_evaluates() {
    let _turn = turn();
    let (root, data, encoder) = fixture();
    let sets = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let one = run(
        config("stackgan-tiny", &encoder, &sets(&["max_steps=3"])).unwrap(),
        &data,
        Start::Fresh { runs: root.path().join("one") },
    )
    .unwrap();
    let stage1 = format!("stage1={:?}", one.run_dir.display().to_string());
    let two_sets = |steps: usize| {
        sets(&[
            "stage=2",
            "image_size=128",
            &stage1,
            &format!("max_steps={steps}"),
            "checkpoint_every=2",
            "sample_every=2",
        ])
    };
    let straight = run(
        config("stackgan-tiny", &encoder, &two_sets(4)).unwrap(),
        &data,
        Start::Fresh { runs: root.path().join("a") },
    )
    .unwrap();
    let half = run(
        config("stackgan-tiny", &encoder, &two_sets(2)).unwrap(),
        &data,
        Start::Fresh { runs: root.path().join("b") },
    )
    .unwrap();
    // The resumed run reads its Stage I, its config and its encoder from its own checkpoint.
    std::fs::rename(&one.run_dir, root.path().join("moved")).unwrap();
    let resumed = run(
        config("stackgan-tiny", &encoder, &two_sets(4)).unwrap(),
        &data,
        Start::Resume(half.run_dir.clone()),
    )
    .unwrap();
    for file in [
        "generator.safetensors",
        "discriminator.safetensors",
        "optimizer.safetensors",
        "stage1_generator.safetensors",
    ] {
        same_tensors(&straight.checkpoint.join(file), &resumed.checkpoint.join(file));
    }
    // Stage I stayed frozen: the Stage-II run's copy is the Stage-I run's generator.
    std::fs::rename(root.path().join("moved"), &one.run_dir).unwrap();
    same_tensors(
        &straight.checkpoint.join("stage1_generator.safetensors"),
        &one.checkpoint.join("generator.safetensors"),
    );
    let last = last_stats(&straight.run_dir);
    for k in ["loss_d", "loss_g", "loss_kl", "d_real", "d_wrong", "d_fake", "grad_generator"] {
        assert!(last[k].as_f64().is_some_and(f64::is_finite), "{k} in {last}");
    }
    assert_eq!(last["loss_contrastive"].as_f64(), Some(0.0), "StackGAN has no siamese term");
    assert!(straight.run_dir.join("samples/step-0000004.png").is_file());

    // Drawing: 128×128 images; with --stages, Stage I beside Stage II.
    let model = draw::load_with(&straight.run_dir, Device::Cpu, Default::default()).unwrap();
    let out = root.path().join("out");
    let files = draw::generate(&model, "a large red metal cube.", &[0, 1], &out, true).unwrap();
    assert_eq!(files.len(), 3);
    let img = image::open(&files[0]).unwrap();
    assert_eq!((img.width(), img.height()), (128, 128));
    assert!(files[2].ends_with("stages.png"));
    let again =
        draw::generate(&model, "a large red metal cube.", &[0], &root.path().join("again"), false)
            .unwrap();
    assert_eq!(std::fs::read(&files[0]).unwrap(), std::fs::read(&again[0]).unwrap());
    let stage_one = draw::load_with(&one.run_dir, Device::Cpu, Default::default()).unwrap();
    assert!(err(draw::generate(&stage_one, "a red cube.", &[0], &out, true))
        .contains("is a Stage-I model"));
    assert!(err(draw::generate(&model, "  ", &[0], &out, false)).contains("the caption is empty"));

    // eval at 128×128 (averaged down to the classifier's 64×64).
    let clf = root.path().join("clf");
    tiny_classifier(&data, &clf, 2);
    let ereq = storyvis_eval::eval::EvalRequest {
        checkpoints: vec![one.run_dir.clone(), straight.run_dir.clone()],
        data: data.clone(),
        classifier: clf,
        stories: 6,
        seeds: 1,
        device: Device::Cpu,
        weights: Default::default(),
        detector: None,
    };
    let report = storyvis_eval::eval::evaluate(&ereq, &|_, _| {}).unwrap();
    let variants: Vec<&str> = report.models.iter().map(|m| m.variant.as_str()).collect();
    assert_eq!(variants, ["stackgan stage 1", "stackgan stage 2"]);
    assert!(report
        .models
        .iter()
        .all(|m| m.r_precision.is_some_and(|r| (0.0..=1.0).contains(&r)) && m.frechet.is_some()));

    // Bad input: a Stage II without its Stage I, on another stage's run, at a size the data
    // does not have; each a clear error.
    let bad = |extra: &[&str]| {
        let mut s = sets(&["stage=2", "image_size=128", "max_steps=1"]);
        s.extend(sets(extra));
        err(config("stackgan-tiny", &encoder, &s)
            .and_then(|c| run(c, &data, Start::Fresh { runs: root.path().join("bad") })))
    };
    assert!(bad(&[]).contains("stage 2 needs its Stage-I run"));
    assert!(bad(&["stage1=\"nowhere\""]).contains("nowhere"));
    let e = bad(&[&format!("stage1={:?}", straight.run_dir.display().to_string())]);
    assert!(e.contains("a stage-2 run; Stage II refines a stage-1 run"), "{e}");
    let e = bad(&["image_size=256", &stage1]);
    assert!(e.contains("prepare with --size 256"), "{e}");
}

#[test]
fn sdgan_trains_its_siamese_branches_and_scbn_and_refuses_single_caption_data() {
    let _turn = turn();
    let (root, data, encoder) = fixture();
    let out = run(
        config("sdgan-tiny", &encoder, &["max_steps=2".into()]).unwrap(),
        &data,
        Start::Fresh { runs: root.path().join("s") },
    )
    .unwrap();
    let last = last_stats(&out.run_dir);
    let con = last["loss_contrastive"].as_f64().unwrap();
    assert!(con.is_finite() && con > 0.0, "the siamese term is trained: {last}");
    // Its generator has the SCBN layers of both levels.
    let names: Vec<String> = tensors(&out.checkpoint.join("generator.safetensors"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        names.iter().any(|n| n.contains("sentence_gamma"))
            && names.iter().any(|n| n.contains("attention.f")),
        "{names:?}"
    );
    // Stage II of SDGAN draws through word features too.
    let s2 = [
        "stage=2".to_string(),
        "image_size=128".into(),
        format!("stage1={:?}", out.run_dir.display().to_string()),
        "max_steps=1".into(),
    ];
    let two = run(
        config("sdgan-tiny", &encoder, &s2).unwrap(),
        &data,
        Start::Fresh { runs: root.path().join("s2") },
    )
    .unwrap();
    let model = draw::load_with(&two.run_dir, Device::Cpu, Default::default()).unwrap();
    assert!(model.variant().contains("siamese on, scbn both"), "{}", model.variant());
    assert_eq!(
        draw::generate(&model, "a small cyan cylinder.", &[3], &root.path().join("o"), true)
            .unwrap()
            .len(),
        2
    );
    // One caption per image cannot feed the siamese pairs.
    let single = captions(root.path(), "single", 64, 1);
    let e = err(run(
        config("sdgan-tiny", &encoder, &["max_steps=1".into()]).unwrap(),
        &single,
        Start::Fresh { runs: root.path().join("x") },
    ));
    assert!(e.contains("needs ≥ 2 captions per image"), "{e}");
    // The plain StackGAN refuses SDGAN's switches.
    let e = err(config("stackgan-tiny", &encoder, &["scbn=\"word\"".into()]));
    assert!(e.contains("unknown config key \"scbn\""), "{e}");
}

#[test]
fn swap_negatives_train_the_encoder_and_become_the_discriminators_wrong_texts() {
    use storyvis_core::captioned::{CaptionData, EmbeddedCaptions};
    use storyvis_core::joint::{Joint, SwapGroups};
    use storyvis_data::dataset::{Dataset, Split};
    let _turn = turn();
    let (root, data, plain) = fixture();
    let shapes: SwapGroups = "cube,sphere,cylinder".parse().unwrap();
    let enc = root.path().join("swap-encoder");
    let m = tiny_text_encoder_with(&data, &enc, EncoderKind::Word, 3, shapes.clone()).unwrap();
    assert_eq!(m.swaps, shapes);
    assert!(
        m.held_out_swap_accuracy.is_some_and(|a| (0.0..=1.0).contains(&a)),
        "{:?}",
        m.held_out_swap_accuracy
    );
    // The swap term is in the loss: the same seed without it learns other weights.
    let (a, b) = (
        tensors(&enc.join("text_encoder.safetensors")),
        tensors(&plain.join("text_encoder.safetensors")),
    );
    assert!(
        a.iter().zip(&b).any(|((_, x), (_, y))| !x.equal(y)),
        "the swap negatives changed nothing"
    );
    // A swap word no caption uses is refused.
    let e = err(tiny_text_encoder_with(
        &data,
        &root.path().join("typo"),
        EncoderKind::Word,
        1,
        "cube,pyramid".parse().unwrap(),
    ));
    assert!(e.contains("\"pyramid\" is in no training caption"), "{e}");

    // The training captions' swapped copies: every CLEVR caption names a shape, so each gets one,
    // differing in one shape word, embedded as the encoder embeds that text.
    let joint = Joint::load(&enc, Device::Cpu).unwrap();
    let ds = Dataset::open(&data).unwrap();
    let train = CaptionData::load(&ds, Split::Train, false).unwrap();
    let mut caps = EmbeddedCaptions::new(&train, &joint, &ds).unwrap();
    let n = caps.texts.len();
    assert_eq!(caps.add_swaps(&joint, &shapes, 5).unwrap(), n);
    assert_eq!(caps.embeddings.size()[0], 2 * n as i64);
    for k in 0..n {
        let s = caps.swapped[k].expect("every caption names a shape");
        let (a, b): (Vec<&str>, Vec<&str>) =
            (caps.texts[k].split(' ').collect(), caps.texts[s].split(' ').collect());
        let diff: Vec<(&str, &str)> =
            a.iter().zip(&b).filter(|(x, y)| x != y).map(|(x, y)| (*x, *y)).collect();
        assert!(a.len() == b.len() && diff.len() == 1, "{} → {}", caps.texts[k], caps.texts[s]);
        let shape =
            |w: &str| ["cube", "sphere", "cylinder"].contains(&w.trim_end_matches(['.', ',', ':']));
        assert!(shape(diff[0].0) && shape(diff[0].1), "{diff:?}");
        let want = joint.text.embed(&[caps.texts[s].as_str()]).unwrap();
        let got = caps.embeddings.get(s as i64).unsqueeze(0);
        assert!((got - want).abs().max().double_value(&[]) < 1e-4, "row {s}");
    }
    // The discriminator's wrong texts: all swapped at share 1, none at share 0.
    let right: Vec<i64> = vec![0, 3, 7];
    let mut rng = storyvis_data::rng::Rng::new(1);
    let mut wrong = vec![10, 11, 12];
    caps.swap_wrong(&right, &mut wrong, 0.0, &mut rng);
    assert_eq!(wrong, [10, 11, 12]);
    caps.swap_wrong(&right, &mut wrong, 1.0, &mut rng);
    assert_eq!(
        wrong,
        right.iter().map(|&r| caps.swapped[r as usize].unwrap() as i64).collect::<Vec<_>>()
    );

    // StackGAN with wrong_swap trains on that encoder, and refuses one without swap groups.
    let cfg = |encoder: &Path, share: &str| {
        config("stackgan-tiny", encoder, &["max_steps=2".into(), format!("wrong_swap={share}")])
    };
    let out = run(cfg(&enc, "0.5").unwrap(), &data, Start::Fresh { runs: root.path().join("w") })
        .unwrap();
    let last = last_stats(&out.run_dir);
    assert!(last["d_wrong"].as_f64().is_some_and(f64::is_finite), "{last}");
    let e =
        err(run(cfg(&plain, "0.5").unwrap(), &data, Start::Fresh { runs: root.path().join("x") }));
    assert!(e.contains("needs a text encoder trained with swap groups"), "{e}");
    let e = err(cfg(&enc, "1.5"));
    assert!(e.contains("wrong_swap"), "{e}");
}

#[test]
fn the_budget_first_recipe_and_text_norm_train_both_stages_and_sdgan_and_draw() {
    let _turn = turn();
    let (root, data, encoder) = fixture();
    let recipe = [
        "max_steps=2",
        "text_norm=true",
        "aux_attributes=1.0",
        "mode_seeking=1.0",
        "mode_seeking_cap=0.05",
        "diffaugment=\"translation\"",
        "ema_half_life=1",
    ];
    let sets =
        |extra: &[&str]| recipe.iter().chain(extra).map(|s| s.to_string()).collect::<Vec<String>>();
    let one = run(
        config("stackgan-tiny", &encoder, &sets(&[])).unwrap(),
        &data,
        Start::Fresh { runs: root.path().join("one") },
    )
    .unwrap();
    let stage1 = format!("stage1={:?}", one.run_dir.display().to_string());
    let two = run(
        config("stackgan-tiny", &encoder, &sets(&["stage=2", "image_size=128", &stage1])).unwrap(),
        &data,
        Start::Fresh { runs: root.path().join("two") },
    )
    .unwrap();
    let sd = run(
        config("sdgan-tiny", &encoder, &sets(&[])).unwrap(),
        &data,
        Start::Fresh { runs: root.path().join("sd") },
    )
    .unwrap();
    for r in [&one, &two, &sd] {
        let last = last_stats(&r.run_dir);
        for k in ["loss_d_attributes", "loss_g_attributes", "loss_g_mode_seeking", "loss_d"] {
            let v = last[k].as_f64();
            assert!(v.is_some_and(|v| v.is_finite() && v > 0.0), "{k} in {last}");
        }
        // The norm the run read its captions with travels with its checkpoints.
        assert!(r.checkpoint.join("text-norm.json").is_file());
    }
    // Stage II reads its Stage I's norm, not a new fit.
    assert_eq!(
        std::fs::read(two.checkpoint.join("text-norm.json")).unwrap(),
        std::fs::read(one.checkpoint.join("text-norm.json")).unwrap()
    );
    // They draw through the norm (which the loader reads, or fails naming it).
    let model = draw::load_with(&two.run_dir, Device::Cpu, Default::default()).unwrap();
    let out = root.path().join("out");
    let files = draw::generate(&model, "a large red metal cube.", &[0], &out, false).unwrap();
    assert_eq!(image::open(&files[0]).unwrap().width(), 128);
    // A Stage II that would read the captions otherwise than its Stage I is refused.
    let plain: Vec<String> = ["stage=2", "image_size=128", "max_steps=1", stage1.as_str()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let e = err(config("stackgan-tiny", &encoder, &plain)
        .and_then(|c| run(c, &data, Start::Fresh { runs: root.path().join("bad") })));
    assert!(e.contains("its text_norm is true, this run's false"), "{e}");
}
