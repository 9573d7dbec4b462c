//! CLEVR captions: single CLEVR scenes of 1–4 objects from our renderer, each with several
//! differently phrased English captions and the attribute labels of what it shows. A
//! text-to-image counterpart of the captioned sets Reed et al. (ICML 2016, §5) train on
//! (CUB and Oxford-102 with 10 captions per image), where every caption's content is known
//! exactly, so a generated image can be checked against it.

use super::scene::{label_names, label_of, Camera, Object, COLORS, SHAPES, VECTOR_LEN};
use super::sentence::Relation;
use super::{check_common, sample_story, GenerateOptions, MAX_STORIES};
use crate::dataset::{self, DatasetWriter, Frame, Header, Split, StoryRecord};
use crate::rng::Rng;
use anyhow::{ensure, Result};
use rayon::prelude::*;
use std::path::Path;

/// Settings of `storyvis prepare clevr-captions`.
#[derive(Clone, Debug)]
pub struct CaptionOptions {
    pub images: usize,
    pub seed: u64,
    pub size: u32,
    pub split: f64,
    pub supersample: u32,
    /// Captions per image (each a different phrasing).
    pub captions: usize,
}

impl Default for CaptionOptions {
    fn default() -> Self {
        CaptionOptions { images: 1000, seed: 0, size: 64, split: 0.9, supersample: 1, captions: 5 }
    }
}

/// How many phrasings `captions` knows.
pub const TEMPLATES: usize = 8;
pub const KIND: &str = "clevr-captions";

impl CaptionOptions {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            (1..=MAX_STORIES).contains(&self.images),
            "--images must be between 1 and {MAX_STORIES}, got {}",
            self.images
        );
        check_common(self.size, self.split)?;
        ensure!(
            (1..=8).contains(&self.supersample),
            "--supersample must be 1..8, got {}",
            self.supersample
        );
        ensure!(
            (1..=TEMPLATES).contains(&self.captions),
            "--captions must be 1..{TEMPLATES}, got {}",
            self.captions
        );
        Ok(())
    }

    fn scene_options(&self) -> GenerateOptions {
        GenerateOptions {
            stories: self.images,
            seed: self.seed,
            size: self.size,
            split: self.split,
            supersample: self.supersample,
            ..GenerateOptions::default()
        }
    }
}

/// "a, b and c".
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

const NUMBERS: [&str; 5] = ["no", "one", "two", "three", "four"];

/// `n` captions of a scene, each in a different template (chosen at random from
/// `TEMPLATES`), objects listed in a random order. Every caption names every object's colour
/// and shape; all but one name its size and material too, and the relational one states a
/// relation that holds from the camera.
pub fn captions(objects: &[Object], camera: &Camera, n: usize, rng: &mut Rng) -> Vec<String> {
    let mut templates: Vec<usize> = (0..TEMPLATES).collect();
    rng.shuffle(&mut templates);
    templates
        .into_iter()
        .take(n)
        .map(|t| {
            let mut order: Vec<usize> = (0..objects.len()).collect();
            rng.shuffle(&mut order);
            let full: Vec<String> =
                order.iter().map(|&i| format!("a {}", objects[i].noun_phrase())).collect();
            let k = objects.len();
            let text = match t {
                0 => format!("{}.", list(&full)),
                1 => format!("there is {}.", list(&full)),
                2 => format!("a picture of {}.", list(&full)),
                3 => format!("the scene shows {}.", list(&full)),
                4 => format!(
                    "{} object{}: {}.",
                    NUMBERS[k],
                    if k == 1 { "" } else { "s" },
                    list(&full)
                ),
                5 => {
                    let short: Vec<String> = order
                        .iter()
                        .map(|&i| {
                            format!("a {} {}", COLORS[objects[i].color], SHAPES[objects[i].shape])
                        })
                        .collect();
                    format!("{}.", list(&short))
                }
                6 => format!("on the ground stand {}.", list(&full)),
                _ => {
                    if k == 1 {
                        format!("{} on its own.", full[0])
                    } else {
                        // The first two objects (in this caption's order) and a true relation
                        // between them on the camera's lateral axis; the rest listed after.
                        let (a, b) = (&objects[order[0]], &objects[order[1]]);
                        let rel = if Relation::LeftOf.holds(a, b, camera) {
                            Relation::LeftOf
                        } else {
                            Relation::RightOf
                        };
                        let head = format!("{} {} the {}", full[0], rel.phrase(), b.noun_phrase());
                        if k == 2 {
                            format!("{head}.")
                        } else {
                            format!("{head}, with {}.", list(&full[2..]))
                        }
                    }
                }
            };
            text
        })
        .collect()
}

/// Renders image `index`: the first 1–4 objects of a CLEVR-SV story sample (the same placement
/// rules), its captions, attribute vector and labels.
fn make_image(opts: &CaptionOptions, index: usize, out: &DatasetWriter) -> Result<StoryRecord> {
    let scene = opts.scene_options();
    let (story, _) = sample_story(&scene, index)?;
    let mut rng = Rng::for_item(opts.seed ^ 0xCA97_1095, index as u64);
    let k = 1 + rng.below(4);
    let objects = &story.objects[..k];
    let renderer = super::render::Renderer::new(objects, &story.camera);
    let rgb = renderer.render(opts.size, opts.supersample);
    let id = super::story_id(index);
    let image = format!("images/{id}.png");
    out.write_png(&image, &rgb, opts.size)?;
    let vector = story.vector(k - 1);
    let caps = captions(objects, &story.camera, opts.captions, &mut rng);
    let frame = Frame {
        image,
        vector: vector.to_vec(),
        label: label_of(&vector).to_vec(),
        sentence: caps[0].clone(),
        captions: caps,
        objects: super::frame_objects(objects, &story.camera, opts.size, Some(&renderer)),
    };
    Ok(StoryRecord { id, split: Split::of(index, opts.images, opts.split), frames: vec![frame] })
}

/// Renders a CLEVR-captions dataset into `out` (in parallel; the bytes do not depend on the
/// thread count). `tick` is called once per finished image.
pub fn generate_captions(
    opts: &CaptionOptions,
    out: &Path,
    force: bool,
    tick: &(dyn Fn() + Sync),
) -> Result<()> {
    opts.validate()?;
    let writer = DatasetWriter::create(out, force)?;
    let items: Vec<StoryRecord> = (0..opts.images)
        .into_par_iter()
        .map(|i| {
            let r = make_image(opts, i, &writer);
            tick();
            r
        })
        .collect::<Result<_>>()?;
    let header = Header {
        format: dataset::FORMAT.into(),
        version: dataset::VERSION,
        kind: KIND.into(),
        frames_per_story: 1,
        image_size: opts.size,
        vector_len: VECTOR_LEN,
        label_names: label_names(),
        stories: opts.images,
        source: serde_json::json!({
            "generator": "storyvis clevr-captions renderer",
            "seed": opts.seed,
            "split": opts.split,
            "supersample": opts.supersample,
            "captions_per_image": opts.captions,
            "objects": "1-4",
        }),
    };
    writer.finish(&header, &items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clevr::scene::{Placement, Story, MATERIALS, SIZES};

    #[test]
    fn every_caption_names_every_object_and_the_phrasings_differ() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200u64 {
            let mut rng = Rng::for_item(5, i);
            let story = Story::sample(&mut rng, &Placement::default()).unwrap();
            let k = 1 + (i as usize % 4);
            let objects = &story.objects[..k];
            let caps = captions(objects, &story.camera, 6, &mut rng);
            assert_eq!(caps.len(), 6);
            let distinct: std::collections::HashSet<_> = caps.iter().collect();
            assert_eq!(distinct.len(), 6, "{caps:?}");
            let mut full = 0;
            for c in &caps {
                assert!(
                    c.ends_with('.') && c.starts_with(|ch: char| ch.is_ascii_lowercase()),
                    "{c:?}"
                );
                for o in objects {
                    let short = format!("{} {}", COLORS[o.color], SHAPES[o.shape]);
                    let long = format!(
                        "{} {} {} {}",
                        SIZES[o.size], COLORS[o.color], MATERIALS[o.material], SHAPES[o.shape]
                    );
                    assert!(c.contains(&short) || c.contains(&long), "{c:?} lacks {long}");
                }
                full += usize::from(objects.iter().all(|o| c.contains(&o.noun_phrase())));
                if let Some(rel) = [Relation::LeftOf, Relation::RightOf]
                    .into_iter()
                    .find(|r| c.contains(r.phrase()))
                {
                    // "a X to the left of the Y": the two named objects stand so.
                    let (x, y) = c.split_once(rel.phrase()).unwrap();
                    let named = |a: &Object, b: &Object| {
                        x.ends_with(&format!("a {} ", a.noun_phrase()))
                            && y.starts_with(&format!(" the {}", b.noun_phrase()))
                    };
                    let holds = objects.iter().any(|a| {
                        objects.iter().any(|b| named(a, b) && rel.holds(a, b, &story.camera))
                    });
                    assert!(holds, "{c:?}");
                }
                let mut pattern = c.clone();
                for o in objects {
                    pattern = pattern
                        .replace(&o.noun_phrase(), "X")
                        .replace(&format!("{} {}", COLORS[o.color], SHAPES[o.shape]), "Y");
                }
                seen.insert(pattern.replace("left", "SIDE").replace("right", "SIDE"));
            }
            assert!(full >= 5, "{caps:?}");
        }
        assert!(seen.len() >= 8 * 3, "{} patterns", seen.len());
    }

    #[test]
    fn the_relational_caption_states_a_relation_that_holds_and_no_other_does() {
        use crate::clevr::sentence::{stated_relation, Attributes};
        for i in 0..200u64 {
            let mut rng = Rng::for_item(9, i);
            let story = Story::sample(&mut rng, &Placement::default()).unwrap();
            let k = 1 + (i as usize % 4);
            let objects = &story.objects[..k];
            let stated: Vec<_> = captions(objects, &story.camera, TEMPLATES, &mut rng)
                .iter()
                .filter_map(|c| stated_relation(c))
                .collect();
            // One template states a relation, where there are two objects to relate.
            assert_eq!(stated.len(), usize::from(k >= 2), "{k} objects: {stated:?}");
            for st in stated {
                // Two objects alike in all four attributes can both fit a name: some pair of
                // distinct objects with the names must stand in the relation.
                let named = |a: Attributes| {
                    objects.iter().enumerate().filter(move |(_, o)| Attributes::of(o) == a)
                };
                let holds = named(st.subject).any(|(i, s)| {
                    named(st.anchor).any(|(j, a)| i != j && st.relation.holds(s, a, &story.camera))
                });
                assert!(holds, "{i}: {st:?} {objects:?}");
            }
        }
    }
}
