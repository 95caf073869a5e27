//! Scratch directories for tests, on the `tempfile` crate: a unique name
//! (no two tests, or two runs, share one), removed with all it holds when
//! dropped, even when the test panics.

use std::path::{Path, PathBuf};

/// A scratch directory, `tern-<label>-XXXXXX` under the system's temp
/// dir, removed on drop. The label only helps a person find it while the
/// test runs; uniqueness comes from the random suffix.
#[derive(Debug)]
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// A fresh, empty directory.
    pub fn new(label: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tern-{label}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("a temp dir for {label}: {e}"));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.path().join(name)
    }

    /// Writes `text` to `name` in the directory; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// Keeps the directory on disk after the test (its path printed by
    /// the caller), for a failure worth looking into.
    pub fn keep(self) -> PathBuf {
        self.0.keep()
    }
}
