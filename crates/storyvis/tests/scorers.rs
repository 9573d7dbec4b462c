//! Scorers never train: the evaluation classifiers (`classifier`, `clip_classifier`) and the
//! object detector (`detector`) judge drawings after training and take no part in it. Every
//! file a training run executes (the loop, the families, the recipe and the parts they build
//! on) is read here, and none may name the scorers' modules, types or shipped models; attribute
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
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut training = Vec::new();
    rust_files(&src.join("models"), &mut training);
    for f in ["train.rs", "recipe.rs", "family.rs", "loss.rs", "nn.rs", "optim.rs", "data.rs", "captioned.rs", "joint.rs", "minilm.rs", "text.rs", "run_dir.rs"]
    {
        training.push(src.join(f));
    }
    assert!(training.len() > 20, "the training files were not found under {}", src.display());
    for f in &training {
        assert_eq!(names_a_scorer(f), None, "{} names an evaluation classifier", f.display());
    }
    // The scan can fail: the evaluation does name them.
    assert!(names_a_scorer(&src.join("eval/mod.rs")).is_some());
    assert!(names_a_scorer(&src.join("eval/video.rs")).is_some());
}
