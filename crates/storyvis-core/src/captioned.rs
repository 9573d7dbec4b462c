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
        Ok(CaptionData {
            images,
            captions: items.iter().map(|s| captions_of(s)).collect(),
            labels,
            ids: items.iter().map(|s| s.id.clone()).collect(),
        })
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
        to_unit(
            &self.images.index_select(0, &upload(index, self.images.device())).to_device(device),
        )
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

/// A training split's captions read through a text encoder, as the text-to-image families
/// train on them: every caption (flat), its embedding (computed once: the papers train on
/// precomputed embeddings too) and an id shared by identical texts; image i's captions are rows
/// first[i] .. first[i] + count[i].
pub struct EmbeddedCaptions {
    pub texts: Vec<String>,
    /// [captions, E] on the encoder's device.
    pub embeddings: Tensor,
    pub text_ids: Vec<usize>,
    pub first: Vec<usize>,
    pub count: Vec<usize>,
    /// After `add_swaps`: per caption row, the row of its swapped copy (None: it has no swap
    /// word). Empty before.
    pub swapped: Vec<Option<usize>>,
}

/// One iteration's draw: the images, one caption row of each, and a mismatched caption row
/// (another image's, other words) of each.
pub struct CaptionBatch {
    pub images: Vec<i64>,
    pub right: Vec<i64>,
    pub wrong: Vec<i64>,
    /// The generator the draw used, to continue from.
    pub rng: storyvis_data::rng::Rng,
}

impl EmbeddedCaptions {
    /// The run's `shape` record of a family conditioned on these embeddings: their width.
    pub fn shape(&self) -> serde_json::Value {
        serde_json::json!({ "embed_dim": self.embeddings.size()[1] })
    }

    /// The run's `data_summary` record: `images` training images and their captions.
    pub fn data_summary(&self, images: usize) -> serde_json::Value {
        serde_json::json!({ "train_images": images, "train_captions": self.embeddings.size()[0] })
    }

    /// `train`'s captions through `enc` (an error names an image whose caption it cannot read).
    pub fn new(
        train: &CaptionData,
        enc: &crate::joint::Joint,
        ds: &Dataset,
    ) -> Result<EmbeddedCaptions> {
        let (texts, owner) = train.flat_captions();
        enc.text.check_texts(&texts, |k| {
            format!("image {} of {}", train.ids[owner[k]], ds.dir.display())
        })?;
        let mut first = vec![0usize; train.len()];
        let mut count = vec![0usize; train.len()];
        for (k, &i) in owner.iter().enumerate().rev() {
            first[i] = k;
            count[i] += 1;
        }
        // The frozen MiniLM's embeddings depend on the captions alone: computed once and cached
        // beside the data (a learned encoder's are computed afresh).
        let embeddings = if enc.text.cfg.kind == crate::joint::EncoderKind::Minilm {
            crate::minilm::cached_embeddings(&ds.dir, texts.iter().copied(), &texts, |unique| {
                enc.text.embed(unique)
            })?
        } else {
            enc.text.embed(&texts)?
        };
        Ok(EmbeddedCaptions {
            embeddings,
            text_ids: crate::family::text_ids(texts.iter().copied()),
            texts: texts.iter().map(|t| t.to_string()).collect(),
            first,
            count,
            swapped: Vec::new(),
        })
    }

    /// Appends, for every caption with a word of `swaps`, one copy with such a word swapped
    /// (`SwapGroups::swap`, drawn per row from `seed`) and its embedding through `enc`: rows
    /// after the captions', found through `swapped`. Returns how many were added.
    pub fn add_swaps(
        &mut self,
        enc: &crate::joint::Joint,
        swaps: &crate::joint::SwapGroups,
        seed: u64,
    ) -> Result<usize> {
        let n = self.texts.len();
        let mut extra = Vec::new();
        self.swapped = (0..n)
            .map(|k| {
                let s = swaps
                    .swap(&self.texts[k], &mut storyvis_data::rng::Rng::for_item(seed, k as u64))?;
                extra.push(s);
                Some(n + extra.len() - 1)
            })
            .collect();
        let added = extra.len();
        if added > 0 {
            let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
            let e = enc.text.embed(&refs)?;
            self.embeddings = Tensor::cat(&[&self.embeddings, &e], 0);
            self.texts.extend(extra);
        }
        Ok(added)
    }

    /// Replaces each `wrong[j]`, with probability `share`, by the swapped copy of `right[j]`
    /// where it has one (`add_swaps`); one draw of `rng` per item.
    pub fn swap_wrong(
        &self,
        right: &[i64],
        wrong: &mut [i64],
        share: f64,
        rng: &mut storyvis_data::rng::Rng,
    ) {
        for (r, w) in right.iter().zip(wrong.iter_mut()) {
            if let (Some(s), true) = (self.swapped[*r as usize], rng.uniform() < share) {
                *w = s as i64;
            }
        }
    }

    /// The embeddings of the distinct caption texts [U, E] (each text's first row).
    pub fn distinct_embeddings(&self) -> Tensor {
        self.rows(&crate::family::first_of_each(&self.text_ids), self.embeddings.device())
    }

    /// The embeddings of caption `rows` on `device`.
    pub fn rows(&self, rows: &[i64], device: Device) -> Tensor {
        self.embeddings.index_select(0, &upload(rows, self.embeddings.device())).to_device(device)
    }

    /// Iteration `at`'s batch of `b` of the `n` images: a per-epoch permutation (`per_epoch`
    /// iterations an epoch), one random caption of each, and a mismatched caption for each
    /// (Reed et al. 2016 §3.1: one of another image in the batch, redrawn while its text
    /// equals the right caption's).
    pub fn batch(&self, at: crate::family::Draw, b: usize, per_epoch: usize) -> CaptionBatch {
        use crate::streams::mix;
        use storyvis_data::rng::Rng;
        let n = self.first.len();
        let (epoch, k) = (at.step / per_epoch, at.step % per_epoch);
        let mut perm: Vec<i64> = (0..n as i64).collect();
        Rng::for_item(mix(at.seed, 1), epoch as u64).shuffle(&mut perm);
        let images: Vec<i64> = (0..b).map(|j| perm[(k * b + j) % n]).collect();
        let mut rng = Rng::for_item(mix(at.seed, 2), at.step as u64);
        let caption = |rng: &mut Rng, i: usize| (self.first[i] + rng.below(self.count[i])) as i64;
        let right: Vec<i64> = images.iter().map(|&i| caption(&mut rng, i as usize)).collect();
        let wrong = crate::family::mismatched(
            b,
            &mut rng,
            |rng, k| caption(rng, images[k] as usize),
            |j, w| self.text_ids[w as usize] == self.text_ids[right[j] as usize],
        );
        CaptionBatch { images, right, wrong, rng }
    }
}
/// A typed caption checked for a model that reads it through `joint`'s text encoder.
pub fn checked_caption(joint: &crate::joint::Joint, text: &str) -> Result<crate::drawer::Checked> {
    check_caption(text)?;
    Ok(crate::drawer::Checked {
        sentences: vec![text.to_string()],
        unknown: joint.text.unknown_words(text),
    })
}

/// Checks a typed caption: not empty, not too long, some words.
pub fn check_caption(caption: &str) -> Result<()> {
    ensure!(!caption.trim().is_empty(), "the caption is empty");
    ensure!(
        caption.len() <= MAX_CAPTION_BYTES,
        "the caption is {} bytes long; at most {MAX_CAPTION_BYTES} are allowed",
        caption.len()
    );
    ensure!(caption.chars().any(char::is_alphanumeric), "the caption {caption:?} has no words");
    Ok(())
}

/// The first caption of each item of a captioned-image dataset: what a text-to-image model is
/// evaluated on (an error naming the model on a dataset of stories or clips).
pub fn first_captions(
    model: &std::path::Path,
    ds: &Dataset,
    items: &[&storyvis_data::dataset::StoryRecord],
) -> Result<Vec<String>> {
    ensure!(
        ds.header.frames_per_story == 1,
        "{} draws single images; evaluate it on a captioned-image dataset (kind clevr-captions), not {} ({} frames per item)",
        model.display(),
        ds.header.kind,
        ds.header.frames_per_story
    );
    Ok(items.iter().map(|s| captions_of(s)[0].clone()).collect())
}
