//! Training a joint embedding (`storyvis train-text-encoder`, the text encoders the text-to-image
//! families read their captions through): a text encoder and an image
//! encoder trained together on a captioned dataset with the deep symmetric structured joint
//! embedding loss (Reed et al., CVPR 2016, §3), plus optional swap negatives.

use anyhow::{ensure, Context, Result};
use std::path::PathBuf;
use storyvis_core::captioned::CaptionData;
use storyvis_core::checkpoint;
use storyvis_core::joint::*;
use storyvis_core::optim::Adam;
use storyvis_core::text::Vocab;
use storyvis_data::dataset::{Dataset, Split};
use storyvis_data::rng::Rng;
use tch::nn;
use tch::{Device, Kind, Tensor};

/// What `train_text_encoder` is asked to do.
pub struct EncoderRequest {
    pub data: PathBuf,
    pub out: PathBuf,
    pub kind: EncoderKind,
    pub dim: i64,
    pub max_chars: usize,
    pub word_dim: i64,
    pub steps: usize,
    pub batch: i64,
    pub lr: f64,
    pub seed: u64,
    pub hinge: Hinge,
    /// Swap negatives (`SwapGroups`) added to the loss; empty: the paper's loss.
    pub swaps: SwapGroups,
    pub device: Device,
    pub force: bool,
}

/// Embeddings [N, D] of held-out images and of their first captions (eval mode, no gradient).
fn held_out_embeddings(
    joint_text: &TextEncoder,
    image: &ImageEncoder,
    data: &CaptionData,
    device: Device,
) -> Result<(Tensor, Tensor)> {
    let first: Vec<&str> = data.captions.iter().map(|c| c[0].as_str()).collect();
    let t = joint_text.embed(&first)?;
    let mut v = Vec::new();
    for chunk in (0..data.len() as i64).collect::<Vec<_>>().chunks(256) {
        let x = data.images_at(chunk, device);
        v.push(tch::no_grad(|| image.forward_t(&x, false)));
    }
    Ok((Tensor::cat(&v, 0), t))
}

/// Embeddings as flat rows for R-precision.
fn rows(t: &Tensor) -> Result<Vec<f32>> {
    Vec::<f32>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))
        .context("embeddings")
}

/// Trains a text encoder and an image encoder jointly on a captioned dataset's training split
/// (each step: `batch` distinct images, one random caption each), scores the test split's
/// R-precision, and saves both into `out`. `on_step(step, steps, loss)` reports progress.
pub fn train_text_encoder(
    req: &EncoderRequest,
    on_step: &dyn Fn(usize, usize, f64),
) -> Result<EncoderManifest> {
    ensure!(req.steps > 0, "--steps must be at least 1");
    ensure!((2..=4096).contains(&req.batch), "--batch must be 2..4096, got {}", req.batch);
    ensure!(req.lr > 0.0 && req.lr < 1.0, "--lr must be in (0, 1), got {}", req.lr);
    ensure!((1..=8192).contains(&req.dim), "--dim must be 1..8192, got {}", req.dim);
    ensure!(
        !req.out.exists() || req.force,
        "{} already exists (pass --force to replace it)",
        req.out.display()
    );
    let ds = Dataset::open(&req.data)?;
    let train = CaptionData::load(&ds, Split::Train, false)?;
    let test = CaptionData::load(&ds, Split::Test, true)?;
    ensure!(
        train.len() as i64 >= req.batch,
        "{} has {} training images; --batch {} needs at least as many",
        ds.dir.display(),
        train.len(),
        req.batch
    );
    let size = train.size();
    ensure!(
        size >= 8 && (size & (size - 1)) == 0,
        "image size {size} is not a power of two of at least 8"
    );
    let vocab = (req.kind == EncoderKind::Word)
        .then(|| Vocab::build(train.captions.iter().flatten().map(String::as_str)));
    let cfg = EncoderConfig {
        kind: req.kind,
        dim: req.dim,
        max_chars: req.max_chars,
        word_dim: req.word_dim,
        image_size: size,
    };
    tch::manual_seed(req.seed as i64);
    let text = TextEncoder::new(cfg.clone(), vocab.clone(), req.device)?;
    for data in [&train, &test] {
        let (texts, owner) = data.flat_captions();
        text.check_texts(&texts, |k| {
            format!("image {} of {}", data.ids[owner[k]], ds.dir.display())
        })?;
    }
    check_swap_words(&req.swaps, &train, &ds)?;
    let image_vs = nn::VarStore::new(req.device);
    let image = ImageEncoder::new(image_vs.root() / "image", size, req.dim);
    // MiniLM stays as pretrained: only the image encoder learns to meet its sentence space.
    let frozen_text = req.kind == EncoderKind::Minilm;
    let mut opt_t = Adam::new(&text.vs, 0.9, 0.999, |_| true);
    let mut opt_i = Adam::new(&image_vs, 0.9, 0.999, |_| true);
    let mut rng = Rng::new(req.seed);
    let n = train.len();
    for step in 1..=req.steps {
        let mut pick: Vec<i64> = (0..n as i64).collect();
        // A partial shuffle: the first `batch` are distinct random images.
        for j in 0..req.batch as usize {
            let k = j + rng.below(n - j);
            pick.swap(j, k);
        }
        pick.truncate(req.batch as usize);
        let caps: Vec<&str> = pick
            .iter()
            .map(|&i| {
                let c = &train.captions[i as usize];
                c[rng.below(c.len())].as_str()
            })
            .collect();
        // Swap negatives: the rows whose caption has a group word, and that caption swapped.
        let (rows, swapped): (Vec<i64>, Vec<String>) = if req.swaps.is_empty() {
            Default::default()
        } else {
            caps.iter()
                .enumerate()
                .filter_map(|(j, c)| Some((j as i64, req.swaps.swap(c, &mut rng)?)))
                .unzip()
        };
        let v = image.forward_t(&train.images_at(&pick, req.device), true);
        let t = text.forward(&text.inputs(&caps)?);
        let scores = v.matmul(&t.tr());
        let mut loss = joint_embedding_loss(&scores, req.hinge);
        if !rows.is_empty() {
            let idx = Tensor::from_slice(&rows).to_device(req.device);
            let own = scores.diagonal(0, 0, 1).index_select(0, &idx);
            let refs: Vec<&str> = swapped.iter().map(String::as_str).collect();
            let t_swap = text.forward(&text.inputs(&refs)?);
            loss += swap_loss(
                &own,
                &(v.index_select(0, &idx) * t_swap).sum_dim_intlist(1, false, Kind::Float),
            );
        }
        let l = if frozen_text {
            Adam::update(&loss, &mut [&mut opt_i], req.lr)
        } else {
            Adam::update(&loss, &mut [&mut opt_t, &mut opt_i], req.lr)
        };
        ensure!(
            l.is_finite(),
            "the joint embedding loss is not finite at step {step} ({l}); try a lower --lr"
        );
        on_step(step, req.steps, l);
    }
    let (images, firsts) = held_out_embeddings(&text, &image, &test, req.device)?;
    let r = storyvis_metrics::retrieval::r_precision(
        &rows(&images)?,
        &rows(&firsts)?,
        req.dim as usize,
        99,
        req.seed,
    )?;
    let swap_acc = if req.swaps.is_empty() {
        None
    } else {
        swap_accuracy(&text, &images, &firsts, &test, &req.swaps, req.seed)?
    };
    let manifest = |files| EncoderManifest {
        format: FORMAT.into(),
        version: 1,
        config: cfg,
        vocab: vocab.map(|v| v.words),
        data: req.data.display().to_string(),
        steps: req.steps,
        batch: req.batch,
        seed: req.seed,
        hinge: req.hinge,
        held_out_r_precision: r,
        held_out_items: test.len(),
        swaps: req.swaps.clone(),
        held_out_swap_accuracy: swap_acc,
        files,
    };
    checkpoint::write_dir(
        &req.out,
        req.force,
        |dir| {
            checkpoint::write_store(&dir.join(TEXT_WEIGHTS), &text.vs)?;
            checkpoint::write_store(&dir.join(IMAGE_WEIGHTS), &image_vs)
        },
        manifest,
    )
}

/// Checks that every word of `swaps` occurs in some training caption (a word no caption uses
/// is most likely a typo, and a word encoder would read it as unknown).
fn check_swap_words(swaps: &SwapGroups, train: &CaptionData, ds: &Dataset) -> Result<()> {
    if swaps.is_empty() {
        return Ok(());
    }
    let seen: std::collections::BTreeSet<String> =
        train.captions.iter().flatten().flat_map(|c| storyvis_core::text::tokenize(c)).collect();
    for w in swaps.0.iter().flatten() {
        ensure!(
            seen.contains(w),
            "the swap word {w:?} is in no training caption of {}",
            ds.dir.display()
        );
    }
    Ok(())
}

/// The share of `data`'s images whose first caption scores above a swapped copy of it
/// (`SwapGroups::swap`, drawn with `seed`) in the joint embedding: how well the embedding tells
/// the swapped attribute apart (0.5 is chance; ties count as failures). `images` and `firsts`
/// are `data`'s image and first-caption embeddings (`held_out_embeddings`). None when no first
/// caption has a group word.
fn swap_accuracy(
    text: &TextEncoder,
    images: &Tensor,
    firsts: &Tensor,
    data: &CaptionData,
    swaps: &SwapGroups,
    seed: u64,
) -> Result<Option<f64>> {
    let mut rng = Rng::new(seed ^ 0x5A09);
    let (rows, swapped): (Vec<i64>, Vec<String>) = data
        .captions
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i as i64, swaps.swap(&c[0], &mut rng)?)))
        .unzip();
    if rows.is_empty() {
        return Ok(None);
    }
    let refs: Vec<&str> = swapped.iter().map(String::as_str).collect();
    let t_swap = text.embed(&refs)?;
    let idx = Tensor::from_slice(&rows).to_device(images.device());
    let v = images.index_select(0, &idx);
    let score = |t: &Tensor| (&v * t).sum_dim_intlist(1, false, Kind::Float);
    let wins = score(&firsts.index_select(0, &idx))
        .gt_tensor(&score(&t_swap))
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    Ok(Some(wins))
}

/// R-precision of images [K·N, 3, S, S] in [−1, 1] drawn from `captions` (K draws of the N, in
/// order; S any 64·2^k, averaged down or repeated up to the encoder's size): each image against its caption
/// and 99 others in the joint embedding (the ranking StackGAN's successors report, AttnGAN §5).
pub fn r_precision(joint: &Joint, images: &Tensor, captions: &[&str], seed: u64) -> Result<f64> {
    let t = joint.text.embed(captions)?;
    let k = images.size()[0] / captions.len() as i64;
    let side = joint.manifest.config.image_size;
    let device = joint.text.vs.device();
    let mut v = Vec::new();
    for chunk in images.split(256, 0) {
        let chunk = match chunk.size()[3] {
            s if s == side => chunk,
            s if s > side => storyvis_core::data::block_mean(&chunk, side),
            _ => chunk.upsample_nearest2d([side, side], None, None),
        };
        v.push(tch::no_grad(|| joint.image.forward_t(&chunk.to_device(device), false)));
    }
    let rows = |t: Tensor| {
        Vec::<f32>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))
            .context("embeddings")
    };
    let (img, cap) = (rows(Tensor::cat(&v, 0))?, rows(t.repeat([k, 1]))?);
    Ok(storyvis_metrics::r_precision(&img, &cap, joint.manifest.config.dim as usize, 99, seed)?)
}
