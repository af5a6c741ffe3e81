//! Helpers shared by the integration tests that call real peers (ffmpeg, mkvtoolnix, GStreamer,
//! Python with PyAV or botocore).
//!
//! A test whose peer is missing prints why and passes, unless `KVS_REQUIRE_TOOLS=1` (set by
//! `scripts/test.sh` and so by CI), where a missing peer fails it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether every peer must be present (`KVS_REQUIRE_TOOLS=1`).
pub fn required() -> bool {
    std::env::var("KVS_REQUIRE_TOOLS").as_deref() == Ok("1")
}

/// Reports a missing peer: fails the test when peers are required, else prints a skip line.
pub fn skip(why: &str) {
    assert!(!required(), "{why} (KVS_REQUIRE_TOOLS=1)");
    println!("skipping: {why}");
}

/// `name` on PATH, without reporting anything.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `name` on PATH, or `None` after [`skip`].
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = find_tool(name);
    if found.is_none() {
        skip(&format!("{name} not found on PATH"));
    }
    found
}

/// Whether `name` is on PATH (reported through [`skip`] when it is not).
pub fn have_tool(name: &str) -> bool {
    tool(name).is_some()
}

/// The Python interpreter the tests use: `KVS_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("KVS_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A new empty directory for one test's files.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("kvs-test-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `cmd`, fails the test with its stderr unless it succeeds, and returns its stdout.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// [`run`], with stdout as text.
pub fn run_text(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd)).unwrap()
}
