//! `storyvis`: prepare data, look at it, and (as the models land) train, generate and evaluate.

mod progress;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use progress::Progress;
use std::path::PathBuf;
use std::time::Instant;
use storyvis_data::clevr::{self, import::ImportOptions, GenerateOptions};
use storyvis_data::{dataset::Dataset, sheet};

#[derive(Parser)]
#[command(name = "storyvis", version, about = "Text-conditioned GANs: story visualisation (StoryGAN), text-to-image and text-to-video")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a dataset: render one or import one.
    Prepare {
        #[command(subcommand)]
        dataset: Prepare,
    },
    /// Write a contact sheet of a dataset: one story per row, sentences under the frames.
    Show {
        /// A dataset directory made by `storyvis prepare`.
        dir: PathBuf,
        /// How many stories (from the start of the manifest).
        #[arg(long, default_value_t = 8)]
        stories: usize,
        /// PNG to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check the libtorch runtime: version, threads, devices, and a computation on the device.
    Doctor {
        /// cpu, cuda or cuda:N
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

#[derive(Subcommand)]
enum Prepare {
    /// CLEVR-SV stories (4 frames, one object added per frame): rendered by our ray caster,
    /// or imported from the StoryGAN layout with --import.
    ClevrSv(ClevrSvArgs),
}

#[derive(Args)]
struct ClevrSvArgs {
    /// Output dataset directory (replaced atomically; must be empty or absent unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Number of stories to render.
    #[arg(long, required_unless_present = "import", conflicts_with = "import")]
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
    /// Anti-aliasing: N×N rays per pixel.
    #[arg(long, default_value_t = 3, conflicts_with = "import")]
    supersample: u32,
    /// Import the original CLEVR-SV layout from this directory instead of rendering.
    #[arg(long, value_name = "DIR")]
    import: Option<PathBuf>,
    /// Replace a non-empty output directory.
    #[arg(long)]
    force: bool,
}

fn prepare_clevr_sv(a: ClevrSvArgs) -> Result<()> {
    let start = Instant::now();
    if let Some(src) = a.import {
        let opts = ImportOptions { size: a.size, split: a.split, seed: a.seed };
        let n = std::fs::read_dir(src.join("images")).map(|d| d.count() as u64 / 4).unwrap_or(0);
        let progress = Progress::new(n.max(1), "importing");
        let result = clevr::import::import(&src, &a.out, a.force, &opts, &|| progress.tick());
        progress.finish();
        let stories = result?;
        println!("imported {stories} stories from {} into {} in {:.1}s", src.display(), a.out.display(), start.elapsed().as_secs_f64());
        return Ok(());
    }
    let opts = GenerateOptions {
        stories: a.stories.context("--stories is required")?,
        seed: a.seed,
        size: a.size,
        split: a.split,
        supersample: a.supersample,
        ..GenerateOptions::default()
    };
    opts.validate()?;
    let progress = Progress::new(opts.stories as u64, "rendering");
    let result = clevr::generate(&opts, &a.out, a.force, &|| progress.tick());
    progress.finish();
    result?;
    println!(
        "rendered {} CLEVR-SV stories ({}×{}, seed {}) into {} in {:.1}s",
        opts.stories,
        opts.size,
        opts.size,
        opts.seed,
        a.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Prepare { dataset: Prepare::ClevrSv(a) } => prepare_clevr_sv(a),
        Command::Show { dir, stories, out } => {
            let ds = Dataset::open(&dir)?;
            let img = sheet::contact_sheet(&ds, stories)?;
            sheet::save_png(&img, &out)?;
            println!("wrote {} ({} stories)", out.display(), stories.min(ds.stories.len()));
            Ok(())
        }
        Command::Doctor { device } => {
            let device = storyvis::device::parse_device(&device)?;
            println!("{}", storyvis::device::runtime_report(device)?);
            Ok(())
        }
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
