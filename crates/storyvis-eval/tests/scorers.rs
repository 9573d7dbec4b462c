//! Scorers never train: the evaluation classifiers (`classifier`, `clip_classifier`) and the
//! object detector (`detector`) judge drawings after training and take no part in it. Every
//! file a training run executes (the core's loop, recipe and layers, and the families) is read
//! here, neither crate links this one, and none may name the scorers' modules, types or shipped models; attribute
//! heads inside a discriminator are the model's own and are not these.

use std::path::{Path, PathBuf};

/// What naming a scorer looks like in source.
const SCORER_NAMES: [&str; 9] = [
    "classifier::",
    "ClipClassifier",
    "Classifier::load",
    "AttributeClassifier",
    "clevr-classifier",
    "bouncing-classifier",
    "detector::",
    "Detector::load",
    "clevr-detector",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn names_a_scorer(path: &Path) -> Option<&'static str> {
    let text = std::fs::read_to_string(path).unwrap();
    SCORER_NAMES.into_iter().find(|n| text.contains(n))
}

#[test]
fn no_training_code_names_an_evaluation_classifier() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Everything a training run executes: the core (the loop, the recipe, the layers and text
    // encoders) and the families.
    let mut training = Vec::new();
    for krate in ["storyvis-core", "storyvis-models"] {
        rust_files(&crates.join(krate).join("src"), &mut training);
        // Neither links the scorers at all.
        let manifest = std::fs::read_to_string(crates.join(krate).join("Cargo.toml")).unwrap();
        let deps = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
        assert!(!deps.contains("storyvis-eval"), "{krate} depends on the scorers' crate");
    }
    assert!(training.len() > 40, "the training files were not found under {}", crates.display());
    for f in &training {
        assert_eq!(names_a_scorer(f), None, "{} names an evaluation classifier", f.display());
    }
    // The scan can fail: the evaluation does name them.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert!(names_a_scorer(&src.join("eval/mod.rs")).is_some());
    assert!(names_a_scorer(&src.join("eval/video.rs")).is_some());
}
