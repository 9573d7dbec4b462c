//! CLEVR-SV: StoryGAN's synthetic story-visualisation data, rendered by our own ray caster or
//! imported from the layout the StoryGAN code distributes.

pub mod captions;
pub mod fidelity;
pub mod import;
pub mod render;
pub mod scene;
pub mod sentence;

use crate::dataset::{self, DatasetWriter, Frame, FrameObject, Header, Split, StoryRecord};
use crate::rng::Rng;
use anyhow::{bail, ensure, Result};
use rayon::prelude::*;
use render::Renderer;
use scene::{label_of, Camera, Object, Placement, Story, FRAMES, VECTOR_LEN};
use std::path::Path;

/// Settings of `storyvis prepare clevr-sv`.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub stories: usize,
    pub seed: u64,
    /// Frame side in pixels.
    pub size: u32,
    /// Fraction of stories in the training split.
    pub split: f64,
    /// Anti-aliasing: `supersample`² rays per pixel of the 4:3 render (`RENDER_SCALE`× the
    /// frame side across) that is squashed to the frame.
    pub supersample: u32,
    pub placement: Placement,
    /// Each object must stay visible on at least this fraction of the final frame's pixels.
    pub min_visible_fraction: f64,
    /// How the sentences are worded (the scenes and images do not depend on it).
    pub phrasing: sentence::Phrasing,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            stories: 1000,
            seed: 0,
            size: 64,
            split: 0.9,
            supersample: 1,
            placement: Placement::default(),
            min_visible_fraction: 0.002,
            phrasing: Default::default(),
        }
    }
}

pub const MAX_STORIES: usize = 10_000_000;

/// Validates a frame side (`--size`).
pub fn check_size(size: u32) -> Result<()> {
    ensure!((16..=1024).contains(&size), "--size must be between 16 and 1024 pixels, got {size}");
    Ok(())
}

/// Validates options shared by generation and import.
pub fn check_common(size: u32, split: f64) -> Result<()> {
    check_size(size)?;
    ensure!(
        (0.0..=1.0).contains(&split),
        "--split must be a fraction between 0 and 1, got {split}"
    );
    Ok(())
}

impl GenerateOptions {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            (1..=MAX_STORIES).contains(&self.stories),
            "--stories must be between 1 and {MAX_STORIES}, got {}",
            self.stories
        );
        check_common(self.size, self.split)?;
        ensure!(
            (1..=8).contains(&self.supersample),
            "--supersample must be 1..8, got {}",
            self.supersample
        );
        Ok(())
    }

    /// Minimum visible pixels per object at this frame size.
    pub fn min_visible_pixels(&self) -> usize {
        ((self.size as f64).powi(2) * self.min_visible_fraction).ceil() as usize
    }
}

pub fn story_id(index: usize) -> String {
    format!("{index:06}")
}

pub fn header(kind_source: serde_json::Value, stories: usize, size: u32) -> Header {
    Header {
        format: dataset::FORMAT.into(),
        version: dataset::VERSION,
        kind: "clevr-sv".into(),
        frames_per_story: FRAMES,
        image_size: size,
        vector_len: VECTOR_LEN,
        label_names: scene::label_names(),
        stories,
        source: kind_source,
    }
}

/// Samples story `index` of a run: attributes, a placement, and a check that every object
/// keeps enough visible pixels in the final frame (occlusion only grows as objects are
/// added, so the final frame is the binding one). Deterministic in (seed, index).
pub fn sample_story(opts: &GenerateOptions, index: usize) -> Result<(Story, Rng)> {
    let mut rng = Rng::for_item(opts.seed, index as u64);
    let min_px = opts.min_visible_pixels();
    for _ in 0..200 {
        let Some(story) = Story::sample(&mut rng, &opts.placement) else { continue };
        let visible = Renderer::new(&story.objects, &story.camera).visible_pixels(opts.size);
        if visible.iter().all(|&v| v >= min_px) {
            return Ok((story, rng));
        }
    }
    bail!(
        "story {index}: no placement satisfied the rules in 200 tries (are the rules too strict?)"
    )
}

/// The sentences of CLEVR-SV story `seed` (default options, standard wording), without
/// rendering its frames: an example of what story models trained on CLEVR-SV read.
pub fn example_story(seed: u64) -> Result<Vec<String>> {
    let opts = GenerateOptions { seed, ..Default::default() };
    let (story, mut rng) = sample_story(&opts, 0)?;
    Ok((0..FRAMES)
        .map(|t| {
            sentence::caption_in(opts.phrasing, &story.objects, t, &story.camera, &mut rng).text
        })
        .collect())
}

/// A caption of the first 1–4 objects of CLEVR-SV story `seed`, as `prepare clevr-captions`
/// words them: an example of what text-to-image models trained on CLEVR read.
pub fn example_caption(seed: u64) -> Result<String> {
    let (story, _) = sample_story(&GenerateOptions { seed, ..Default::default() }, 0)?;
    let mut rng = Rng::for_item(seed, 1);
    let k = 1 + rng.below(4);
    Ok(captions::captions(&story.objects[..k], &story.camera, 1, &mut rng).remove(0))
}

/// Where `objects` appear in a `size`×`size` frame seen by `camera`: their centres' projections
/// and, given the frame's renderer, how many pixels show each.
pub fn frame_objects(
    objects: &[Object],
    camera: &Camera,
    size: u32,
    renderer: Option<&Renderer>,
) -> Vec<FrameObject> {
    let visible = renderer.map(|r| r.visibility(size));
    objects
        .iter()
        .enumerate()
        .map(|(k, o)| {
            let [x, y] = camera.pixel([o.x, o.y, o.z()], size as f64);
            FrameObject {
                attributes: [o.shape as u8, o.color as u8, o.material as u8, o.size as u8],
                centre: [x as f32, y as f32],
                visible: visible.as_ref().map(|v| v[k].pixels as u32),
            }
        })
        .collect()
}

/// Renders one story's frames and writes them; returns its manifest record.
fn make_story(opts: &GenerateOptions, index: usize, out: &DatasetWriter) -> Result<StoryRecord> {
    let (story, mut rng) = sample_story(opts, index)?;
    let id = story_id(index);
    let mut frames = Vec::with_capacity(FRAMES);
    for t in 0..FRAMES {
        let renderer = Renderer::new(&story.objects[..=t], &story.camera);
        let rgb = renderer.render(opts.size, opts.supersample);
        let image = format!("images/{id}_{}.png", t + 1);
        out.write_png(&image, &rgb, opts.size)?;
        let vector = story.vector(t);
        frames.push(Frame {
            image,
            vector: vector.to_vec(),
            label: label_of(&vector).to_vec(),
            sentence: sentence::caption_in(
                opts.phrasing,
                &story.objects,
                t,
                &story.camera,
                &mut rng,
            )
            .text,
            captions: Vec::new(),
            objects: frame_objects(&story.objects[..=t], &story.camera, opts.size, Some(&renderer)),
        });
    }
    Ok(StoryRecord { id, split: Split::of(index, opts.stories, opts.split), frames })
}

/// Renders a CLEVR-SV dataset into `out` (in parallel across stories; the bytes do not depend
/// on the thread count). `tick` is called once per finished story.
pub fn generate(
    opts: &GenerateOptions,
    out: &Path,
    force: bool,
    tick: &(dyn Fn() + Sync),
) -> Result<()> {
    opts.validate()?;
    let writer = DatasetWriter::create(out, force)?;
    let stories: Vec<StoryRecord> = (0..opts.stories)
        .into_par_iter()
        .map(|i| {
            let r = make_story(opts, i, &writer);
            tick();
            r
        })
        .collect::<Result<_>>()?;
    let mut source = serde_json::json!({
        "generator": "storyvis clevr-sv renderer",
        "seed": opts.seed,
        "split": opts.split,
        "supersample": opts.supersample,
        "min_visible_pixels": opts.min_visible_pixels(),
    });
    if opts.phrasing == sentence::Phrasing::Paraphrase {
        // Recorded only when not the standard wording, so standard manifests stay as they were.
        source["phrasing"] = "paraphrase".into();
    }
    writer.finish(&header(source, opts.stories, opts.size), &stories)
}
