//! Atomic writes: a file or a whole directory appears complete or not at all.
//!
//! Files: write to a temporary sibling, fsync, rename over the target, fsync the parent.
//! Directories: build in a hidden temporary sibling (`.NAME.tmp-PID`), fsync every file as it
//! is written, then swap it in with renames. A staging directory that is dropped without
//! `commit` is removed; ones left by killed processes are cleaned up by the next run.

use anyhow::{bail, Context, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no file name", path.display()))
}

/// `fs::create_dir_all` whose error names the part of the path that exists but is not a
/// directory (the OS only says "File exists").
pub fn create_dir_all(dir: &Path) -> Result<()> {
    if let Err(e) = fs::create_dir_all(dir) {
        if let Some(file) = dir.ancestors().find(|a| a.exists() && !a.is_dir()) {
            bail!("cannot create {}: {} is not a directory", dir.display(), file.display());
        }
        return Err(e).with_context(|| format!("cannot create {}", dir.display()));
    }
    Ok(())
}

/// Writes `bytes` to `path` and fsyncs it (no rename: for files inside a staging directory).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Replaces `path` with `bytes` atomically (temp + fsync + rename + fsync of the parent).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| Ok(fs::write(tmp, bytes)?))
}

/// Replaces `path` atomically with what `write` writes to the temporary path it is given
/// (temp + fsync + rename + fsync of the parent), for writers that only write to a path.
pub fn write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = parent_of(path);
    create_dir_all(parent)?;
    let tmp = parent.join(format!(".{}.tmp-{}", file_name(path)?, std::process::id()));
    let result = write(&tmp)
        .and_then(|_| File::open(&tmp).and_then(|f| f.sync_all()).context("cannot sync"))
        .and_then(|_| fs::rename(&tmp, path).context("cannot move it into place"));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))?;
    sync_dir(parent)
}

/// A directory under construction that replaces `dest` only when committed.
#[derive(Debug)]
pub struct StagedDir {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl StagedDir {
    /// Checks `dest` (an existing non-empty directory needs `force`; a file is refused) and
    /// creates the staging directory beside it.
    pub fn new(dest: &Path, force: bool) -> Result<StagedDir> {
        if dest.is_file() {
            bail!("{} is a file; the output must be a directory", dest.display());
        }
        if dest.is_dir() {
            let non_empty = fs::read_dir(dest)
                .with_context(|| format!("cannot read {}", dest.display()))?
                .next()
                .is_some();
            if non_empty && !force {
                bail!("{} exists and is not empty; pass --force to replace it", dest.display());
            }
        }
        let parent = parent_of(dest);
        create_dir_all(parent)?;
        let name = file_name(dest)?;
        Self::remove_stale(parent, &name);
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).with_context(|| format!("cannot clear {}", tmp.display()))?;
        }
        fs::create_dir(&tmp)
            .with_context(|| format!("cannot write to {} (is it writable?)", parent.display()))?;
        Ok(StagedDir { tmp, dest: dest.to_path_buf(), committed: false })
    }

    /// Staging directories of `name` left behind by processes that no longer run.
    fn remove_stale(parent: &Path, name: &str) {
        let prefix = format!(".{name}.tmp-");
        let Ok(entries) = fs::read_dir(parent) else { return };
        for e in entries.flatten() {
            let fname = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = fname.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok()) {
                if pid != std::process::id() && !pid_alive(pid) {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
    }

    /// Where to write the contents.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Puts the finished directory in place of `dest`. Files must already be synced
    /// (`write_synced`); directories are synced here.
    pub fn commit(mut self) -> Result<()> {
        sync_tree_dirs(&self.tmp)?;
        let parent = parent_of(&self.dest).to_path_buf();
        let old = parent.join(format!(".{}.old-{}", file_name(&self.dest)?, std::process::id()));
        let had_old = self.dest.exists();
        if had_old {
            fs::rename(&self.dest, &old)
                .with_context(|| format!("cannot move the old {} aside", self.dest.display()))?;
        }
        if let Err(e) = fs::rename(&self.tmp, &self.dest) {
            if had_old {
                let _ = fs::rename(&old, &self.dest);
            }
            return Err(e)
                .with_context(|| format!("cannot move {} into place", self.dest.display()));
        }
        self.committed = true;
        sync_dir(&parent)?;
        if had_old {
            fs::remove_dir_all(&old)
                .with_context(|| format!("cannot remove the replaced {}", old.display()))?;
        }
        Ok(())
    }
}

fn sync_tree_dirs(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let e = e?;
        if e.file_type()?.is_dir() {
            sync_tree_dirs(&e.path())?;
        }
    }
    sync_dir(dir)
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_stage_leaves_nothing_and_commit_replaces() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("out");
        {
            let s = StagedDir::new(&dest, false).unwrap();
            write_synced(&s.path().join("a"), b"1").unwrap();
        }
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0, "staging dir left behind");

        let s = StagedDir::new(&dest, false).unwrap();
        write_synced(&s.path().join("a"), b"1").unwrap();
        s.commit().unwrap();
        assert_eq!(fs::read(dest.join("a")).unwrap(), b"1");

        assert!(StagedDir::new(&dest, false).unwrap_err().to_string().contains("--force"));
        let s = StagedDir::new(&dest, true).unwrap();
        write_synced(&s.path().join("b"), b"2").unwrap();
        // Until commit, the old contents stay whole.
        assert!(dest.join("a").exists());
        s.commit().unwrap();
        assert!(!dest.join("a").exists() && dest.join("b").exists());
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_stages_of_dead_processes_are_removed() {
        let root = tempfile::tempdir().unwrap();
        // PIDs are below 2^22 on Linux, so this one cannot be running.
        let stale = root.path().join(".out.tmp-4999999");
        fs::create_dir(&stale).unwrap();
        let s = StagedDir::new(&root.path().join("out"), false).unwrap();
        assert!(!stale.exists());
        drop(s);
    }

    #[test]
    fn write_file_replaces_atomically() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("sub/x.txt");
        write_file(&p, b"one").unwrap();
        write_file(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
