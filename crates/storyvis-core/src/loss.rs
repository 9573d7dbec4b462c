//! The GAN objective's terms (StoryGAN, Li et al., CVPR 2019, §3.4 "Objective"), each a function of logits so that it can be
//! checked on constructed values.

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

/// Every term is computed in at least fp32, whatever precision produced its inputs
/// (`--precision bf16`).
fn full(t: &Tensor) -> Tensor {
    match t.kind() {
        Kind::BFloat16 | Kind::Half => t.to_kind(Kind::Float),
        _ => t.shallow_clone(),
    }
}

fn bce(logits: &Tensor, target: f64) -> Tensor {
    let logits = full(logits);
    let t = logits.full_like(target);
    logits.binary_cross_entropy_with_logits(&t, None::<Tensor>, None::<Tensor>, Reduction::Mean)
}

/// Matching-aware discriminator loss: real pairs → 1, fake and mismatched ("wrong") pairs → 0;
/// loss = real + ½ (fake + wrong).
pub fn discriminator(real: &Tensor, fake: &Tensor, wrong: &Tensor) -> Tensor {
    bce(real, 1.0) + 0.5 * (bce(fake, 0.0) + bce(wrong, 0.0))
}

/// The discriminator loss without mismatched pairs (GAN-INT-CLS's plain "GAN", still
/// conditioned on text): real → 1, fake → 0.
pub fn real_fake(real: &Tensor, fake: &Tensor) -> Tensor {
    bce(real, 1.0) + bce(fake, 0.0)
}

/// Non-saturating generator loss: −log D(fake).
pub fn generator(fake: &Tensor) -> Tensor {
    bce(fake, 1.0)
}

/// The hinge counterpart of [`discriminator`] (Lim & Ye 2017; Miyato et al., ICLR 2018,
/// eq. 16): mean relu(1 − real) + ½ (mean relu(1 + fake) + mean relu(1 + wrong)).
pub fn hinge_discriminator(real: &Tensor, fake: &Tensor, wrong: &Tensor) -> Tensor {
    let (real, fake, wrong) = (full(real), full(fake), full(wrong));
    let margin = |t: Tensor| t.relu().mean(Kind::Float);
    margin(1.0 - real) + 0.5 * (margin(fake + 1.0) + margin(wrong + 1.0))
}

/// The hinge counterpart of [`real_fake`]: mean relu(1 − real) + mean relu(1 + fake).
pub fn hinge_real_fake(real: &Tensor, fake: &Tensor) -> Tensor {
    let margin = |t: Tensor| t.relu().mean(Kind::Float);
    margin(1.0 - full(real)) + margin(full(fake) + 1.0)
}

/// The hinge loss's generator term: −mean D(fake).
pub fn hinge_generator(fake: &Tensor) -> Tensor {
    -full(fake).mean(Kind::Float)
}

/// KL(N(μ, σ²) ‖ N(0, I)) = −½ · mean(1 + log σ² − μ² − σ²).
pub fn kl(mu: &Tensor, logvar: &Tensor) -> Tensor {
    let (mu, logvar) = (full(mu), full(logvar));
    let terms: Tensor = 1.0 + &logvar - mu.square() - logvar.exp();
    terms.mean(Kind::Float) * -0.5
}

/// Multi-label classification loss (the auxiliary heads): mean binary cross-entropy.
pub fn multi_label(logits: &Tensor, labels: &Tensor) -> Tensor {
    full(logits).binary_cross_entropy_with_logits(
        labels,
        None::<Tensor>,
        None::<Tensor>,
        Reduction::Mean,
    )
}

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
pub fn contrastive_loss(
    v1: &Tensor,
    v2: &Tensor,
    same: &Tensor,
    form: Contrastive,
    margin: f64,
    alpha: f64,
) -> Tensor {
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
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn f(t: &Tensor) -> f64 {
        t.double_value(&[])
    }
    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v)
    }
    fn log_sigmoid(x: f64) -> f64 {
        -(1.0 + (-x).exp()).ln()
    }

    #[test]
    fn matching_aware_terms_on_constructed_logits() {
        // All logits 0: every term is log 2.
        let z = t(&[0.0, 0.0]);
        assert!((f(&discriminator(&z, &z, &z)) - 2.0 * 2f64.ln()).abs() < 1e-6);
        // A perfect discriminator (large margins) has loss near 0; a fooled one pays.
        let (hi, lo) = (t(&[20.0, 20.0]), t(&[-20.0, -20.0]));
        assert!(f(&discriminator(&hi, &lo, &lo)) < 1e-6);
        assert!(f(&discriminator(&lo, &hi, &hi)) > 39.0);
        // Closed form on mixed logits: real a, fake b, wrong c.
        let (a, b, c) = ([1.5f32, -0.5], [0.3f32, 2.0], [-1.0f32, 0.7]);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let real = mean(&a.map(|x| -log_sigmoid(x as f64)));
        let fake = mean(&b.map(|x| -log_sigmoid(-x as f64)));
        let wrong = mean(&c.map(|x| -log_sigmoid(-x as f64)));
        let want = real + 0.5 * (fake + wrong);
        assert!((f(&discriminator(&t(&a), &t(&b), &t(&c))) - want).abs() < 1e-6);
        let g = mean(&b.map(|x| -log_sigmoid(x as f64)));
        assert!((f(&generator(&t(&b))) - g).abs() < 1e-6);
    }

    #[test]
    fn hinge_terms_on_constructed_logits() {
        // real a, fake b, wrong c by hand: mean max(0, 1 − a) + ½ (mean max(0, 1 + b) + mean max(0, 1 + c)).
        let (a, b, c) = ([1.5f32, 0.25, -2.0], [0.3f32, -3.0, 2.0], [-1.0f32, 0.5, -0.5]);
        let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
        let real = mean(a.iter().map(|&x| (1.0 - x as f64).max(0.0)).collect());
        let fake = mean(b.iter().map(|&x| (1.0 + x as f64).max(0.0)).collect());
        let wrong = mean(c.iter().map(|&x| (1.0 + x as f64).max(0.0)).collect());
        assert!(
            (f(&hinge_discriminator(&t(&a), &t(&b), &t(&c))) - (real + 0.5 * (fake + wrong))).abs()
                < 1e-6
        );
        // Margins met: no loss; the generator's term is −mean D(fake).
        assert_eq!(
            f(&hinge_discriminator(&t(&[1.0, 4.0]), &t(&[-1.0, -2.0]), &t(&[-5.0, -1.0]))),
            0.0
        );
        assert!((f(&hinge_generator(&t(&b))) - (-(0.3 - 3.0 + 2.0) / 3.0)).abs() < 1e-6);
        // Without mismatched pairs: the real and fake margins, each whole.
        assert!((f(&hinge_real_fake(&t(&a), &t(&b))) - (real + fake)).abs() < 1e-6);
    }

    #[test]
    fn kl_equals_the_closed_form() {
        tch::manual_seed(7);
        let mu = Tensor::randn([6, 5], (Kind::Float, Device::Cpu));
        let logvar = Tensor::randn([6, 5], (Kind::Float, Device::Cpu));
        let m = Vec::<f64>::try_from(mu.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let lv = Vec::<f64>::try_from(logvar.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        // KL per dimension for N(μ, σ²) vs N(0, 1): ½(σ² + μ² − 1 − log σ²); averaged.
        let want: f64 =
            m.iter().zip(&lv).map(|(m, l)| 0.5 * (l.exp() + m * m - 1.0 - l)).sum::<f64>()
                / m.len() as f64;
        assert!((f(&kl(&mu, &logvar)) - want).abs() < 1e-5);
        // Zero exactly at the prior.
        let zero = Tensor::zeros([3, 4], (Kind::Float, Device::Cpu));
        assert_eq!(f(&kl(&zero, &zero)), 0.0);
    }

    #[test]
    fn multi_label_closed_form() {
        let logits = t(&[2.0, -1.0]);
        let labels = t(&[1.0, 1.0]);
        let want = -(log_sigmoid(2.0) + log_sigmoid(-1.0)) / 2.0;
        assert!((f(&multi_label(&logits, &labels)) - want).abs() < 1e-6);
    }
}
