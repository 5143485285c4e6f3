//! The README's install section, run as written against the sandbox
//! without its built-in operator: real Helm (its library, behind the
//! `helm` of tests/helm/bin) installs the chart, the kubelet runs the two
//! operator pods of the orca image, they elect a leader, manage a
//! MySQLCluster, survive the leader's death, carry out a graceful takeover,
//! and go with `helm uninstall`.

mod support;

use std::process::Command;

use support::sandbox::Sandbox;

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_install_works() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README");
    let start = readme.find("<!-- install -->").expect("install marker");
    let end = readme
        .find("<!-- /install -->")
        .expect("install end marker");
    let script: String = readme[start..end]
        .lines()
        .skip_while(|l| !l.starts_with("```sh"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .filter(|l| !l.starts_with("export KUBECONFIG="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(script.contains("helm install"), "{script}");
    let venv = format!("{root}/.venv-test/bin");
    assert!(
        std::path::Path::new(&format!("{venv}/python")).exists(),
        "{venv}/python is missing: run `make deps` (it installs helm-python-sdk there)"
    );
    let sb = Sandbox::cluster(&["--no-operator"]).await;
    let path = format!(
        "{root}/tests/helm/bin:{venv}:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(root)
        .env("KUBECONFIG", &sb.kubeconfig)
        .env("PATH", path)
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pods = sb
        .kubectl()
        .run(&["get", "pods", "-A", "-o", "wide"], None)
        .stdout;
    assert!(
        out.status.success(),
        "the install section failed:\n{stdout}\n{stderr}\n--- pods ---\n{pods}\n--- sandbox log ---\n{}",
        sb.log_tail(200)
    );
    assert!(stdout.contains("STATUS: deployed"), "{stdout}");
    assert!(
        stdout.contains("deployment \"orca\" successfully rolled out"),
        "{stdout}"
    );
    let moved = stdout
        .lines()
        .find(|l| l.starts_with("the Lease moved from "))
        .unwrap_or_else(|| panic!("no Lease move in:\n{stdout}"));
    let words: Vec<&str> = moved.split_whitespace().collect();
    let (from, to) = (words[4], words[6]);
    assert!(
        from.starts_with("orca-") && to.starts_with("orca-") && from != to,
        "{moved}"
    );
    assert!(stdout.contains("graceful-takeover succeeded"), "{stdout}");
    assert!(stdout.contains("release \"orca\" uninstalled"), "{stdout}");
    let gone = sb
        .kubectl()
        .run(&["-n", "orca", "get", "deployment", "orca"], None);
    assert!(!gone.success(), "the Deployment outlived the release");
}
