//! A family from outside the library, added with one line: the toy family (tests/common/toy.rs)
//! registered here trains, draws, is evaluated and is benchmarked through the same registry
//! hooks as storyvis' own families, with no code of the core, the evaluation or the CLI naming
//! it.

mod common;

use storyvis_core::config::Config;
use storyvis_core::drawer::{Checked, Layout};
use storyvis_core::input::Fit;
use storyvis_core::precision::Runtime;
use storyvis_core::registry;
use storyvis_core::train::Start;
use storyvis_data::clevr::captions::{generate_captions, CaptionOptions};
use tch::Device;

#[test]
fn a_family_registered_in_one_line_trains_draws_evaluates_and_benchmarks() {
    let _turn = common::turn();
    // The one line.
    registry::register(&common::toy::FAMILY);

    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // Captioned images: the toy family draws one picture from a caption.
    let opts = CaptionOptions {
        images: 12,
        seed: 5,
        split: 0.5,
        supersample: 1,
        captions: 2,
        ..CaptionOptions::default()
    };
    generate_captions(&opts, &data, false, &|| {}).unwrap();

    // Train: the engine builds it from its preset.
    let cfg =
        Config::resolve("toy", None, &["max_steps=3".into(), "checkpoint_every=3".into()]).unwrap();
    assert_eq!(cfg.family, "toy");
    let out =
        common::run(cfg.clone(), &data, Start::Fresh { runs: root.path().join("runs") }).unwrap();
    assert_eq!(out.steps, 3);

    // Generate: its drawer, found from the checkpoint's family.
    let model = registry::load_drawer(&out.run_dir, Device::Cpu, Default::default()).unwrap();
    assert_eq!(model.about().family, "toy");
    let text = model.check("any words", Fit::Exact).unwrap();
    let drawn = model.draw_as(&text, &[0, 1], &Layout::default()).unwrap();
    assert_eq!(
        drawn.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["seed0000.png", "seed0001.png"]
    );
    let again = model
        .draw(&Checked { sentences: vec!["other words".into()], unknown: vec![] }, &[1])
        .unwrap();
    assert_eq!(again[0].bytes, drawn[1].bytes, "a seed draws the same swatch");
    // What it does not have is an error that names it, not a panic.
    let e = format!("{:#}", model.interpolate("a", "b", 3, &[0]).unwrap_err());
    assert!(e.contains("is a toy checkpoint"), "{e}");

    // Eval: its evaluation hook draws the held-out stories, the scorers score them.
    let classifier = root.path().join("classifier");
    common::tiny_classifier(&data, &classifier, 2);
    let req = storyvis_eval::eval::EvalRequest {
        checkpoints: vec![out.run_dir.clone()],
        data: data.clone(),
        classifier,
        stories: 4,
        seeds: 2,
        device: Device::Cpu,
        weights: Default::default(),
        detector: None,
    };
    let report = storyvis_eval::eval::evaluate(&req, &|_, _| {}).unwrap();
    let row = &report.models[0];
    assert_eq!(
        (row.variant.as_str(), row.step, row.frames),
        ("toy", 3, 2 * report.stories * report.frames_per_story)
    );

    // Bench: its synthetic hook, timed on the engine.
    let t = storyvis_core::train::bench(&cfg, Runtime::cpu(), 0, 2, 3).unwrap();
    assert_eq!((t.train_ms.len(), t.sample_ms.len()), (2, 3));
    assert_eq!(
        t.parameters.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ["generator", "discriminator"]
    );
}

/// Every family storyvis ships has one shipped model in the checkout: a drawing-only export of
/// that family (the generator's moving average alone, no optimiser, no discriminator), at
/// most 8 MB, that loads and draws.
#[test]
fn every_family_has_a_shipped_model_of_at_most_8_mb_that_draws() {
    storyvis_models::install();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let families: Vec<&str> = storyvis_models::FAMILIES.iter().map(|f| f.name).collect();
    let shipped: Vec<&str> = storyvis_models::SHIPPED_MODELS.iter().map(|(f, _)| *f).collect();
    assert_eq!(shipped, families, "one shipped model per family, in the registry's order");
    for (family, path) in storyvis_models::SHIPPED_MODELS {
        let dir = root.join(path);
        let manifest = storyvis_core::checkpoint::verify(&dir).unwrap();
        assert_eq!(storyvis_core::checkpoint::load_config(&dir).unwrap().family, *family);
        assert!(manifest.adam_steps.is_empty(), "{path} is a training checkpoint");
        let files: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
        assert!(files.iter().any(|f| f.ends_with("_ema.safetensors")), "{path}: {files:?}");
        for f in &files {
            assert!(
                !["generator.safetensors", "discriminator.safetensors", "optimizer.safetensors"]
                    .contains(f),
                "{path} carries {f}"
            );
        }
        let bytes: u64 = files.iter().map(|f| std::fs::metadata(dir.join(f)).unwrap().len()).sum();
        assert!(bytes <= 8_000_000, "{path}: {bytes} bytes");
        let d = registry::load_drawer(&dir, Device::Cpu, Default::default()).unwrap();
        assert_eq!(d.about().family, *family);
        let example = storyvis_core::drawer::examples(d.as_ref(), 1);
        let checked = d.check(&example[0], Fit::Exact).unwrap();
        assert!(!d.draw(&checked, &[0]).unwrap().is_empty(), "{path} drew nothing");
    }
}
