//! Loss curves as PNG: a small line chart drawn directly (axes, series, legend).

use image::{Rgb, RgbImage};
use storyvis_data::sheet::{draw_text, paper, GLYPH};

const COLORS: [[u8; 3]; 6] =
    [[31, 119, 180], [214, 39, 40], [44, 160, 44], [255, 127, 14], [148, 103, 189], [140, 86, 75]];

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: Rgb<u8>) {
    let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
    for i in 0..=n {
        let t = i as f64 / n as f64;
        let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
        if x >= 0.0 && y >= 0.0 && (x as u32) < img.width() && (y as u32) < img.height() {
            img.put_pixel(x as u32, y as u32, c);
        }
    }
}

/// Series of (x, y) points on shared axes; non-finite points are skipped.
pub fn line_chart(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> RgbImage {
    let (w, h) = (720u32, 400u32);
    let (left, right, top, bottom) = (64.0, 150.0, 24.0, 30.0);
    let mut img = paper(w, h);
    draw_text(&mut img, left as u32, 6, title, Rgb([30, 30, 30]));
    let pts = || {
        series.iter().flat_map(|(_, p)| p.iter()).filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts() {
        (x_lo, x_hi, y_lo, y_hi) = (x_lo.min(x), x_hi.max(x), y_lo.min(y), y_hi.max(y));
    }
    if x_lo > x_hi {
        (x_lo, x_hi, y_lo, y_hi) = (0.0, 1.0, 0.0, 1.0);
    }
    if x_hi - x_lo < 1e-12 {
        x_hi = x_lo + 1.0;
    }
    if y_hi - y_lo < 1e-12 {
        y_hi = y_lo + 1.0;
    }
    let (pw, ph) = (w as f64 - left - right, h as f64 - top - bottom);
    let px = |x: f64| left + (x - x_lo) / (x_hi - x_lo) * pw;
    let py = |y: f64| top + (1.0 - (y - y_lo) / (y_hi - y_lo)) * ph;
    let axis = Rgb([120, 120, 120]);
    line(&mut img, (left, top), (left, top + ph), axis);
    line(&mut img, (left, top + ph), (left + pw, top + ph), axis);
    for k in 0..=4 {
        let y = y_lo + (y_hi - y_lo) * k as f64 / 4.0;
        let yy = py(y);
        line(&mut img, (left - 4.0, yy), (left, yy), axis);
        draw_text(&mut img, 2, (yy - 4.0).max(0.0) as u32, &format!("{y:>7.3}"), axis);
        let x = x_lo + (x_hi - x_lo) * k as f64 / 4.0;
        let xx = px(x);
        line(&mut img, (xx, top + ph), (xx, top + ph + 4.0), axis);
        let label = format!("{x:.0}");
        draw_text(
            &mut img,
            (xx - 4.0 * label.len() as f64).max(0.0) as u32,
            (top + ph + 8.0) as u32,
            &label,
            axis,
        );
    }
    for (i, (name, p)) in series.iter().enumerate() {
        let c = Rgb(COLORS[i % COLORS.len()]);
        let finite: Vec<&(f64, f64)> =
            p.iter().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        for pair in finite.windows(2) {
            line(&mut img, (px(pair[0].0), py(pair[0].1)), (px(pair[1].0), py(pair[1].1)), c);
        }
        let ly = top as u32 + i as u32 * (GLYPH + 6);
        let lx = (left + pw + 12.0) as u32;
        for dx in 0..14 {
            for dy in 3..5 {
                img.put_pixel(lx + dx, ly + dy, c);
            }
        }
        draw_text(&mut img, lx + 18, ly, name, Rgb([30, 30, 30]));
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rising_line_goes_from_bottom_left_to_top_right() {
        let img = line_chart("t", &[("a".into(), vec![(0.0, 0.0), (10.0, 1.0)])]);
        let blue = Rgb(COLORS[0]);
        let (left, bottom) = (64u32, 400 - 30);
        assert_eq!(*img.get_pixel(left, bottom), blue);
        assert_eq!(*img.get_pixel(720 - 150, 24), blue);
        // NaNs and an empty chart do not panic.
        line_chart("t", &[("b".into(), vec![(0.0, f64::NAN)])]);
        line_chart("t", &[]);
    }
}
