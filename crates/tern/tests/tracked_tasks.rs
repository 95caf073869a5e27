//! Every task the daemon starts is on a `TaskTracker`: a stage's own
//! (intake, dispatch, receipts, outbox) or the node's, which shutdown waits
//! for last (`src/daemon/mod.rs`). A bare `tokio::spawn` would start a task
//! shutdown neither waits for nor knows of, so this test reads every file
//! under `src/daemon` and fails on any way of spawning besides a tracker's.

use std::path::{Path, PathBuf};

/// Ways of starting a task that no tracker sees.
const UNTRACKED: &[&str] = &[
    "tokio::spawn",
    "task::spawn(",
    "task::spawn_blocking",
    "spawn_local(",
    "thread::spawn(",
    "use tokio::spawn",
    "use tokio::task::spawn",
    "use tokio::task::{",
];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("daemon source directory");
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The lines of `text` that start a task outside a tracker, as
/// "LINE: TEXT"; comments are not code.
fn untracked(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            UNTRACKED.iter().any(|pattern| {
                code.contains(pattern)
                    && (*pattern != "use tokio::task::{" || code.contains("spawn"))
            })
        })
        .map(|(n, line)| format!("{}: {}", n + 1, line.trim()))
        .collect()
}

#[test]
fn the_daemon_starts_no_task_outside_a_tracker() {
    let daemon = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/daemon");
    let mut files = Vec::new();
    rust_files(&daemon, &mut files);
    // The stages are read, subdirectories included (the HTTP API's).
    for stage in [
        "intake.rs",
        "dispatch.rs",
        "receipts.rs",
        "outbox.rs",
        "http/mod.rs",
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(stage)),
            "{stage} not found under {}",
            daemon.display()
        );
    }
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source file");
        for line in untracked(&text) {
            found.push(format!("{}:{line}", file.display()));
        }
    }
    assert!(
        found.is_empty(),
        "tasks started outside a TaskTracker (spawn them on the stage's tracker, \
         or on Node::tasks):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_a_bare_spawn_and_not_a_tracked_one_or_a_comment() {
    let text = "fn f(tasks: &TaskTracker) {\n\
                    tasks.spawn(async {});\n\
                    // tokio::spawn in a comment is prose\n\
                    tokio::spawn(async {});\n\
                    tokio::task::spawn_blocking(|| ());\n\
                }\n";
    assert_eq!(
        untracked(text),
        vec![
            "4: tokio::spawn(async {});".to_owned(),
            "5: tokio::task::spawn_blocking(|| ());".to_owned(),
        ]
    );
}
