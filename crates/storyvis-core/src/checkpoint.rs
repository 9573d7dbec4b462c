//! Checkpoints: one directory per step holding each network's weights (safetensors), the
//! optimiser state, the training position, the resolved config and the family's files (a
//! vocabulary, say), with a SHA-256 digest of every file. Written to a temporary directory, fsynced and renamed; the
//! `latest` pointer is updated last. Loading checks the digests and every tensor's name and
//! shape, with errors that name the file.

use crate::config::Config;
use crate::optim::Adam;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use storyvis_data::atomic::{self, StagedDir};
use tch::nn::VarStore;
use tch::Tensor;

pub const FORMAT: &str = "storyvis-checkpoint";
/// The `format` of an attribute classifier's manifest (told apart from a checkpoint's).
pub const CLASSIFIER_FORMAT: &str = "storyvis-classifier";
pub const MANIFEST: &str = "checkpoint.json";
pub const CONFIG: &str = "config.toml";
const OPTIMIZER: &str = "optimizer.safetensors";
/// The name a network's moving average is saved under (`<network>_ema.safetensors`).
pub fn average_of(network: &str) -> String {
    format!("{network}_ema")
}

/// Which weights of a generator draw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Weights {
    /// The moving average when the run kept one (`ema_half_life`), else the trained weights.
    #[default]
    Average,
    /// The trained weights, even where an average exists.
    Trained,
}

/// The file `network` draws from in a checkpoint, and whether it is the moving average (the
/// average also where only it was exported: `export --average-only`).
pub fn drawing_weights(
    dir: &Path,
    manifest: &Manifest,
    network: &str,
    which: Weights,
) -> (PathBuf, bool) {
    let avg = format!("{}.safetensors", average_of(network));
    let only_average = !manifest.files.contains_key(&format!("{network}.safetensors"));
    if (which == Weights::Average || only_average) && manifest.files.contains_key(&avg) {
        (dir.join(avg), true)
    } else {
        (dir.join(format!("{network}.safetensors")), false)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// Training iterations completed.
    pub step: usize,
    /// Roll-backs after non-finite losses so far (part of the random stream).
    pub rollbacks: usize,
    /// The model family (absent in checkpoints written before there were several: StoryGAN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Sizes the networks took from the data (the family's: StoryGAN's vocabulary, vector and
    /// label lengths).
    pub shape: serde_json::Value,
    /// Adam step count per network.
    pub adam_steps: BTreeMap<String, i64>,
    /// SHA-256 of the training data's `manifest.jsonl`, so that a run resumes only on the
    /// data it trained on (absent in checkpoints written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_digest: Option<String>,
    /// File name → SHA-256 (hex).
    pub files: BTreeMap<String, String>,
}

pub use crate::digest::sha256;

fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    Tensor::write_safetensors(tensors, path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", path.display()))
}

fn named(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

pub fn step_name(step: usize) -> String {
    format!("step-{step:07}")
}

/// What a checkpoint records besides the networks.
pub struct Snapshot<'a> {
    pub cfg: &'a Config,
    /// The family's files: (name, bytes).
    pub files: Vec<(&'static str, Vec<u8>)>,
    pub shape: serde_json::Value,
    pub step: usize,
    pub rollbacks: usize,
    pub data_digest: &'a str,
}

/// Writes `checkpoints/step-NNNNNNN/` (`root`: a run's `checkpoints/`) with every network
/// and optimiser, and points `checkpoints/latest` at it.
pub fn save(
    root: &Path,
    networks: &[(&str, &VarStore)],
    optimizers: &[(&str, &Adam)],
    snap: &Snapshot,
) -> Result<PathBuf> {
    let (cfg, step) = (snap.cfg, snap.step);
    let dest = root.join(step_name(step));
    let fill = |dir: &Path| -> Result<()> {
        for (name, vs) in networks {
            write_store(&dir.join(format!("{name}.safetensors")), vs)?;
        }
        let state: Vec<(String, Tensor)> =
            optimizers.iter().flat_map(|(n, o)| o.state(n)).collect();
        write_tensors(&dir.join(OPTIMIZER), &state)?;
        atomic::write_synced(&dir.join(CONFIG), cfg.to_toml().as_bytes())?;
        for (name, bytes) in &snap.files {
            atomic::write_synced(&dir.join(name), bytes)?;
        }
        Ok(())
    };
    write_dir(&dest, true, fill, |files| Manifest {
        format: FORMAT.into(),
        version: 1,
        step,
        rollbacks: snap.rollbacks,
        family: Some(cfg.family.clone()),
        shape: snap.shape.clone(),
        adam_steps: optimizers.iter().map(|(n, o)| (n.to_string(), o.step)).collect(),
        data_digest: Some(snap.data_digest.to_string()),
        files,
    })?;
    atomic::write_file(&root.join("latest"), step_name(step).as_bytes())?;
    Ok(dest)
}

/// How `export` writes a drawing-only copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Leave out a network's trained weights where its moving average is there to draw with.
    pub average_only: bool,
    /// Store every 32-bit float tensor as IEEE half precision (16 bits): half the bytes. The
    /// loaders cast each tensor to its network's kind (`load_store`), so the networks still run
    /// in 32 bits; only the weights are rounded (a relative error of at most 2⁻¹¹).
    pub half: bool,
}

/// Writes a drawing-only copy of the checkpoint at `src` to `dest` (a new directory): every
/// file but the optimiser state and the networks only training needs (the family's
/// discriminators), with their digests, which is all `generate` and `eval` read. It cannot be
/// resumed, and is about a tenth of the size. `nested`: manifests among the files that pin
/// others by digest in their `files` map (a text encoder's), renewed where `opts.half` changes
/// those files. Returns its manifest.
pub fn export(
    src: &Path,
    dest: &Path,
    opts: ExportOptions,
    training_only: &[&str],
    nested: &[&str],
) -> Result<Manifest> {
    let src = resolve(src)?;
    let m = verify(&src)?;
    ensure!(!dest.exists(), "{} already exists; export writes a new directory", dest.display());
    let mut dropped: Vec<String> = training_only
        .iter()
        .map(|n| format!("{n}.safetensors"))
        .chain([OPTIMIZER.to_string()])
        .collect();
    if opts.average_only {
        // A network's trained weights, where its moving average is there to draw with.
        let averaged = m
            .files
            .keys()
            .filter_map(|f| f.strip_suffix(".safetensors"))
            .filter(|n| m.files.contains_key(&format!("{}.safetensors", average_of(n))));
        dropped.extend(averaged.map(|n| format!("{n}.safetensors")));
    }
    let keep: Vec<&str> =
        m.files.keys().map(String::as_str).filter(|f| !dropped.iter().any(|d| d == f)).collect();
    write_dir(
        dest,
        false,
        |dir| {
            let mut halved_files = Vec::new();
            for name in &keep {
                if opts.half && name.ends_with(".safetensors") {
                    halved_files.push(*name);
                    let halved: Vec<(String, Tensor)> = read_tensors(&src.join(name))?
                        .into_iter()
                        .map(|(n, t)| {
                            let t = if t.kind() == tch::Kind::Float {
                                t.to_kind(tch::Kind::Half)
                            } else {
                                t
                            };
                            (n, t)
                        })
                        .collect::<std::collections::BTreeMap<_, _>>()
                        .into_iter()
                        .collect();
                    write_tensors(&dir.join(name), &halved)?;
                    continue;
                }
                let bytes = fs::read(src.join(name))
                    .with_context(|| format!("cannot read {}", src.join(name).display()))?;
                atomic::write_synced(&dir.join(name), &bytes)?;
            }
            // A nested manifest (the text encoder's) pins its weights by digest: those of the
            // halved files are renewed there too.
            let renewed = if halved_files.is_empty() { &[][..] } else { nested };
            for nested in renewed.iter().map(|n| dir.join(n)).filter(|n| n.is_file()) {
                let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&nested)?)
                    .with_context(|| format!("{} is damaged", nested.display()))?;
                if let Some(files) = m.get_mut("files").and_then(|f| f.as_object_mut()) {
                    for name in &halved_files {
                        if files.contains_key(*name) {
                            let digest = crate::digest::sha256(&dir.join(name))?;
                            files.insert(name.to_string(), serde_json::Value::String(digest));
                        }
                    }
                }
                let mut text = serde_json::to_vec_pretty(&m)?;
                text.push(b'\n');
                atomic::write_synced(&nested, &text)?;
            }
            Ok(())
        },
        |files| Manifest { adam_steps: BTreeMap::new(), files, ..m },
    )
}

/// Writes a store's variables, sorted by name, as safetensors (fsynced).
pub fn write_store(path: &Path, vs: &VarStore) -> Result<()> {
    write_tensors(path, &named(vs))
}

/// Writes a checkpoint-style directory atomically: `fill` writes the files into a staging
/// directory, `manifest` turns their SHA-256 digests into the `checkpoint.json` written beside
/// them, and the directory is renamed into place (replacing an old one only if `replace`).
/// Returns the manifest written.
pub fn write_dir<M: Serialize>(
    dest: &Path,
    replace: bool,
    fill: impl FnOnce(&Path) -> Result<()>,
    manifest: impl FnOnce(BTreeMap<String, String>) -> M,
) -> Result<M> {
    let stage = StagedDir::new(dest, replace)?;
    let dir = stage.path();
    fill(dir)?;
    let mut files = BTreeMap::new();
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        files.insert(p.file_name().unwrap().to_string_lossy().into_owned(), sha256(&p)?);
    }
    let manifest = manifest(files);
    atomic::write_synced(&dir.join(MANIFEST), serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    stage.commit()?;
    Ok(manifest)
}

/// Checks that every listed file exists with its digest.
pub fn check_digests(dir: &Path, files: &BTreeMap<String, String>) -> Result<()> {
    for (name, digest) in files {
        let f = dir.join(name);
        ensure!(f.is_file(), "checkpoint file {} is missing", f.display());
        let got = sha256(&f)?;
        ensure!(
            &got == digest,
            "checkpoint file {} is corrupt or truncated (digest mismatch)",
            f.display()
        );
    }
    Ok(())
}

/// The highest step among the complete checkpoints (`step-N/checkpoint.json`) in `root`
/// (a run's `checkpoints/` directory).
pub fn newest_step(root: &Path) -> Option<usize> {
    fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(MANIFEST).is_file())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("step-")?.parse::<usize>().ok())
        .max()
}

/// A checkpoint directory from a run directory (its newest complete checkpoint), a
/// `checkpoints/` directory, or a checkpoint directory itself. The newest complete one rather
/// than the one `latest` names: `latest` is written after its checkpoint is renamed into place
/// whole, so a process killed in between leaves a newer complete checkpoint than it names.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    ensure!(path.exists(), "checkpoint {} does not exist", path.display());
    if path.join(MANIFEST).is_file() {
        return Ok(path.to_path_buf());
    }
    for root in [path.join("checkpoints"), path.to_path_buf()] {
        if let Some(step) = newest_step(&root) {
            return Ok(root.join(step_name(step)));
        }
    }
    bail!("{} is neither a checkpoint nor a run directory with checkpoints", path.display())
}

/// The `format` a manifest's JSON text declares, if any (to tell a model checkpoint from a
/// classifier before parsing it as either).
pub fn format_of(manifest: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(manifest).ok()?["format"].as_str().map(str::to_string)
}

/// Reads a checkpoint's manifest and verifies every file's digest.
pub fn verify(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    ensure!(
        format_of(&text).as_deref() != Some(CLASSIFIER_FORMAT),
        "{} is an attribute classifier (made by `storyvis train-classifier`), not a model checkpoint; give it to eval as --classifier",
        dir.display()
    );
    let m: Manifest =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
    ensure!(
        m.format == FORMAT && m.version == 1,
        "{} is not a storyvis checkpoint (version 1)",
        path.display()
    );
    check_digests(dir, &m.files)?;
    Ok(m)
}

pub fn load_config(dir: &Path) -> Result<Config> {
    Config::load(&dir.join(CONFIG))
}

/// A checkpoint opened to draw with: what every family's loader starts from.
pub struct Opened {
    /// The checkpoint directory (a run directory resolves to its newest checkpoint).
    pub dir: PathBuf,
    /// Its manifest, every file's digest checked.
    pub manifest: Manifest,
    pub config: Config,
    /// The generator's weights to draw with (`drawing_weights`), and whether they are its
    /// moving average.
    pub generator: PathBuf,
    pub averaged: bool,
}

/// Opens the checkpoint (or run directory) at `path` to draw with a generator of one of
/// `families`: resolved, verified, its config read (an error names the family it is, if
/// another), and the weights `which` asks for chosen.
pub fn open_to_draw(path: &Path, families: &[&str], which: Weights) -> Result<Opened> {
    let dir = resolve(path)?;
    let manifest = verify(&dir)?;
    let config = load_config(&dir)?;
    ensure!(
        families.contains(&config.family.as_str()),
        "{} is a {} checkpoint (preset {}), not a {} one: this command draws with {} models",
        dir.display(),
        config.family,
        config.preset,
        families.join(" or "),
        families.join(" or ")
    );
    let (generator, averaged) = drawing_weights(&dir, &manifest, "generator", which);
    Ok(Opened { dir, manifest, config, generator, averaged })
}

fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    Ok(Tensor::read_safetensors(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .into_iter()
        .collect())
}

/// Copies a file's tensors into a store: names and shapes must match exactly.
pub fn load_store(vs: &mut VarStore, path: &Path) -> Result<()> {
    let src = read_tensors(path)?;
    let vars = vs.variables();
    for name in src.keys() {
        ensure!(vars.contains_key(name), "{} holds {name:?}, which this model lacks (a checkpoint of another preset or variant?)", path.display());
    }
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vars {
            let t = src.get(&name).with_context(|| {
                format!(
                    "{} lacks {name:?} (a checkpoint of another preset or variant?)",
                    path.display()
                )
            })?;
            ensure!(
                t.size() == var.size(),
                "{}: {name:?} has shape {:?}, the model {:?}",
                path.display(),
                t.size(),
                var.size()
            );
            var.copy_(&t.to_device(var.device()).to_kind(var.kind()));
        }
        Ok(())
    })
}

/// Loads every network's weights (`<name>.safetensors`).
pub fn load_networks(dir: &Path, networks: &mut [(&str, &mut VarStore)]) -> Result<()> {
    for (name, vs) in networks.iter_mut() {
        load_store(vs, &dir.join(format!("{name}.safetensors")))?;
    }
    Ok(())
}

pub fn load_optimizers(
    dir: &Path,
    manifest: &Manifest,
    optimizers: &mut [(&str, &mut Adam)],
) -> Result<()> {
    ensure!(!manifest.adam_steps.is_empty(), "{} is a generator-only export: it can draw and be evaluated, but training cannot resume from it", dir.display());
    let state = read_tensors(&dir.join(OPTIMIZER))?;
    for (name, opt) in optimizers.iter_mut() {
        let step = *manifest
            .adam_steps
            .get(*name)
            .with_context(|| format!("checkpoint has no optimizer state for {name}"))?;
        opt.load_state(name, &state, step)?;
    }
    Ok(())
}
