//! The models, one folder or file per paper.

pub mod storygan;
