//! Pictures for people: text drawn with an 8×8 bitmap font, and contact sheets of datasets.

use crate::dataset::Dataset;
use anyhow::{ensure, Result};
use font8x8::UnicodeFonts;
use image::{imageops, Rgb, RgbImage};

pub const GLYPH: u32 = 8;
const PAPER: Rgb<u8> = Rgb([250, 250, 248]);
const INK: Rgb<u8> = Rgb([30, 30, 30]);
const FAINT: Rgb<u8> = Rgb([110, 110, 110]);

/// Draws `text` with its top-left corner at (x, y), clipped to the image. Characters the font
/// lacks are drawn as '?'.
pub fn draw_text(img: &mut RgbImage, x: u32, y: u32, text: &str, color: Rgb<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS
            .get(ch)
            .or_else(|| font8x8::BASIC_FONTS.get('?'))
            .unwrap_or([0; 8]);
        let gx = x + i as u32 * GLYPH;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits >> col & 1 == 1 {
                    let (px, py) = (gx + col, y + row as u32);
                    if px < img.width() && py < img.height() {
                        img.put_pixel(px, py, color);
                    }
                }
            }
        }
    }
}

/// Greedy word wrap to lines of at most `width` characters (longer words are cut).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: String = word.chars().collect();
        while word.chars().count() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(head);
        }
        if line.is_empty() {
            line = word;
        } else if line.chars().count() + 1 + word.chars().count() <= width {
            line.push(' ');
            line.push_str(&word);
        } else {
            lines.push(std::mem::replace(&mut line, word));
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Lays frames out left to right with a caption under each, one strip per row.
pub struct StripLayout {
    /// Side of one frame on the sheet, pixels.
    pub cell: u32,
    pub caption_lines: u32,
    pub gap: u32,
}

impl StripLayout {
    /// Frames scaled up by an integer factor to about 192 px, room for 5 caption lines.
    pub fn for_frame_size(size: u32) -> StripLayout {
        StripLayout { cell: size * (192 / size).max(1), caption_lines: 5, gap: 8 }
    }
    fn title_height(&self) -> u32 {
        GLYPH + 6
    }
    /// Video clips: frames at twice their size, nothing under them (the caption goes in the
    /// strip's title).
    pub fn for_clips(size: u32) -> StripLayout {
        StripLayout { cell: 2 * size, caption_lines: 0, gap: 4 }
    }
    pub fn row_height(&self) -> u32 {
        self.title_height() + self.cell + 4 + self.caption_lines * (GLYPH + 1) + self.gap
    }
    pub fn width(&self, frames: u32) -> u32 {
        self.gap + frames * (self.cell + self.gap)
    }

    /// Draws one strip with its title at row offset `y`.
    pub fn draw_row(
        &self,
        sheet: &mut RgbImage,
        y: u32,
        title: &str,
        frames: &[(RgbImage, String)],
    ) {
        draw_text(sheet, self.gap, y + 2, title, FAINT);
        let chars = (self.cell / GLYPH) as usize;
        for (i, (img, caption)) in frames.iter().enumerate() {
            let x = self.gap + i as u32 * (self.cell + self.gap);
            let top = y + self.title_height();
            let big = imageops::resize(img, self.cell, self.cell, imageops::FilterType::Nearest);
            imageops::replace(sheet, &big, x as i64, top as i64);
            let mut lines = wrap(caption, chars);
            if lines.len() > self.caption_lines as usize {
                lines.truncate(self.caption_lines as usize);
                let last = lines.last_mut().expect("caption_lines > 0");
                *last = format!(
                    "{}...",
                    last.chars().take(chars.saturating_sub(3)).collect::<String>()
                );
            }
            for (k, line) in lines.iter().enumerate() {
                draw_text(sheet, x, top + self.cell + 4 + k as u32 * (GLYPH + 1), line, INK);
            }
        }
    }
}

/// A blank sheet.
pub fn paper(width: u32, height: u32) -> RgbImage {
    RgbImage::from_pixel(width, height, PAPER)
}

/// A contact sheet of the first `stories` stories: one per row, frames left to right with
/// their sentences underneath.
pub fn contact_sheet(ds: &Dataset, stories: usize) -> Result<RgbImage> {
    ensure!(stories >= 1, "--stories must be at least 1");
    ensure!(!ds.stories.is_empty(), "the dataset at {} has no stories", ds.dir.display());
    let chosen = &ds.stories[..stories.min(ds.stories.len())];
    // A video's frames share one caption: it goes in the strip's title, and the frames are
    // drawn at twice their size with nothing under them.
    let video = ds.header.kind == crate::bouncing::KIND;
    let size = ds.header.image_size;
    let layout =
        if video { StripLayout::for_clips(size) } else { StripLayout::for_frame_size(size) };
    let frames = ds.header.frames_per_story as u32;
    let mut sheet =
        paper(layout.width(frames), chosen.len() as u32 * layout.row_height() + layout.gap);
    for (row, s) in chosen.iter().enumerate() {
        let under =
            |f: &crate::dataset::Frame| if video { String::new() } else { f.sentence.clone() };
        let strip = s
            .frames
            .iter()
            .map(|f| Ok((ds.load_image(f)?, under(f))))
            .collect::<Result<Vec<_>>>()?;
        let title = match video {
            true => format!("clip {} ({:?}): {}", s.id, s.split, s.frames[0].sentence),
            false => format!("story {} ({:?})", s.id, s.split),
        };
        layout.draw_row(
            &mut sheet,
            layout.gap + row as u32 * layout.row_height(),
            &title.to_lowercase(),
            &strip,
        );
    }
    Ok(sheet)
}

/// Encodes an image as PNG and writes it atomically.
pub fn save_png(img: &RgbImage, path: &std::path::Path) -> Result<()> {
    crate::atomic::write_file(path, &png_bytes(img)?)
}

/// An image encoded as PNG, in memory.
pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_respects_width_and_keeps_words() {
        let text =
            "next, a large red metal cube is placed to the right of the small gray rubber sphere.";
        let lines = wrap(text, 24);
        assert!(lines.iter().all(|l| l.chars().count() <= 24), "{lines:?}");
        assert_eq!(lines.join(" "), text);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert!(wrap("   ", 5).is_empty());
    }

    #[test]
    fn text_is_drawn_with_the_font_bitmap() {
        let mut img = RgbImage::from_pixel(16, 8, Rgb([255, 255, 255]));
        draw_text(&mut img, 0, 0, "I", Rgb([0, 0, 0]));
        let glyph = font8x8::BASIC_FONTS.get('I').unwrap();
        for (y, bits) in glyph.iter().enumerate() {
            for x in 0..8u32 {
                let ink = img.get_pixel(x, y as u32)[0] == 0;
                assert_eq!(ink, bits >> x & 1 == 1, "pixel ({x}, {y})");
            }
        }
        // Nothing spills into the second glyph cell; clipping at the edge does not panic.
        assert!((8..16).all(|x| (0..8).all(|y| img.get_pixel(x, y)[0] == 255)));
        draw_text(&mut img, 12, 4, "WW", Rgb([0, 0, 0]));
    }
}
