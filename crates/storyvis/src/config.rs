//! Run configuration, shared by every model family: TOML presets (`presets/*.toml`, compiled in
//! by their families), an optional user file and `--set key=value` overrides, resolved into one
//! validated `Config`:
//!
//! ```toml
//! preset = "storygan-tiny"   # written into resolved configs
//! family = "storygan"        # which folder under models/ reads [model]
//! [run]                      # what the training loop owns (seed, length, reporting, policy)
//! seed = 0
//! [model]                    # the family's own keys (networks, objective, batches, rates)
//! [recipe]                   # optional: DiffAugment, attribute heads, mode seeking (recipe.rs)
//! ```
//!
//! A key is named bare (`lr_g`, looked up in [run], [model], then [recipe]) or with its section
//! (`model.lr_g`). Unknown keys and out-of-range values are errors that say what is allowed;
//! the family checks its section when the config is resolved.

use crate::models;
use anyhow::{bail, ensure, Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What to do when a loss or a gradient is NaN or infinite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonFinite {
    /// Stop with an error (nothing non-finite is saved).
    Abort,
    /// Undo the whole iteration and go on with the next.
    Skip,
    /// Restore the last checkpoint and run on with a new random stream.
    Rollback,
}

/// What the training loop owns, whatever the family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    pub seed: u64,
    pub epochs: usize,
    /// If > 0, stop after this many iterations instead (tiny runs, tests).
    pub max_steps: usize,
    /// If > 0, also stop (and save) once this call's training loop has run this many seconds
    /// of wall-clock time: runs of one time budget (an ablation at equal cost). The trajectory
    /// up to the stop is the seed's as ever; where it stops depends on the machine.
    #[serde(default)]
    pub max_seconds: u64,
    pub checkpoint_every: usize,
    pub sample_every: usize,
    pub log_every: usize,
    pub nonfinite: NonFinite,
    pub max_rollbacks: usize,
    /// Half-life, in iterations, of an exponential moving average of the weights of the
    /// networks a family draws with (its generator), kept beside them and used for sample
    /// sheets, `generate` and `eval` (Karras et al., ProGAN §A.1 and StyleGAN2-ADA's G_ema;
    /// Yazıcı et al., ICLR 2019). 0: none.
    #[serde(default)]
    pub ema_half_life: usize,
    /// With a moving average: batches of training-mode passes that re-estimate its batch-norm
    /// statistics before every sample sheet and checkpoint ("standing statistics", Brock et
    /// al., BigGAN, ICLR 2019, App. C.1). 0: the average keeps the trained network's
    /// statistics, which were gathered by other weights. Without a moving average, nothing.
    #[serde(default)]
    pub ema_standing: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The preset this config started from.
    pub preset: String,
    /// The model family (a folder under `models/`).
    pub family: String,
    pub run: Run,
    /// The family's section, checked by the family (`Config::model`).
    pub model: toml::Table,
    /// The budget-first recipe's parts (`recipe.rs`), all off when the section is absent.
    #[serde(default)]
    pub recipe: crate::recipe::Recipe,
}

/// Keys of [run] (a config written before the sections existed is read by moving them).
pub const RUN_KEYS: [&str; 11] = [
    "seed",
    "epochs",
    "max_steps",
    "max_seconds",
    "checkpoint_every",
    "sample_every",
    "log_every",
    "nonfinite",
    "max_rollbacks",
    "ema_half_life",
    "ema_standing",
];

/// Keys a resumed run may change: how long it runs, how it reports, and how the moving
/// average's batch-norm statistics are estimated (nothing of the trained weights).
pub const RESUMABLE: [&str; 9] =
    ["max_steps", "max_seconds", "epochs", "checkpoint_every", "sample_every", "log_every", "nonfinite", "max_rollbacks", "ema_standing"];

/// Every preset shipped with storyvis: (name, TOML), family by family.
pub fn presets() -> Vec<(&'static str, &'static str)> {
    models::FAMILIES.iter().flat_map(|f| f.presets.iter().copied()).collect()
}

fn preset_text(name: &str) -> Result<&'static str> {
    let all = presets();
    all.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).with_context(|| {
        let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
        format!("unknown preset {name:?}; presets: {}", names.join(", "))
    })
}

/// Parses a `--set` value as TOML (numbers, booleans, quoted strings), falling back to a bare
/// string so that `--set variant=svc` works.
fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

fn section<'a>(table: &'a mut toml::Table, name: &str) -> Result<&'a mut toml::Table> {
    table.get_mut(name).and_then(toml::Value::as_table_mut).with_context(|| format!("config: no [{name}] section"))
}

/// Sets `key` (bare, or `run.key` / `model.key`) to `value`; the key must exist. `source`
/// names where the setting came from, for errors. Returns the bare key.
fn set_key<'k>(table: &mut toml::Table, key: &'k str, value: toml::Value, source: &str) -> Result<&'k str> {
    ensure!(key != "preset", "{source}: the preset is chosen with --preset (it supplies every other key)");
    ensure!(key != "family", "{source}: the family comes with the preset (choose another --preset)");
    let (sections, bare): (&[&str], &str) = match key.split_once('.') {
        Some(("run", k)) => (&["run"], k),
        Some(("model", k)) => (&["model"], k),
        Some(("recipe", k)) => (&["recipe"], k),
        _ => (&["run", "model", "recipe"], key),
    };
    for s in sections {
        if *s == "recipe" && !table.contains_key("recipe") {
            table.insert("recipe".into(), toml::Value::Table(toml::Table::new()));
        }
        let sec = section(table, s)?;
        // [run] and [recipe] keys with a default may be absent from a preset.
        if sec.contains_key(bare) || (*s == "run" && RUN_KEYS.contains(&bare)) || (*s == "recipe" && crate::recipe::KEYS.contains(&bare)) {
            sec.insert(bare.into(), value);
            return Ok(bare);
        }
    }
    bail!("{source}: unknown config key {key:?}")
}

fn apply_sets(table: &mut toml::Table, sets: &[String], allowed: Option<&[&str]>) -> Result<()> {
    for s in sets {
        let (k, v) = s.split_once('=').with_context(|| format!("--set {s:?}: expected key=value"))?;
        let k = k.trim();
        if let Some(keys) = allowed {
            let bare = k.strip_prefix("run.").unwrap_or(k);
            ensure!(keys.contains(&bare), "--set {k}: a resumed run keeps its config; only {} may change", keys.join(", "));
        }
        set_key(table, k, parse_value(v.trim()), &format!("--set {s:?}"))?;
    }
    Ok(())
}

/// A config written before [run] and [model] existed (StoryGAN's flat keys): the same config
/// in sections.
fn migrate(mut table: toml::Table) -> toml::Table {
    if table.contains_key("family") || table.contains_key("run") {
        return table;
    }
    let mut run = toml::Table::new();
    let mut model = toml::Table::new();
    let mut out = toml::Table::new();
    for (k, v) in std::mem::take(&mut table) {
        if k == "preset" {
            out.insert(k, v);
        } else if RUN_KEYS.contains(&k.as_str()) {
            run.insert(k, v);
        } else {
            model.insert(k, v);
        }
    }
    out.insert("family".into(), toml::Value::String("storygan".into()));
    out.insert("run".into(), toml::Value::Table(run));
    out.insert("model".into(), toml::Value::Table(model));
    out
}

impl Config {
    /// Preset, then the user's file, then `--set` overrides; then validation (the loop's keys
    /// here, the model section by its family).
    pub fn resolve(preset: &str, file: Option<&Path>, sets: &[String]) -> Result<Config> {
        let mut table: toml::Table = preset_text(preset)?.parse().with_context(|| format!("preset {preset}"))?;
        table.insert("preset".into(), toml::Value::String(preset.into()));
        if let Some(f) = file {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
            let user: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", f.display()))?;
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
        Self::from_table(table)
    }

    /// This config with `--set` overrides of the keys a resumed run may change (how long it
    /// runs and how it reports); any other key is an error.
    pub fn resumed_with(&self, sets: &[String]) -> Result<Config> {
        let mut table: toml::Table = self.to_toml().parse().context("config")?;
        apply_sets(&mut table, sets, Some(&RESUMABLE))?;
        Self::from_table(table)
    }

    fn from_table(table: toml::Table) -> Result<Config> {
        // Through text, so that a type error quotes the offending line (and so its key).
        let text = toml::to_string(&table).context("config")?;
        let cfg: Config = toml::from_str(&text).map_err(|e| anyhow::anyhow!("config: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a resolved config (as saved in runs and checkpoints).
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let table: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", path.display()))?;
        Self::from_table(migrate(table)).with_context(|| format!("in {}", path.display()))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serialises")
    }

    /// The [model] section as the family's type (unknown keys and type errors name the key).
    pub fn model<T: DeserializeOwned>(&self) -> Result<T> {
        let text = toml::to_string(&self.model).context("config [model]")?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config [model]: {e}"))
    }

    pub fn validate(&self) -> Result<()> {
        let r = &self.run;
        range("epochs", r.epochs, 1, 1_000_000)?;
        range("checkpoint_every", r.checkpoint_every, 1, usize::MAX)?;
        range("sample_every", r.sample_every, 1, usize::MAX)?;
        range("log_every", r.log_every, 1, usize::MAX)?;
        range("max_seconds", r.max_seconds, 0, 100 * 365 * 86_400)?;
        range("max_rollbacks", r.max_rollbacks, 0, 1_000_000)?;
        range("ema_half_life", r.ema_half_life, 0, 100_000_000)?;
        range("ema_standing", r.ema_standing, 0, 10_000)?;
        let family = models::family(&self.family)?;
        self.recipe.check(family.name, family.recipe)?;
        (family.check)(self).with_context(|| format!("preset {} (family {})", self.preset, self.family))
    }
}

/// An error unless lo ≤ v ≤ hi, naming the key.
pub fn range<T: PartialOrd + std::fmt::Display>(name: &str, v: T, lo: T, hi: T) -> Result<()> {
    if v < lo || v > hi {
        bail!("config: {name} = {v} is out of range ({lo} to {hi})");
    }
    Ok(())
}

/// Adam's settings, checked: each learning rate in [1e-7, 1], β1 and β2 in [0, 1).
pub fn check_adam(rates: &[(&str, f64)], beta1: f64, beta2: f64) -> Result<()> {
    for &(name, lr) in rates {
        range(name, lr, 1e-7, 1.0)?;
    }
    range("beta1", beta1, 0.0, 0.999999)?;
    range("beta2", beta2, 0.0, 0.999999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_resolve_and_round_trip() {
        for (name, _) in presets() {
            let c = Config::resolve(name, None, &[]).unwrap();
            assert_eq!(c.preset, name);
            let back: Config = toml::from_str(&c.to_toml()).unwrap();
            assert_eq!(back, c);
        }
    }

    #[test]
    fn keys_are_found_in_their_sections() {
        let c =
            Config::resolve("storygan-tiny", None, &["variant=svc".into(), "model.lr_g = 0.001".into(), "run.seed=7".into(), "max_steps=3".into()]).unwrap();
        assert_eq!((c.model["variant"].as_str(), c.model["lr_g"].as_float(), c.run.seed, c.run.max_steps), (Some("svc"), Some(0.001), 7, 3));
        let err = |sets: &[&str]| {
            let s: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            format!("{:#}", Config::resolve("storygan-tiny", None, &s).unwrap_err())
        };
        assert!(err(&["colour=red"]).contains("unknown config key \"colour\""));
        assert!(err(&["run.variant=svc"]).contains("unknown config key \"run.variant\""));
        assert!(err(&["family=toy"]).contains("the family comes with the preset"));
        assert!(err(&["preset=toy"]).contains("chosen with --preset"));
        assert!(err(&["log_every=0"]).contains("log_every = 0 is out of range"));
        assert!(err(&["nonfinite=ignore"]).contains("unknown variant"));
        assert!(format!("{:#}", Config::resolve("nope", None, &[]).unwrap_err()).contains("storygan-tiny"));
    }

    #[test]
    fn a_flat_config_of_before_the_sections_reads_as_the_same_config() {
        let c = Config::resolve("storygan-tiny", None, &["seed=5".into()]).unwrap();
        let mut flat = toml::Table::new();
        flat.insert("preset".into(), c.preset.clone().into());
        let run: toml::Table = toml::to_string(&c.run).unwrap().parse().unwrap();
        flat.extend(run);
        flat.extend(c.model.clone());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, toml::to_string(&flat).unwrap()).unwrap();
        assert_eq!(Config::load(&path).unwrap(), c);
    }

    #[test]
    fn a_user_file_may_use_sections_or_bare_keys_and_a_resume_changes_only_run_length_and_reporting() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("mine.toml");
        std::fs::write(&f, "seed = 9\n[model]\nlr_d = 0.0003\n").unwrap();
        let c = Config::resolve("storygan-tiny", Some(&f), &[]).unwrap();
        assert_eq!((c.run.seed, c.model["lr_d"].as_float()), (9, Some(0.0003)));
        std::fs::write(&f, "[model]\nshape = 1\n").unwrap();
        assert!(format!("{:#}", Config::resolve("storygan-tiny", Some(&f), &[]).unwrap_err()).contains("unknown config key \"model.shape\""));
        let r = c.resumed_with(&["max_steps=9".into(), "run.log_every=2".into()]).unwrap();
        assert_eq!((r.run.max_steps, r.run.log_every), (9, 2));
        assert!(format!("{:#}", c.resumed_with(&["lr_g=0.1".into()]).unwrap_err()).contains("a resumed run keeps its config"));
        assert!(format!("{:#}", c.resumed_with(&["seed=1".into()]).unwrap_err()).contains("a resumed run keeps its config"));
    }
}
