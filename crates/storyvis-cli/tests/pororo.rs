//! Pororo-SV through the binary, on the importer's fixture (scripts/make_pororo_fixture.py, in
//! the published archive's layout): import with the published splits, the skip report and
//! --strict, a tiny preset trained and drawing a typed story with character names, and the
//! character classifier and `eval` under later papers' names (character F1, frame accuracy).

mod common;

use common::{fails, ok, p};
use std::path::{Path, PathBuf};

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../storyvis-data/tests/fixtures/pororo-sv")
}

#[test]
fn pororo_sv_imports_trains_draws_and_is_scored_by_characters() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("d");
    let said = ok(&["prepare", "pororo-sv", "--import", p(&fixture()), "--out", p(&data)]);
    assert!(said.contains("imported 8 Pororo-SV stories (4 train, 1 val, 3 test)"), "{said}");

    let runs = root.path().join("runs");
    let args = ["--preset", "storygan-pororo-tiny", "--data", p(&data), "--runs", p(&runs)];
    let mut train = vec!["train"];
    train.extend(args);
    train.extend(["--set", "max_steps=2"]);
    let said = ok(&train);
    assert!(said.contains("trained at step 2"), "{said}");
    let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();

    // A typed five-sentence story with the characters' names.
    let out = root.path().join("gen");
    let story = "Pororo is in the snow with Eddy. Loopy is in the snow. Crong is in the snow with \
                 Poby. Petty is in the snow with Harry. Rody is in the snow.";
    let said = ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--story",
        story,
        "--out",
        p(&out),
        "--seeds",
        "0",
        "--format",
        "frames",
    ]);
    // Every word of it is in the fixture's descriptions: no unknown-word warning.
    assert!(!said.contains("unknown word"), "{said}");
    for t in 1..=5 {
        let img = image::open(out.join(format!("seed0000-frame{t}.png"))).unwrap();
        assert_eq!((img.width(), img.height()), (64, 64));
    }
    assert!(!out.join("seed0000-frame6.png").exists());

    // The character classifier (it needs --out: the default is CLEVR-SV's) and eval.
    fails(
        &["train-classifier", "--data", p(&data)],
        "give --out for a classifier of pororo-sv's 9 labels",
    );
    let cls = root.path().join("cls");
    ok(&[
        "train-classifier",
        "--data",
        p(&data),
        "--out",
        p(&cls),
        "--steps",
        "10",
        "--batch",
        "8",
    ]);
    let ev = root.path().join("ev");
    ok(&[
        "eval",
        "--checkpoint",
        p(&run),
        "--data",
        p(&data),
        "--classifier",
        p(&cls),
        "--out",
        p(&ev),
    ]);
    let table = std::fs::read_to_string(ev.join("eval.md")).unwrap();
    assert!(
        table.contains(
            "character F1 micro ↑ | character F1 macro ↑ | frame acc. (all characters) ↑"
        ),
        "{table}"
    );
    assert!(table.contains("3 held-out stories"), "{table}");
    assert!(table.contains("not Inception-v3"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ev.join("eval.json")).unwrap()).unwrap();
    assert_eq!(json["labels"], "character");
    let f = json["models"][0]["frame_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&f));
}

#[test]
fn a_story_with_a_frame_missing_its_labels_is_skipped_or_with_strict_named() {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // The fixture's files, with labels.npy lacking one frame's entry; the frames stay where
    // they are (their paths are looked up under --import, so only the .npy files are copied
    // and the episode folders linked).
    for e in std::fs::read_dir(fixture()).unwrap() {
        let e = e.unwrap();
        let to = src.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::os::unix::fs::symlink(e.path(), to).unwrap();
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
    std::fs::copy(
        fixture().join("../pororo-sv-variants/labels_missing_one.npy"),
        src.join("labels.npy"),
    )
    .unwrap();
    let import = |out: &str, extra: &[&'static str]| {
        let mut args = vec!["prepare".to_string(), "pororo-sv".into(), "--import".into()];
        args.extend([p(&src).to_string(), "--out".into(), p(&root.path().join(out)).into()]);
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let said = ok(&strs(&import("d", &[])));
    assert!(said.contains("imported 5 Pororo-SV stories"), "{said}");
    assert!(said.contains("skipped 3 stories") && said.contains("story 00001: frame"), "{said}");
    fails(&strs(&import("e", &["--strict"])), "3 of the 8 stories");
    fails(&strs(&import("f", &["--frame", "last"])), "unknown --frame \"last\"");
}

#[test]
fn the_pororo_presets_resolve() {
    for preset in ["storygan-pororo", "storygan-pororo-fast", "storygan-pororo-tiny"] {
        let said = ok(&["train", "--preset", preset, "--dry-run"]);
        assert!(said.contains("frames = 5"), "{preset}: {said}");
    }
}
