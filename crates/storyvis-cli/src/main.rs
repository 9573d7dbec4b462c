//! `storyvis`: prepare data, look at it, and (as the models land) train, generate and evaluate.

mod launch;
mod prepare;
mod progress;
mod t2i;

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Parser, Subcommand};
use progress::Progress;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use storyvis_core::config::Config;
use storyvis_core::distributed::{Backend, Group, Launch};
use storyvis_core::drawer::{Drawer, Format, Input, Layout};
use storyvis_core::input::{self, Fit};
use storyvis_core::registry;
use storyvis_core::train::{self, Start, TrainRequest};
use storyvis_core::words;
use storyvis_data::{atomic, dataset::Dataset, sheet};
use storyvis_eval::classifier::{self, ClassifierRequest};
use storyvis_eval::eval::{self, EvalRequest};
use storyvis_eval::{DEFAULT_CLASSIFIER, DEFAULT_CLIP_CLASSIFIER, DEFAULT_DETECTOR};
use storyvis_models::{shipped_name, DEFAULT_MODEL, SHIPPED_MODELS};

#[derive(Parser)]
#[command(
    name = "storyvis",
    version,
    about = "Text-conditioned GANs: story visualisation (StoryGAN), text-to-image and text-to-video"
)]
struct Cli {
    /// CPU threads for every command (train, eval, generate, serve, …): libtorch's operators and
    /// the data work. Default: one per core.
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a dataset: render one or import one.
    Prepare {
        #[command(subcommand)]
        dataset: prepare::Prepare,
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
    /// Train a model from a preset (any family: StoryGAN and its baselines, GAN-INT-CLS, StackGAN, SDGAN, TGANs-C) on a prepared dataset.
    Train(TrainArgs),
    /// Draw typed text with a trained model of any family: a story (one PNG strip per seed), a
    /// caption (an image per seed and a row) or a video caption (a GIF per seed).
    Generate(GenerateArgs),
    /// List the words a model knows (by default the shipped story model's), grouped: shapes,
    /// colours, materials, sizes, relations, other. Any other word is read as unknown (generate
    /// warns of it with the nearest known word; --strict-vocab makes it an error).
    Words {
        /// A run directory or checkpoint of any family that draws from text.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Train the classifier `eval` scores generated frames with: CLEVR-SV's attributes (the
    /// default, models/clevr-classifier), Pororo-SV's characters or any labelled story data.
    TrainClassifier(ClassifierArgs),
    /// Train the CLEVR object detector that finds where drawn objects are and what each is
    /// (from rendered frames, which list their objects' centres).
    TrainDetector(DetectorArgs),
    /// Train a text encoder for the text-to-image models: the char-CNN-RNN (or a word-level
    /// encoder) with an image encoder, by the joint embedding loss of Reed et al. 2016.
    TrainTextEncoder(t2i::TextEncoderArgs),
    /// Draw the paper's sentence interpolation with a text-to-image model: the noise fixed,
    /// the caption embedding moved from one caption to another. Unknown words are read as
    /// unknown, with a warning naming the nearest word the model knows.
    Interpolate(t2i::InterpolateArgs),
    /// Draw a caption in the style of an image (z inferred by the style encoder). Unknown words
    /// are read as unknown, with a warning naming the nearest word the model knows.
    StyleTransfer(t2i::StyleArgs),
    /// Serve a web page (and a JSON API) where anyone types a story, caption or video caption
    /// and sees it drawn by the models given (default: every shipped model, one per family). Unknown words
    /// are read as unknown and listed in the answer's "unknown", each with the nearest word the
    /// model knows in "suggestions".
    Serve(ServeArgs),
    /// Score trained models on held-out stories: SSIM, PSNR, classifier F1 and accuracies,
    /// Fréchet distance, IS and consistency; JSON plus a markdown table.
    Eval(EvalArgs),
    /// Time training iterations and drawing of a preset on synthetic data (no dataset needed; a
    /// family with a benchmark hook: StoryGAN's presets): median milliseconds after a warm-up,
    /// parameters, peak memory.
    Bench(BenchArgs),
    /// Write a generator-only copy of a checkpoint (weights, config, vocabulary, digests): all
    /// that `generate` and `eval` need, about a tenth of the size; it cannot be resumed.
    Export {
        /// A run directory (its latest checkpoint) or a checkpoint directory.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The directory to create.
        #[arg(long)]
        out: PathBuf,
        /// Keep only the moving average of a network that has one (it draws by default); its
        /// trained weights are left out (`--weights trained` then cannot draw from the copy).
        #[arg(long)]
        average_only: bool,
        /// Store the weights in half precision (16-bit floats): half the size; the networks
        /// still run in 32 bits. How far this moves a model's scores: `storyvis eval` of both.
        #[arg(long)]
        half: bool,
    },
    /// Check the libtorch runtime: version, threads, devices, and a computation on the device.
    Doctor {
        /// cpu, cuda or cuda:N
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

/// Where and how the networks of `train` and `bench` run.
#[derive(Args)]
struct RuntimeArgs {
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Arithmetic of the forward passes: fp32, tf32 (CUDA tensor cores) or bf16 (autocast).
    #[arg(long, default_value = "fp32")]
    precision: storyvis_core::precision::Precision,
    /// Layout of the convolutions' activations: auto (channels-last on the CPU, where it is
    /// faster; standard on CUDA), standard (NCHW) or channels-last (NHWC).
    #[arg(long, default_value = "auto")]
    memory_format: storyvis_core::precision::MemoryFormat,
}

impl RuntimeArgs {
    fn resolve(&self) -> Result<storyvis_core::precision::Runtime> {
        let device = storyvis_core::device::parse_device(&self.device)?;
        Ok(storyvis_core::precision::Runtime {
            device,
            precision: self.precision,
            channels_last: self.memory_format.channels_last(device),
        })
    }
}

#[derive(Args)]
struct BenchArgs {
    /// Preset to measure (storygan-clevr is the reference configuration).
    #[arg(long, default_value = storyvis_models::BENCH_PRESET)]
    preset: String,
    /// Override one config key (as for train).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Untimed iterations (and draws) first.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Timed training iterations.
    #[arg(long, default_value_t = 30)]
    iterations: usize,
    /// Timed draws of one sample (a story, an image, a clip).
    #[arg(long, default_value_t = 50)]
    draws: usize,
    /// Write the measurements as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Args)]
struct TrainArgs {
    /// Preset: storygan-clevr (the reference configuration), storygan-quality, storygan-fast
    /// (objects placed as told), storygan-small, storygan-tiny; storygan-pororo (Pororo-SV, the paper's), storygan-pororo-fast,
    /// storygan-pororo-tiny;
    /// gan-int-cls-clevr (the paper's), gan-int-cls-twemoji, gan-int-cls-small,
    /// gan-int-cls-fast (the budget-first recipe), gan-int-cls-tiny;
    /// stackgan-clevr, stackgan-clevr-stage2, stackgan-small, stackgan-small-stage2,
    /// stackgan-fast (the budget-first recipe), stackgan-fast-stage2, stackgan-tiny;
    /// sdgan-clevr, sdgan-small, sdgan-fast (the budget-first recipe), sdgan-tiny; tganc-mnist1, tganc-mnist2,
    /// tganc-fast (the budget-first recipe), tganc-tiny; each names its model family.
    #[arg(long)]
    preset: String,
    /// A TOML file of config keys overriding the preset.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one config key: --set lr_g=0.0001 --set variant=svc.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// The dataset (made by `storyvis prepare`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where numbered run directories go.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// Continue a run: `latest` (the newest run of this preset) or a run/checkpoint directory.
    #[arg(long, value_name = "latest|DIR")]
    resume: Option<String>,
    /// Print the resolved config and exit.
    #[arg(long)]
    dry_run: bool,
    /// Train as N processes on this machine, data parallel: each takes 1/N of every batch
    /// (the config's batch stays the global one) and gradients are averaged before each step.
    /// Under torchrun, leave it out: its RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
    /// MASTER_PORT are read.
    #[arg(long, value_name = "N")]
    nproc: Option<usize>,
    /// The collective library of a multi-process run: gloo (CPU tensors) or nccl (CUDA
    /// tensors). Default: nccl on CUDA, gloo on the CPU.
    #[arg(long, value_name = "gloo|nccl")]
    dist_backend: Option<Backend>,
    /// Seconds a rank of a multi-process run waits for the others (to meet, and at every
    /// exchange) before the run ends with an error.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    dist_timeout: u64,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["story", "story_file", "text"])))]
struct GenerateArgs {
    /// A run directory (its latest checkpoint) or a checkpoint directory. Without it (or
    /// --model), the shipped model the input fits: models/storygan-default for a story; for a
    /// caption, the shipped video model if the caption reads like a video caption, else one of
    /// the shipped text-to-image models, named with --model.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// A shipped model by name (`storyvis serve` lists them): storygan-default,
    /// gan-int-cls-default, stackgan-default, sdgan-default, tganc-fast.
    #[arg(long, conflicts_with = "checkpoint", value_name = "NAME")]
    model: Option<String>,
    /// The story: one sentence per frame, separated by periods (story models).
    #[arg(long)]
    story: Option<String>,
    /// A caption, for text-to-image models (gan-int-cls, stackgan, sdgan) and video models
    /// (tganc): one image or clip per seed, and a row.
    #[arg(long)]
    text: Option<String>,
    /// Two-stage text-to-image models (stackgan, sdgan): Stage I's image (upsampled) beside
    /// Stage II's for each seed, in stages.png.
    #[arg(long, requires = "text")]
    stages: bool,
    /// Read the story from a UTF-8 text file.
    #[arg(long)]
    story_file: Option<PathBuf>,
    /// Seeds: N, A-B or a comma list; one picture per seed.
    #[arg(long, default_value = "0-3")]
    seeds: String,
    /// The directory the pictures are written into (created if missing).
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Stories: strip (the default: frames left to right with the sentences) or frames (a PNG
    /// per frame). Videos (--text on a tganc model): gif (the default: an animated GIF per seed)
    /// or strip (a PNG of each clip's frames left to right).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Repeat the last sentence when the story is shorter than the model's T.
    #[arg(long, conflicts_with = "truncate")]
    pad: bool,
    /// Drop sentences beyond the model's T.
    #[arg(long)]
    truncate: bool,
    /// Unknown words are errors. By default, for every family, each is named with the nearest
    /// word the model knows (`storyvis words` lists them) and drawn as unknown.
    #[arg(long)]
    strict_vocab: bool,
    /// Where the networks run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// average: the run's moving average of the generator where it kept one (`ema_half_life`);
    /// trained: the trained weights.
    #[arg(long, value_enum, default_value = "average")]
    weights: WeightsArg,
}

#[derive(Args)]
struct ServeArgs {
    /// A model to serve, NAME=DIR (a run or checkpoint directory of any family that draws from
    /// text); repeat for more. Default: every shipped model (one per family), each under its
    /// directory's name (storygan-default, gan-int-cls-default, stackgan-default, sdgan-default,
    /// tganc-fast).
    #[arg(long = "model", value_name = "NAME=DIR")]
    models: Vec<String>,
    /// The address to listen on: loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The port (0: any free port; the one taken is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Requests waiting or drawing at once; past that the answer is 503 with Retry-After.
    #[arg(long, default_value_t = 32)]
    queue: usize,
    /// Threads that take requests from the queue (the drawings themselves run one at a time:
    /// libtorch's random generator is one per process).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Seconds a request may wait and draw before it is answered 503.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Where the networks run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// average: the runs' moving averages of the generators where they kept one; trained: the
    /// trained weights.
    #[arg(long, value_enum, default_value = "average")]
    weights: WeightsArg,
}

fn serve(a: ServeArgs) -> Result<()> {
    let models = if a.models.is_empty() {
        // Every shipped model that is there; one missing is named, all missing an error.
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for (_, path) in SHIPPED_MODELS {
            match storyvis_core::shipped::find(path) {
                Ok(dir) => found.push((shipped_name(path).to_string(), dir)),
                Err(e) => missing.push(e),
            }
        }
        if found.is_empty() {
            return Err(missing
                .remove(0)
                .context("no --model given, and no shipped model was found"));
        }
        for e in missing {
            eprintln!("warning: not served: {e:#}");
        }
        found
    } else {
        a.models.iter().map(|m| storyvis_serve::parse_model(m)).collect::<Result<_>>()?
    };
    ensure!(
        a.timeout >= 1 && a.timeout <= 3600,
        "--timeout must be 1..3600 seconds, got {}",
        a.timeout
    );
    let opts = storyvis_serve::Options {
        models,
        queue: a.queue,
        workers: a.workers,
        timeout: std::time::Duration::from_secs(a.timeout),
        device: storyvis_core::device::parse_device(&a.device)?,
        weights: a.weights.into(),
    };
    storyvis_serve::run(&opts, &a.host, a.port)
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum WeightsArg {
    Average,
    Trained,
}

impl From<WeightsArg> for storyvis_core::checkpoint::Weights {
    fn from(w: WeightsArg) -> Self {
        match w {
            WeightsArg::Average => Self::Average,
            WeightsArg::Trained => Self::Trained,
        }
    }
}

#[derive(Args)]
struct DetectorArgs {
    /// A rendered CLEVR-SV or CLEVR-captions dataset (its frames list their objects): its
    /// training split teaches the detector, its test split scores it.
    #[arg(long)]
    data: PathBuf,
    /// Where the detector goes (a directory; must be empty or absent unless --force; default
    /// models/clevr-detector).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Training iterations.
    #[arg(long, default_value_t = 4000)]
    steps: usize,
    /// Frames per iteration.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Seed of the initial weights and the batches (the same seed trains the same model).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace an existing detector.
    #[arg(long)]
    force: bool,
    /// Where the networks run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Channels of its two stride-2 convolutions (64 → 16 pixels), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "32,64")]
    widths: Vec<i64>,
}

#[derive(Args)]
struct ClassifierArgs {
    /// The dataset whose training split it learns from (its test split scores it).
    #[arg(long)]
    data: PathBuf,
    /// Where the classifier goes (a directory; must be empty or absent unless --force). Without
    /// it: models/clevr-classifier for CLEVR frames; other labels (Pororo-SV's characters) and a
    /// video dataset's clip classifier need --out.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Training iterations.
    #[arg(long, default_value_t = 3000)]
    steps: usize,
    /// Frames per iteration.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Seed of the initial weights and the batches (the same seed trains the same model).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace an existing classifier.
    #[arg(long)]
    force: bool,
    /// Where the networks run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Channels of its four stride-2 convolutions (64 → 4 pixels), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "32,64,128,128")]
    widths: Vec<i64>,
}

#[derive(Args)]
struct EvalArgs {
    /// A run directory (its latest checkpoint) or a checkpoint directory; without it (and
    /// without --gam), the shipped model for the data's kind (models/storygan-default for
    /// stories, models/tganc-fast for video clips).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Video models: the generative adversarial metric between two TGANs-C training runs
    /// (each one's discriminators judge the real held-out clips and the other's clips).
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with_all = ["checkpoint", "compare"])]
    gam: Vec<PathBuf>,
    /// More runs or checkpoints to score on the same stories and seeds, in the same table.
    #[arg(long, num_args = 1.., value_name = "RUN")]
    compare: Vec<PathBuf>,
    /// The dataset whose held-out (test) stories are drawn.
    #[arg(long)]
    data: PathBuf,
    /// The attribute classifier (made by `storyvis train-classifier`), or the clip classifier
    /// for video data; without it, the shipped one for the data's kind
    /// (models/clevr-classifier, models/bouncing-classifier1).
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// The object detector (made by `storyvis train-detector`) for the object columns: where
    /// drawn objects are, what each is, and whether the sentences' relations hold. Without it,
    /// the shipped one (models/clevr-detector) where it exists and the dataset's frames list
    /// their objects.
    #[arg(long)]
    detector: Option<PathBuf>,
    /// The first N held-out stories.
    #[arg(long, default_value_t = 1000)]
    stories: usize,
    /// Noise seeds per story (0..K).
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// Where eval.json and eval.md go.
    #[arg(long, default_value = "out/eval")]
    out: PathBuf,
    /// Where the networks run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// average: each run's moving average of the generator where it kept one; trained: the
    /// trained weights (rows are named "(average)" or "(trained)" accordingly).
    #[arg(long, value_enum, default_value = "average")]
    weights: WeightsArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Strip,
    Frames,
    Gif,
}

impl FormatArg {
    fn format(self) -> Format {
        match self {
            FormatArg::Strip => Format::Strip,
            FormatArg::Frames => Format::Frames,
            FormatArg::Gif => Format::Gif,
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// The process's peak resident memory (Linux), MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<f64>().ok().map(|kb| kb / 1024.0)
}

fn bench(a: BenchArgs) -> Result<()> {
    ensure!(a.iterations > 0 && a.draws > 0, "--iterations and --draws must be at least 1");
    let cfg = Config::resolve(&a.preset, None, &a.sets)?;
    let runtime = a.runtime.resolve()?;
    let device = runtime.device;
    let t = train::bench(&cfg, runtime, a.warmup, a.iterations, a.draws)?;
    let (train_ms, sample_ms) = (median(&t.train_ms), median(&t.sample_ms));
    let report = serde_json::json!({
        "implementation": "storyvis",
        "preset": a.preset,
        "family": cfg.family,
        "overrides": a.sets,
        "device": format!("{device:?}"),
        "precision": runtime.precision.to_string(),
        "channels_last": runtime.channels_last,
        "model": cfg.model,
        "parameters": t.parameters.iter().map(|(n, p)| (n.to_string(), *p)).collect::<std::collections::BTreeMap<_, _>>(),
        "warmup": a.warmup,
        "train_ms": t.train_ms,
        "train_ms_median": train_ms,
        "sample_ms": t.sample_ms,
        "sample_ms_median": sample_ms,
        "peak_rss_mib": peak_rss_mib(),
    });
    if let Some(p) = &a.json {
        storyvis_data::atomic::write_file(p, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    let params: Vec<String> =
        t.parameters.iter().map(|(n, p)| format!("{n} {:.2} M", *p as f64 / 1e6)).collect();
    let layout = if runtime.channels_last { ", channels-last" } else { "" };
    println!(
        "storyvis bench: {} on {device:?} at {}{layout} ({})",
        a.preset,
        runtime.precision,
        params.join(", ")
    );
    println!(
        "train iteration  {train_ms:9.2} ms (median of {}, after {} warm-up)",
        t.train_ms.len(),
        a.warmup
    );
    println!("draw one sample  {sample_ms:9.2} ms (median of {})", t.sample_ms.len());
    if let Some(m) = peak_rss_mib() {
        println!("peak host memory {m:9.0} MiB");
    }
    Ok(())
}

/// Exit status of a run stopped by Ctrl-C (after saving), as shells report SIGINT: so that
/// `storyvis train … && next` does not carry on after an interrupted run.
pub(crate) const INTERRUPTED: i32 = 130;

/// The process group of a multi-process run, when this process is one of its ranks (started
/// by `--nproc` or by a launcher such as torchrun).
fn join_group(
    a: &TrainArgs,
    runtime: &mut storyvis_core::precision::Runtime,
) -> Result<Option<Arc<Group>>> {
    let Some(l) = Launch::from_env()? else {
        return Ok(None);
    };
    if l.world == 1 {
        return Ok(None);
    }
    runtime.device = l.device(runtime.device);
    let backend = a.dist_backend.unwrap_or(Backend::for_device(runtime.device));
    ensure!(
        backend == Backend::Gloo || runtime.device.is_cuda(),
        "--dist-backend nccl exchanges CUDA tensors: train with --device cuda, or use gloo on the CPU"
    );
    ensure!(a.dist_timeout > 0, "--dist-timeout 0: give the ranks at least a second");
    let g = Group::join(&l, backend, std::time::Duration::from_secs(a.dist_timeout))?;
    Ok(Some(Arc::new(g)))
}

fn train(a: TrainArgs, threads: Option<usize>) -> Result<()> {
    let config = Config::resolve(&a.preset, a.config.as_deref(), &a.sets)?;
    if a.resume.is_some() && a.config.is_some() {
        bail!("--config cannot be used with --resume: a resumed run keeps its config (--set may change {})", storyvis_core::config::RESUMABLE.join(", "));
    }
    if a.dry_run {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let data =
        a.data.clone().context("--data DIR is required (a dataset made by `storyvis prepare`)")?;
    let mut runtime = a.runtime.resolve()?;
    if let (Some(n), false) = (a.nproc, launch::launched()) {
        if n != 1 {
            return launch::launch(n, threads, std::time::Duration::from_secs(a.dist_timeout));
        }
    }
    let group = join_group(&a, &mut runtime)?;
    let lead = storyvis_core::distributed::leads(group.as_deref());
    let start = match a.resume.as_deref() {
        None => Start::Fresh { runs: a.runs },
        Some(r) => {
            // Rank 0 resolves it, and the other ranks resume what it resolved (`latest` could
            // name another run by the time a slower rank looks).
            let dir = match r {
                _ if !lead => None,
                "latest" => Some(storyvis_core::run_dir::latest_run(&a.runs, &a.preset)?),
                dir => Some(PathBuf::from(dir)),
            };
            Start::Resume(match &group {
                Some(g) => g.share_path("resume", dir.as_deref())?,
                None => dir.expect("the only process leads"),
            })
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // First Ctrl-C: finish the iteration, save, exit. Second: exit at once.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(INTERRUPTED);
        }
        if lead {
            eprintln!("\nstopping after this iteration (Ctrl-C again to quit at once)");
        }
    });
    let progress = std::cell::RefCell::new(None::<Progress>);
    let started = Instant::now();
    let outcome = train::train(
        TrainRequest { config, overrides: a.sets, data, start, runtime, group },
        &|step, total, stats| {
            let mut p = progress.borrow_mut();
            let bar = p.get_or_insert_with(|| Progress::new(total as u64, "training"));
            bar.set(step as u64);
            if let Some(s) = stats {
                // The family's losses and diagnostics (learning rates and gradient norms are
                // in stats.jsonl).
                let shown: Vec<String> = s
                    .values
                    .iter()
                    .filter(|(k, _)| !k.starts_with("lr_") && !k.starts_with("grad_"))
                    .map(|(k, v)| format!("{} {v:.3}", k.strip_prefix("loss_").unwrap_or(k)))
                    .collect();
                bar.note(&format!(
                    "step {} {} {:.2}s/it",
                    s.step,
                    shown.join(" "),
                    s.seconds_per_iteration
                ));
            }
        },
        &stop,
    )?;
    if let Some(p) = progress.borrow().as_ref() {
        p.finish();
    }
    if !lead {
        // Rank 0 reports the run.
        if outcome.interrupted {
            std::process::exit(INTERRUPTED);
        }
        return Ok(());
    }
    let resumed = if outcome.first_step > 0 {
        format!(", resumed at step {}", outcome.first_step)
    } else {
        String::new()
    };
    println!(
        "{} at step {} ({} iteration{} run{resumed}) in {:.0}s: run {}, checkpoint {}",
        if outcome.interrupted { "stopped" } else { "trained" },
        outcome.steps,
        outcome.iterations,
        if outcome.iterations == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64(),
        outcome.run_dir.display(),
        outcome.checkpoint.display()
    );
    if outcome.interrupted {
        eprintln!(
            "interrupted: the checkpoint above is saved; resume with --resume {}",
            outcome.run_dir.display()
        );
        std::process::exit(INTERRUPTED);
    }
    Ok(())
}

fn generate(a: GenerateArgs) -> Result<()> {
    let (text, caption) = match (&a.story, &a.story_file, &a.text) {
        (Some(s), _, _) => (s.clone(), false),
        (None, Some(f), _) => (input::read_story_file(f)?, false),
        (None, None, Some(t)) => (t.clone(), true),
        (None, None, None) => bail!("give --story, --story-file or --text"),
    };
    let seeds = input::parse_seeds(&a.seeds)?;
    let fit = if a.pad {
        Fit::Pad
    } else if a.truncate {
        Fit::Truncate
    } else {
        Fit::Exact
    };
    let device = storyvis_core::device::parse_device(&a.device)?;
    let weights = a.weights.into();
    let model = match (&a.checkpoint, &a.model) {
        (Some(c), _) => {
            registry::load_drawer(c, device, weights).context("loading the checkpoint")?
        }
        (None, Some(name)) => load_shipped(shipped_path(name)?, device, weights)?,
        (None, None) if caption => shipped_for_caption(&text, device, weights)?,
        (None, None) => load_shipped(DEFAULT_MODEL, device, weights)?,
    };
    let about = model.about();
    let layout = Layout { format: a.format.map(FormatArg::format), stages: a.stages };
    storyvis_core::drawer::check_layout(model.as_ref(), &layout)?;
    match (model.input(), caption) {
        (Input::Story { .. }, true) => bail!(
            "{} is a {} checkpoint, which draws stories: give the story with --story or --story-file",
            about.checkpoint.display(),
            about.family
        ),
        (Input::Caption | Input::Video { .. }, false) => {
            bail!(
                "{} is a {} checkpoint, which draws from a caption: give it with --text",
                about.checkpoint.display(),
                about.family
            )
        }
        _ => {}
    }
    let checked = model.check(&text, fit)?;
    warn_unknown(model.as_ref(), &checked.unknown, a.strict_vocab)?;
    let files =
        storyvis_core::drawer::save_all(&model.draw_as(&checked, &seeds, &layout)?, &a.out)?;
    for f in &files {
        println!("{}", f.display());
    }
    eprintln!("drew {} seed(s) with {}", seeds.len(), about.checkpoint.display());
    Ok(())
}

/// The shipped model named `name` (its directory's name): its path under the storyvis home.
fn shipped_path(name: &str) -> Result<&'static str> {
    SHIPPED_MODELS.iter().map(|(_, p)| *p).find(|p| shipped_name(p) == name).with_context(|| {
        let names: Vec<&str> = SHIPPED_MODELS.iter().map(|(_, p)| shipped_name(p)).collect();
        format!(
            "--model {:?}: no shipped model of that name; the shipped ones: {} (or give --checkpoint DIR)",
            storyvis_core::input::excerpt(name, 60),
            names.join(", ")
        )
    })
}

/// Loads a shipped model (`storyvis_core::shipped::find` says where it is looked for).
fn load_shipped(
    path: &str,
    device: storyvis_core::device::Device,
    weights: storyvis_core::checkpoint::Weights,
) -> Result<Box<dyn Drawer>> {
    let dir = storyvis_core::shipped::find(path).with_context(|| {
        format!("no --checkpoint given, and the shipped model {path} is missing")
    })?;
    registry::load_drawer(&dir, device, weights).with_context(|| {
        format!("loading the shipped model {path} (give --checkpoint to use another)")
    })
}

/// `generate --text` without a model: the shipped caption or video model the caption fits
/// (`drawer::fit_score`: the share of its words found in that kind's example inputs). Where
/// several fit as well (the three text-to-image families), an error lists them to choose from.
fn shipped_for_caption(
    text: &str,
    device: storyvis_core::device::Device,
    weights: storyvis_core::checkpoint::Weights,
) -> Result<Box<dyn Drawer>> {
    let mut found: Vec<(&str, f64, Box<dyn Drawer>)> = Vec::new();
    for (_, path) in SHIPPED_MODELS {
        // A missing shipped model is left out here; the error below names what was looked for.
        let Ok(dir) = storyvis_core::shipped::find(path) else { continue };
        let d = registry::load_drawer(&dir, device, weights)
            .with_context(|| format!("loading the shipped model {path}"))?;
        if !matches!(d.input(), Input::Story { .. }) {
            found.push((shipped_name(path), storyvis_core::drawer::fit_score(text, &d.input()), d));
        }
    }
    ensure!(
        !found.is_empty(),
        "--text without --checkpoint: no shipped caption or video model was found (looked for {}); give --checkpoint DIR",
        SHIPPED_MODELS.iter().skip(1).map(|(_, p)| *p).collect::<Vec<_>>().join(", ")
    );
    let best = found.iter().map(|f| f.1).fold(f64::NEG_INFINITY, f64::max);
    found.retain(|f| f.1 == best);
    if found.len() == 1 {
        let (name, _, d) = found.pop().expect("one");
        eprintln!("drawing with the shipped model {name} (choose another with --model NAME)");
        return Ok(d);
    }
    let list: Vec<String> = found
        .iter()
        .map(|(name, _, d)| {
            let kind = match d.input() {
                Input::Video { frames } => format!("{frames}-frame clips"),
                _ => "images".to_string(),
            };
            format!("  --model {name:<22} {} ({kind})", d.about().family)
        })
        .collect();
    bail!(
        "{} shipped models draw captions like this one; choose one:\n{}\n(or give --checkpoint DIR)",
        found.len(),
        list.join("\n")
    )
}

/// The policy for words a model does not know, the same for every family: each is named with
/// the nearest word the model knows (`storyvis_core::words`) and read as unknown, or, with
/// `--strict-vocab`, an error.
pub(crate) fn warn_unknown(model: &dyn Drawer, unknown: &[String], strict: bool) -> Result<()> {
    if unknown.is_empty() {
        return Ok(());
    }
    let known = model.vocabulary().unwrap_or_default();
    let described = words::describe(unknown, &words::suggestions(unknown, &known));
    ensure!(!strict, "{described} (--strict-vocab: unknown words are errors)");
    eprintln!("warning: {described}; read as unknown (see `storyvis words`; --strict-vocab makes this an error)");
    Ok(())
}

/// `storyvis words`: a model's vocabulary, grouped.
fn list_words(checkpoint: Option<PathBuf>) -> Result<()> {
    let path = match &checkpoint {
        Some(c) => c.clone(),
        None => storyvis_core::shipped::find(DEFAULT_MODEL)
            .context("no --checkpoint given, and the shipped model is missing")?,
    };
    let cpu = storyvis_core::device::parse_device("cpu")?;
    let model = registry::load_drawer(&path, cpu, Default::default())?;
    let about = model.about();
    let Some(mut known) = model.vocabulary() else {
        println!(
            "{} ({}) reads any word (characters or MiniLM's word pieces): it has no vocabulary to list",
            about.checkpoint.display(),
            about.family
        );
        return Ok(());
    };
    known.sort();
    println!(
        "{} words of {} ({}, step {}); any other word is read as unknown:",
        known.len(),
        about.checkpoint.display(),
        about.family,
        about.step
    );
    use storyvis_data::clevr::scene::{COLORS, MATERIALS, SHAPES, SIZES};
    let plural = |w: &str, list: &[&str]| list.iter().any(|x| w == *x || w == format!("{x}s"));
    type Member<'a> = &'a dyn Fn(&str) -> bool;
    let groups: [(&str, Member); 5] = [
        ("shapes", &|w| plural(w, &SHAPES)),
        ("colours", &|w| plural(w, &COLORS)),
        ("materials", &|w| plural(w, &MATERIALS)),
        ("sizes", &|w| plural(w, &SIZES)),
        ("relations", &|w| RELATION_WORDS.contains(&w)),
    ];
    let mut rest = known.clone();
    for (name, member) in groups {
        let words: Vec<String> = rest.iter().filter(|w| member(w)).cloned().collect();
        rest.retain(|w| !member(w));
        if !words.is_empty() {
            println!("  {name:<10} {}", words.join(", "));
        }
    }
    if !rest.is_empty() {
        println!("  {:<10} {}", "other", rest.join(", "));
    }
    Ok(())
}

/// The words CLEVR-SV's sentences place objects with.
const RELATION_WORDS: [&str; 6] = ["left", "right", "behind", "front", "middle", "next"];

fn train_classifier(a: ClassifierArgs) -> Result<()> {
    let device = storyvis_core::device::parse_device(&a.device)?;
    let header = Dataset::read_header(&a.data)?;
    let video = header.kind == storyvis_data::bouncing::KIND;
    let clevr_labels = header.label_names == storyvis_data::clevr::scene::label_names();
    let out = match a.out {
        Some(o) => o,
        None if video => bail!("give --out for a clip classifier (the default, {DEFAULT_CLASSIFIER}, is the CLEVR-SV attribute classifier)"),
        None if !clevr_labels => bail!(
            "give --out for a classifier of {}'s {} labels (the default, {DEFAULT_CLASSIFIER}, is the CLEVR-SV attribute classifier)",
            header.kind,
            header.label_names.len()
        ),
        None => PathBuf::from(DEFAULT_CLASSIFIER),
    };
    let req = ClassifierRequest {
        data: a.data,
        out,
        steps: a.steps,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
        device,
        force: a.force,
        widths: a.widths,
    };
    let started = Instant::now();
    let progress = Progress::new(req.steps as u64, "training");
    let note = |step: usize, total: usize, loss: f64| {
        progress.tick();
        if step % 250 == 0 || step == total {
            progress.note(&format!("step {step} loss {loss:.4}"));
        }
    };
    if video {
        let result = storyvis_eval::clip_classifier::train_clip_classifier(&req, &note);
        progress.finish();
        let m = result?;
        println!(
            "clip classifier in {} after {:.0}s; held-out real clips: seen combinations {}; held-out combinations {}",
            req.out.display(),
            started.elapsed().as_secs_f64(),
            m.held_out.seen,
            m.held_out.held_out
        );
        return Ok(());
    }
    let result = classifier::train_classifier(&req, &note);
    progress.finish();
    let m = result?;
    // Later papers' names for a character classifier's scores (Pororo-SV).
    let (f1, exact) = match storyvis_eval::eval::label_kind(&m.labels) {
        "character" => ("character F1", "frame accuracy"),
        _ => ("F1", "exact match"),
    };
    println!(
        "classifier in {} after {:.0}s; held-out real frames ({}): micro {f1} {:.4}, macro {f1} {:.4}, {exact} {:.4}",
        req.out.display(),
        started.elapsed().as_secs_f64(),
        m.held_out.frames,
        m.held_out.micro_f1,
        m.held_out.macro_f1,
        m.held_out.exact_match
    );
    let attributes: Vec<String> = m
        .held_out
        .attributes
        .iter()
        .map(|a| format!("{} {:.4}", a.attribute, a.accuracy))
        .collect();
    println!(
        "per-attribute accuracy (frames whose set of values is exactly right): {}",
        attributes.join(", ")
    );
    Ok(())
}

fn train_detector(a: DetectorArgs) -> Result<()> {
    let device = storyvis_core::device::parse_device(&a.device)?;
    let req = storyvis_eval::detector::DetectorRequest {
        data: a.data,
        out: a.out.unwrap_or_else(|| PathBuf::from(DEFAULT_DETECTOR)),
        steps: a.steps,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
        device,
        force: a.force,
        widths: a.widths,
    };
    let started = Instant::now();
    let progress = Progress::new(req.steps as u64, "training");
    let note = |step: usize, total: usize, loss: f64| {
        progress.tick();
        if step % 250 == 0 || step == total {
            progress.note(&format!("step {step} loss {loss:.4}"));
        }
    };
    let result = storyvis_eval::detector::train_detector(&req, &note);
    progress.finish();
    let m = result?;
    let h = &m.held_out;
    println!(
        "detector in {} after {:.0}s; held-out frames ({}, {} objects): precision {:.4}, recall {:.4}, F1 {:.4}, count accuracy {:.4}",
        req.out.display(),
        started.elapsed().as_secs_f64(),
        h.frames,
        h.objects,
        h.precision,
        h.recall,
        h.f1,
        h.count_accuracy
    );
    println!(
        "per matched object: shape {:.4} (large {:.4}, small {:.4}), colour {:.4}, material {:.4}, size {:.4}",
        h.shape, h.shape_large, h.shape_small, h.colour, h.material, h.size
    );
    Ok(())
}

fn evaluate(a: EvalArgs) -> Result<()> {
    let device = storyvis_core::device::parse_device(&a.device)?;
    let header = Dataset::read_header(&a.data)?;
    let video = header.kind == storyvis_data::bouncing::KIND;
    let mut checkpoints: Vec<PathBuf> = a.checkpoint.into_iter().collect();
    checkpoints.extend(a.compare);
    if checkpoints.is_empty() && a.gam.is_empty() {
        let shipped = storyvis_models::SHIPPED.iter().find(|(kind, _)| *kind == header.kind);
        let (_, model) = shipped.with_context(|| {
            let kinds: Vec<&str> = storyvis_models::SHIPPED.iter().map(|(k, _)| *k).collect();
            format!(
                "give --checkpoint: storyvis ships no model for {} data ({}); it ships one for {}",
                header.kind,
                a.data.display(),
                kinds.join(" and ")
            )
        })?;
        checkpoints.push(storyvis_core::shipped::find(model).with_context(|| {
            format!("no --checkpoint given, and the shipped {model} is missing")
        })?);
        eprintln!("evaluating the shipped model {model} (give --checkpoint to evaluate another)");
    }
    let default_classifier = if video { DEFAULT_CLIP_CLASSIFIER } else { DEFAULT_CLASSIFIER };
    let req = EvalRequest {
        checkpoints,
        data: a.data,
        classifier: match a.classifier {
            Some(c) => c,
            None => storyvis_core::shipped::find(default_classifier).with_context(|| {
                format!("no --classifier given, and the shipped {default_classifier} is missing")
            })?,
        },
        stories: a.stories,
        seeds: a.seeds,
        device,
        weights: a.weights.into(),
        detector: match a.detector {
            Some(d) => Some(storyvis_eval::eval::Detector::Given(d)),
            None => storyvis_core::shipped::find(DEFAULT_DETECTOR)
                .ok()
                .map(storyvis_eval::eval::Detector::Shipped),
        },
    };
    let progress = std::cell::OnceCell::new();
    let tick = |_, total| progress.get_or_init(|| Progress::new(total as u64, "drawing")).tick();
    if let [x, y] = &a.gam[..] {
        ensure!(
            video,
            "--gam compares video models on a video dataset ({}); {} is not one",
            storyvis_data::bouncing::KIND,
            req.data.display()
        );
        let g = eval::video::gam(x, y, &req)?;
        return write_report(
            &a.out,
            &serde_json::to_string_pretty(&g)?,
            &eval::video::gam_markdown(&g),
        );
    }
    if video {
        let result = eval::video::evaluate_video(&req, &tick);
        if let Some(p) = progress.get() {
            p.finish();
        }
        let report = result?;
        let table = eval::video::markdown(&report);
        return write_report(&a.out, &serde_json::to_string_pretty(&report)?, &table);
    }
    let result = eval::evaluate(&req, &tick);
    if let Some(p) = progress.get() {
        p.finish();
    }
    let report = result?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let table = eval::markdown(&report);
    write_report(&a.out, &serde_json::to_string_pretty(&report)?, &table)
}

/// Writes `eval.json` and `eval.md` into `out` and prints the table.
fn write_report(out: &std::path::Path, json: &str, table: &str) -> Result<()> {
    atomic::create_dir_all(out)?;
    atomic::write_file(&out.join("eval.json"), json.as_bytes())?;
    atomic::write_file(&out.join("eval.md"), table.as_bytes())?;
    print!("{table}");
    eprintln!("wrote {} and {}", out.join("eval.json").display(), out.join("eval.md").display());
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    // A mistyped STORYVIS_HOME is an error before anything else, whatever the command.
    storyvis_core::shipped::home()?;
    if let Some(n) = cli.threads {
        storyvis_core::device::set_threads(n)?;
    }
    match cli.command {
        Command::Train(a) => train(a, cli.threads),
        Command::Generate(a) => generate(a),
        Command::Words { checkpoint } => list_words(checkpoint),
        Command::TrainClassifier(a) => train_classifier(a),
        Command::TrainDetector(a) => train_detector(a),
        Command::TrainTextEncoder(a) => t2i::train_encoder(a),
        Command::Interpolate(a) => t2i::interpolate(a),
        Command::StyleTransfer(a) => t2i::style_transfer(a),
        Command::Serve(a) => serve(a),
        Command::Eval(a) => evaluate(a),
        Command::Prepare { dataset } => prepare::run(dataset),
        Command::Show { dir, stories, out } => {
            let ds = Dataset::open(&dir)?;
            let img = sheet::contact_sheet(&ds, stories)?;
            sheet::save_png(&img, &out)?;
            println!("wrote {} ({} stories)", out.display(), stories.min(ds.stories.len()));
            Ok(())
        }
        Command::Bench(a) => bench(a),
        Command::Export { checkpoint, out, average_only, half } => {
            let opts = storyvis_core::checkpoint::ExportOptions { average_only, half };
            let m = registry::export(&checkpoint, &out, opts)?;
            let bytes: u64 = m
                .files
                .keys()
                .filter_map(|f| std::fs::metadata(out.join(f)).ok())
                .map(|md| md.len())
                .sum();
            println!(
                "exported the generator of step {} to {} ({:.1} MB)",
                m.step,
                out.display(),
                bytes as f64 / 1e6
            );
            Ok(())
        }
        Command::Doctor { device } => {
            let device = storyvis_core::device::parse_device(&device)?;
            println!("{}", storyvis_core::device::runtime_report(device)?);
            Ok(())
        }
    }
}

fn main() {
    storyvis_models::install();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        match std::env::var("RANK") {
            // A rank of a multi-process run says which it is.
            Ok(r) if launch::launched() => eprintln!("error (rank {r}): {e:#}"),
            _ => eprintln!("error: {e:#}"),
        }
        std::process::exit(1);
    }
}
