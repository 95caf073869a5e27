//! Scratch directories for tests, on the `tempfile` crate: a unique name
//! (no two tests, or two runs, share one), removed with all it holds when
//! dropped, even when the test panics.

use std::path::{Path, PathBuf};

/// A scratch directory, `tern-<label>-XXXXXX` under the system's temp
/// dir, removed on drop. The label only helps a person find it while the
/// test runs; uniqueness comes from the random suffix.
#[derive(Debug)]
pub struct TempDir {
    /// `None` once kept.
    dir: Option<tempfile::TempDir>,
    /// The path, also after the directory was kept.
    path: PathBuf,
    /// Kept, and its path printed, when dropped during a panic.
    keep_on_panic: bool,
}

impl TempDir {
    /// A fresh, empty directory.
    pub fn new(label: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tern-{label}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("a temp dir for {label}: {e}"));
        TempDir {
            path: dir.path().to_path_buf(),
            dir: Some(dir),
            keep_on_panic: false,
        }
    }

    /// Keeps the directory, and prints where, when the test fails (a
    /// panic drops it): what a failed round of a long test left is worth
    /// reading. Removed as usual when the test passes.
    pub fn keep_on_panic(mut self) -> TempDir {
        self.keep_on_panic = true;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `text` to `name` in the directory; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep_on_panic && std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let path = dir.keep();
                eprintln!("test failed; its files are kept in {}", path.display());
            }
        }
    }
}
