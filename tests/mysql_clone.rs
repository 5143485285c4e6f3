//! MySQL 8's clone plugin (`orca::mysql::clone`) over server answers kept
//! as fixtures in `tests/fixtures/mysql/clone/`: no MySQL server runs
//! here, so what MySQL prints is kept once and replayed through the pure
//! readers, as for the dialect (`tests/mysql_dialects.rs`).
//!
//! Each fixture is one moment of a clone of the MySQL 8.4 replica
//! 10.0.1.12 (the one with errant transactions in the dialect's fixtures)
//! from 10.0.1.11: the answer to the plugin query, to
//! `SELECT * FROM performance_schema.clone_status` and `clone_progress`,
//! each row a JSON object of column → string or null as the server
//! printed it, and, when `CLONE INSTANCE` answered, its error. They
//! follow the clone plugin's table definitions (the columns, the state
//! and stage names, `timestamp(3)` and `timestamp(6)`), what the table
//! shows after the restart (PID 0, `LOCAL INSTANCE`), and MySQL's error
//! texts.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::collections::BTreeSet;

use orca::agent::CopyPhase;
use orca::mysql::Credentials;
use orca::mysql::clone::{
    self, Answer, Attempt, CloneError, CloneSource, CloneStage, CloneState, DonorError, Plugin, Ssl,
};
use orca::mysql::parse::TextRow;
use orca::topology::{BinlogCoordinates, Flavor, GtidSet, InstanceKey};
use serde::Deserialize;

const OLD: &str = "4b2c1e0a-7f3d-11ef-8c0e-0a58ac1f020e";
const P: &str = "6e3a51c4-9e6a-11ef-b5a4-0a58ac1f0210";
/// The recipient's own server_uuid: its errant transactions.
const E: &str = "8d04f7b6-9e6a-11ef-a3c2-0a58ac1f0212";

/// The documented columns of the two tables, in their order.
const STATUS_COLUMNS: &str = "ID PID STATE BEGIN_TIME END_TIME SOURCE DESTINATION ERROR_NO \
                              ERROR_MESSAGE BINLOG_FILE BINLOG_POSITION GTID_EXECUTED";
const PROGRESS_COLUMNS: &str = "ID STAGE STATE BEGIN_TIME END_TIME THREADS ESTIMATE DATA NETWORK \
                                DATA_SPEED NETWORK_SPEED";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    description: String,
    server: String,
    #[serde(default)]
    plugins: Option<Vec<TextRow>>,
    #[serde(default)]
    statement: Option<Statement>,
    #[serde(default)]
    clone_status: Option<Vec<TextRow>>,
    #[serde(default)]
    clone_progress: Option<Vec<TextRow>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Statement {
    /// As orca shows it: redacted.
    sql: String,
    error: ServerError,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerError {
    code: u16,
    message: String,
}

fn load(name: &str) -> Fixture {
    fixtures::load(&fixtures::dir("mysql/clone"), name)
}

fn all() -> Vec<(String, Fixture)> {
    fixtures::all(&fixtures::dir("mysql/clone"))
}

fn status(name: &str) -> Option<clone::CloneStatus> {
    clone::clone_status(load(name).clone_status.as_deref().unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn progress(name: &str) -> clone::CloneProgress {
    clone::clone_progress(load(name).clone_progress.as_deref().unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn key(s: &str) -> InstanceKey {
    s.parse().unwrap()
}

fn my(s: &str) -> GtidSet {
    GtidSet::parse(Flavor::MySql, s).unwrap()
}

#[test]
fn fixtures_have_the_documented_columns() {
    let fixtures = all();
    assert!(fixtures.len() >= 7, "fixtures missing: {}", fixtures.len());
    let want_status: Vec<&str> = STATUS_COLUMNS.split_whitespace().collect();
    let want_progress: Vec<&str> = PROGRESS_COLUMNS.split_whitespace().collect();
    let stage_names: BTreeSet<&str> = CloneStage::ALL.iter().map(|s| s.name()).collect();
    for (name, f) in &fixtures {
        assert!(!f.description.is_empty(), "{name}");
        assert!(f.server.starts_with("MySQL 8."), "{name}: {}", f.server);
        assert!(f.plugins.is_some(), "{name}: every moment knows its plugin");
        for row in f.clone_status.iter().flatten() {
            let cols: BTreeSet<&str> = row.keys().map(String::as_str).collect();
            assert_eq!(cols, want_status.iter().copied().collect(), "{name}");
        }
        let rows = f.clone_progress.iter().flatten().collect::<Vec<_>>();
        assert!(
            rows.is_empty() || rows.len() == 7,
            "{name}: seven stages or none"
        );
        for (row, stage) in rows.iter().zip(CloneStage::ALL) {
            let cols: BTreeSet<&str> = row.keys().map(String::as_str).collect();
            assert_eq!(cols, want_progress.iter().copied().collect(), "{name}");
            let printed = row["STAGE"].as_deref().unwrap();
            assert!(stage_names.contains(printed), "{name}: {printed}");
            assert_eq!(printed, stage.name(), "{name}: stages in order");
        }
        // What orca shows of a statement never holds a password.
        if let Some(st) = &f.statement {
            assert!(st.sql.contains("IDENTIFIED BY '<redacted>'"), "{name}");
        }
        // Every answer reads.
        if let Some(rows) = &f.clone_status {
            clone::clone_status(rows).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        if let Some(rows) = &f.clone_progress {
            clone::clone_progress(rows).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn the_statement_orca_sends_is_the_one_recorded() {
    let creds = Credentials::new("orca_clone", "pw-9f2c'x");
    let donor = key("10.0.1.11:3306");
    // (fixture, ssl)
    for (name, ssl) in [
        ("mysql843_clone_donor_list.json", Ssl::Default),
        ("mysql843_clone_restart.json", Ssl::Require),
    ] {
        let st = clone::clone_instance(&donor, &creds, ssl).unwrap();
        assert_eq!(st.to_string(), load(name).statement.unwrap().sql, "{name}");
        assert!(st.sql().ends_with(match ssl {
            Ssl::Require => r"IDENTIFIED BY 'pw-9f2c\'x' REQUIRE SSL",
            _ => r"IDENTIFIED BY 'pw-9f2c\'x'",
        }));
    }
    assert_eq!(
        clone::set_donor_list(&[donor]).unwrap(),
        "SET GLOBAL clone_valid_donor_list = '10.0.1.11:3306'"
    );
}

#[test]
fn the_plugin_with_and_without() {
    // (fixture, state, what orca runs)
    let cases = [
        ("mysql843_plugin_absent.json", Plugin::Absent),
        (
            "mysql843_plugin_disabled.json",
            Plugin::Unusable("DISABLED".into()),
        ),
        ("mysql843_clone_file_copy.json", Plugin::Active),
    ];
    for (name, want) in cases {
        let got = clone::plugin(load(name).plugins.as_deref().unwrap());
        assert_eq!(got, want, "{name}");
    }
    let absent = clone::plugin(&load("mysql843_plugin_absent.json").plugins.unwrap());
    assert_eq!(
        absent.install(),
        Ok(Some("INSTALL PLUGIN clone SONAME 'mysql_clone.so'"))
    );
    let active = clone::plugin(&load("mysql843_clone_file_copy.json").plugins.unwrap());
    assert_eq!(active.install(), Ok(None));
    let disabled = clone::plugin(&load("mysql843_plugin_disabled.json").plugins.unwrap());
    assert!(disabled.install().is_err());
}

#[test]
fn a_clone_in_file_copy() {
    let name = "mysql843_clone_file_copy.json";
    let s = status(name).unwrap();
    assert_eq!(s.state, CloneState::InProgress);
    assert_eq!(s.pid, 24);
    assert_eq!(s.source, CloneSource::Remote(key("10.0.1.11:3306")));
    assert_eq!(s.destination, "LOCAL INSTANCE");
    assert_eq!(s.end, None);
    assert_eq!(s.error, None);
    assert_eq!(s.position.binlog, None);
    assert!(s.position.gtid_executed.is_empty());
    assert_eq!(s.outcome(), None, "still running");

    let p = progress(name);
    assert_eq!(p.id, 1);
    assert_eq!(p.stage(), Some(CloneStage::FileCopy));
    assert_eq!(p.failed_stage(), None);
    let file_copy = &p.stages[1];
    assert_eq!(file_copy.threads, 4);
    assert_eq!(file_copy.end, None);
    assert_eq!(
        file_copy.begin.unwrap().to_string(),
        "2024-11-18T10:21:05.712183"
    );
    assert!(
        p.stages[2..]
            .iter()
            .all(|s| s.state == CloneState::NotStarted && s.begin.is_none())
    );

    // The summary: 1.25 GiB of 3 GiB; without an earlier sample the rate is
    // the server's own; with one, what moved between the two.
    let now_ms = 1_000_000;
    let first = p.summary(now_ms, None);
    assert_eq!(first.bytes, 1_342_177_280);
    assert_eq!(first.estimated_bytes, 3_221_225_472);
    assert_eq!(first.network_bytes, 1_342_523_619);
    assert_eq!(first.percent(), Some(41));
    assert_eq!(first.rate, 89_478_485);
    let earlier = clone::Sample {
        bytes: 1_342_177_280 - 200 * 1024 * 1024,
        at_ms: now_ms - 2_000,
    };
    assert_eq!(p.summary(now_ms, Some(earlier)).rate, 100 * 1024 * 1024);

    // As the agent reports its copies.
    let donor = key("10.0.1.11:3306");
    let attempt = Attempt {
        id: "reprovision-mysql-2",
        donor: &donor,
        attempt: 1,
        started_at: 1_731_925_265,
        updated_at: 1_731_925_280,
    };
    let c = clone::copy_progress(&attempt, Some(&s), &first);
    assert_eq!(c.phase, CopyPhase::Streaming);
    assert_eq!(c.source, "10.0.1.11:3306");
    assert_eq!(c.bytes, 1_342_177_280);
    assert_eq!(c.estimated_bytes, Some(3_221_225_472));
    assert_eq!(c.rate, 89_478_485);
    assert_eq!(c.error, None);
}

#[test]
fn the_restart_drops_the_connection_and_is_the_normal_end() {
    let name = "mysql843_clone_restart.json";
    let f = load(name);
    let p = progress(name);
    assert_eq!(p.stage(), Some(CloneStage::Restart));
    assert!(
        p.stages[..5]
            .iter()
            .all(|s| s.state == CloneState::Completed)
    );
    let summary = p.summary(0, None);
    assert_eq!(summary.bytes, summary.estimated_bytes, "the copy is whole");
    assert_eq!(summary.percent(), Some(100));
    assert_eq!(
        clone::phase(status(name).as_ref(), p.stage()),
        CopyPhase::Swapping
    );

    let err = f.statement.unwrap().error;
    assert_eq!(err.code, 2013);
    assert_eq!(
        clone::answer(err.code, &err.message, p.stage()),
        Answer::Restarting
    );
    // The same error mid-copy is a lost connection, not the restart.
    assert!(matches!(
        clone::answer(err.code, &err.message, Some(CloneStage::FileCopy)),
        Answer::Failed(CloneError::ConnectionLost { code: 2013, .. })
    ));
    // Whether it worked is for clone_status to say once the server is back.
    assert!(clone::after_restart(status(name).as_ref()).is_err());
    assert!(clone::after_restart(status("mysql843_clone_completed.json").as_ref()).is_ok());
}

#[test]
fn a_completed_clone_carries_its_position() {
    let name = "mysql843_clone_completed.json";
    let s = status(name).unwrap();
    assert_eq!(s.state, CloneState::Completed);
    assert_eq!(
        s.pid, 0,
        "read back from the data directory after the restart"
    );
    assert_eq!(s.end.unwrap().to_string(), "2024-11-18T10:21:52.016");
    let pos = clone::after_restart(Some(&s)).unwrap();
    assert_eq!(
        pos.binlog,
        Some(BinlogCoordinates::new("binlog.000007", 48_251_906))
    );
    // GTID_EXECUTED as MySQL prints it (a newline after each comma,
    // several intervals of one source), through the project's parser.
    assert_eq!(
        pos.gtid_executed,
        my(&format!("{OLD}:1-37,{P}:1-1549:1551-1553"))
    );
    assert_eq!(pos.gtid_executed.count(), 37 + 1549 + 3);
    // The set prints canonically; the raw text had the newline.
    assert_eq!(
        pos.gtid_executed.to_string(),
        format!("{OLD}:1-37,{P}:1-1549:1551-1553")
    );
    let raw = load(name).clone_status.unwrap()[0]["GTID_EXECUTED"]
        .clone()
        .unwrap();
    assert!(raw.contains(",\n"), "{raw:?}");
    // The recipient's errant transactions went with its old data; what the
    // primary had when they were found is all there.
    let errant_replica = my(&format!("{OLD}:1-37,{P}:1-1542,{E}:1-2"));
    let primary_then = my(&format!("{OLD}:1-37,{P}:1-1542"));
    assert_eq!(pos.gtid_executed.contains(&primary_then), Some(true));
    assert_eq!(pos.gtid_executed.contains(&errant_replica), Some(false));
    assert!(!pos.gtid_executed.as_mysql().unwrap().sources().contains(&E));

    let p = progress(name);
    assert!(p.stages.iter().all(|s| s.state == CloneState::Completed));
    assert_eq!(p.stage(), Some(CloneStage::Recovery));
    assert!(
        p.stages.iter().all(|s| s.data_speed == 0),
        "no speed once done"
    );
    let c = clone::copy_progress(
        &Attempt {
            id: "op",
            donor: &key("10.0.1.11:3306"),
            attempt: 1,
            started_at: 0,
            updated_at: 47,
        },
        Some(&s),
        &p.summary(47_000, None),
    );
    assert_eq!(c.phase, CopyPhase::Done);
    assert_eq!(c.bytes, 3_221_225_472 + 12_058_624 + 3_145_728);
}

#[test]
fn the_donor_list_error_is_refused_before_any_clone() {
    let name = "mysql843_clone_donor_list.json";
    let err = load(name).statement.unwrap().error;
    assert_eq!(err.code, 3869);
    let got = clone::answer(err.code, &err.message, None);
    let Answer::Failed(e) = got else {
        panic!("{got:?}")
    };
    assert_eq!(
        e,
        CloneError::NotInDonorList {
            donor: "10.0.1.11:3306".into(),
            list: String::new(),
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("10.0.1.11:3306") && msg.contains("clone_valid_donor_list"),
        "{msg}"
    );
    assert!(
        !e.try_another_donor(),
        "the recipient's list, not the donor"
    );
    // Refused before it began: no clone in the tables.
    assert_eq!(status(name), None);
    assert!(progress(name).stages.is_empty());
    assert!(clone::after_restart(status(name).as_ref()).is_err());
}

#[test]
fn a_donor_without_backup_admin() {
    let name = "mysql843_clone_donor_privilege.json";
    let s = status(name).unwrap();
    assert_eq!(s.state, CloneState::Failed);
    let e = s.error.clone().unwrap();
    assert_eq!(e.code, 3862);
    let want = CloneError::Donor(DonorError::Privilege("BACKUP_ADMIN".into()));
    assert_eq!(s.outcome(), Some(Err(want.clone())));
    // The statement's answer says the same.
    let st = load(name).statement.unwrap().error;
    assert_eq!(
        clone::answer(st.code, &st.message, None),
        Answer::Failed(want.clone())
    );
    let msg = want.to_string();
    assert!(msg.contains("GRANT BACKUP_ADMIN ON *.*"), "{msg}");
    assert_eq!(clone::phase(Some(&s), None), CopyPhase::Failed);
    assert_eq!(
        clone::grant_cluster("orca_clone").unwrap(),
        "GRANT BACKUP_ADMIN, CLONE_ADMIN ON *.* TO 'orca_clone'@'%'"
    );
}
