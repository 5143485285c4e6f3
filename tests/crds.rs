//! The CRDs committed under `crds/` are exactly what the code generates.

use std::collections::BTreeSet;
use std::path::Path;

use orca::k8s::crd::crd_yaml_files;

const REGENERATE: &str = "run `cargo run -- crds --write crds/` to regenerate them";

#[test]
fn committed_crds_match_the_generated_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut problems = Vec::new();
    for (name, generated) in crd_yaml_files() {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(committed) if committed == generated => {}
            Ok(committed) => {
                let line = committed
                    .lines()
                    .zip(generated.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
                problems.push(format!(
                    "crds/{name} differs from the generated CRD (first at line {})",
                    line + 1
                ));
            }
            Err(e) => problems.push(format!("crds/{name} cannot be read: {e}")),
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nThe CRDs changed: {REGENERATE}.",
        problems.join("\n")
    );
}

#[test]
fn crds_holds_no_stale_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let generated: BTreeSet<String> = crd_yaml_files()
        .into_iter()
        .map(|(name, _)| name.to_string())
        .collect();
    let entries = std::fs::read_dir(&dir).expect("crds/ exists");
    let stale: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && !generated.contains(name))
        .collect();
    assert!(
        stale.is_empty(),
        "crds/ holds files the code no longer generates: {stale:?}; remove them and {REGENERATE}"
    );
}
