//! SDGAN: Semantics Disentangling for Text-to-Image Generation (Yin et al., CVPR 2019), its two
//! contributions on the StackGAN backbone (`models::stackgan`; the paper shows them on an
//! AttnGAN-style one and says they carry over to others):
//! - the siamese discriminator (§3.2): two captions, of the same image or of two images, go
//!   through two weight-sharing branches (generator and discriminator); a contrastive loss on
//!   the discriminator's features of the two generated images pulls same-image pairs together
//!   and pushes other pairs beyond a margin, so that the features keep what the captions share
//!   ("semantic commons") rather than their phrasing;
//! - semantic-conditioned batch normalisation (§3.3, `scbn`): the generator's batch norms take
//!   their scale and shift from the sentence and from attended words ("semantic diversities").
//!
//! No code was released with the paper; this follows its equations. Switches `siamese` and
//! `scbn` run the paper's ablation (baseline, +siamese, +SCBN, both) from the presets.

pub mod scbn;

use crate::family::FamilyEntry;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

pub const FAMILY: FamilyEntry = FamilyEntry {
    name: "sdgan",
    about: "text to image: SDGAN (Yin et al., CVPR 2019) on the StackGAN backbone",
    presets: &[
        ("sdgan-clevr", include_str!("../../../../../presets/sdgan-clevr.toml")),
        ("sdgan-small", include_str!("../../../../../presets/sdgan-small.toml")),
        ("sdgan-tiny", include_str!("../../../../../presets/sdgan-tiny.toml")),
    ],
    check: |cfg| crate::models::stackgan::Config::of(cfg).map(drop),
    build: crate::models::stackgan::family::build,
    training_only: &["discriminator"],
    drawer: Some(crate::models::stackgan::draw::load_drawer),
    recipe: &[],
};

/// The contrastive loss's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Contrastive {
    /// Hadsell, Chopra & LeCun (CVPR 2006), SDGAN eq. 1:
    /// ½ mean[ y d² + (1 − y) max(ε − d, 0)² ].
    Margin,
    /// SDGAN eq. 2: ½ mean[ y max(d, α)² + (1 − y) max(ε − d, 0)² ]: same-image pairs are not
    /// pulled closer than α, so two captions of one image do not collapse onto one picture.
    Modified,
}

/// The contrastive loss over B pairs of feature vectors v1, v2 [B, N] at distance d = ‖v1 − v2‖₂:
/// `same` [B] is 1 for a pair of captions of the same image (y = 1), 0 otherwise; `margin` is
/// ε, `alpha` α (used by the modified form).
pub fn contrastive_loss(v1: &Tensor, v2: &Tensor, same: &Tensor, form: Contrastive, margin: f64, alpha: f64) -> Tensor {
    let d2 = (v1 - v2).square().sum_dim_intlist(1, false, Kind::Float); // d², [B]
    let pull = match form {
        Contrastive::Margin => d2.shallow_clone(),
        // max(d, α)² = max(d², α²): no square root, so no infinite gradient at d = 0.
        Contrastive::Modified => d2.clamp_min(alpha * alpha),
    };
    // d itself for the hinge (ε where it is active is > 0; the tiny offset keeps √ finite at 0).
    let d = (&d2 + 1e-12).sqrt();
    let push = (-d + margin).clamp_min(0.0).square();
    let same = same.to_kind(Kind::Float);
    let terms: Tensor = &same * pull + (1.0 - &same) * push;
    terms.mean(Kind::Float) * 0.5
}

#[cfg(test)]
mod tests;
