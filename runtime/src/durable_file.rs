//! Small-file durability: atomic replace (write, fsync, rename, fsync directory).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `data` so that after a crash the file holds either the old or the
/// new content, never a mix, and the new content survives once this returns.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no parent directory", path.display())))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} has no file name", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp", file_name.to_string_lossy()));
    {
        let mut file = File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Makes a directory's entries (created, renamed or removed files) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates a directory and its parents, and makes the new entries durable.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    let mut current = Some(dir);
    while let Some(d) = current {
        match d.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => {
                sync_dir(parent)?;
                current = Some(parent);
                if parent.exists() && parent.join(".").is_dir() {
                    // Syncing the immediate parent is what matters; stop at the first one.
                    break;
                }
            }
            _ => break,
        }
    }
    Ok(())
}
