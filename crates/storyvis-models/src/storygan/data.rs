//! A story dataset in memory as tensors, and the batches StoryGAN's training draws from it.

use super::config::{Config, TextInput};
use super::generator::TextBatch;
use super::DataShape;
use anyhow::{ensure, Context, Result};
use storyvis_core::data::{load_images, load_labels, to_unit, upload};
use storyvis_core::text::Vocab;
use storyvis_data::clevr::scene::{LABEL_LEN, SLOT_LEN};
use storyvis_data::dataset::{Dataset, StoryRecord};
use tch::{Device, Kind, Tensor};

/// Stories as tensors, on the CPU or (for training on a GPU) wholly on the device, where a
/// batch is a gather with no host work at all.
pub struct StoryData {
    /// [N, T, 3, S, S] u8.
    pub images: Tensor,
    /// Token ids [N, T, L] (int64: the word encoder's, or MiniLM's when it trains), or vectors
    /// [N, T, V] (attribute vectors, frozen MiniLM's embeddings).
    pub text: Tensor,
    /// Frame labels (objects present) [N, T, labels] f32.
    pub labels: Tensor,
    /// One-hots of the object each frame adds (slot t of its vector) [N, T, 15] f32: what
    /// its sentence names; in datasets without CLEVR-SV's object slots, the frame's labels.
    pub added: Tensor,
    /// `layout`: where the object each frame adds stands in it, x to the right and y
    /// downwards in [−1, 1] (the frames' object lists) [N, T, 2] f32.
    pub places: Option<Tensor>,
    pub ids: Vec<String>,
    pub sentences: Vec<Vec<String>>,
}

/// One batch on the device.
pub struct Batch {
    /// [B, T, 3, S, S] in [−1, 1].
    pub images: Tensor,
    pub text: TextBatch,
    pub labels: Tensor,
    pub added: Tensor,
    pub places: Option<Tensor>,
}

impl Batch {
    /// The same tensors (shallow clones).
    pub fn shallow(&self) -> Batch {
        Batch {
            images: self.images.shallow_clone(),
            text: self.text.shallow(),
            labels: self.labels.shallow_clone(),
            added: self.added.shallow_clone(),
            places: self.places.as_ref().map(Tensor::shallow_clone),
        }
    }
}

/// Checks that a dataset fits a model config.
pub fn check_compatible(ds: &Dataset, cfg: &Config) -> Result<()> {
    let h = &ds.header;
    let other = match (h.kind.as_str(), h.frames_per_story) {
        (storyvis_data::bouncing::KIND, _) => Some("video clips"),
        (_, 1) => Some("captioned images"),
        _ => None,
    };
    if let Some(what) = other {
        anyhow::bail!(
            "the dataset at {} holds {what} (kind {}), not stories: a story model trains on stories of {} frames (storyvis prepare clevr-sv)",
            ds.dir.display(),
            h.kind,
            cfg.frames
        );
    }
    ensure!(
        h.frames_per_story == cfg.frames,
        "the dataset at {} has {} frames per story, the model {} (T must match)",
        ds.dir.display(),
        h.frames_per_story,
        cfg.frames
    );
    let other = if matches!(h.image_size, 64 | 128 | 256) {
        format!(", or --set image_size={}", h.image_size)
    } else {
        String::new()
    };
    ensure!(
        h.image_size as i64 == cfg.image_size,
        "the dataset's frames are {0}×{0}; the model generates {1}×{1} (prepare with --size {1}{other})",
        h.image_size,
        cfg.image_size
    );
    Ok(())
}

impl StoryData {
    pub fn load(
        ds: &Dataset,
        stories: &[&StoryRecord],
        cfg: &Config,
        vocab: &Vocab,
    ) -> Result<StoryData> {
        check_compatible(ds, cfg)?;
        ensure!(!stories.is_empty(), "no stories to load from {}", ds.dir.display());
        let t = cfg.frames;
        let n = stories.len() as i64;
        let images = load_images(ds, stories)?;
        let sentences: Vec<Vec<String>> =
            stories.iter().map(|s| s.frames.iter().map(|f| f.sentence.clone()).collect()).collect();
        let text = match cfg.text {
            TextInput::Sentence => {
                let flat: Vec<&str> = sentences.iter().flatten().map(String::as_str).collect();
                let ids = vocab.batch(&flat).context("encoding the dataset's sentences")?;
                let l = ids.size()[1];
                ids.view([n, t as i64, l])
            }
            TextInput::Vector => {
                let v: Vec<f32> = stories
                    .iter()
                    .flat_map(|s| s.frames.iter().flat_map(|f| f.vector.iter().copied()))
                    .collect();
                Tensor::from_slice(&v).view([n, t as i64, -1])
            }
            TextInput::Minilm if cfg.minilm_tokens() => {
                // The generator runs MiniLM itself (to train it, or to attend over its tokens):
                // its token ids.
                let flat: Vec<&str> = sentences.iter().flatten().map(String::as_str).collect();
                storyvis_core::minilm::WordPieces::load_default()?
                    .ids(&flat)?
                    .0
                    .view([n, t as i64, -1])
            }
            TextInput::Minilm => {
                let flat: Vec<&str> = sentences.iter().flatten().map(String::as_str).collect();
                let corpus =
                    ds.stories.iter().flat_map(|s| s.frames.iter().map(|f| f.sentence.as_str()));
                storyvis_core::minilm::dataset_embeddings(&ds.dir, corpus, &flat)?.view([
                    n,
                    t as i64,
                    storyvis_core::minilm::DIM,
                ])
            }
        };
        let labels = load_labels(stories).view([n, t as i64, -1]);
        // CLEVR-SV's vectors hold a slot per object in order of entry; other story datasets
        // (Pororo-SV's characters) have none, and a sentence names what its frame shows.
        let slots =
            ds.header.label_names.len() == LABEL_LEN && ds.header.vector_len >= t * SLOT_LEN;
        let added = if slots {
            let added: Vec<f32> = stories
                .iter()
                .flat_map(|s| {
                    s.frames.iter().enumerate().flat_map(|(k, f)| {
                        let start = (k * SLOT_LEN).min(f.vector.len());
                        let end = (start + LABEL_LEN).min(f.vector.len());
                        let mut slot = f.vector[start..end].to_vec();
                        slot.resize(LABEL_LEN, 0.0);
                        slot
                    })
                })
                .collect();
            Tensor::from_slice(&added).view([n, t as i64, LABEL_LEN as i64])
        } else {
            labels.shallow_clone()
        };
        Ok(StoryData {
            images,
            text,
            labels,
            added,
            places: None,
            ids: stories.iter().map(|s| s.id.clone()).collect(),
            sentences,
        })
    }

    /// `n` random stories of a config's shapes (uniform pixels; random attribute vectors, or
    /// sentences of `WORDS` random word ids; random labels), for benchmarks that need no
    /// dataset.
    pub fn synthetic(cfg: &Config, shape: DataShape, n: usize, seed: u64) -> StoryData {
        const WORDS: usize = 12;
        let side = cfg.image_size as usize;
        let mut rng = storyvis_data::rng::Rng::new(seed);
        let (nn, t) = (n as i64, cfg.frames as i64);
        let bits = |rng: &mut storyvis_data::rng::Rng, len: usize| -> Vec<f32> {
            (0..len).map(|_| rng.below(2) as f32).collect()
        };
        let pixels: Vec<u8> =
            (0..n * cfg.frames * 3 * side * side).map(|_| rng.below(256) as u8).collect();
        let text = match cfg.text {
            TextInput::Sentence => {
                let ids: Vec<i64> = (0..n * cfg.frames * WORDS)
                    .map(|_| 2 + rng.below((shape.vocab - 2).max(1) as usize) as i64)
                    .collect();
                Tensor::from_slice(&ids).view([nn, t, WORDS as i64])
            }
            TextInput::Vector => {
                Tensor::from_slice(&bits(&mut rng, n * cfg.frames * shape.vector_len as usize))
                    .view([nn, t, shape.vector_len])
            }
            TextInput::Minilm if cfg.minilm_tokens() => {
                // Random word-piece ids between [CLS] and [SEP].
                let mut ids: Vec<i64> = Vec::with_capacity(n * cfg.frames * (WORDS + 2));
                for _ in 0..n * cfg.frames {
                    ids.push(101);
                    ids.extend((0..WORDS).map(|_| 1000 + rng.below(29000) as i64));
                    ids.push(102);
                }
                Tensor::from_slice(&ids).view([nn, t, WORDS as i64 + 2])
            }
            TextInput::Minilm => {
                let v: Vec<f32> = (0..n * cfg.frames * storyvis_core::minilm::DIM as usize)
                    .map(|_| rng.range(-1.0, 1.0) as f32)
                    .collect();
                let v = Tensor::from_slice(&v).view([nn, t, storyvis_core::minilm::DIM]);
                &v / v.norm_scalaropt_dim(2, [-1], true)
            }
        };
        let labels = bits(&mut rng, n * cfg.frames * shape.labels as usize);
        let added = bits(&mut rng, n * cfg.frames * LABEL_LEN);
        StoryData {
            images: Tensor::from_slice(&pixels).view([nn, t, 3, cfg.image_size, cfg.image_size]),
            text,
            labels: Tensor::from_slice(&labels).view([nn, t, shape.labels]),
            added: Tensor::from_slice(&added).view([nn, t, LABEL_LEN as i64]),
            places: cfg.layout.then(|| {
                let v: Vec<f32> =
                    (0..n * cfg.frames * 2).map(|_| rng.range(-1.0, 1.0) as f32).collect();
                Tensor::from_slice(&v).view([nn, t, 2])
            }),
            ids: (0..n).map(|i| format!("synthetic-{i}")).collect(),
            sentences: vec![vec![String::new(); cfg.frames]; n],
        }
    }

    /// With `layout`, the places of the objects the frames add (what the place head learns
    /// from and training draws at); drawing and scoring need none.
    pub fn with_places(
        self,
        ds: &Dataset,
        stories: &[&StoryRecord],
        cfg: &Config,
    ) -> Result<StoryData> {
        let places = cfg.layout.then(|| places(ds, stories, cfg)).transpose()?;
        Ok(StoryData { places, ..self })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The same stories with their tensors on `device` (a no-op on the CPU).
    pub fn to_device(self, device: Device) -> StoryData {
        StoryData {
            images: self.images.to_device(device),
            text: self.text.to_device(device),
            labels: self.labels.to_device(device),
            added: self.added.to_device(device),
            places: self.places.map(|p| p.to_device(device)),
            ..self
        }
    }

    /// The stories at `index` on `device`.
    pub fn batch(&self, index: &[i64], device: Device) -> Batch {
        let idx = upload(index, self.images.device());
        let text = self.text.index_select(0, &idx).to_device(device);
        Batch {
            images: to_unit(&self.images.index_select(0, &idx).to_device(device)),
            text: if text.kind() == Kind::Int64 {
                TextBatch::Ids(text)
            } else {
                TextBatch::Vectors(text)
            },
            labels: self.labels.index_select(0, &idx).to_device(device),
            added: self.added.index_select(0, &idx).to_device(device),
            places: self.places.as_ref().map(|p| p.index_select(0, &idx).to_device(device)),
        }
    }
}

/// Where the object each frame adds stands: frame t's (t + 1)-th listed object's centre, in
/// [−1, 1] of the frame (x to the right, y downwards) [N, T, 2]. An error naming the story
/// when a frame does not list the objects it shows.
fn places(ds: &Dataset, stories: &[&StoryRecord], cfg: &Config) -> Result<Tensor> {
    let side = cfg.image_size as f32;
    let mut v = Vec::with_capacity(stories.len() * cfg.frames * 2);
    for s in stories {
        for (k, f) in s.frames.iter().enumerate() {
            let o = f.objects.get(k).with_context(|| {
                format!(
                    "layout = true needs frames that list their objects; frame {} of story {} in {} lists {} (prepare clevr-sv renders them)",
                    k + 1,
                    s.id,
                    ds.dir.display(),
                    f.objects.len()
                )
            })?;
            v.extend(o.centre.iter().map(|c| c / side * 2.0 - 1.0));
        }
    }
    Ok(Tensor::from_slice(&v).view([stories.len() as i64, cfg.frames as i64, 2]))
}
