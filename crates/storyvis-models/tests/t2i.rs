//! Text to image end to end on tiny settings: CLEVR captions, a text encoder by the joint
//! embedding loss, gan-int-cls-tiny on the training loop (resume exact), and the drawing
//! commands with their bad inputs.

mod common;

use common::{run, tensors, tiny_classifier, tiny_text_encoder, turn};
use std::path::PathBuf;
use storyvis_core::config::Config;
use storyvis_core::joint::EncoderKind;
use storyvis_core::train::Start;
use storyvis_data::clevr::captions::{generate_captions, CaptionOptions};
use storyvis_models::gan_int_cls::draw;
use tch::Device;

struct Fixture {
    root: tempfile::TempDir,
    data: PathBuf,
    encoder: PathBuf,
}

fn fixture(kind: EncoderKind) -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("captions");
    generate_captions(
        &CaptionOptions {
            images: 24,
            seed: 2,
            supersample: 1,
            split: 0.75,
            ..CaptionOptions::default()
        },
        &data,
        false,
        &|| {},
    )
    .unwrap();
    let encoder = root.path().join("encoder");
    let m = tiny_text_encoder(&data, &encoder, kind, 4);
    assert!((0.0..=1.0).contains(&m.held_out_r_precision));
    Fixture { root, data, encoder }
}

fn tiny(f: &Fixture, sets: &[&str]) -> Config {
    let mut s: Vec<String> = sets.iter().map(|x| x.to_string()).collect();
    s.push(format!("text_encoder={:?}", f.encoder.display().to_string()));
    Config::resolve("gan-int-cls-tiny", None, &s).unwrap()
}

#[test]
fn gan_int_cls_trains_resumes_exactly_and_draws() {
    let _turn = turn();
    let f = fixture(EncoderKind::Word);
    let sets = ["checkpoint_every=3", "sample_every=3", "log_every=1"];
    let with = |steps: usize| {
        let m = format!("max_steps={steps}");
        let mut s = sets.to_vec();
        s.push(&m);
        tiny(&f, &s)
    };
    let straight = run(with(6), &f.data, Start::Fresh { runs: f.root.path().join("a") }).unwrap();
    let half = run(with(3), &f.data, Start::Fresh { runs: f.root.path().join("b") }).unwrap();
    let resumed = run(with(6), &f.data, Start::Resume(half.run_dir.clone())).unwrap();
    for file in [
        "generator.safetensors",
        "discriminator.safetensors",
        "style.safetensors",
        "optimizer.safetensors",
    ] {
        let (a, b) =
            (tensors(&straight.checkpoint.join(file)), tensors(&resumed.checkpoint.join(file)));
        assert_eq!(a.len(), b.len());
        for ((na, ta), (_, tb)) in a.iter().zip(&b) {
            assert!(ta.equal(tb), "{file}: {na} differs after resume");
        }
    }
    let stats = std::fs::read_to_string(straight.run_dir.join("stats.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(stats.lines().last().unwrap()).unwrap();
    for k in [
        "loss_d",
        "loss_g",
        "loss_g_int",
        "loss_style",
        "d_wrong",
        "grad_generator",
        "grad_style",
        "lr_discriminator",
    ] {
        assert!(last[k].as_f64().is_some_and(f64::is_finite), "{k} in {last}");
    }
    assert!(
        last["loss_g_int"].as_f64().unwrap() > 0.0,
        "int = true: the interpolated term is trained"
    );
    assert!(straight.run_dir.join("samples/step-0000006.png").is_file());
    // The checkpoint carries the text encoder: it draws after the encoder is gone.
    std::fs::remove_dir_all(&f.encoder).unwrap();
    let model = draw::load(&straight.run_dir, Device::Cpu).unwrap();
    let out = f.root.path().join("out");
    let files = draw::generate(&model, "a large red metal cube.", &[0, 1, 2], &out).unwrap();
    assert_eq!(files.len(), 4);
    let img = image::open(&files[0]).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
    // Seeds are reproducible and differ from each other.
    let again =
        draw::generate(&model, "a large red metal cube.", &[0], &f.root.path().join("again"))
            .unwrap();
    assert_eq!(std::fs::read(&files[0]).unwrap(), std::fs::read(&again[0]).unwrap());
    assert_ne!(std::fs::read(&files[0]).unwrap(), std::fs::read(&files[1]).unwrap());
    let rows = draw::interpolate(&model, "a red cube.", "a blue sphere.", 5, &[0, 1]).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["interpolate-seed0000.png", "interpolate-seed0001.png"]
    );
    let row = image::load_from_memory(&rows[0].bytes).unwrap();
    assert!(row.width() > 5 * 64, "five images in a row: {}", row.width());
    let st = draw::style_transfer(&model, &files[1], "a small yellow rubber cylinder.").unwrap();
    assert_eq!(st.name, "style-transfer.png");
    assert!(image::load_from_memory(&st.bytes).is_ok());

    // Bad input: each a clear error.
    let e = |r: anyhow::Result<Vec<PathBuf>>| format!("{:#}", r.expect_err("an error"));
    assert!(e(draw::generate(&model, "   ", &[0], &out)).contains("the caption is empty"));
    assert!(e(draw::generate(&model, &"word ".repeat(400), &[0], &out))
        .contains("at most 1000 are allowed"));
    assert!(format!("{:#}", draw::interpolate(&model, "a", "b", 1, &[0]).unwrap_err())
        .contains("--steps must be 2..64"));
    let small = f.root.path().join("small.png");
    image::RgbImage::new(32, 32).save(&small).unwrap();
    let err = format!("{:#}", draw::style_transfer(&model, &small, "a red cube.").err().unwrap());
    assert!(err.contains("is 32×32; this model reads 64×64"), "{err}");
    let text = f.root.path().join("not-an-image.png");
    std::fs::write(&text, "hello").unwrap();
    let err = format!("{:#}", draw::style_transfer(&model, &text, "a red cube.").err().unwrap());
    assert!(err.contains("is not an image"), "{err}");
    // eval: the classifier and R-precision columns for a text-to-image row.
    let clf = f.root.path().join("clf");
    tiny_classifier(&f.data, &clf, 3);
    let ereq = storyvis_eval::eval::EvalRequest {
        checkpoints: vec![straight.run_dir.clone()],
        data: f.data.clone(),
        classifier: clf,
        stories: 6,
        seeds: 2,
        device: Device::Cpu,
        weights: Default::default(),
        detector: None,
    };
    let report = storyvis_eval::eval::evaluate(&ereq, &|_, _| {}).unwrap();
    let row = &report.models[0];
    assert_eq!((row.variant.as_str(), row.step, row.frames), ("gan-int-cls", 6, 12));
    assert!(
        row.r_precision.is_some_and(|r| (0.0..=1.0).contains(&r))
            && row.ssim.is_none()
            && row.frechet.is_some()
    );
    assert!(storyvis_eval::eval::markdown(&report).contains("R-prec."));
    // A checkpoint of one family given to another's command.
    let err = format!(
        "{:#}",
        storyvis_models::storygan::sample::load(&straight.run_dir, Device::Cpu).err().unwrap()
    );
    assert!(
        err.contains("is a gan-int-cls checkpoint (preset gan-int-cls-tiny), not a storygan one"),
        "{err}"
    );
}

#[test]
fn the_char_cnn_rnn_encoder_trains_and_a_story_dataset_is_refused() {
    let _turn = turn();
    let f = fixture(EncoderKind::CharCnnRnn);
    let out = run(
        tiny(&f, &["max_steps=2", "int=false", "cls=false", "style=false"]),
        &f.data,
        Start::Fresh { runs: f.root.path().join("r") },
    )
    .unwrap();
    let stats = std::fs::read_to_string(out.run_dir.join("stats.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(stats.lines().last().unwrap()).unwrap();
    // The plain GAN: no interpolated term, no style phase.
    assert_eq!(
        (last["loss_g_int"].as_f64(), last["loss_style"].as_f64(), last["grad_style"].as_f64()),
        (Some(0.0), Some(0.0), Some(0.0))
    );
    // Without its style encoder, a run cannot transfer a style.
    let model = draw::load(&out.run_dir, Device::Cpu).unwrap();
    let img = f.root.path().join("q.png");
    image::RgbImage::new(64, 64).save(&img).unwrap();
    let e = format!("{:#}", draw::style_transfer(&model, &img, "a red cube.").unwrap_err());
    assert!(e.contains("trained without its style encoder"), "{e}");
    // A story dataset (4 frames per item) is not a captioned one.
    let stories = f.root.path().join("stories");
    let opts =
        storyvis_data::clevr::GenerateOptions { stories: 4, supersample: 1, ..Default::default() };
    storyvis_data::clevr::generate(&opts, &stories, false, &|| {}).unwrap();
    let e = format!(
        "{:#}",
        run(tiny(&f, &[]), &stories, Start::Fresh { runs: f.root.path().join("r2") })
            .err()
            .unwrap()
    );
    assert!(e.contains("is a story dataset (4 frames per story"), "{e}");
    // A missing encoder names itself.
    let mut cfg = tiny(&f, &[]);
    cfg.model.insert("text_encoder".into(), "nowhere".into());
    let e = format!(
        "{:#}",
        run(cfg, &f.data, Start::Fresh { runs: f.root.path().join("r3") }).err().unwrap()
    );
    assert!(
        e.contains("loading the text encoder nowhere") && e.contains("train-text-encoder"),
        "{e}"
    );
}

#[test]
fn the_fast_preset_trains_with_the_recipe_and_draws_through_its_text_norm() {
    let _turn = turn();
    let f = fixture(EncoderKind::Minilm);
    // gan-int-cls-fast at tiny widths: DiffAugment, the attribute head, mode seeking, the
    // matching-aware gradient penalty, MiniLM's embeddings centred and scaled.
    let sets: Vec<String> = [
        "max_steps=2",
        "ngf=8",
        "ndf=8",
        "batch=4",
        "noise_dim=8",
        "text_dim=8",
        "ema_standing=1",
        "recipe.diffaugment=color,translation,cutout",
        "ma_gp=2",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("text_encoder={:?}", f.encoder.display().to_string())])
    .collect();
    let cfg = Config::resolve("gan-int-cls-fast", None, &sets).unwrap();
    let out = run(cfg, &f.data, Start::Fresh { runs: f.root.path().join("fast") }).unwrap();
    let stats = std::fs::read_to_string(out.run_dir.join("stats.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(stats.lines().last().unwrap()).unwrap();
    for k in ["loss_d_attributes", "loss_g_attributes", "loss_g_mode_seeking", "loss_d_ma_gp"] {
        assert!(last[k].as_f64().is_some_and(|v| v.is_finite() && v > 0.0), "{k} in {last}");
    }
    let norm = storyvis_core::recipe::TextNorm::load(&out.checkpoint).unwrap();
    assert_eq!(norm.mean.len(), 384);
    // Two generator updates per discriminator update (`g_steps`), each its own Adam step.
    let steps = |m: &storyvis_core::checkpoint::Manifest| {
        (m.adam_steps["generator"], m.adam_steps["discriminator"])
    };
    assert_eq!(steps(&storyvis_core::checkpoint::verify(&out.checkpoint).unwrap()), (2, 2));
    let twice = Config::resolve(
        "gan-int-cls-fast",
        None,
        &[sets.clone(), vec!["g_steps=2".into()]].concat(),
    )
    .unwrap();
    let out2 = run(twice, &f.data, Start::Fresh { runs: f.root.path().join("fast2") }).unwrap();
    assert_eq!(steps(&storyvis_core::checkpoint::verify(&out2.checkpoint).unwrap()), (4, 2));
    // The frozen MiniLM's caption table is cached beside the data for the next run.
    let cached: Vec<String> = std::fs::read_dir(&f.data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("minilm-"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    // The caption reaches the drawing, and so does the noise.
    let model = draw::load(&out.run_dir, Device::Cpu).unwrap();
    let png = |caption: &str, seed: u64, name: &str| {
        let files = draw::generate(&model, caption, &[seed], &f.root.path().join(name)).unwrap();
        std::fs::read(&files[0]).unwrap()
    };
    let red = png("a large red metal cube.", 0, "a");
    assert_ne!(red, png("a small blue rubber sphere.", 0, "b"), "two captions drew the same image");
    assert_ne!(red, png("a large red metal cube.", 1, "c"), "another noise drew the same image");
    assert_eq!(red, png("a large red metal cube.", 0, "d"));
    // The text norm is what the generator reads: drawing the normed embedding by hand agrees.
    let raw = model.joint.text.embed(&["a large red metal cube."]).unwrap();
    let by_hand = norm.apply(&raw);
    assert!(
        (model.embed("a large red metal cube.").unwrap() - by_hand).abs().max().double_value(&[])
            < 1e-6
    );
}

#[test]
fn the_projected_discriminator_trains_resumes_exactly_and_stays_out_of_the_checkpoint() {
    let _turn = turn();
    let f = fixture(EncoderKind::Minilm);
    // gan-int-cls-fast at tiny widths with the frozen EfficientNet-Lite0 discriminator.
    let with = |steps: usize| {
        let sets: Vec<String> = [
            "ngf=8",
            "ndf=8",
            "batch=4",
            "noise_dim=8",
            "text_dim=8",
            "ema_standing=1",
            "checkpoint_every=2",
            "d_backbone=efficientnet-lite0",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            format!("max_steps={steps}"),
            format!("text_encoder={:?}", f.encoder.display().to_string()),
        ])
        .collect();
        Config::resolve("gan-int-cls-fast", None, &sets).unwrap()
    };
    let straight = run(with(4), &f.data, Start::Fresh { runs: f.root.path().join("a") }).unwrap();
    let half = run(with(2), &f.data, Start::Fresh { runs: f.root.path().join("b") }).unwrap();
    let resumed = run(with(4), &f.data, Start::Resume(half.run_dir.clone())).unwrap();
    // The random projections are drawn again from the run's seed: the resumed run is the same.
    for file in ["generator.safetensors", "discriminator.safetensors", "optimizer.safetensors"] {
        let (a, b) =
            (tensors(&straight.checkpoint.join(file)), tensors(&resumed.checkpoint.join(file)));
        assert_eq!(a.len(), b.len());
        for ((na, ta), (_, tb)) in a.iter().zip(&b) {
            assert!(ta.equal(tb), "{file}: {na} differs after resume");
        }
    }
    // Only the small discriminators and the attribute head are stored: no backbone, no projection.
    let d = tensors(&straight.checkpoint.join("discriminator.safetensors"));
    assert!(
        d.iter().all(|(n, _)| n.starts_with("scale") || n.starts_with("attributes")),
        "{:?}",
        d.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    let stored: i64 = d.iter().map(|(_, t)| t.numel() as i64).sum();
    assert!(stored < 1_000_000, "{stored} values stored: more than the small discriminators");
    let stats = std::fs::read_to_string(straight.run_dir.join("stats.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(stats.lines().last().unwrap()).unwrap();
    assert!(
        last["loss_d"].as_f64().is_some_and(f64::is_finite)
            && last["loss_d_attributes"].as_f64().is_some_and(|v| v > 0.0),
        "{last}"
    );
}
