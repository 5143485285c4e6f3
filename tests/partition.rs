//! orca's own network path to the primary is cut while the replicas still
//! replicate from it: no failover, UnreachablePrimary reported. The cut is
//! real: an nftables rule drops the packets of `orca standalone` (run as
//! user nobody) to the primary, and nothing else.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use orca_sandbox::mysqld::admin_credentials;
use orca_sandbox::{LocalCluster, Shape};
use support::*;

const NOBODY: u32 = 65534;

struct Cut {
    table: String,
}

impl Cut {
    fn new(ip: &str) -> Cut {
        let table = format!("orca_test_{}", std::process::id());
        let nft = |args: &str| {
            let out = Command::new("nft")
                .args(args.split(' '))
                .output()
                .expect("nft is required for this test: apt-get install nftables (make deps does)");
            assert!(
                out.status.success(),
                "nft {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        nft(&format!("add table inet {table}"));
        let out = Command::new("nft")
            .args([
                "add",
                "chain",
                "inet",
                &table,
                "out",
                "{ type filter hook output priority 0 ; }",
            ])
            .output()
            .expect("nft");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        nft(&format!(
            "add rule inet {table} out meta skuid {NOBODY} ip daddr {ip} tcp dport 3306 drop"
        ));
        Cut { table }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cut_path_to_the_primary_is_not_a_failover() {
    let c = LocalCluster::start(Shape::primary_with_replicas(2))
        .await
        .unwrap();
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    // A copy of the binary that user nobody can run, wherever the build
    // directory lives (the checkout may be in a directory only root enters).
    let bin_dir = std::env::temp_dir().join(format!("orca-partition-{}", std::process::id()));
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin = bin_dir.join("orca");
    std::fs::copy(env!("CARGO_BIN_EXE_orca"), &bin).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut child = Command::new("setpriv")
        .args([
            "--reuid",
            &NOBODY.to_string(),
            "--regid",
            &NOBODY.to_string(),
            "--clear-groups",
        ])
        .arg(&bin)
        .args(["standalone", "--log", "info", "--cluster", "cut"])
        .args(
            keys.iter()
                .flat_map(|k| ["--seed".to_string(), k.to_string()]),
        )
        .env("ORCA_USER", admin_credentials().user)
        .env("ORCA_PASSWORD", admin_credentials().password())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("setpriv runs orca as nobody");
    // Let it see the healthy topology first.
    eventually(
        Duration::from_secs(15),
        "orca standalone running",
        || async {
            std::fs::read_to_string(&err_path)
                .unwrap()
                .contains("orca standalone started")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cut = Cut::new(&keys[0].host);
    eventually(
        Duration::from_secs(20),
        "UnreachablePrimary reported",
        || async {
            std::fs::read_to_string(&err_path)
                .unwrap()
                .contains("UnreachablePrimary")
                .then_some(())
        },
    )
    .await;
    // Several more rounds: still no failover.
    tokio::time::sleep(Duration::from_secs(5)).await;
    drop(cut);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&bin_dir);
    let logs = std::fs::read_to_string(&err_path).unwrap();
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(out.trim().is_empty(), "a recovery ran: {out}\n{logs}");
    assert!(!logs.contains("DeadPrimary"), "{logs}");
    assert!(
        !snapshot(&keys[0]).await.is_read_only(),
        "the primary was touched"
    );
    for r in &keys[1..] {
        wait_replicating_from(r, &keys[0]).await;
    }
}
