//! SDGAN: Semantics Disentangling for Text-to-Image Generation (Yin et al., CVPR 2019), its two
//! contributions on the StackGAN backbone (`models::stackgan`; the paper shows them on an
//! AttnGAN-style one and says they carry over to others):
//! - the siamese discriminator (§3.2): two captions, of the same image or of two images, go
//!   through two weight-sharing branches (generator and discriminator); a contrastive loss on
//!   the discriminator's features of the two generated images pulls same-image pairs together
//!   and pushes other pairs beyond a margin, so that the features keep what the captions share
//!   ("semantic commons") rather than their phrasing;
//! - semantic-conditioned batch normalisation (§3.3, `storyvis_core::scbn`): the generator's batch norms take
//!   their scale and shift from the sentence and from attended words ("semantic diversities").
//!
//! No code was released with the paper; this follows its equations. Switches `siamese` and
//! `scbn` run the paper's ablation (baseline, +siamese, +SCBN, both) from the presets.

pub use storyvis_core::loss::{contrastive_loss, Contrastive};
pub use storyvis_core::scbn;

use storyvis_core::family::FamilyEntry;

pub const FAMILY: FamilyEntry = FamilyEntry {
    name: "sdgan",
    about: "text to image: SDGAN (Yin et al., CVPR 2019) on the StackGAN backbone",
    presets: &[
        ("sdgan-clevr", include_str!("../../../../presets/sdgan-clevr.toml")),
        ("sdgan-small", include_str!("../../../../presets/sdgan-small.toml")),
        ("sdgan-tiny", include_str!("../../../../presets/sdgan-tiny.toml")),
        ("sdgan-fast", include_str!("../../../../presets/sdgan-fast.toml")),
    ],
    check: |cfg| crate::stackgan::Config::of(cfg).map(drop),
    build: crate::stackgan::family::build,
    training_only: |_| vec!["discriminator"],
    drawer: Some(crate::stackgan::draw::load_drawer),
    recipe: &crate::stackgan::RECIPE,
    evaluated: Some(crate::stackgan::draw::load_evaluated),
    synthetic: None,
};
