//! The README's walkthrough, run as written against `orca sandbox`.

mod support;
use support::sandbox::Sandbox;

use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_walkthrough_works() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- walkthrough -->")
        .expect("walkthrough marker");
    let end = readme
        .find("<!-- /walkthrough -->")
        .expect("walkthrough end marker");
    let block = &readme[start..end];
    let script: String = block
        .lines()
        .skip_while(|l| !l.starts_with("```sh"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .filter(|l| !l.starts_with("export KUBECONFIG="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(script.contains("kubectl apply"), "{script}");
    // The restart delay lets the crash be seen as a failover, as a user
    // watching would.
    let sb = Sandbox::cluster(&["--restart-delay", "10s"]).await;
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KUBECONFIG", &sb.kubeconfig)
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walkthrough failed:\n{stdout}\n{stderr}\n--- sandbox log ---\n{}",
        sb.log()
    );
    assert!(stdout.contains("condition met"), "{stdout}");
    assert!(stdout.contains("graceful-takeover succeeded"), "{stdout}");
    assert!(
        stdout.contains("recover-dead-primary succeeded"),
        "{stdout}"
    );
    assert!(stdout.contains("GracefulTakeover"), "{stdout}");
    // The application account wrote, a replica refused it, and its write
    // from before the failover is on the new primary.
    assert!(stdout.contains("the replica refused the write"), "{stdout}");
    assert!(stderr.contains("read-only"), "{stderr}");
    assert!(
        stdout.contains("first") && stdout.contains("after the failover"),
        "{stdout}"
    );
}
