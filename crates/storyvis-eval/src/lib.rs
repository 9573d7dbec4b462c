//! storyvis' scorers and evaluation: the attribute classifier (`classifier`), the clip
//! classifier of video models (`clip_classifier`), the object detector (`detector`), and
//! `storyvis eval` (`eval`), which draws held-out items with trained models of any family
//! through the family registry and scores them. The scorers never train a generator.

pub mod attributes;
pub mod classifier;
pub mod clip_classifier;
pub mod detector;
pub mod eval;

/// The CLEVR-SV attribute classifier that `eval` scores with (`storyvis_core::shipped::find`).
pub const DEFAULT_CLASSIFIER: &str = "models/clevr-classifier";
/// The clip classifier that `eval` scores single-digit Bouncing MNIST clips with.
pub const DEFAULT_CLIP_CLASSIFIER: &str = "models/bouncing-classifier1";
/// The CLEVR object detector (`storyvis train-detector`'s default output).
pub const DEFAULT_DETECTOR: &str = "models/clevr-detector";
