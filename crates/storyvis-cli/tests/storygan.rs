//! StoryGAN through the CLI: prepare → train storygan-tiny → generate, resume, and the errors a
//! user can run into.

mod common;

use common::{fails, ok, p, trained};
use std::fs;

const STORY: &str = "there is a large red metal cube in the middle of the scene. a small blue rubber sphere is to the left of the large red metal cube. someone adds a small green rubber cylinder behind the small blue rubber sphere. a large yellow metal sphere appears in front of the large red metal cube.";

#[test]
fn prepare_train_generate() {
    let root = tempfile::tempdir().unwrap();
    let (data, run) = trained(root.path());
    for f in ["config.toml", "vocab.json", "stats.jsonl", "loss.png", "run.json", "samples/step-0000004.png", "checkpoints/latest", "checkpoints/step-0000002/checkpoint.json", "checkpoints/step-0000004/generator.safetensors"] {
        assert!(run.join(f).exists(), "run lacks {f}");
    }
    let stats = fs::read_to_string(run.join("stats.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(stats.lines().next().unwrap()).unwrap();
    for k in ["loss_d_image", "loss_d_story", "loss_g", "d_real", "d_fake", "aux_accuracy", "seconds_per_iteration"] {
        assert!(first[k].is_number(), "stats lack {k}: {first}");
    }
    let info: serde_json::Value = serde_json::from_str(&fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!((info["device"].as_str(), info["precision"].as_str(), info["channels_last"].as_bool()), (Some("Cpu"), Some("fp32"), Some(true)), "{info}");

    // Frames: T PNGs per seed.
    let out = root.path().join("frames");
    ok(&["generate", "--checkpoint", p(&run), "--story", STORY, "--seeds", "0-1", "--out", p(&out), "--format", "frames"]);
    for seed in 0..2 {
        for t in 1..=4 {
            let f = out.join(format!("seed{seed:04}-frame{t}.png"));
            assert_eq!(image::open(&f).unwrap().width(), 64, "{}", f.display());
        }
    }
    // Strips, from a story file; the same seed draws the same picture.
    let story_file = root.path().join("story.txt");
    fs::write(&story_file, STORY.replace(". ", ".\n")).unwrap();
    let strips = root.path().join("strips");
    ok(&["generate", "--checkpoint", p(&run), "--story-file", p(&story_file), "--seeds", "3", "--out", p(&strips)]);
    let again = root.path().join("again");
    ok(&["generate", "--checkpoint", p(&run), "--story", STORY, "--seeds", "3", "--out", p(&again)]);
    assert_eq!(fs::read(strips.join("seed0003.png")).unwrap(), fs::read(again.join("seed0003.png")).unwrap());

    // A generator-only export draws exactly what its checkpoint draws, and cannot be resumed.
    let export = root.path().join("export");
    let said = ok(&["export", "--checkpoint", p(&run), "--out", p(&export)]);
    assert!(said.contains("step 4"), "{said}");
    assert!(!export.join("image_d.safetensors").exists() && !export.join("optimizer.safetensors").exists());
    let from_export = root.path().join("from-export");
    ok(&["generate", "--checkpoint", p(&export), "--story", STORY, "--seeds", "3", "--out", p(&from_export)]);
    assert_eq!(fs::read(strips.join("seed0003.png")).unwrap(), fs::read(from_export.join("seed0003.png")).unwrap());
    fails(&["export", "--checkpoint", p(&run), "--out", p(&export)], "already exists");
    fails(&["train", "--preset", "storygan-tiny", "--data", p(&data), "--resume", p(&export)], "generator-only export");

    // Resume: `latest` continues the newest run of the preset to a longer end.
    let more = ok(&["train", "--preset", "storygan-tiny", "--data", p(&data), "--runs", p(&run.parent().unwrap().to_path_buf()), "--resume", "latest", "--set", "max_steps=6"]);
    assert!(more.contains("trained after 6 iterations") && more.contains("00000-storygan-tiny"), "{more}");
}

#[test]
fn config_errors_and_dry_run() {
    let resolved = ok(&["train", "--preset", "storygan-small", "--dry-run", "--set", "lr_g=0.0001"]);
    assert!(resolved.contains("preset = \"storygan-small\"") && resolved.contains("lr_g = 0.0001"), "{resolved}");
    fails(&["train", "--preset", "storygan-tiny", "--dry-run", "--set", "learning_rate=1"], "unknown config key \"learning_rate\"");
    fails(&["train", "--preset", "storygan-tiny", "--dry-run", "--set", "g_steps=0"], "g_steps = 0 is out of range");
    fails(&["train", "--preset", "storygan-huge"], "unknown preset");
    let cfg = tempfile::NamedTempFile::new().unwrap();
    fs::write(cfg.path(), "ngf = \"wide\"\n").unwrap();
    fails(&["train", "--preset", "storygan-tiny", "--dry-run", "--config", p(cfg.path())], "ngf");
}

#[test]
fn bad_stories_and_checkpoints_are_clear_errors_that_write_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (data, run) = trained(root.path());
    let out = root.path().join("out");
    let gen = |story: &str, extra: &[&str], want: &str| {
        let mut args = vec!["generate", "--checkpoint", p(&run), "--story", story, "--out", p(&out)];
        args.extend_from_slice(extra);
        fails(&args, want);
    };
    gen("", &[], "the story is empty");
    gen(" . . ", &[], "the story is empty");
    gen("a red cube. a blue sphere.", &[], "the story has 2 sentences; this model draws 4");
    let long = format!("a {} cube. b. c. d.", "very ".repeat(2100));
    gen(&long, &[], "sentence 1 is 10");
    gen("zorp blip. quux. frob. glorp.", &[], "has no word the model knows");
    gen(STORY.replace("cube in", "dragon in").as_str(), &["--strict-vocab"], "unknown words");
    assert!(!out.exists(), "a failed generate wrote {}", out.display());

    // --pad / --truncate fit a story to T.
    ok(&["generate", "--checkpoint", p(&run), "--story", "a large red metal cube.", "--pad", "--seeds", "0", "--out", p(&out)]);
    let five = format!("{STORY} a small gray rubber cube is behind the large red metal cube.");
    ok(&["generate", "--checkpoint", p(&run), "--story", &five, "--truncate", "--seeds", "0", "--out", p(&out)]);

    let bad = root.path().join("latin1.txt");
    fs::write(&bad, b"a caf\xe9 cube.").unwrap();
    fails(&["generate", "--checkpoint", p(&run), "--story-file", p(&bad), "--out", p(&out)], "is not UTF-8 text");
    fails(&["generate", "--checkpoint", p(&root.path().join("nope")), "--story", STORY], "does not exist");
    fails(&["generate", "--checkpoint", p(&data), "--story", STORY], "neither a checkpoint nor a run directory");

    // A truncated weights file is named; a dataset with another T is refused.
    let g = run.join("checkpoints/step-0000004/generator.safetensors");
    let bytes = fs::read(&g).unwrap();
    fs::write(&g, &bytes[..100]).unwrap();
    fails(&["generate", "--checkpoint", p(&run), "--story", STORY], "generator.safetensors is corrupt or truncated");
    fails(&["train", "--preset", "storygan-tiny", "--data", p(&data), "--runs", p(&root.path().join("r")), "--set", "frames=3"], "4 frames per story, the model 3");
    fails(&["train", "--preset", "storygan-tiny", "--runs", p(&root.path().join("r"))], "--data DIR is required");
}

#[test]
fn the_shipped_model_draws_a_typed_story() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let said = ok(&["generate", "--story", STORY, "--seeds", "0", "--out", p(&out)]);
    assert!(said.contains("storygan-default"), "{said}");
    let strip = image::open(out.join("seed0000.png")).unwrap();
    assert!(strip.width() >= 4 * 64, "a strip of 4 frames: {}", strip.width());
    // It is the storygan-small export that scripts/train-default-model writes.
    let root_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/storygan-default");
    let manifest: serde_json::Value = serde_json::from_str(&fs::read_to_string(root_dir.join("checkpoint.json")).unwrap()).unwrap();
    assert!(manifest["adam_steps"].as_object().unwrap().is_empty() && manifest["step"].as_u64().unwrap() > 1000, "{manifest}");
    assert!(fs::read_to_string(root_dir.join("config.toml")).unwrap().contains("preset = \"storygan-small\""));
}

#[test]
fn bench_times_iterations_and_draws() {
    let root = tempfile::tempdir().unwrap();
    let json = root.path().join("bench.json");
    let said = ok(&["bench", "--preset", "storygan-tiny", "--warmup", "1", "--iterations", "2", "--draws", "3", "--json", p(&json)]);
    assert!(said.contains("train iteration") && said.contains("draw one story"), "{said}");
    let r: serde_json::Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    let times = |k: &str| r[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>();
    assert_eq!(times("train_ms").len(), 2);
    assert_eq!(times("sample_ms").len(), 3);
    assert!(times("train_ms").iter().chain(&times("sample_ms")).all(|&t| t > 0.0));
    let median = r["train_ms_median"].as_f64().unwrap();
    let (lo, hi) = (times("train_ms").into_iter().fold(f64::MAX, f64::min), times("train_ms").into_iter().fold(0.0, f64::max));
    assert!(lo <= median && median <= hi);
    // The same networks train builds: storygan-tiny's parameter counts.
    assert!(r["parameters"]["generator"].as_i64().unwrap() > 100_000, "{r}");
    assert_eq!((r["precision"].as_str(), r["channels_last"].as_bool()), (Some("fp32"), Some(true)), "auto is channels-last on the CPU: {r}");
    ok(&["bench", "--preset", "storygan-tiny", "--warmup", "0", "--iterations", "1", "--draws", "1", "--memory-format", "standard", "--json", p(&json)]);
    let r: serde_json::Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["channels_last"].as_bool(), Some(false), "{r}");
    fails(&["bench", "--preset", "storygan-tiny", "--iterations", "0"], "at least 1");
    fails(&["bench", "--preset", "storygan-huge"], "storygan-huge");
    // bf16 runs on the CPU too (autocast); TF32 is a CUDA format.
    let said = ok(&["bench", "--preset", "storygan-tiny", "--warmup", "0", "--iterations", "1", "--draws", "1", "--precision", "bf16", "--json", p(&json)]);
    assert!(said.contains("at bf16, channels-last"), "{said}");
    let r: serde_json::Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((r["precision"].as_str(), r["channels_last"].as_bool()), (Some("bf16"), Some(true)), "{r}");
    fails(&["bench", "--preset", "storygan-tiny", "--precision", "tf32"], "needs a CUDA device");
    fails(&["bench", "--preset", "storygan-tiny", "--precision", "fp16"], "fp32, tf32 or bf16");
    fails(&["bench", "--preset", "storygan-tiny", "--memory-format", "nhwc"], "auto, standard or channels-last");
}
