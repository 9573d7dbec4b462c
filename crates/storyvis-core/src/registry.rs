//! The model families storyvis knows, registered at start-up: the core names none of them.
//! A family crate lists its families in one place and registers them (`register`); everything
//! that depends on the family of a config or a checkpoint looks it up here: presets and their
//! checks, training, drawing from typed text, evaluation, benchmarks, export.

use crate::checkpoint::{self, Weights};
use crate::config::{apply_sets, set_key, Config, RESUMABLE};
use crate::drawer::Drawer;
use crate::evaluation::Evaluated;
use crate::family::FamilyEntry;
use anyhow::{ensure, Context, Result};
use std::path::Path;
use std::sync::RwLock;
use tch::Device;

static FAMILIES: RwLock<Vec<&'static FamilyEntry>> = RwLock::new(Vec::new());

/// Adds a family (once: registering the same name again keeps the first). A family crate
/// registers its families before anything is looked up; a test may add its own.
pub fn register(entry: &'static FamilyEntry) {
    let mut all = FAMILIES.write().unwrap_or_else(|e| e.into_inner());
    if !all.iter().any(|f| f.name == entry.name) {
        all.push(entry);
        let mut presets = crate::config::PRESET_FAMILIES.write().unwrap_or_else(|e| e.into_inner());
        presets.extend(entry.presets.iter().map(|(p, _)| (*p, entry.name)));
    }
}

/// Every registered family, in registration order.
pub fn families() -> Vec<&'static FamilyEntry> {
    FAMILIES.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The family named `name`.
pub fn family(name: &str) -> Result<&'static FamilyEntry> {
    let all = families();
    ensure!(
        !all.is_empty(),
        "no model family is registered (a program registers its families at start-up)"
    );
    all.iter().copied().find(|f| f.name == name).with_context(|| {
        let names: Vec<&str> = all.iter().map(|f| f.name).collect();
        format!("unknown model family {name:?}; families: {}", names.join(", "))
    })
}

/// Every preset of the registered families: (name, TOML), family by family.
pub fn presets() -> Vec<(&'static str, &'static str)> {
    families().iter().flat_map(|f| f.presets.iter().copied()).collect()
}

fn preset_text(name: &str) -> Result<&'static str> {
    let all = presets();
    all.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).with_context(|| {
        let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
        format!("unknown preset {name:?}; presets: {}", names.join(", "))
    })
}

/// Checks a config whole: the loop's keys, the [recipe] keys its family reads, and its
/// family's [model] section.
pub fn validate(cfg: &Config) -> Result<()> {
    cfg.validate_run()?;
    let family = family(&cfg.family)?;
    cfg.recipe.check(family.name, family.recipe)?;
    (family.check)(cfg).with_context(|| format!("preset {} (family {})", cfg.preset, cfg.family))
}

fn from_table(table: toml::Table) -> Result<Config> {
    let cfg = Config::parse_table(table)?;
    validate(&cfg)?;
    Ok(cfg)
}

impl Config {
    /// Preset, then the user's file, then `--set` overrides; then validation (the loop's keys,
    /// and the model section by its family).
    pub fn resolve(preset: &str, file: Option<&Path>, sets: &[String]) -> Result<Config> {
        let mut table: toml::Table =
            preset_text(preset)?.parse().with_context(|| format!("preset {preset}"))?;
        table.insert("preset".into(), toml::Value::String(preset.into()));
        if let Some(f) = file {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            let user: toml::Table =
                text.parse().with_context(|| format!("{} is not valid TOML", f.display()))?;
            let source = f.display().to_string();
            for (k, v) in user {
                match (k.as_str(), v) {
                    ("run" | "model" | "recipe", toml::Value::Table(t)) => {
                        for (kk, vv) in t {
                            set_key(&mut table, &format!("{k}.{kk}"), vv, &source)?;
                        }
                    }
                    (_, v) => {
                        set_key(&mut table, &k, v, &source)?;
                    }
                }
            }
        }
        apply_sets(&mut table, sets, None)?;
        from_table(table).map_err(|e| named_by_set(e, sets))
    }

    /// This config with `--set` overrides of the keys a resumed run may change (how long it
    /// runs and how it reports); any other key is an error.
    pub fn resumed_with(&self, sets: &[String]) -> Result<Config> {
        let mut table: toml::Table = self.to_toml().parse().context("config")?;
        apply_sets(&mut table, sets, Some(&RESUMABLE))?;
        from_table(table).map_err(|e| named_by_set(e, sets))
    }
}

/// A value of the wrong type that a `--set` wrote, named as the user wrote it:
/// `--set max_steps=-3: max_steps takes a whole number, 0 or more`.
fn named_by_set(e: anyhow::Error, sets: &[String]) -> anyhow::Error {
    let Some(bad) = e.downcast_ref::<crate::config::BadValue>() else { return e };
    let bare = |k: &str| k.rsplit('.').next().unwrap_or(k).trim().to_string();
    match sets.iter().find(|s| s.split_once('=').is_some_and(|(k, _)| bare(k) == bad.key)) {
        Some(s) => anyhow::anyhow!("--set {s}: {} takes {}", bad.key, bad.expected),
        None => e,
    }
}

/// The registry entry of the checkpoint (or run directory) at `path`, with its directory.
pub fn family_of(path: &Path) -> Result<(&'static FamilyEntry, std::path::PathBuf)> {
    let dir = checkpoint::resolve(path)?;
    let name = match checkpoint::load_config(&dir) {
        Ok(cfg) => cfg.family,
        // A scorer or a damaged checkpoint: its manifest says which.
        Err(e) => return Err(checkpoint::verify(&dir).err().unwrap_or(e)),
    };
    Ok((family(&name)?, dir))
}

/// Loads any family's checkpoint (a run directory or a checkpoint directory) to draw from
/// typed text, through its family's `drawer` hook.
pub fn load_drawer(path: &Path, device: Device, weights: Weights) -> Result<Box<dyn Drawer>> {
    let (entry, dir) = family_of(path)?;
    let load = entry.drawer.with_context(|| {
        format!(
            "{} is a {} checkpoint; that family does not draw from text",
            dir.display(),
            entry.name
        )
    })?;
    load(&dir, device, weights)
}

/// Loads any family's checkpoint for `eval` through its family's `evaluated` hook.
pub fn load_evaluated(path: &Path, device: Device, weights: Weights) -> Result<Box<dyn Evaluated>> {
    let (entry, dir) = family_of(path)?;
    let load = entry.evaluated.with_context(|| {
        format!("{} is a {} checkpoint; that family has no evaluation", dir.display(), entry.name)
    })?;
    load(&dir, device, weights)
}

/// Writes a drawing-only copy of the checkpoint at `src` to `dest` (`checkpoint::export`),
/// leaving out the networks only training needs (the family's discriminators).
pub fn export(
    src: &Path,
    dest: &Path,
    opts: checkpoint::ExportOptions,
) -> Result<checkpoint::Manifest> {
    let (entry, dir) = family_of(src)?;
    let unused = (entry.training_only)(&checkpoint::load_config(&dir)?);
    checkpoint::export(src, dest, opts, &unused, &[crate::joint::MANIFEST])
}
