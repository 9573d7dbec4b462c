//! R-precision (Xu et al., "AttnGAN", CVPR 2018, §4.1): how often a generated image retrieves
//! the caption it was drawn from. For each image, its own caption and `distractors` captions of
//! other images are ranked by cosine similarity to the image's embedding in a joint image–text
//! space; with R = 1 (one relevant caption) the score is the share of images whose own caption
//! ranks first. The distractors are drawn without replacement from the other captions by a
//! seeded generator, so a score is reproducible.

use crate::MetricError;

/// R-precision of `images` against `captions` (both `n × dim`, row i of each belongs
/// together), with `distractors` mismatched captions per image (99 in AttnGAN's setting;
/// fewer when fewer other captions exist). Ties count against the image.
pub fn r_precision(
    images: &[f32],
    captions: &[f32],
    dim: usize,
    distractors: usize,
    seed: u64,
) -> Result<f64, MetricError> {
    if dim == 0 || images.len() % dim != 0 || images.len() != captions.len() {
        return Err(MetricError::Invalid(format!(
            "{} image and {} caption values do not form matching rows of {dim}",
            images.len(),
            captions.len()
        )));
    }
    let n = images.len() / dim;
    if n < 2 {
        return Err(MetricError::Invalid(format!(
            "R-precision needs at least 2 image–caption pairs, got {n}"
        )));
    }
    let unit = |rows: &[f32]| -> Vec<Vec<f64>> {
        rows.chunks(dim)
            .map(|r| {
                let norm = r
                    .iter()
                    .map(|&x| (x as f64).powi(2))
                    .sum::<f64>()
                    .sqrt()
                    .max(f64::MIN_POSITIVE);
                r.iter().map(|&x| x as f64 / norm).collect()
            })
            .collect()
    };
    let (img, cap) = (unit(images), unit(captions));
    let cosine = |i: usize, c: usize| img[i].iter().zip(&cap[c]).map(|(a, b)| a * b).sum::<f64>();
    let k = distractors.min(n - 1);
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut hits = 0usize;
    let mut others: Vec<usize> = Vec::with_capacity(n - 1);
    for i in 0..n {
        others.clear();
        others.extend((0..n).filter(|&c| c != i));
        // The first k of a partial Fisher–Yates shuffle (SplitMix64 draws).
        for j in 0..k {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let pick = j + (z % (others.len() - j) as u64) as usize;
            others.swap(j, pick);
        }
        let own = cosine(i, i);
        if others[..k].iter().all(|&c| cosine(i, c) < own) {
            hits += 1;
        }
    }
    Ok(hits as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row i is the basis vector e_(i mod dim), scaled.
    fn basis(n: usize, dim: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .flat_map(|i| {
                (0..dim).map(move |d| if d == i % dim { scale * (1 + i) as f32 } else { 0.0 })
            })
            .collect()
    }

    #[test]
    fn matching_embeddings_retrieve_every_caption() {
        // Each image is its caption (scaled: cosine ignores length): all first.
        let (n, dim) = (150, 150);
        assert_eq!(r_precision(&basis(n, dim, 2.0), &basis(n, dim, 0.5), dim, 99, 0).unwrap(), 1.0);
    }

    #[test]
    fn constructed_embeddings_give_the_counted_share() {
        // 100 pairs in 10 dimensions, row i on axis i mod 10: each own caption ties with the 9
        // others on its axis, and with all 99 others as distractors a tie counts as a miss: 0.
        let (n, dim) = (100, 10);
        assert_eq!(r_precision(&basis(n, dim, 1.0), &basis(n, dim, 1.0), dim, 99, 3).unwrap(), 0.0);
        let d2 = dim + n;
        let caption: Vec<f32> = (0..n)
            .flat_map(|i| {
                (0..d2).map(move |d| if d == i % dim || d == dim + i { 1.0 } else { 0.0 })
            })
            .collect();
        // Even rows on the caption's own extra axis, odd rows on the shared one.
        let axis = |i: usize| if i % 2 == 0 { dim + i } else { i % dim };
        let image: Vec<f32> = (0..n)
            .flat_map(|i| (0..d2).map(move |d| if d == axis(i) { 1.0 } else { 0.0 }))
            .collect();
        // Even rows: the image is the caption's own extra axis, cosine 1/√2 with its caption and 0
        // with any other. Odd rows: the image is the shared axis, tied with the 9 others on it.
        assert_eq!(r_precision(&image, &caption, d2, 99, 3).unwrap(), 0.5);
    }

    #[test]
    fn unrelated_embeddings_score_near_chance() {
        // Independent random embeddings: the own caption is first among 1 + 99 about 1 % of
        // the time (binomial over 2,000 images: 1 % ± 0.7 % at three standard deviations).
        let (n, dim) = (2000, 16);
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
        };
        let images: Vec<f32> = (0..n * dim).map(|_| next()).collect();
        let captions: Vec<f32> = (0..n * dim).map(|_| next()).collect();
        let r = r_precision(&images, &captions, dim, 99, 1).unwrap();
        assert!((0.003..0.017).contains(&r), "{r}");
        // The same seed, the same distractors.
        assert_eq!(r, r_precision(&images, &captions, dim, 99, 1).unwrap());
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(r_precision(&[1.0, 2.0], &[1.0], 1, 99, 0).is_err());
        assert!(r_precision(&[1.0], &[1.0], 1, 99, 0).is_err());
        assert!(r_precision(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], 2, 99, 0).is_err());
    }
}
