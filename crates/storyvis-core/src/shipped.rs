//! Where the models shipped with storyvis are found (`generate` without `--checkpoint`, `eval`
//! without `--checkpoint` or `--classifier`), in this order:
//!
//! 1. `$STORYVIS_HOME/<path>`, when `STORYVIS_HOME` is set (it must name a directory);
//! 2. the install prefix of an installed binary (`scripts/install`):
//!    `<dir of the executable>/../share/storyvis/<path>`;
//! 3. the checkout the binary was built from (wherever its target directory is);
//! 4. beside the binary (`<dir of the executable>/<path>`).
//!
//! The first that exists wins; if none does, the error lists every place looked at.

use anyhow::{bail, ensure, Result};
use std::path::{Path, PathBuf};

/// The environment variable naming a storyvis home (a directory holding `models/`).
pub const HOME_VAR: &str = "STORYVIS_HOME";

/// `$STORYVIS_HOME`, where it is set; an error naming it where it is not a directory (a
/// mistyped home would otherwise fall through to other models without a word).
pub fn home() -> Result<Option<PathBuf>> {
    let Some(home) = std::env::var_os(HOME_VAR).filter(|h| !h.is_empty()) else { return Ok(None) };
    let home = PathBuf::from(home);
    ensure!(
        home.is_dir(),
        "{HOME_VAR} is set to {}, which is not a directory (unset it, or point it at a directory holding models/)",
        home.display()
    );
    Ok(Some(home))
}

/// The places `find` looks for `rel`, in order.
pub fn candidates(rel: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if let Some(home) = home()? {
        out.push(home.join(rel));
    }
    let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf));
    if let Some(dir) = &exe_dir {
        out.push(dir.join("../share/storyvis").join(rel));
    }
    // crates/storyvis-core → the checkout root, as compiled.
    out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel));
    if let Some(dir) = exe_dir {
        out.push(dir.join(rel));
    }
    Ok(out)
}

/// The first of `places` that exists; an error naming all of them otherwise.
pub fn first_existing(rel: &str, places: &[PathBuf]) -> Result<PathBuf> {
    if let Some(p) = places.iter().find(|p| p.exists()) {
        return Ok(normalise(p));
    }
    let list: Vec<String> =
        places.iter().map(|p| format!("  {}", normalise(p).display())).collect();
    bail!(
        "the shipped {rel} was not found; looked in:\n{}\n(set {HOME_VAR} to a directory holding {rel}, or name the model on the command line)",
        list.join("\n")
    )
}

/// Finds a shipped model (see the module header for the order).
pub fn find(rel: &str) -> Result<PathBuf> {
    first_existing(rel, &candidates(rel)?)
}

/// `a/b/../c` → `a/c` where the path exists, for readable messages.
fn normalise(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A configured path to a model (a preset's `text_encoder = "models/…"`): itself where it
/// exists from here or is absolute, else where `find` finds it (so that a preset's relative
/// default works from any directory), else itself (for the caller's error to name).
pub fn locate(configured: &str) -> PathBuf {
    match PathBuf::from(configured) {
        p if p.exists() || p.is_absolute() => p,
        p => find(configured).unwrap_or(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_existing_place_wins_and_a_miss_lists_every_place() {
        let root = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            root.path().join("a/models/m"),
            root.path().join("b/models/m"),
            root.path().join("c/models/m"),
        );
        std::fs::create_dir_all(&b).unwrap();
        std::fs::create_dir_all(&c).unwrap();
        let places = [a.clone(), b.clone(), c.clone()];
        assert_eq!(first_existing("models/m", &places).unwrap(), b.canonicalize().unwrap());
        let e = first_existing("models/m", &places[..1]).unwrap_err().to_string();
        assert!(e.contains(&a.display().to_string()) && e.contains(HOME_VAR), "{e}");
        // The checkout this crate was built in holds the shipped models.
        let shipped = |dir: &Path| {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.path().join("checkpoint.json").is_file())
        };
        assert!(candidates("models").unwrap().iter().any(|p| shipped(p)));
    }
}
