//! The text-to-image commands: `train-text-encoder` (the joint embedding every text-to-image
//! family reads its captions through), `interpolate`, `style-transfer` (through the family
//! registry: a family that has them draws them).

use crate::progress::Progress;
use crate::WeightsArg;
use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;
use storyvis_core::checkpoint::Weights;
use storyvis_core::drawer::{save_all, Drawer};
use storyvis_core::input::Fit;
use storyvis_core::joint::{EncoderKind, Hinge, SwapGroups};
use storyvis_core::registry;
use storyvis_models::encoder_training::{train_text_encoder, EncoderRequest};

#[derive(Args)]
pub struct TextEncoderArgs {
    /// A captioned-image dataset (`storyvis prepare clevr-captions`, or an imported one): its
    /// training split trains the encoders, its test split scores them.
    #[arg(long)]
    data: PathBuf,
    /// Where the encoder goes (a directory; must be absent unless --force).
    #[arg(long)]
    out: PathBuf,
    /// char-cnn-rnn (Reed et al. 2016), word (word embeddings + bidirectional GRU) or minilm
    /// (the pretrained all-MiniLM-L6-v2, frozen: only the image encoder trains).
    #[arg(long, default_value = "char-cnn-rnn")]
    encoder: EncoderKind,
    /// Embedding width (default 1024, the paper's; minilm's is its own 384).
    #[arg(long)]
    dim: Option<i64>,
    /// char-CNN-RNN: characters read per caption (201 in the paper).
    #[arg(long, default_value_t = 201)]
    max_chars: usize,
    /// Word encoder: word embedding width.
    #[arg(long, default_value_t = 128)]
    word_dim: i64,
    /// Training iterations.
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Images (each with one of its captions) per iteration.
    #[arg(long, default_value_t = 64)]
    batch: i64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// Seed of the initial weights and the batches (the same seed trains the same model).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// max: the paper's structured hinge (the worst mismatch of each row); mean: every
    /// mismatch's hinge, averaged.
    #[arg(long, default_value = "max")]
    hinge: Hinge,
    /// A group of interchangeable words, comma-separated (repeatable): each caption also meets
    /// its image with one such word swapped for another of its group, as a hard negative
    /// (e.g. `--swap cube,sphere,cylinder` makes the embedding tell shapes apart). Not in the
    /// paper's loss.
    #[arg(long = "swap", value_name = "WORDS")]
    swaps: Vec<SwapGroups>,
    /// Replace an existing encoder directory.
    #[arg(long)]
    force: bool,
    /// Where the networks run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn train_encoder(a: TextEncoderArgs) -> Result<()> {
    let device = storyvis_core::device::parse_device(&a.device)?;
    let req = EncoderRequest {
        data: a.data,
        out: a.out,
        kind: a.encoder,
        dim: a.dim.unwrap_or(if a.encoder == EncoderKind::Minilm {
            storyvis_core::minilm::DIM
        } else {
            1024
        }),
        max_chars: a.max_chars,
        word_dim: a.word_dim,
        steps: a.steps,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
        hinge: a.hinge,
        swaps: SwapGroups::join(a.swaps)?,
        device,
        force: a.force,
    };
    let started = Instant::now();
    let progress = Progress::new(req.steps as u64, "training");
    let result = train_text_encoder(&req, &|step, total, loss| {
        progress.tick();
        if step % 100 == 0 || step == total {
            progress.note(&format!("step {step} joint embedding loss {loss:.4}"));
        }
    });
    progress.finish();
    let m = result?;
    println!(
        "text encoder ({:?}, {} wide) in {} after {:.0}s; held-out R-precision (1 true + 99 random captions, {} images): {:.4}",
        m.config.kind,
        m.config.dim,
        req.out.display(),
        started.elapsed().as_secs_f64(),
        m.held_out_items,
        m.held_out_r_precision
    );
    if let Some(acc) = m.held_out_swap_accuracy {
        println!("held-out swap accuracy (first caption above it with one swap word changed; chance 0.5): {acc:.4}");
    }
    Ok(())
}

/// Loads a checkpoint of any family to draw, through the registry.
fn load(checkpoint: &Path, device: &str, weights: Weights) -> Result<Box<dyn Drawer>> {
    registry::load_drawer(checkpoint, storyvis_core::device::parse_device(device)?, weights)
}

/// Warns of the words of `text` the model does not know (the policy of `generate`).
fn warn_unknown(model: &dyn Drawer, text: &str) -> Result<()> {
    // Bad text is the drawing's error to report; only its words are looked at here.
    let Ok(checked) = model.check(text, Fit::Exact) else { return Ok(()) };
    crate::warn_unknown(model, &checked.unknown, false)
}

fn list(files: &[PathBuf]) {
    for f in files {
        println!("{}", f.display());
    }
}

#[derive(Args)]
pub struct InterpolateArgs {
    /// A text-to-image run directory or checkpoint.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The caption the row starts from.
    #[arg(long)]
    from: String,
    /// The caption the row ends at.
    #[arg(long)]
    to: String,
    /// Images per row, the two captions included.
    #[arg(long, default_value_t = 8)]
    steps: usize,
    /// Seeds: one row each.
    #[arg(long, default_value = "0")]
    seeds: String,
    /// The directory the pictures are written into (created if missing).
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Where the networks run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// average: the run's moving average of the generator where it kept one (`ema_half_life`);
    /// trained: the trained weights.
    #[arg(long, value_enum, default_value = "average")]
    weights: WeightsArg,
}

pub fn interpolate(a: InterpolateArgs) -> Result<()> {
    let seeds = storyvis_core::input::parse_seeds(&a.seeds)?;
    let model = load(&a.checkpoint, &a.device, a.weights.into())?;
    warn_unknown(model.as_ref(), &a.from)?;
    warn_unknown(model.as_ref(), &a.to)?;
    list(&save_all(&model.interpolate(&a.from, &a.to, a.steps, &seeds)?, &a.out)?);
    Ok(())
}

#[derive(Args)]
pub struct StyleArgs {
    /// A text-to-image run directory or checkpoint (trained with its style encoder).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The image whose style (z = S(x)) is kept: the model's size, any format the image
    /// crate reads.
    #[arg(long)]
    image: PathBuf,
    /// The caption to draw in the query image's style.
    #[arg(long)]
    text: String,
    /// The directory the pictures are written into (created if missing).
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Where the networks run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// average: the run's moving average of the generator where it kept one (`ema_half_life`);
    /// trained: the trained weights.
    #[arg(long, value_enum, default_value = "average")]
    weights: WeightsArg,
}

pub fn style_transfer(a: StyleArgs) -> Result<()> {
    let model = load(&a.checkpoint, &a.device, a.weights.into())?;
    warn_unknown(model.as_ref(), &a.text)?;
    let picture = model.style_transfer(&a.image, &a.text)?;
    for f in save_all(&[picture], &a.out)? {
        println!("{}", f.display());
    }
    Ok(())
}
