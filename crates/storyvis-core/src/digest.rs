//! SHA-256 digests of files: what checkpoints, datasets and downloaded weights are checked by.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The SHA-256 digest of a file, as lowercase hex.
pub fn sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}
