//! SSIM and PSNR against scikit-image on random and rendered CLEVR-SV images. The values were
//! written by scripts/make_ssim_fixture.py (scikit-image's structural_similarity with
//! gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1).

use std::path::{Path, PathBuf};

use storyvis_metrics::{psnr, ssim, ImageShape};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ssim")
}

/// A PNG as channel-major f32 in [0, 1] (uint8 / 255), the way the script reads it.
fn load(name: &str) -> (Vec<f32>, ImageShape) {
    let img = image::open(fixtures().join(name)).unwrap();
    let channels = img.color().channel_count() as usize;
    let (width, height) = (img.width() as usize, img.height() as usize);
    let raw = img.into_bytes();
    let mut chw = vec![0.0f32; raw.len()];
    for (i, &v) in raw.iter().enumerate() {
        let (pixel, c) = (i / channels, i % channels);
        chw[c * height * width + pixel] = v as f32 / 255.0;
    }
    (chw, ImageShape { channels, height, width })
}

#[test]
fn ssim_and_psnr_match_scikit_image() {
    let text = std::fs::read_to_string(fixtures().join("ssim.json")).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 7);
    for case in cases {
        let (a, shape) = load(case["a"].as_str().unwrap());
        let (b, shape_b) = load(case["b"].as_str().unwrap());
        assert_eq!(shape, shape_b);
        let (want_ssim, want_psnr) =
            (case["ssim"].as_f64().unwrap(), case["psnr"].as_f64().unwrap());
        let got_ssim = ssim(&a, &b, shape, 1.0).unwrap();
        let got_psnr = psnr(&a, &b, shape, 1.0).unwrap();
        // Measured: SSIM within 2.3e-8, PSNR within 4.2e-7 dB (f32 pixels here, f64 there).
        assert!((got_ssim - want_ssim).abs() < 1e-7, "{case}: SSIM {got_ssim}");
        assert!((got_psnr - want_psnr).abs() < 1e-6, "{case}: PSNR {got_psnr}");
        eprintln!(
            "{} {}: SSIM {got_ssim:.9} (scikit-image {want_ssim:.9}, diff {:.1e}); PSNR diff {:.1e}",
            case["a"],
            case["b"],
            (got_ssim - want_ssim).abs(),
            (got_psnr - want_psnr).abs()
        );
    }
}
