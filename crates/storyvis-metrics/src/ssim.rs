//! SSIM (Wang, Bovik, Sheikh & Simoncelli 2004) and PSNR between two images.
//!
//! SSIM as the paper defines it and scikit-image computes it with `gaussian_weights=True,
//! sigma=1.5, use_sample_covariance=False`: local means, variances and covariance under an
//! 11×11 Gaussian window (σ = 1.5, taps exp(−x²/2σ²) for x = −5..5, normalised), then
//!
//!   SSIM(x, y) = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),
//!   C1 = (K1 L)², C2 = (K2 L)², K1 = 0.01, K2 = 0.03, L the data range,
//!
//! averaged over the positions where the window lies wholly inside the image (scikit-image
//! filters the whole image and crops 5 pixels from each border, which is the same set), and then
//! over channels.

use crate::MetricError;

const K1: f64 = 0.01;
const K2: f64 = 0.03;
const SIGMA: f64 = 1.5;
/// Window radius: scikit-image truncates the Gaussian at 3.5 σ, int(3.5 · 1.5 + 0.5) = 5.
const RADIUS: usize = 5;
pub const WINDOW: usize = 2 * RADIUS + 1;

/// The layout of an image given as a flat slice: channel-major, `[channels, height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn check_pair(a: &[f32], b: &[f32], shape: ImageShape, data_range: f64) -> Result<(), MetricError> {
    for (what, img) in [("first image", a), ("second image", b)] {
        if img.len() != shape.len() {
            return Err(MetricError::Length { what, expected: shape.len(), got: img.len() });
        }
    }
    if shape.is_empty() {
        return Err(MetricError::Invalid("images are empty".into()));
    }
    if !(data_range.is_finite() && data_range > 0.0) {
        return Err(MetricError::Invalid(format!("data range must be positive, got {data_range}")));
    }
    Ok(())
}

fn gaussian_window() -> [f64; WINDOW] {
    let mut w = [0.0; WINDOW];
    for (i, v) in w.iter_mut().enumerate() {
        let x = i as f64 - RADIUS as f64;
        *v = (-0.5 * x * x / (SIGMA * SIGMA)).exp();
    }
    let sum: f64 = w.iter().sum();
    w.map(|v| v / sum)
}

/// Filters one `[h, w]` plane with the separable window, keeping only the positions where it
/// lies wholly inside: the result is `[h − 10, w − 10]`.
fn filter_valid(plane: &[f64], h: usize, w: usize, win: &[f64; WINDOW]) -> Vec<f64> {
    let (oh, ow) = (h - 2 * RADIUS, w - 2 * RADIUS);
    let mut rows = vec![0.0; h * ow]; // [h, ow]
    for y in 0..h {
        let line = &plane[y * w..(y + 1) * w];
        for x in 0..ow {
            rows[y * ow + x] = win.iter().zip(&line[x..x + WINDOW]).map(|(k, v)| k * v).sum();
        }
    }
    let mut out = vec![0.0; oh * ow]; // [oh, ow]
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = (0..WINDOW).map(|k| win[k] * rows[(y + k) * ow + x]).sum();
        }
    }
    out
}

/// Mean SSIM of two images of the same shape whose values span `data_range` (1 for [0, 1]).
/// Both sides must be at least 11×11, the window's size.
pub fn ssim(a: &[f32], b: &[f32], shape: ImageShape, data_range: f64) -> Result<f64, MetricError> {
    check_pair(a, b, shape, data_range)?;
    let ImageShape { channels, height: h, width: w } = shape;
    if h < WINDOW || w < WINDOW {
        return Err(MetricError::Invalid(format!(
            "SSIM needs images of at least {WINDOW}×{WINDOW} pixels, got {h}×{w}"
        )));
    }
    let win = gaussian_window();
    let c1 = (K1 * data_range).powi(2);
    let c2 = (K2 * data_range).powi(2);
    let plane = h * w;
    let mut total = 0.0;
    for c in 0..channels {
        let x: Vec<f64> = a[c * plane..(c + 1) * plane].iter().map(|&v| v as f64).collect();
        let y: Vec<f64> = b[c * plane..(c + 1) * plane].iter().map(|&v| v as f64).collect();
        let product =
            |p: &[f64], q: &[f64]| -> Vec<f64> { p.iter().zip(q).map(|(u, v)| u * v).collect() };
        let mu_x = filter_valid(&x, h, w, &win);
        let mu_y = filter_valid(&y, h, w, &win);
        let xx = filter_valid(&product(&x, &x), h, w, &win);
        let yy = filter_valid(&product(&y, &y), h, w, &win);
        let xy = filter_valid(&product(&x, &y), h, w, &win);
        let mut sum = 0.0;
        for i in 0..mu_x.len() {
            let (mx, my) = (mu_x[i], mu_y[i]);
            let var_x = xx[i] - mx * mx;
            let var_y = yy[i] - my * my;
            let cov = xy[i] - mx * my;
            sum += (2.0 * mx * my + c1) * (2.0 * cov + c2)
                / ((mx * mx + my * my + c1) * (var_x + var_y + c2));
        }
        total += sum / mu_x.len() as f64;
    }
    Ok(total / channels as f64)
}

/// Peak signal-to-noise ratio in dB: 10 log10(L² / MSE). Identical images give +∞.
pub fn psnr(a: &[f32], b: &[f32], shape: ImageShape, data_range: f64) -> Result<f64, MetricError> {
    check_pair(a, b, shape, data_range)?;
    let mse =
        a.iter().zip(b).map(|(&u, &v)| (u as f64 - v as f64).powi(2)).sum::<f64>() / a.len() as f64;
    Ok(10.0 * (data_range * data_range / mse).log10())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: ImageShape = ImageShape { channels: 2, height: 16, width: 13 };

    fn pattern(seed: u32) -> Vec<f32> {
        (0..SHAPE.len()).map(|i| (((i as u32 + 7) * (seed * 2 + 31)) % 97) as f32 / 96.0).collect()
    }

    #[test]
    fn identical_images_score_one() {
        let a = pattern(1);
        assert!((ssim(&a, &a, SHAPE, 1.0).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(psnr(&a, &a, SHAPE, 1.0).unwrap(), f64::INFINITY);
    }

    #[test]
    fn constant_images_follow_the_luminance_term() {
        // Two flat images: variances and covariance vanish, so SSIM = (2ab + C1) / (a² + b² + C1).
        let a = vec![0.2f32; SHAPE.len()];
        let b = vec![0.6f32; SHAPE.len()];
        let c1 = (K1 * 1.0f64).powi(2);
        let (x, y) = (0.2f32 as f64, 0.6f32 as f64);
        let expected = (2.0 * x * y + c1) / (x * x + y * y + c1);
        assert!((ssim(&a, &b, SHAPE, 1.0).unwrap() - expected).abs() < 1e-9);
        // MSE 0.16 at range 1: 10 log10(1 / 0.16).
        let p = psnr(&a, &b, SHAPE, 1.0).unwrap();
        assert!((p - 10.0 * (1.0 / (y - x).powi(2)).log10()).abs() < 1e-9);
    }

    #[test]
    fn window_is_normalised_and_symmetric() {
        let w = gaussian_window();
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        for i in 0..WINDOW {
            assert_eq!(w[i], w[WINDOW - 1 - i]);
        }
    }

    #[test]
    fn symmetric_in_its_arguments_and_below_one() {
        let (a, b) = (pattern(1), pattern(2));
        let ab = ssim(&a, &b, SHAPE, 1.0).unwrap();
        let ba = ssim(&b, &a, SHAPE, 1.0).unwrap();
        assert!((ab - ba).abs() < 1e-12 && ab < 1.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        let a = pattern(1);
        assert!(matches!(ssim(&a, &a[1..], SHAPE, 1.0), Err(MetricError::Length { .. })));
        assert!(ssim(&a, &a, SHAPE, 0.0).is_err());
        let small = ImageShape { channels: 1, height: 10, width: 30 };
        let s = vec![0.5; small.len()];
        assert!(ssim(&s, &s, small, 1.0).is_err());
    }
}
