//! Metrics for storyvis, free of libtorch so they test fast and can be checked against other
//! implementations: SSIM and PSNR between images, multi-label precision / recall / F1 and
//! exact-match accuracy, the Fréchet distance between Gaussians fitted to feature sets, the
//! Inception-score formula over class probabilities, R-precision of image–text retrieval, and
//! the minimum-cost assignment that pairs detected objects with true ones.
//!
//! Everything computes in f64 whatever the input precision.

mod error;
pub mod frechet;
pub mod inception;
pub mod linalg;
pub mod matching;
pub mod multilabel;
pub mod retrieval;
pub mod ssim;

pub use error::MetricError;
pub use frechet::{frechet_distance, Gaussian};
pub use inception::inception_score;
pub use matching::{match_within, min_cost_assignment};
pub use multilabel::MultiLabelCounts;
pub use retrieval::r_precision;
pub use ssim::{psnr, ssim, ImageShape};
