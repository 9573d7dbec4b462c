//! `train-classifier` and `eval` through the CLI: a tiny run scored against a tiny classifier,
//! compared with itself, and the errors.

mod common;

use common::{fails, ok, p, storyvis};
use std::fs;

#[test]
fn classifier_then_eval_with_compare() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // Half the stories held out, so that eval has several.
    ok(&[
        "prepare",
        "clevr-sv",
        "--out",
        p(&data),
        "--stories",
        "12",
        "--seed",
        "4",
        "--supersample",
        "1",
        "--split",
        "0.5",
    ]);
    let runs = root.path().join("runs");
    ok(&[
        "train",
        "--preset",
        "storygan-tiny",
        "--data",
        p(&data),
        "--runs",
        p(&runs),
        "--set",
        "max_steps=2",
    ]);
    let run = runs.join("00000-storygan-tiny");
    let clf = root.path().join("classifier");
    let said = ok(&[
        "train-classifier",
        "--data",
        p(&data),
        "--out",
        p(&clf),
        "--steps",
        "20",
        "--batch",
        "8",
    ]);
    assert!(said.contains("held-out real frames (24)"), "{said}");
    fails(
        &["train-classifier", "--data", p(&data), "--out", p(&clf), "--steps", "1"],
        "exists and is not empty",
    );

    let out = root.path().join("eval");
    let o = storyvis(&[
        "eval",
        "--checkpoint",
        p(&run),
        "--compare",
        p(&run.join("checkpoints/step-0000002")),
        "--data",
        p(&data),
        "--classifier",
        p(&clf),
        "--stories",
        "100",
        "--seeds",
        "2",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success());
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(
        table.contains("| 00000-storygan-tiny | storygan | 2 |")
            && table.contains("| real frames |"),
        "{table}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    assert_eq!(fs::read_to_string(out.join("eval.md")).unwrap(), table);
    assert_eq!((report["stories"].as_u64(), report["seeds"].as_u64()), (Some(6), Some(2)));
    let models = report["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    // The same weights drawn with the same seeds score the same, whatever the path given.
    for k in ["ssim", "psnr", "micro_f1", "frechet", "inception_score", "consistency"] {
        assert_eq!(models[0][k], models[1][k], "{k}");
    }
    // Every frame of every seed scored (the metrics themselves are checked against closed
    // forms in storyvis' eval tests and storyvis-metrics).
    let m = &models[0];
    assert_eq!(m["frames"].as_u64(), Some(6 * 4 * 2));
    // One seed is a different sample: the same stories, other scores.
    let one = root.path().join("eval-one-seed");
    ok(&[
        "eval",
        "--checkpoint",
        p(&run),
        "--data",
        p(&data),
        "--classifier",
        p(&clf),
        "--stories",
        "100",
        "--seeds",
        "1",
        "--out",
        p(&one),
    ]);
    let single: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(one.join("eval.json")).unwrap()).unwrap();
    assert_eq!(single["models"][0]["frames"].as_u64(), Some(6 * 4));
    assert_ne!(single["models"][0]["ssim"], m["ssim"]);
    for k in ["micro_f1", "frame_accuracy", "consistency", "inception_score"] {
        assert_eq!(
            single["real"][k], report["real"][k],
            "the real frames do not depend on the seeds: {k}"
        );
    }
    // The real-frames row is the classifier's own held-out score: the same frames.
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(clf.join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(report["real"]["micro_f1"], manifest["held_out"]["micro_f1"]);
    assert!(report["real"]["ssim"].is_null());
    // Floor rows, per-attribute accuracy, persistence and diversity in the report and table.
    // The frames list their objects, so the shipped detector (found from any working
    // directory, as the classifier is) adds the object columns and their floor.
    let floors: Vec<&str> =
        report["floors"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        floors,
        [
            "floor: flat mean colour",
            "floor: mean frame",
            "floor: previous frame",
            "floor: right objects, random places"
        ]
    );
    assert!(
        report["real"]["objects"]["f1"].as_f64().is_some_and(|f| f > 0.9),
        "{}",
        report["real"]
    );
    assert!(table.contains("| shape acc. ↑ | color acc. ↑ | material acc. ↑ | size acc. ↑ | persistence ↑ | seed diversity |"), "{table}");
    assert!(
        m["seed_diversity"].as_f64().is_some_and(|d| d > 0.0)
            && single["models"][0]["seed_diversity"].is_null()
    );
    assert!(report["real"]["persistence"].as_f64().is_some());
    assert_eq!(report["models"][0]["attributes"].as_array().unwrap().len(), 4);

    // Without --classifier, the shipped one, found from any working directory (the tests run
    // in crates/storyvis-cli, where models/ is not).
    let shipped = root.path().join("shipped");
    let said = ok(&[
        "eval",
        "--checkpoint",
        p(&run),
        "--data",
        p(&data),
        "--stories",
        "2",
        "--out",
        p(&shipped),
    ]);
    assert!(said.contains("| real frames |"), "{said}");

    // The object columns, by a detector trained on the frames' listed objects.
    let det = root.path().join("detector");
    let said = ok(&[
        "train-detector",
        "--data",
        p(&data),
        "--out",
        p(&det),
        "--steps",
        "10",
        "--batch",
        "4",
        "--widths",
        "8,8",
    ]);
    assert!(said.contains("held-out frames (24, 60 objects)"), "{said}");
    let with = root.path().join("eval-objects");
    let args = [
        "eval",
        "--checkpoint",
        p(&run),
        "--data",
        p(&data),
        "--classifier",
        p(&clf),
        "--stories",
        "100",
        "--seeds",
        "2",
        "--out",
        p(&with),
    ];
    let table = ok(&[&args[..], &["--detector", p(&det)]].concat());
    assert!(table.contains("| relation acc. ↑ | RSIM ↑ |"), "{table}");
    let r: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(with.join("eval.json")).unwrap()).unwrap();
    for row in [&r["real"], &r["models"][0], &r["floors"][0]] {
        for k in ["precision", "recall", "f1", "count_accuracy", "shape", "rsim"] {
            assert!(
                row["objects"][k].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)),
                "{k}: {row}"
            );
        }
    }
    // Frames 2–4 of a CLEVR-SV story each state a relation: 18 of the 24 held-out frames, and
    // twice that over two seeds.
    assert_eq!(
        (
            r["real"]["objects"]["relations"].as_u64(),
            r["models"][0]["objects"]["relations"].as_u64()
        ),
        (Some(18), Some(36))
    );
    // And a floor row for them: the right objects in random places.
    let floors: Vec<&str> =
        r["floors"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(floors.last(), Some(&"floor: right objects, random places"));
    fails(
        &[&args[..], &["--detector", p(&clf)]].concat(),
        "is an attribute classifier, not an object detector",
    );

    fails(
        &[
            "eval",
            "--checkpoint",
            p(&run),
            "--data",
            p(&data),
            "--classifier",
            p(&root.path().join("none")),
        ],
        "train-classifier",
    );
    // A classifier where a model goes, and a model where the classifier goes: said as such.
    fails(
        &[
            "generate",
            "--checkpoint",
            p(&clf),
            "--story",
            "a. b. c. d.",
            "--out",
            p(&root.path().join("g")),
        ],
        "is an attribute classifier",
    );
    fails(
        &["eval", "--checkpoint", p(&clf), "--data", p(&data), "--classifier", p(&clf)],
        "is an attribute classifier",
    );
    fails(
        &[
            "eval",
            "--checkpoint",
            p(&run),
            "--data",
            p(&data),
            "--classifier",
            p(&run.join("checkpoints/step-0000002")),
        ],
        "is a model checkpoint, not an attribute classifier",
    );
    fails(
        &[
            "eval",
            "--checkpoint",
            p(&run),
            "--data",
            p(&data),
            "--classifier",
            p(&clf),
            "--seeds",
            "0",
        ],
        "must be positive",
    );
    let w = clf.join("classifier.safetensors");
    let bytes = fs::read(&w).unwrap();
    fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &["eval", "--checkpoint", p(&run), "--data", p(&data), "--classifier", p(&clf)],
        "classifier.safetensors is corrupt or truncated",
    );
}

/// A 128×128 story dataset: StoryGAN trains and draws at 128 (`image_size`), and eval scores it
/// at the classifier's 64×64.
#[test]
fn storygan_at_128_trains_draws_and_evaluates() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    ok(&[
        "prepare",
        "clevr-sv",
        "--out",
        p(&data),
        "--stories",
        "6",
        "--seed",
        "2",
        "--supersample",
        "1",
        "--split",
        "0.5",
        "--size",
        "128",
    ]);
    let runs = root.path().join("runs");
    fails(
        &[
            "train",
            "--preset",
            "storygan-tiny",
            "--data",
            p(&data),
            "--runs",
            p(&runs),
            "--set",
            "max_steps=1",
        ],
        "--set image_size=128",
    );
    ok(&[
        "train",
        "--preset",
        "storygan-tiny",
        "--data",
        p(&data),
        "--runs",
        p(&runs),
        "--set",
        "max_steps=1",
        "--set",
        "image_size=128",
    ]);
    let run = runs.join("00000-storygan-tiny");
    let frames = root.path().join("frames");
    ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--story",
        "a red cube. a blue sphere. a cylinder. a cube.",
        "--out",
        p(&frames),
        "--format",
        "frames",
    ]);
    let img = image::open(frames.join("seed0000-frame1.png")).unwrap();
    assert_eq!((img.width(), img.height()), (128, 128));
    let out = root.path().join("eval");
    ok(&["eval", "--checkpoint", p(&run), "--data", p(&data), "--stories", "3", "--out", p(&out)]);
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    let m = &report["models"][0];
    assert_eq!(m["frames"].as_u64(), Some(3 * 4));
    let ssim = m["ssim"].as_f64().unwrap();
    assert!(ssim.is_finite() && ssim < 1.0, "{ssim}");
}
