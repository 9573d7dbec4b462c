//! storyvis: text-conditioned GANs (StoryGAN and its relatives) on libtorch through tch.
//!
//! The data and metrics live in libtorch-free crates; this one holds what runs on a device:
//! the networks (`models`), their building blocks (`nn`), text encoding, losses, the optimiser,
//! configuration, checkpoints, training and sampling.

pub mod backbone;
pub mod captioned;
pub mod checkpoint;
pub mod classifier;
pub mod clip_classifier;
pub mod config;
pub mod data;
pub mod detector;
pub mod device;
pub mod drawer;
pub mod eval;
pub mod family;
pub mod joint;
pub mod loss;
pub mod minilm;
pub mod models;
pub mod nn;
pub mod optim;
pub mod plot;
pub mod precision;
pub mod recipe;
pub mod run_dir;
pub mod sample;
pub mod shipped;
pub mod text;
pub mod train;
