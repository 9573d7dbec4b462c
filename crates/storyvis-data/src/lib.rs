//! Datasets for storyvis, free of libtorch: the CLEVR-SV renderer and importer, the on-disk
//! dataset format with atomic writes, and contact sheets.

pub mod atomic;
pub mod bouncing;
pub mod captioned;
pub mod clevr;
pub mod dataset;
pub mod dtype;
pub mod mnist;
pub mod npm;
pub mod npy;
pub mod pickle;
pub mod pororo;
pub mod rng;
pub mod sheet;
pub mod torch_legacy;
pub mod twemoji;
