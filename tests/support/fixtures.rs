//! The recorded server outputs under `tests/fixtures/`, read as JSON. A
//! module of its own (`#[path]`), so that the dialect tests need nothing
//! else of the support code.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// `tests/fixtures/<sub>`.
pub fn dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(sub)
}

/// The fixture `name` in `dir`.
pub fn load<T: DeserializeOwned>(dir: &Path, name: &str) -> T {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.json` fixture in `dir` (not below it), by name.
pub fn all<T: DeserializeOwned>(dir: &Path) -> Vec<(String, T)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let f = load(dir, &n);
            (n, f)
        })
        .collect()
}
