//! The model families, one folder per paper, and their registry. Adding a family is one folder
//! here (a `FamilyEntry` and a `family::Family` implementation), its presets under `presets/`,
//! and one line in `FAMILIES`.

pub mod gan_int_cls;
pub mod sdgan;
pub mod stackgan;
pub mod storygan;
pub mod tganc;
pub mod toy;

use crate::family::FamilyEntry;
use anyhow::{Context, Result};

/// Every family storyvis trains.
pub const FAMILIES: &[FamilyEntry] = &[storygan::FAMILY, gan_int_cls::FAMILY, stackgan::FAMILY, sdgan::FAMILY, tganc::FAMILY, toy::FAMILY];

/// The family named `name`.
pub fn family(name: &str) -> Result<&'static FamilyEntry> {
    FAMILIES.iter().find(|f| f.name == name).with_context(|| {
        let names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        format!("unknown model family {name:?}; families: {}", names.join(", "))
    })
}
