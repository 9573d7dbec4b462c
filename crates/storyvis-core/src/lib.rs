//! storyvis' core: what every model family trains and draws with, on libtorch through tch.
//!
//! Tensors and layers (`nn`, `backbone`, `text`, `minilm`, `joint`), optimisers and losses,
//! the training engine (`train`) and the seam a family implements (`family`, `drawer`,
//! `evaluation`), checkpoints and run directories, precision and devices, configuration, the
//! budget-first recipe (`recipe`) and the family registry (`registry`). It names no family:
//! the families register themselves (see the `storyvis-models` crate).

pub mod backbone;
pub mod captioned;
pub mod checkpoint;
pub mod checks;
pub mod config;
pub mod data;
pub mod device;
pub mod digest;
pub mod distributed;
pub mod drawer;
pub mod evaluation;
pub mod family;
pub mod fit;
pub mod input;
pub mod joint;
pub mod loss;
pub mod minilm;
pub mod nn;
pub mod optim;
pub mod plot;
pub mod precision;
pub mod recipe;
pub mod registry;
pub mod report;
pub mod run_dir;
pub mod scbn;
pub mod shipped;
pub mod streams;
pub mod text;
pub mod train;
pub mod words;
