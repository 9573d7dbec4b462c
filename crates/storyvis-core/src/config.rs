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
pub const RESUMABLE: [&str; 9] = [
    "max_steps",
    "max_seconds",
    "epochs",
    "checkpoint_every",
    "sample_every",
    "log_every",
    "nonfinite",
    "max_rollbacks",
    "ema_standing",
];

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
    table
        .get_mut(name)
        .and_then(toml::Value::as_table_mut)
        .with_context(|| format!("config: no [{name}] section"))
}

/// Sets `key` (bare, or `run.key` / `model.key`) to `value`; the key must exist. `source`
/// names where the setting came from, for errors. Returns the bare key.
pub(crate) fn set_key<'k>(
    table: &mut toml::Table,
    key: &'k str,
    value: toml::Value,
    source: &str,
) -> Result<&'k str> {
    ensure!(
        key != "preset",
        "{source}: the preset is chosen with --preset (it supplies every other key)"
    );
    ensure!(
        key != "family",
        "{source}: the family comes with the preset (choose another --preset)"
    );
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
        if sec.contains_key(bare)
            || (*s == "run" && RUN_KEYS.contains(&bare))
            || (*s == "recipe" && crate::recipe::KEYS.contains(&bare))
        {
            sec.insert(bare.into(), value);
            return Ok(bare);
        }
    }
    bail!("{source}: unknown config key {key:?}")
}

pub(crate) fn apply_sets(
    table: &mut toml::Table,
    sets: &[String],
    allowed: Option<&[&str]>,
) -> Result<()> {
    for s in sets {
        let (k, v) =
            s.split_once('=').with_context(|| format!("--set {s:?}: expected key=value"))?;
        let k = k.trim();
        if let Some(keys) = allowed {
            let bare = k.strip_prefix("run.").unwrap_or(k);
            ensure!(
                keys.contains(&bare),
                "--set {k}: a resumed run keeps its config; only {} may change",
                keys.join(", ")
            );
        }
        set_key(table, k, parse_value(v.trim()), &format!("--set {s:?}"))?;
    }
    Ok(())
}

/// Preset names and the families that own them, as families register (`registry::register`):
/// what tells the family of a config written before [run] and [model] existed.
pub(crate) static PRESET_FAMILIES: std::sync::RwLock<Vec<(&'static str, &'static str)>> =
    std::sync::RwLock::new(Vec::new());

/// A config written before [run] and [model] existed (flat keys, from the first family's
/// presets): the same config in sections, its family the one whose preset it names.
pub(crate) fn migrate(mut table: toml::Table) -> toml::Table {
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
    let preset = out.get("preset").and_then(toml::Value::as_str).unwrap_or_default().to_string();
    let families = PRESET_FAMILIES.read().unwrap_or_else(|e| e.into_inner());
    if let Some((_, family)) = families.iter().find(|(p, _)| *p == preset) {
        out.insert("family".into(), toml::Value::String(family.to_string()));
    }
    out.insert("run".into(), toml::Value::Table(run));
    out.insert("model".into(), toml::Value::Table(model));
    out
}

impl Config {
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serialises")
    }

    /// The [model] section as the family's type (unknown keys and type errors name the key).
    pub fn model<T: DeserializeOwned>(&self) -> Result<T> {
        let text = toml::to_string(&self.model).context("config [model]")?;
        deserialize(&text, " [model]")
    }

    /// Parses a config table (through text, so that a type error quotes the offending line and
    /// so its key) and checks its [run] keys; `registry::validate` checks the rest.
    pub(crate) fn parse_table(table: toml::Table) -> Result<Config> {
        let text = toml::to_string(&table).context("config")?;
        let cfg: Config = deserialize(&text, "")?;
        cfg.validate_run()?;
        Ok(cfg)
    }

    /// Reads a resolved config (as saved in runs and checkpoints); its [run] keys are checked
    /// here, its [model] section by the family that reads it.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let table: toml::Table =
            text.parse().with_context(|| format!("{} is not valid TOML", path.display()))?;
        let table = migrate(table);
        ensure!(
            table.contains_key("family"),
            "{} predates the [run] and [model] sections and names preset {}, which no registered family has \
             (a program registers its families at start-up)",
            path.display(),
            table.get("preset").map_or("(none)".to_string(), |p| p.to_string())
        );
        Self::parse_table(table).with_context(|| format!("in {}", path.display()))
    }

    /// Checks the training loop's keys ([run]); `registry::validate` adds the family's.
    pub fn validate_run(&self) -> Result<()> {
        let r = &self.run;
        range("epochs", r.epochs, 1, 1_000_000)?;
        range("checkpoint_every", r.checkpoint_every, 1, usize::MAX)?;
        range("sample_every", r.sample_every, 1, usize::MAX)?;
        range("log_every", r.log_every, 1, usize::MAX)?;
        range("max_seconds", r.max_seconds, 0, 100 * 365 * 86_400)?;
        range("max_rollbacks", r.max_rollbacks, 0, 1_000_000)?;
        range("ema_half_life", r.ema_half_life, 0, 100_000_000)?;
        range("ema_standing", r.ema_standing, 0, 10_000)
    }
}

pub use crate::checks::{check_adam, range};

/// A config value of the wrong type: its key, the value as written, and what the key takes,
/// in words. `registry` names the `--set` that wrote it.
#[derive(Debug)]
pub struct BadValue {
    pub key: String,
    pub value: String,
    pub expected: String,
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "config: {} = {} is not allowed: {} takes {}",
            self.key, self.value, self.key, self.expected
        )
    }
}

impl std::error::Error for BadValue {}

/// What serde's type names mean to a user.
fn in_words(expected: &str) -> String {
    let e = expected.trim().trim_matches('`');
    match e {
        "usize" | "u64" | "u32" | "u16" | "u8" => "a whole number, 0 or more".into(),
        "i64" | "i32" | "i16" | "i8" => "a whole number".into(),
        "f64" | "f32" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        _ => expected.trim().to_string(),
    }
}

/// Deserialises config text; a value of the wrong type is a `BadValue` naming its key (read
/// from the line the error points at), other errors say what serde says.
fn deserialize<T: DeserializeOwned>(text: &str, section: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| {
            let start = text[..s.start].rfind('\n').map_or(0, |i| i + 1);
            text[start..].lines().next().unwrap_or("").trim().to_string()
        });
        let message = e.message().to_string();
        match (line.as_deref().and_then(|l| l.split_once('=')), message.rsplit_once("expected ")) {
            (Some((key, value)), Some((_, expected))) => anyhow::Error::new(BadValue {
                key: key.trim().to_string(),
                value: value.trim().to_string(),
                expected: in_words(expected),
            }),
            _ => anyhow::anyhow!("config{section}: {}", message.trim()),
        }
    })
}
