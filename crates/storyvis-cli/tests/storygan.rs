//! StoryGAN through the CLI: prepare → train storygan-tiny → generate, resume, and the errors a
//! user can run into.

mod common;

use common::{fails, ok, p, trained};
use std::fs;
use std::path::Path;

const STORY: &str = "there is a large red metal cube in the middle of the scene. a small blue rubber sphere is to the left of the large red metal cube. someone adds a small green rubber cylinder behind the small blue rubber sphere. a large yellow metal sphere appears in front of the large red metal cube.";

#[test]
fn prepare_train_generate() {
    let root = tempfile::tempdir().unwrap();
    let (data, run) = trained(root.path());
    for f in [
        "config.toml",
        "vocab.json",
        "stats.jsonl",
        "loss.png",
        "run.json",
        "samples/step-0000004.png",
        "checkpoints/latest",
        "checkpoints/step-0000002/checkpoint.json",
        "checkpoints/step-0000004/generator.safetensors",
    ] {
        assert!(run.join(f).exists(), "run lacks {f}");
    }
    let stats = fs::read_to_string(run.join("stats.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(stats.lines().next().unwrap()).unwrap();
    for k in [
        "loss_d_image",
        "loss_d_story",
        "loss_g",
        "d_real",
        "d_fake",
        "aux_accuracy",
        "seconds_per_iteration",
    ] {
        assert!(first[k].is_number(), "stats lack {k}: {first}");
    }
    let info: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        (info["device"].as_str(), info["precision"].as_str(), info["channels_last"].as_bool()),
        (Some("Cpu"), Some("fp32"), Some(true)),
        "{info}"
    );

    // Frames: T PNGs per seed.
    let out = root.path().join("frames");
    ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--story",
        STORY,
        "--seeds",
        "0-1",
        "--out",
        p(&out),
        "--format",
        "frames",
    ]);
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
    ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--story-file",
        p(&story_file),
        "--seeds",
        "3",
        "--out",
        p(&strips),
    ]);
    let again = root.path().join("again");
    ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--story",
        STORY,
        "--seeds",
        "3",
        "--out",
        p(&again),
    ]);
    assert_eq!(
        fs::read(strips.join("seed0003.png")).unwrap(),
        fs::read(again.join("seed0003.png")).unwrap()
    );

    // A generator-only export draws exactly what its checkpoint draws, and cannot be resumed.
    let export = root.path().join("export");
    let said = ok(&["export", "--checkpoint", p(&run), "--out", p(&export)]);
    assert!(said.contains("step 4"), "{said}");
    assert!(
        !export.join("image_d.safetensors").exists()
            && !export.join("optimizer.safetensors").exists()
    );
    let from_export = root.path().join("from-export");
    ok(&[
        "generate",
        "--checkpoint",
        p(&export),
        "--story",
        STORY,
        "--seeds",
        "3",
        "--out",
        p(&from_export),
    ]);
    assert_eq!(
        fs::read(strips.join("seed0003.png")).unwrap(),
        fs::read(from_export.join("seed0003.png")).unwrap()
    );
    fails(&["export", "--checkpoint", p(&run), "--out", p(&export)], "already exists");
    fails(
        &["train", "--preset", "storygan-tiny", "--data", p(&data), "--resume", p(&export)],
        "generator-only export",
    );
    // A half-precision export: every weight file about half the bytes, and the same drawing
    // up to the weights' rounding (a relative 2⁻¹¹ per weight, not a different picture).
    let half = root.path().join("export-half");
    ok(&["export", "--checkpoint", p(&run), "--out", p(&half), "--half"]);
    {
        let f = "generator.safetensors";
        let (full, halved) = (
            fs::metadata(export.join(f)).unwrap().len(),
            fs::metadata(half.join(f)).unwrap().len(),
        );
        assert!(halved * 2 < full + 8192 && halved * 2 > full - 8192, "{f}: {full} → {halved}");
    }
    let from_half = root.path().join("from-half");
    ok(&[
        "generate",
        "--checkpoint",
        p(&half),
        "--story",
        STORY,
        "--seeds",
        "3",
        "--out",
        p(&from_half),
    ]);
    let pixels = |f: &Path| image::open(f).unwrap().to_rgb8().into_raw();
    let (a, b) = (pixels(&strips.join("seed0003.png")), pixels(&from_half.join("seed0003.png")));
    assert_eq!(a.len(), b.len());
    let worst = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    let mean = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y) as f64).sum::<f64>() / a.len() as f64;
    assert!(mean < 1.0 && worst < 24, "half precision moved the strip: mean {mean}, worst {worst}");

    // Resume: `latest` continues the newest run of the preset to a longer end.
    let more = ok(&[
        "train",
        "--preset",
        "storygan-tiny",
        "--data",
        p(&data),
        "--runs",
        p(run.parent().unwrap()),
        "--resume",
        "latest",
        "--set",
        "max_steps=6",
    ]);
    assert!(
        more.contains("trained at step 6 (2 iterations run, resumed at step 4)")
            && more.contains("resuming from")
            && more.contains("00000-storygan-tiny"),
        "{more}"
    );
}

#[test]
fn config_errors_and_dry_run() {
    let resolved =
        ok(&["train", "--preset", "storygan-small", "--dry-run", "--set", "lr_g=0.0001"]);
    assert!(
        resolved.contains("preset = \"storygan-small\"") && resolved.contains("lr_g = 0.0001"),
        "{resolved}"
    );
    fails(
        &["train", "--preset", "storygan-tiny", "--dry-run", "--set", "learning_rate=1"],
        "unknown config key \"learning_rate\"",
    );
    fails(
        &["train", "--preset", "storygan-tiny", "--dry-run", "--set", "g_steps=0"],
        "g_steps = 0 is out of range",
    );
    fails(&["train", "--preset", "storygan-huge"], "unknown preset");
    fails(
        &["train", "--preset", "storygan-tiny", "--dry-run", "--set", "preset=storygan-small"],
        "the preset is chosen with --preset",
    );
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
        let mut args =
            vec!["generate", "--checkpoint", p(&run), "--story", story, "--out", p(&out)];
        args.extend_from_slice(extra);
        fails(&args, want);
    };
    gen("", &[], "the story is empty");
    gen(" . . ", &[], "the story is empty");
    gen(
        "a red cube. a blue sphere.",
        &[],
        "the story has 2 sentences; this model draws 4 (pass --pad",
    );
    gen("a red cube.", &[], "the story has 1 sentence; this model draws 4 (pass --pad");
    gen("a red cube.", &["--truncate"], "--truncate only drops sentences beyond it: pass --pad");
    gen(
        &format!("{STORY} a red cube."),
        &["--pad"],
        "the story has 5 sentences; this model draws 4; --pad only fills",
    );
    let long = format!("a {} cube. b. c. d.", "very ".repeat(2100));
    gen(&long, &[], "sentence 1 is 10507 bytes long");
    // The length as typed, without a period the user did not type.
    gen(&"x".repeat(20_000), &[], "sentence 1 is 20000 bytes long");
    gen("zorp blip. quux. frob. glorp.", &[], "has no word the model knows");
    // A long sentence is quoted shortened, not echoed whole.
    let o = common::storyvis(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--story",
        &format!("{}. b. c. d.", "zorp ".repeat(200)),
        "--out",
        p(&out),
    ]);
    let said = common::text(&o);
    assert!(
        !o.status.success()
            && said.contains("has no word the model knows")
            && said.contains("…")
            && said.len() < 400,
        "{said}"
    );
    fails(
        &["generate", "--checkpoint", p(&run), "--story-file", "/dev/zero", "--out", p(&out)],
        "longer than 65536 bytes",
    );
    gen(STORY.replace("cube in", "dragon in").as_str(), &["--strict-vocab"], "unknown words");
    assert!(!out.exists(), "a failed generate wrote {}", out.display());

    // --pad / --truncate fit a story to T.
    ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--story",
        "a large red metal cube.",
        "--pad",
        "--seeds",
        "0",
        "--out",
        p(&out),
    ]);
    let five = format!("{STORY} a small gray rubber cube is behind the large red metal cube.");
    ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--story",
        &five,
        "--truncate",
        "--seeds",
        "0",
        "--out",
        p(&out),
    ]);
    // A seed given twice is one picture.
    let seeds = root.path().join("seeds");
    let said = ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--story",
        STORY,
        "--seeds",
        "1,1,1",
        "--out",
        p(&seeds),
    ]);
    assert!(said.contains("drew 1 seed(s)"), "{said}");
    assert_eq!(fs::read_dir(&seeds).unwrap().count(), 1);
    let file = root.path().join("a-file");
    fs::write(&file, "x").unwrap();
    fails(
        &["generate", "--checkpoint", p(&run), "--story", STORY, "--out", p(&file.join("o"))],
        &format!("{} is not a directory", file.display()),
    );

    let bad = root.path().join("latin1.txt");
    fs::write(&bad, b"a caf\xe9 cube.").unwrap();
    fails(
        &["generate", "--checkpoint", p(&run), "--story-file", p(&bad), "--out", p(&out)],
        "is not UTF-8 text",
    );
    fails(
        &["generate", "--checkpoint", p(&root.path().join("nope")), "--story", STORY],
        "does not exist",
    );
    fails(
        &["generate", "--checkpoint", p(&data), "--story", STORY],
        "neither a checkpoint nor a run directory",
    );

    // A truncated weights file is named; a dataset with another T is refused.
    let g = run.join("checkpoints/step-0000004/generator.safetensors");
    let bytes = fs::read(&g).unwrap();
    fs::write(&g, &bytes[..100]).unwrap();
    fails(
        &["generate", "--checkpoint", p(&run), "--story", STORY],
        "generator.safetensors is corrupt or truncated",
    );
    fails(
        &[
            "train",
            "--preset",
            "storygan-tiny",
            "--data",
            p(&data),
            "--runs",
            p(&root.path().join("r")),
            "--set",
            "frames=3",
        ],
        "4 frames per story, the model 3",
    );
    fails(
        &["train", "--preset", "storygan-tiny", "--runs", p(&root.path().join("r"))],
        "--data DIR is required",
    );
}

#[test]
fn the_shipped_model_draws_a_typed_story() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let said = ok(&["generate", "--story", STORY, "--seeds", "0", "--out", p(&out)]);
    assert!(said.contains("storygan-default"), "{said}");
    let strip = image::open(out.join("seed0000.png")).unwrap();
    assert!(strip.width() >= 4 * 64, "a strip of 4 frames: {}", strip.width());
    // It is the storygan-quality export that scripts/train-default-model writes, with the
    // moving average it draws with.
    let root_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/storygan-default");
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(root_dir.join("checkpoint.json")).unwrap())
            .unwrap();
    assert!(
        manifest["adam_steps"].as_object().unwrap().is_empty()
            && manifest["step"].as_u64().unwrap() > 1000,
        "{manifest}"
    );
    assert!(fs::read_to_string(root_dir.join("config.toml"))
        .unwrap()
        .contains("preset = \"storygan-quality\""));
    assert!(
        manifest["files"].as_object().unwrap().contains_key("generator_ema.safetensors"),
        "{manifest}"
    );
}

#[test]
fn bench_times_iterations_and_draws() {
    let root = tempfile::tempdir().unwrap();
    let json = root.path().join("bench.json");
    let said = ok(&[
        "bench",
        "--preset",
        "storygan-tiny",
        "--warmup",
        "1",
        "--iterations",
        "2",
        "--draws",
        "3",
        "--json",
        p(&json),
    ]);
    assert!(said.contains("train iteration") && said.contains("draw one sample"), "{said}");
    let r: serde_json::Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    let times =
        |k: &str| r[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>();
    assert_eq!(times("train_ms").len(), 2);
    assert_eq!(times("sample_ms").len(), 3);
    // Medians of what was timed: the mean of the middle two, the middle one.
    let (train, draw) = (times("train_ms"), times("sample_ms"));
    // (Within 1e-12 relative: serde_json's float parsing may round a printed value 1 ulp off.)
    let near = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
    assert!(near(r["train_ms_median"].as_f64().unwrap(), (train[0] + train[1]) / 2.0), "{r}");
    let mut sorted = draw.clone();
    sorted.sort_by(f64::total_cmp);
    assert!(near(r["sample_ms_median"].as_f64().unwrap(), sorted[1]), "{r}");
    // The same networks train builds: storygan-tiny's parameter counts, as the run records them.
    let root2 = tempfile::tempdir().unwrap();
    let (_, run) = common::trained(root2.path());
    let info: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    for net in ["image_d", "story_d"] {
        assert_eq!(r["parameters"][net], info["parameters"][net], "{net}: {r} vs {info}");
    }
    // The generators differ only in the word embedding: bench's synthetic 40-word vocabulary
    // against the run's, 16 numbers (word_dim) a word.
    let vocab: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("vocab.json")).unwrap()).unwrap();
    let words = vocab["words"].as_array().unwrap().len() as i64;
    let g = |v: &serde_json::Value| v["parameters"]["generator"].as_i64().unwrap();
    assert_eq!(g(&r) - g(&info), (40 - words) * 16, "{r} vs {info}");
    assert_eq!(
        (r["precision"].as_str(), r["channels_last"].as_bool()),
        (Some("fp32"), Some(true)),
        "auto is channels-last on the CPU: {r}"
    );
    ok(&[
        "bench",
        "--preset",
        "storygan-tiny",
        "--warmup",
        "0",
        "--iterations",
        "1",
        "--draws",
        "1",
        "--memory-format",
        "standard",
        "--json",
        p(&json),
    ]);
    let r: serde_json::Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["channels_last"].as_bool(), Some(false), "{r}");
    fails(&["bench", "--preset", "storygan-tiny", "--iterations", "0"], "at least 1");
    fails(&["bench", "--preset", "storygan-huge"], "storygan-huge");
    // bf16 runs on the CPU too (autocast); TF32 is a CUDA format.
    let said = ok(&[
        "bench",
        "--preset",
        "storygan-tiny",
        "--warmup",
        "0",
        "--iterations",
        "1",
        "--draws",
        "1",
        "--precision",
        "bf16",
        "--json",
        p(&json),
    ]);
    assert!(said.contains("at bf16, channels-last"), "{said}");
    let r: serde_json::Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        (r["precision"].as_str(), r["channels_last"].as_bool()),
        (Some("bf16"), Some(true)),
        "{r}"
    );
    fails(&["bench", "--preset", "storygan-tiny", "--precision", "tf32"], "needs a CUDA device");
    fails(&["bench", "--preset", "storygan-tiny", "--precision", "fp16"], "fp32, tf32 or bf16");
    fails(
        &["bench", "--preset", "storygan-tiny", "--memory-format", "nhwc"],
        "auto, standard or channels-last",
    );
}

/// The stats lines of a run: their steps, in order.
fn stat_steps(run: &std::path::Path) -> Vec<u64> {
    let text = fs::read_to_string(run.join("stats.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_resumed_run_keeps_an_exact_record() {
    let root = tempfile::tempdir().unwrap();
    let data = common::small_data(root.path(), 6);
    let runs = root.path().join("runs");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--preset",
            "storygan-tiny",
            "--data",
            p(&data),
            "--runs",
            p(&runs),
            "--set",
            "log_every=1",
            "--set",
            "sample_every=1000",
        ];
        args.extend_from_slice(extra);
        ok(&args)
    };
    train(&["--set", "max_steps=6", "--set", "checkpoint_every=3"]);
    let run = runs.join("00000-storygan-tiny");
    assert_eq!(stat_steps(&run), [1, 2, 3, 4, 5, 6]);
    // As a kill after step 6 would leave it: steps logged after the newest checkpoint (7, 8).
    let mut stats = fs::read_to_string(run.join("stats.jsonl")).unwrap();
    let last = stats.lines().last().unwrap().to_string();
    for step in [7, 8] {
        stats.push_str(&last.replace("\"step\":6", &format!("\"step\":{step}")));
        stats.push('\n');
    }
    stats.push_str("{\"step\":9,\"loss_d");
    fs::write(run.join("stats.jsonl"), stats).unwrap();
    let said = train(&["--resume", "latest", "--set", "max_steps=9"]);
    assert!(said.contains("resuming from") && said.contains("step-0000006 (step 6)"), "{said}");
    assert!(said.contains("trained at step 9 (3 iterations run, resumed at step 6)"), "{said}");
    assert_eq!(stat_steps(&run), [1, 2, 3, 4, 5, 6, 7, 8, 9]);

    // Resuming from an older checkpoint (step 3) continues in a new run directory: the
    // original run keeps its checkpoints, `latest` and record.
    let said =
        train(&["--resume", p(&run.join("checkpoints/step-0000003")), "--set", "max_steps=5"]);
    let fork = runs.join("00001-storygan-tiny");
    assert!(
        said.contains("has newer checkpoints (up to step 9)")
            && said.contains(&fork.display().to_string()),
        "{said}"
    );
    assert!(said.contains("trained at step 5 (2 iterations run, resumed at step 3)"), "{said}");
    assert_eq!(fs::read_to_string(run.join("checkpoints/latest")).unwrap(), "step-0000009");
    assert_eq!(stat_steps(&run), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(stat_steps(&fork), [1, 2, 3, 4, 5]);
    assert_eq!(fs::read_to_string(fork.join("checkpoints/latest")).unwrap(), "step-0000005");
    assert!(
        fork.join("checkpoints/step-0000003/checkpoint.json").is_file()
            && fork.join("config.toml").is_file()
    );
    // The forked run's step 4 and 5 are what the original run logged for them: the same
    // trajectory from the same checkpoint.
    let line = |dir: &std::path::Path, n: usize| {
        let mut v: serde_json::Value = serde_json::from_str(
            fs::read_to_string(dir.join("stats.jsonl")).unwrap().lines().nth(n).unwrap(),
        )
        .unwrap();
        v.as_object_mut().unwrap().remove("seconds_per_iteration");
        v
    };
    assert_eq!(line(&run, 4), line(&fork, 4));
}

#[test]
fn ctrl_c_saves_and_exits_130() {
    let root = tempfile::tempdir().unwrap();
    let data = common::small_data(root.path(), 6);
    let runs = root.path().join("runs");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_storyvis"))
        .args([
            "train",
            "--preset",
            "storygan-tiny",
            "--data",
            p(&data),
            "--runs",
            p(&runs),
            "--set",
            "max_steps=100000",
            "--set",
            "log_every=1",
        ])
        .args(["--set", "sample_every=100000", "--set", "checkpoint_every=100000"])
        .env("OMP_NUM_THREADS", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stats = runs.join("00000-storygan-tiny/stats.jsonl");
    let started = std::time::Instant::now();
    while fs::read_to_string(&stats).map(|s| s.lines().count() < 2).unwrap_or(true) {
        assert!(started.elapsed().as_secs() < 120, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(130), "{said}");
    assert!(said.contains("stopped at step") && said.contains("interrupted"), "{said}");
    // The checkpoint it saved is the step it stopped at.
    let latest = fs::read_to_string(runs.join("00000-storygan-tiny/checkpoints/latest")).unwrap();
    let step: u64 = latest.trim_start_matches("step-").parse().unwrap();
    assert_eq!(stat_steps(&runs.join("00000-storygan-tiny")).last(), Some(&step), "{said}");
}

#[test]
fn a_copied_binary_finds_the_shipped_model_through_storyvis_home() {
    let root = tempfile::tempdir().unwrap();
    let checkout = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The binary alone in another directory (it finds libtorch through LD_LIBRARY_PATH, as a
    // copied binary must), and a home holding a copy of the shipped model.
    let bin = root.path().join("bin/storyvis");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_storyvis"), &bin).unwrap();
    let home = root.path().join("home");
    let model = home.join("models/storygan-default");
    fs::create_dir_all(&model).unwrap();
    for e in fs::read_dir(checkout.join("models/storygan-default")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), model.join(e.file_name())).unwrap();
    }
    let lib = checkout.join(".libtorch/lib").canonicalize().unwrap();
    let run = |home: &std::path::Path| {
        std::process::Command::new(&bin)
            .args([
                "generate",
                "--story",
                STORY,
                "--seeds",
                "0",
                "--out",
                p(&root.path().join("out")),
            ])
            .env("STORYVIS_HOME", home)
            .env("LD_LIBRARY_PATH", &lib)
            .env("OMP_NUM_THREADS", "1")
            .current_dir(root.path())
            .output()
            .unwrap()
    };
    let o = run(&home);
    let said =
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{said}");
    assert!(said.contains(&model.canonicalize().unwrap().display().to_string()), "{said}");
    assert!(root.path().join("out/seed0000.png").is_file());
    // A home without the model: the next place, the checkout it was built from.
    let o = run(root.path());
    let said =
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(
        o.status.success()
            && said.contains(
                &checkout
                    .join("models/storygan-default")
                    .canonicalize()
                    .unwrap()
                    .display()
                    .to_string()
            ),
        "{said}"
    );
}

#[test]
fn a_layout_model_trains_on_listed_objects_draws_a_typed_story_and_refuses_data_without_them() {
    let root = tempfile::tempdir().unwrap();
    let data = common::small_data(root.path(), 8);
    let runs = root.path().join("runs");
    let layout = [
        "--set",
        "previous=masked",
        "--set",
        "layout=true",
        "--set",
        "layout_d=true",
        "--set",
        "coords=true",
        "--set",
        "recon_weight=5",
        "--set",
        "recon_object=10",
        "--set",
        "object_d_weight=1",
    ];
    let mut args =
        vec!["train", "--preset", "storygan-tiny", "--data", p(&data), "--runs", p(&runs)];
    args.extend(["--set", "max_steps=3", "--set", "checkpoint_every=3"]);
    args.extend(layout);
    let said = ok(&args);
    assert!(said.contains("trained at step 3"), "{said}");
    let stats = fs::read_to_string(runs.join("00000-storygan-tiny/stats.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(stats.lines().last().unwrap()).unwrap();
    // The place loss is a mean squared distance in [−1, 1]² (at most 8); the L1 term one
    // in [0, 2].
    let (place, recon) =
        (last["loss_place"].as_f64().unwrap(), last["loss_recon"].as_f64().unwrap());
    assert!(place > 0.0 && place < 8.0 && recon > 0.0 && recon < 2.0, "{last}");
    assert!(last["loss_d_object"].as_f64().unwrap() > 0.0, "{last}");
    // An export keeps the generator alone.
    let export = root.path().join("export");
    ok(&["export", "--checkpoint", p(&runs.join("00000-storygan-tiny")), "--out", p(&export)]);
    assert!(!export.join("object_d.safetensors").exists());
    let out = root.path().join("out");
    ok(&[
        "generate",
        "--checkpoint",
        p(&runs.join("00000-storygan-tiny")),
        "--story",
        STORY,
        "--seeds",
        "0",
        "--out",
        p(&out),
    ]);
    assert!(out.join("seed0000.png").exists());
    // The same stories without their frames' object lists: a clear error, not a panic.
    let bare = root.path().join("bare");
    fs::create_dir_all(&bare).unwrap();
    for entry in fs::read_dir(&data).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "manifest.jsonl" {
            let lines: Vec<String> = fs::read_to_string(entry.path())
                .unwrap()
                .lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    if let Some(frames) = v.get_mut("frames").and_then(|f| f.as_array_mut()) {
                        for f in frames {
                            f.as_object_mut().unwrap().remove("objects");
                        }
                    }
                    v.to_string()
                })
                .collect();
            fs::write(bare.join(&name), lines.join("\n") + "\n").unwrap();
        } else if entry.file_type().unwrap().is_dir() {
            let dir = bare.join(&name);
            fs::create_dir_all(&dir).unwrap();
            for f in fs::read_dir(entry.path()).unwrap() {
                let f = f.unwrap();
                fs::copy(f.path(), dir.join(f.file_name())).unwrap();
            }
        } else {
            fs::copy(entry.path(), bare.join(&name)).unwrap();
        }
    }
    let mut args = vec!["train", "--preset", "storygan-tiny", "--data", p(&bare)];
    let runs2 = root.path().join("runs2");
    args.extend(["--runs", p(&runs2), "--set", "max_steps=1"]);
    args.extend(layout);
    fails(&args, "layout = true needs frames that list their objects");
}
