//! storyvis' model families, one folder per paper, each holding its networks, its training
//! (a `Family`), its data loading, its drawing (a `Drawer`) and its evaluation hook:
//!
//! - `storygan`: StoryGAN (Li et al., CVPR 2019), story visualisation;
//! - `gan_int_cls`: GAN-INT-CLS (Reed et al., ICML 2016), text to image;
//! - `stackgan`: StackGAN (Zhang et al., ICCV 2017), text to image in two stages;
//! - `sdgan`: SDGAN (Yin et al., CVPR 2019), StackGAN with a Siamese semantic discriminator;
//! - `tganc`: TGANs-C (Pan et al., ACM MM 2017), text to video.
//!
//! Adding a family is its folder here (a `FamilyEntry` and a `Family` implementation), its
//! presets under `presets/`, and one line in `FAMILIES`.

pub mod encoder_training;
pub mod gan_int_cls;
pub mod sdgan;
pub mod stackgan;
pub mod storygan;
pub mod tganc;

use storyvis_core::family::FamilyEntry;

/// The shipped story model (`scripts/train-default-model`): what `generate` and `serve` draw
/// with when given no model (looked up as `storyvis_core::shipped::find` says).
pub const DEFAULT_MODEL: &str = "models/storygan-default";

/// The shipped model of each kind of dataset (`Header::kind`): what `eval` evaluates when given
/// no checkpoint.
pub const SHIPPED: &[(&str, &str)] =
    &[("clevr-sv", DEFAULT_MODEL), (storyvis_data::bouncing::KIND, "models/tganc-fast")];

/// The shipped model of every family, in the order `storyvis serve` lists them: what `serve`
/// draws with when given no model, and what `generate --model NAME` names (NAME is the
/// directory's name). Each is a half-precision export of a generator's moving average
/// (`storyvis export --average-only --half`); RESULTS.md names the command that trained each.
pub const SHIPPED_MODELS: &[(&str, &str)] = &[
    (storygan::FAMILY.name, DEFAULT_MODEL),
    (gan_int_cls::FAMILY.name, "models/gan-int-cls-default"),
    (stackgan::FAMILY.name, "models/stackgan-default"),
    (sdgan::FAMILY.name, "models/sdgan-default"),
    (tganc::FAMILY.name, "models/tganc-fast"),
];

/// The name a shipped model is served and chosen by: its directory's name.
pub fn shipped_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// What `storyvis bench` measures when given no preset: StoryGAN's reference configuration.
pub const BENCH_PRESET: &str = "storygan-clevr";

/// Every family storyvis ships: the registry line.
pub const FAMILIES: &[&FamilyEntry] =
    &[&storygan::FAMILY, &gan_int_cls::FAMILY, &stackgan::FAMILY, &sdgan::FAMILY, &tganc::FAMILY];

/// Registers every family of `FAMILIES` with the core (`storyvis_core::registry`); a program
/// calls it once before it resolves a preset or loads a checkpoint (more calls do nothing).
pub fn install() {
    for f in FAMILIES {
        storyvis_core::registry::register(f);
    }
}
