//! Our renderer against the real CLEVR-SV on the same scenes (`clevr::fidelity`): per
//! material, the mean colour of the objects each frame adds, real and ours; the first frame's
//! brightness; the frames' rms difference.
//!
//!   storyvis prepare clevr-sv --import ../shared/clevr-sv-sample --out /tmp/real64
//!   cargo run --release -p storyvis-data --example compare_real -- /tmp/real64
use anyhow::Result;
use std::path::Path;
use storyvis_data::clevr::fidelity::{compare, redraw};
use storyvis_data::dataset::Dataset;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).expect("usage: compare_real IMPORTED_REAL_DATASET [SIDE_BY_SIDE.png]");
    let ds = Dataset::open(Path::new(dir))?;
    let f = compare(&ds)?;
    // Optionally a sheet for looking (not for the repository: it holds the real frames):
    // per story, the 4 real frames then ours, each at 3×.
    if let Some(out) = args.get(2) {
        let s = ds.header.image_size;
        let rows = ds.stories.len().min(12) as u32;
        let mut sheet =
            image::RgbImage::from_pixel(8 * 3 * s + 12, rows * 3 * s, image::Rgb([255, 255, 255]));
        for (r, st) in ds.stories.iter().take(rows as usize).enumerate() {
            let (drawn, _) = redraw(st, s)?;
            for (t, raw) in drawn.into_iter().enumerate() {
                let real = ds.load_image(&st.frames[t])?;
                let ours = image::RgbImage::from_raw(s, s, raw).expect("s × s RGB pixels");
                for (k, img) in [(t as u32, real), (4 + t as u32, ours)] {
                    let big = image::imageops::resize(
                        &img,
                        3 * s,
                        3 * s,
                        image::imageops::FilterType::Nearest,
                    );
                    image::imageops::replace(
                        &mut sheet,
                        &big,
                        (k * 3 * s + if k >= 4 { 12 } else { 0 }) as i64,
                        (r as u32 * 3 * s) as i64,
                    );
                }
            }
        }
        sheet.save(out)?;
    }
    for (m, name) in ["rubber", "metal"].iter().enumerate() {
        let c = &f.objects[m];
        let mean = |v: &[[f64; 3]]| -> [f64; 3] {
            std::array::from_fn(|k| {
                (v.iter().map(|x| x[k]).sum::<f64>() / v.len().max(1) as f64).round()
            })
        };
        println!("{name}: {} objects, mean colour real {:?} ours {:?}, rms per channel {:.1} grey levels", c.real.len(), mean(&c.real), mean(&c.ours), c.rms());
    }
    println!("frame 1 mean brightness: real {:.1}, ours {:.1}; rms difference per frame {:.1} grey levels", f.first_frame.0, f.first_frame.1, f.frame_rms);
    Ok(())
}
