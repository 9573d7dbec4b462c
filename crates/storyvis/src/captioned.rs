//! Captioned-image datasets in memory (one image, several captions, optional labels per item:
//! `prepare clevr-captions`, and the imported layouts), for the text-to-image families and
//! their text encoders.

use crate::data::{load_images, load_labels, to_unit, upload};
use anyhow::{ensure, Result};
use storyvis_data::dataset::{Dataset, Split, StoryRecord};
use tch::{Device, Tensor};

/// Longest caption accepted, in bytes (a typed caption longer than this is an error).
pub const MAX_CAPTION_BYTES: usize = 1000;

pub struct CaptionData {
    /// [N, 3, S, S] u8.
    pub images: Tensor,
    /// Every caption of each image (at least one).
    pub captions: Vec<Vec<String>>,
    /// [N, L] f32 (L = 0 for data without labels).
    pub labels: Tensor,
    pub ids: Vec<String>,
}

/// Checks that `ds` holds captioned images (one frame per item).
pub fn check_captioned(ds: &Dataset) -> Result<()> {
    ensure!(
        ds.header.frames_per_story == 1,
        "{} is a story dataset ({} frames per story, kind {}), not a captioned-image one: prepare one with `storyvis prepare clevr-captions` (or import one)",
        ds.dir.display(),
        ds.header.frames_per_story,
        ds.header.kind
    );
    Ok(())
}

/// An item's captions: its `captions`, or its one sentence.
pub fn captions_of(item: &StoryRecord) -> Vec<String> {
    let f = &item.frames[0];
    if f.captions.is_empty() {
        vec![f.sentence.clone()]
    } else {
        f.captions.clone()
    }
}

impl CaptionData {
    /// The items of `split` (all of them if it has none and `fallback`).
    pub fn load(ds: &Dataset, split: Split, fallback: bool) -> Result<CaptionData> {
        check_captioned(ds)?;
        let mut items: Vec<&StoryRecord> = ds.split(split).collect();
        if items.is_empty() && fallback {
            items = ds.stories.iter().collect();
        }
        ensure!(!items.is_empty(), "{} has no {split:?} items", ds.dir.display());
        let n = items.len() as i64;
        let images = load_images(ds, &items)?.squeeze_dim(1);
        let labels = load_labels(&items).view([n, ds.header.label_names.len() as i64]);
        Ok(CaptionData { images, captions: items.iter().map(|s| captions_of(s)).collect(), labels, ids: items.iter().map(|s| s.id.clone()).collect() })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn size(&self) -> i64 {
        self.images.size()[2]
    }

    /// The images at `index` on `device`, in [−1, 1].
    pub fn images_at(&self, index: &[i64], device: Device) -> Tensor {
        to_unit(&self.images.index_select(0, &upload(index, self.images.device())).to_device(device))
    }

    /// Every caption, flat, with the item each belongs to.
    pub fn flat_captions(&self) -> (Vec<&str>, Vec<usize>) {
        let mut texts = Vec::new();
        let mut owner = Vec::new();
        for (i, caps) in self.captions.iter().enumerate() {
            for c in caps {
                texts.push(c.as_str());
                owner.push(i);
            }
        }
        (texts, owner)
    }
}
