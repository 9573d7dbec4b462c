//! storyvis: text-conditioned GANs (StoryGAN and its relatives) on libtorch through tch.
//!
//! The data and metrics live in libtorch-free crates; this one holds what runs on a device.

pub mod device;
