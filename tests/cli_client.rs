//! The client commands against a running `orca standalone --listen` on
//! real `mariadbd`, as a user runs them: `orca clusters`, `orca topology`,
//! `orca history`, the one-shot operations with `--api`, and their exit
//! codes (0 done, 1 failed or not allowed, 2 bad input, 3 refused).

mod support;

use std::process::Command;

use orca_sandbox::mysqld::admin_credentials;
use support::api::{TOKEN, serve_standalone};
use support::store::StoreServer;
use support::writer::{Writer, assert_acked};
use support::{eventually, primary_and_two_replicas, snapshot, wait_replicating_from};

/// `orca ARGS` with the API's token in the environment (`token`), no
/// server credentials: a client needs none.
fn client(token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orca"));
    cmd.args(args)
        .env_remove("ORCA_API")
        .env_remove("ORCA_API_TOKEN_FILE");
    match token {
        Some(t) => cmd.env("ORCA_API_TOKEN", t),
        None => cmd.env_remove("ORCA_API_TOKEN"),
    };
    let out = cmd.output().expect("run orca");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_commands_ask_a_running_orca() {
    let (c, [p, r1, r2]) = primary_and_two_replicas().await;
    let store = StoreServer::start().await;
    let served = serve_standalone(
        "shop",
        &[p.clone(), r1.clone(), r2.clone()],
        Some((&store, "orca_client")),
    )
    .await;
    let base = served.api.base.clone();
    let ok = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--api", &base]);
        client(Some(TOKEN), &all)
    };

    let (code, out, err) = ok(&["clusters"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("standalone/shop") && out.contains(&p.to_string()),
        "{out}"
    );
    let (code, out, err) = ok(&["topology", "standalone/shop"]);
    assert_eq!(code, 0, "{err}");
    for k in [&p, &r1, &r2] {
        assert!(out.contains(&k.to_string()), "{out}");
    }
    let (code, _, err) = ok(&["topology", "standalone/nothing"]);
    assert_eq!(code, 3, "an unknown cluster: {err}");

    // A dry run prints the plan and changes nothing.
    let (r2s, r1s) = (r2.to_string(), r1.to_string());
    let (code, out, err) = ok(&[
        "relocate",
        &r2s,
        "--below",
        &r1s,
        "--dry-run",
        "--cluster",
        "standalone/shop",
    ]);
    assert_eq!(code, 0, "{err}{out}");
    assert!(out.contains("plan: relocate"), "{out}");
    assert_eq!(snapshot(&r2).await.replica.unwrap().source, p);
    // Refused, with the reason: the primary's replica cannot move up.
    let (code, _, err) = ok(&["move-up", &r1s, "--cluster", "standalone/shop"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no level above"), "{err}");
    // Not allowed: a wrong token; bad input: --seed and --api together.
    let (code, _, err) = client(
        Some("wrong-token-0123456789"),
        &["clusters", "--api", &base],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--token-file"), "{err}");
    assert!(!err.contains(TOKEN));
    let ps = p.to_string();
    let (code, _, err) = ok(&[
        "move-up",
        &r2s,
        "--seed",
        &ps,
        "--cluster",
        "standalone/shop",
    ]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = client(Some(TOKEN), &["move-up", &r2s]);
    assert_eq!(code, 2, "neither --seed nor --api: {err}");

    // Real: the relocate, then a graceful takeover under writes.
    let (code, out, err) = ok(&[
        "relocate",
        &r2s,
        "--below",
        &r1s,
        "--cluster",
        "standalone/shop",
    ]);
    assert_eq!(code, 0, "{err}{out}");
    assert!(out.contains("succeeded"), "{out}");
    wait_replicating_from(&r2, &r1).await;
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(30).await;
    let (code, out, err) = ok(&[
        "graceful-takeover",
        "--to",
        &r1s,
        "--cluster",
        "standalone/shop",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}{out}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["record"]["successor"], r1s, "{answer}");
    let acked = w.finish().await;
    assert_acked(&r1, &admin_credentials(), &acked).await;
    assert!(!snapshot(&r1).await.is_read_only());
    wait_replicating_from(&p, &r1).await;

    // Acknowledge and downtime go through the API only.
    let (code, _, err) = ok(&["acknowledge", "--cluster", "standalone/shop"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ok(&[
        "downtime",
        "begin",
        &ps,
        "--duration",
        "5m",
        "--cluster",
        "standalone/shop",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ok(&["downtime", "end", &ps, "--cluster", "standalone/shop"]);
    assert_eq!(code, 0, "{err}");

    // The history, from the store.
    let out = eventually(
        std::time::Duration::from_secs(30),
        "both in the history",
        || async {
            let (code, out, _) = ok(&["history", "standalone/shop"]);
            (code == 0 && out.contains("relocate") && out.contains("graceful-takeover"))
                .then_some(out)
        },
    )
    .await;
    assert!(out.contains("succeeded"), "{out}");
    let out = eventually(std::time::Duration::from_secs(30), "the audit", || async {
        let (code, out, _) = ok(&["history", "standalone/shop", "--audit"]);
        (code == 0 && out.contains("end-downtime")).then_some(out)
    })
    .await;
    assert!(out.contains("api") && out.contains("token"), "{out}");
    drop(served);
}
