//! Replica repair on MySQL: the worker re-provisions a replica with the
//! clone plugin (`CLONE INSTANCE`) instead of the agent's `mariadb-backup`
//! copy (see [`super::repair`] for the run, [`crate::mysql::clone`] for
//! the statements and the readers of the server's answers).
//!
//! The statement runs on its own connection in a spawned task, bounded by
//! [`super::repair::COPY_TIMEOUT`]: it blocks for the whole copy, and ends
//! with the connection's 2013 when the recipient restarts itself on the
//! copy. Each round reads `clone_status` and `clone_progress` on a short
//! connection of its own, and [`next`] (pure) says what to do: show the
//! progress, wait for the restart, restart the pod (3707), join from the
//! copy's position, or fail.

use jiff::civil::DateTime;
use mysql_async::prelude::Queryable;
use tokio::task::JoinHandle;

use crate::agent::CopyPhase;
use crate::mysql::Credentials;
use crate::mysql::MysqlError;
use crate::mysql::clone::{
    self as mc, Answer, CloneError, ClonePosition, CloneProgress, CloneStage, CloneState,
    CloneStatus, ProgressSummary, Sample, Statement,
};
use crate::mysql::conn::{Timeouts, connect, exec, query_rows};
use crate::topology::InstanceKey;

/// A clone under way: what the worker keeps of it between rounds.
#[derive(Debug)]
pub(super) struct CloneRun {
    /// The donors, best first; `donor` is the one of the attempt under
    /// way (the next is tried when the donor's own error failed it).
    pub donors: Vec<InstanceKey>,
    pub donor: usize,
    /// Attempts so far, this one included.
    pub attempt: u32,
    /// The task that runs `CLONE INSTANCE`, until its end is read.
    pub task: Option<JoinHandle<Ended>>,
    pub ended: Ended,
    pub baseline: Baseline,
    /// The last stage clone_progress showed.
    pub last_stage: Option<CloneStage>,
    /// The last progress sample, for the rate.
    pub sample: Option<Sample>,
    /// orca restarted the pod (3707).
    pub restarted: bool,
    /// When the attempt began, in seconds since the epoch.
    pub started_at: u64,
}

impl CloneRun {
    /// A run whose clone is about to start from `donors[0]`.
    pub fn new(donors: Vec<InstanceKey>, started_at: u64) -> Self {
        CloneRun {
            donors,
            donor: 0,
            attempt: 1,
            task: None,
            ended: Ended::Unknown,
            baseline: Baseline::Known(None),
            last_stage: None,
            sample: None,
            restarted: false,
            started_at,
        }
    }

    /// The donor of the attempt under way.
    pub fn donor(&self) -> Option<&InstanceKey> {
        self.donors.get(self.donor)
    }

    /// Stops the statement's connection (a run given up).
    pub fn abort(&mut self) {
        if let Some(h) = self.task.take() {
            h.abort();
        }
    }
}

/// `ER_NO_SUCH_TABLE`: performance_schema has no clone tables while the
/// plugin is not loaded.
const NO_SUCH_TABLE: u16 = 1146;

/// How `CLONE INSTANCE` ended, as far as the worker knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ended {
    /// Its connection still waits for the answer.
    Running,
    /// It answered OK (a clone into the data directory never does: it
    /// restarts the server).
    Ok,
    /// It answered with this error: the server's, or the client's 2013
    /// when the connection dropped; the text redacted.
    Error { code: u16, message: String },
    /// Not known: the run was taken up after an operator restart (the
    /// connection went with the operator), or the task was lost.
    Unknown,
}

/// What clone_status showed before this clone began: a row equal to it
/// is the last clone's, not this one's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Baseline {
    /// Read before the clone: the last clone's (id, begin), or none.
    Known(Option<(u32, Option<DateTime>)>),
    /// Not read (a run taken up from status): a row whose end is well
    /// before the run's start (more than any time zone's offset) is an
    /// older clone's.
    Unknown { started_utc: Option<DateTime> },
}

/// The largest offset of a server's time zone from UTC, and then some:
/// clone_status prints times in the server's zone.
const ZONE_SLACK_HOURS: i64 = 15;

/// The tables as this clone's: both emptied when clone_status still shows
/// the last clone (clone_progress keeps that clone's stages too).
pub(super) fn fresh(
    status: Option<CloneStatus>,
    progress: CloneProgress,
    baseline: &Baseline,
) -> (Option<CloneStatus>, CloneProgress) {
    let stale = match (&status, baseline) {
        (None, _) => false,
        (Some(s), Baseline::Known(Some(b))) => (s.id, s.begin) == *b,
        (Some(_), Baseline::Known(None)) => false,
        (Some(s), Baseline::Unknown { started_utc }) => match (s.end, started_utc) {
            (Some(end), Some(started)) => end
                .checked_add(jiff::Span::new().hours(ZONE_SLACK_HOURS))
                .is_ok_and(|e| e < *started),
            _ => false,
        },
    };
    if stale {
        (None, CloneProgress::default())
    } else {
        (status, progress)
    }
}

/// What the recipient showed this round.
#[derive(Debug, Clone, Copy)]
pub(super) enum Seen<'a> {
    /// It does not answer: restarting, or unreachable.
    Unreachable,
    /// Its clone tables, as [`fresh`] leaves them.
    Tables {
        status: Option<&'a CloneStatus>,
        progress: &'a CloneProgress,
    },
}

/// Everything [`next`] decides on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Observed<'a> {
    pub ended: &'a Ended,
    pub seen: Seen<'a>,
    /// The last stage clone_progress showed in an earlier round.
    pub last_stage: Option<CloneStage>,
    /// orca already restarted the pod for a 3707.
    pub restarted: bool,
    /// Now, and the previous progress sample, for the rate.
    pub now_ms: u64,
    pub previous: Option<Sample>,
}

/// What to do this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Next {
    /// The clone runs: show where it is.
    Copying {
        phase: CopyPhase,
        summary: ProgressSummary,
    },
    /// The recipient restarts on the copy (or is recovering it): wait,
    /// within the run's deadline, and read clone_status once it answers.
    Restarting,
    /// The copy is whole but `mysqld` has no supervisor to restart it
    /// (3707): restart the pod, then read clone_status.
    RestartPod,
    /// The clone completed: join the primary from here.
    Completed(ClonePosition),
    /// The clone failed.
    Failed(CloneError),
}

/// The next move of a clone under way, from how its statement ended and
/// what the recipient shows. Pure.
pub(super) fn next(o: Observed<'_>) -> Next {
    // A 3707 first: before the restart, clone_status may say anything
    // while the server still runs on its old data in memory.
    if let Ended::Error { code, message } = o.ended
        && mc::answer(*code, message, o.last_stage) == Answer::RestartNeeded
    {
        return if o.restarted {
            wait_or_read(o)
        } else {
            Next::RestartPod
        };
    }
    wait_or_read(o)
}

fn wait_or_read(o: Observed<'_>) -> Next {
    let (status, progress) = match o.seen {
        Seen::Unreachable => {
            return match o.ended {
                Ended::Error { code, message } => {
                    match mc::answer(*code, message, o.last_stage) {
                        // The recipient's verdict comes once it answers.
                        Answer::Restarting
                        | Answer::RestartNeeded
                        | Answer::Failed(CloneError::ConnectionLost { .. }) => Next::Restarting,
                        // Refused outright: nothing was copied.
                        Answer::Failed(e) => Next::Failed(e),
                    }
                }
                Ended::Running | Ended::Ok | Ended::Unknown => Next::Restarting,
            };
        }
        Seen::Tables { status, progress } => (status, progress),
    };
    if let Some(outcome) = status.and_then(CloneStatus::outcome) {
        return match outcome {
            Ok(pos) => Next::Completed(pos),
            Err(e) => Next::Failed(e),
        };
    }
    // clone_status: none (no clone of this run yet), or Not Started or
    // In Progress.
    // The furthest stage seen: the statement's answer is judged by where
    // the clone had got to when it came.
    let stage = progress.stage().max(o.last_stage);
    let copying = || Next::Copying {
        phase: mc::phase(status, stage),
        summary: progress.summary(o.now_ms, o.previous),
    };
    let under_way =
        status.is_some_and(|s| matches!(s.state, CloneState::NotStarted | CloneState::InProgress));
    match o.ended {
        Ended::Running => copying(),
        Ended::Unknown if under_way => copying(),
        Ended::Unknown | Ended::Ok => match mc::after_restart(status) {
            Ok(pos) => Next::Completed(pos),
            Err(e) => Next::Failed(e),
        },
        Ended::Error { code, message } => match mc::answer(*code, message, stage) {
            // Answering, not yet restarted (or recovering): wait.
            Answer::Restarting | Answer::RestartNeeded => Next::Restarting,
            // The client's connection went, the server's session goes on.
            Answer::Failed(CloneError::ConnectionLost { .. }) if under_way => copying(),
            Answer::Failed(e) => Next::Failed(e),
        },
    }
}

/// The error of a clone statement or connection as [`Ended`], redacted.
pub(super) fn ended_by(e: &MysqlError, statement: &Statement) -> Ended {
    match e {
        MysqlError::Server {
            source: mysql_async::Error::Server(s),
            ..
        } => Ended::Error {
            code: s.code,
            message: statement.redact(&s.message),
        },
        MysqlError::Server {
            source: mysql_async::Error::Io(_) | mysql_async::Error::Driver(_),
            ..
        } => Ended::Error {
            code: mc::code::SERVER_LOST,
            message: statement.redact(&format!(
                "Lost connection to MySQL server during query ({e})"
            )),
        },
        other => Ended::Error {
            code: 0,
            message: statement.redact(&other.to_string()),
        },
    }
}

/// Runs `statement` (a `CLONE INSTANCE`) on `recipient` in its own task,
/// on a connection of its own, bounded by `limit`.
pub(super) fn spawn(
    recipient: InstanceKey,
    creds: Credentials,
    timeouts: Timeouts,
    statement: Statement,
    limit: std::time::Duration,
) -> JoinHandle<Ended> {
    tokio::spawn(async move {
        let mut conn = match connect(&recipient, &creds, timeouts).await {
            Ok(c) => c,
            Err(e) => {
                return Ended::Error {
                    code: 0,
                    message: statement.redact(&format!("connecting to run the clone: {e}")),
                };
            }
        };
        let run = crate::mysql::conn::bounded(
            &recipient,
            limit,
            "cloning",
            conn.query_drop(statement.sql()),
        )
        .await;
        match run {
            Ok(()) => Ended::Ok,
            Err(e) => ended_by(&e, &statement),
        }
    })
}

/// One short connection's read of the recipient's clone tables: `None`
/// when it does not answer (restarting). Tables that do not exist (the
/// plugin not loaded) read as empty.
pub(super) async fn read_tables(
    key: &InstanceKey,
    creds: &Credentials,
    t: Timeouts,
) -> Result<(Option<CloneStatus>, CloneProgress), String> {
    let mut conn = connect(key, creds, t).await.map_err(|e| e.to_string())?;
    let status = match query_rows(
        &mut conn,
        key,
        t.query,
        "reading clone_status",
        mc::STATUS_QUERY,
    )
    .await
    {
        Ok(rows) => mc::clone_status(&rows).map_err(|e| e.to_string())?,
        Err(e) if e.server_code() == Some(NO_SUCH_TABLE) => None,
        Err(e) => return Err(e.to_string()),
    };
    let progress = match query_rows(
        &mut conn,
        key,
        t.query,
        "reading clone_progress",
        mc::PROGRESS_QUERY,
    )
    .await
    {
        Ok(rows) => mc::clone_progress(&rows).map_err(|e| e.to_string())?,
        Err(e) if e.server_code() == Some(NO_SUCH_TABLE) => CloneProgress::default(),
        Err(e) => return Err(e.to_string()),
    };
    let _ = tokio::time::timeout(t.query, conn.disconnect()).await;
    Ok((status, progress))
}

/// The clone plugin on `key`, made ready: installed when absent (the
/// fence checked first, by `leads`), an error when it is unusable.
pub(super) async fn ensure_plugin(
    key: &InstanceKey,
    creds: &Credentials,
    t: Timeouts,
    leads: impl Fn() -> bool,
) -> Result<(), String> {
    let mut conn = connect(key, creds, t).await.map_err(|e| e.to_string())?;
    let rows = query_rows(
        &mut conn,
        key,
        t.query,
        "reading the clone plugin",
        mc::PLUGIN_QUERY,
    )
    .await
    .map_err(|e| e.to_string())?;
    let result = match mc::plugin(&rows).install() {
        Ok(None) => Ok(()),
        Ok(Some(_)) if !leads() => Err("not the leader of the current epoch".to_string()),
        Ok(Some(sql)) => exec(&mut conn, key, t.query, "installing the clone plugin", sql)
            .await
            .map_err(|e| format!("{sql}: {e}")),
        Err(e) => Err(e),
    };
    let _ = tokio::time::timeout(t.query, conn.disconnect()).await;
    result
}

/// On the recipient, before the clone: its last clone (the baseline) and
/// `SET GLOBAL clone_valid_donor_list` naming `donors` (the fence checked
/// first).
pub(super) async fn prepare_recipient(
    key: &InstanceKey,
    creds: &Credentials,
    t: Timeouts,
    donors: &[InstanceKey],
    leads: impl Fn() -> bool,
) -> Result<Baseline, String> {
    let set = mc::set_donor_list(donors).map_err(|e| e.to_string())?;
    let (status, _) = read_tables(key, creds, t).await?;
    if !leads() {
        return Err("not the leader of the current epoch".into());
    }
    let mut conn = connect(key, creds, t).await.map_err(|e| e.to_string())?;
    let r = exec(
        &mut conn,
        key,
        t.query,
        "setting clone_valid_donor_list",
        &set,
    )
    .await
    .map_err(|e| format!("{set}: {e}"));
    let _ = tokio::time::timeout(t.query, conn.disconnect()).await;
    r?;
    Ok(Baseline::Known(status.map(|s| (s.id, s.begin))))
}

/// Seconds between a clone's begin and end, when both are known.
pub(super) fn seconds(status_begin: Option<DateTime>, status_end: Option<DateTime>) -> Option<f64> {
    let (b, e) = (status_begin?, status_end?);
    let d = e.duration_since(b).as_secs_f64();
    (d >= 0.0).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::parse::TextRow;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fixture {
        #[serde(default)]
        statement: Option<Stmt>,
        #[serde(default)]
        clone_status: Option<Vec<TextRow>>,
        #[serde(default)]
        clone_progress: Option<Vec<TextRow>>,
    }

    #[derive(Deserialize)]
    struct Stmt {
        error: Err,
    }

    #[derive(Deserialize)]
    struct Err {
        code: u16,
        message: String,
    }

    const FILE_COPY: &str =
        include_str!("../../../tests/fixtures/mysql/clone/mysql843_clone_file_copy.json");
    const RESTART: &str =
        include_str!("../../../tests/fixtures/mysql/clone/mysql843_clone_restart.json");
    const COMPLETED: &str =
        include_str!("../../../tests/fixtures/mysql/clone/mysql843_clone_completed.json");
    const DONOR_LIST: &str =
        include_str!("../../../tests/fixtures/mysql/clone/mysql843_clone_donor_list.json");
    const PRIVILEGE: &str =
        include_str!("../../../tests/fixtures/mysql/clone/mysql843_clone_donor_privilege.json");

    /// A fixture's tables and its statement's answer.
    fn moment(text: &str) -> (Option<CloneStatus>, CloneProgress, Option<Ended>) {
        let f: Fixture = serde_json::from_str(text).unwrap();
        let status = mc::clone_status(&f.clone_status.unwrap_or_default()).unwrap();
        let progress = mc::clone_progress(&f.clone_progress.unwrap_or_default()).unwrap();
        let ended = f.statement.map(|s| Ended::Error {
            code: s.error.code,
            message: s.error.message,
        });
        (status, progress, ended)
    }

    /// What `next` says, in short.
    fn kind(n: &Next) -> String {
        match n {
            Next::Copying { phase, summary } => {
                format!("copying {phase:?} {:?} {}", summary.stage, summary.bytes)
            }
            Next::Restarting => "restarting".into(),
            Next::RestartPod => "restart pod".into(),
            Next::Completed(p) => format!("completed {}", p.gtid_executed.count()),
            Next::Failed(e) => format!("failed {e}"),
        }
    }

    fn lost() -> Ended {
        Ended::Error {
            code: 2013,
            message: "Lost connection to MySQL server during query".into(),
        }
    }

    fn restart_failed() -> Ended {
        Ended::Error {
            code: 3707,
            message: "Restart server failed (mysqld is not managed by supervisor process).".into(),
        }
    }

    /// `next` on `ended` and `at` (the tables of a moment, or `None`: the
    /// recipient does not answer).
    fn decide(
        ended: &Ended,
        at: Option<&(Option<CloneStatus>, CloneProgress)>,
        last_stage: Option<CloneStage>,
        restarted: bool,
    ) -> Next {
        let seen = match at {
            None => Seen::Unreachable,
            Some((status, progress)) => Seen::Tables {
                status: status.as_ref(),
                progress,
            },
        };
        next(Observed {
            ended,
            seen,
            last_stage,
            restarted,
            now_ms: 20_000,
            previous: None,
        })
    }

    #[test]
    fn what_to_do_next_from_the_recorded_moments() {
        let tables = |text: &str| {
            let (s, p, e) = moment(text);
            ((s, p), e)
        };
        let (fc, _) = tables(FILE_COPY);
        let (rs, restart_answer) = tables(RESTART);
        let (co, _) = tables(COMPLETED);
        let (dl, dl_answer) = tables(DONOR_LIST);
        let (pr, pr_answer) = tables(PRIVILEGE);
        let empty = (None, CloneProgress::default());
        let (restart_answer, dl_answer, pr_answer) = (
            restart_answer.unwrap(),
            dl_answer.unwrap(),
            pr_answer.unwrap(),
        );
        use CloneStage::{FileCopy, Restart};
        // (what, ended, tables or unreachable, last stage, restarted, want)
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            &str,
            Ended,
            Option<&(Option<CloneStatus>, CloneProgress)>,
            Option<CloneStage>,
            bool,
            &str,
        )> = vec![
            (
                "in FILE COPY",
                Ended::Running,
                Some(&fc),
                None,
                false,
                "copying Streaming Some(FileCopy) 1342177280",
            ),
            (
                "at RESTART, the statement still waiting",
                Ended::Running,
                Some(&rs),
                Some(FileCopy),
                false,
                "copying Swapping Some(Restart) 3236429824",
            ),
            (
                "the 2013 at RESTART, the server gone",
                restart_answer.clone(),
                None,
                Some(Restart),
                false,
                "restarting",
            ),
            (
                "the 2013 at RESTART, the server not yet gone",
                restart_answer.clone(),
                Some(&rs),
                Some(Restart),
                false,
                "restarting",
            ),
            (
                "the 2013 at RESTART, back but still In Progress",
                restart_answer.clone(),
                Some(&fc),
                Some(Restart),
                false,
                "restarting",
            ),
            (
                "back after the restart",
                restart_answer.clone(),
                Some(&co),
                Some(Restart),
                false,
                "completed 1589",
            ),
            (
                "taken up after an operator restart, completed",
                Ended::Unknown,
                Some(&co),
                None,
                false,
                "completed 1589",
            ),
            (
                "taken up in FILE COPY",
                Ended::Unknown,
                Some(&fc),
                None,
                false,
                "copying Streaming Some(FileCopy) 1342177280",
            ),
            (
                "taken up while it restarts",
                Ended::Unknown,
                None,
                None,
                false,
                "restarting",
            ),
            (
                "a 2013 in FILE COPY, the server's session going on",
                lost(),
                Some(&fc),
                Some(FileCopy),
                false,
                "copying Streaming Some(FileCopy) 1342177280",
            ),
            (
                "a 2013 in FILE COPY, the server gone: its verdict awaited",
                lost(),
                None,
                Some(FileCopy),
                false,
                "restarting",
            ),
            (
                "3707: the pod to restart",
                restart_failed(),
                Some(&rs),
                Some(Restart),
                false,
                "restart pod",
            ),
            (
                "3707, whatever clone_status says before the restart",
                restart_failed(),
                Some(&co),
                Some(Restart),
                false,
                "restart pod",
            ),
            (
                "3707, the pod restarted, not answering yet",
                restart_failed(),
                None,
                Some(Restart),
                true,
                "restarting",
            ),
            (
                "3707, the pod restarted and back",
                restart_failed(),
                Some(&co),
                Some(Restart),
                true,
                "completed 1589",
            ),
            // Refusals and failures: the classified message says what to do.
            (
                "the donor list refused, clone_status empty",
                dl_answer.clone(),
                Some(&dl),
                None,
                false,
                "failed the recipient refused donor 10.0.1.11:3306: it is not in clone_valid_donor_list",
            ),
            (
                "the donor list refused, the recipient unreachable",
                dl_answer,
                None,
                None,
                false,
                "failed the recipient refused donor",
            ),
            (
                "the donor lacks BACKUP_ADMIN: clone_status Failed",
                pr_answer.clone(),
                Some(&pr),
                None,
                false,
                "failed the donor refused: the clone account lacks BACKUP_ADMIN on the donor: GRANT BACKUP_ADMIN ON *.*",
            ),
            (
                "clone_status Failed, the statement still waiting",
                Ended::Running,
                Some(&pr),
                None,
                false,
                "failed the donor refused: the clone account lacks BACKUP_ADMIN",
            ),
            (
                "taken up, no clone ever ran",
                Ended::Unknown,
                Some(&empty),
                None,
                false,
                "failed clone error 0: clone_status is empty",
            ),
            (
                "a 2013 before the clone began",
                lost(),
                Some(&empty),
                None,
                false,
                "failed the connection to the recipient was lost during the clone",
            ),
            (
                "an OK, never for a clone into the data directory, with no row",
                Ended::Ok,
                Some(&empty),
                None,
                false,
                "failed clone error 0: clone_status is empty",
            ),
        ];
        for (what, ended, at, last_stage, restarted, want) in cases {
            let got = kind(&decide(&ended, at, last_stage, restarted));
            assert!(got.starts_with(want), "{what}: {got}");
        }
    }

    #[test]
    fn the_rate_comes_from_the_previous_sample() {
        let (s, p, _) = moment(FILE_COPY);
        let ended = Ended::Running;
        let seen = Seen::Tables {
            status: s.as_ref(),
            progress: &p,
        };
        let first = next(Observed {
            ended: &ended,
            seen,
            last_stage: None,
            restarted: false,
            now_ms: 10_000,
            previous: None,
        });
        let Next::Copying { summary, .. } = first else {
            panic!("{first:?}");
        };
        assert_eq!(summary.rate, 89_478_485, "the server's own speed");
        assert_eq!(summary.estimated_bytes, 3_221_225_472);
        let later = next(Observed {
            ended: &ended,
            seen,
            last_stage: None,
            restarted: false,
            now_ms: 12_000,
            previous: Some(Sample {
                bytes: summary.bytes - 100_000_000,
                at_ms: 10_000,
            }),
        });
        let Next::Copying { summary, .. } = later else {
            panic!("{later:?}");
        };
        assert_eq!(summary.rate, 50_000_000);
    }

    #[test]
    fn the_last_clone_is_no_news() {
        let (s, p, _) = moment(COMPLETED);
        let row = s.clone().unwrap();
        let begin = row.begin;
        // (baseline, stale)
        let at = |s: &str| -> DateTime { s.parse().unwrap() };
        let cases = [
            (Baseline::Known(None), false),
            (Baseline::Known(Some((row.id, begin))), true),
            (
                Baseline::Known(Some((row.id, Some(at("2024-11-17T09:00:00"))))),
                false,
            ),
            (Baseline::Unknown { started_utc: None }, false),
            (
                Baseline::Unknown {
                    started_utc: Some(at("2024-11-18T10:20:00")),
                },
                false,
            ),
            (
                Baseline::Unknown {
                    started_utc: Some(at("2024-11-19T10:20:00")),
                },
                true,
            ),
        ];
        for (baseline, stale) in cases {
            let (status, progress) = fresh(s.clone(), p.clone(), &baseline);
            assert_eq!(status.is_none(), stale, "{baseline:?}");
            assert_eq!(progress.stages.is_empty(), stale, "{baseline:?}");
        }
        assert_eq!(seconds(row.begin, row.end).map(|s| s.round()), Some(47.0));
        assert_eq!(seconds(None, row.end), None);
    }

    #[test]
    fn a_dropped_connection_is_a_2013_and_secrets_stay_out() {
        let creds = Credentials::new("root", "s3cret");
        let st = mc::clone_instance(&"10.0.1.11:3306".parse().unwrap(), &creds, mc::Ssl::Default)
            .unwrap();
        let key: InstanceKey = "10.0.1.12:3306".parse().unwrap();
        let io = MysqlError::Server {
            key: key.clone(),
            what: "cloning",
            source: mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed),
        };
        let Ended::Error { code, message } = ended_by(&io, &st) else {
            panic!("not an error");
        };
        assert_eq!(code, 2013);
        assert!(message.starts_with("Lost connection"), "{message}");
        let timeout = MysqlError::Answer {
            key,
            what: "cloning",
            detail: "near 's3cret'".into(),
        };
        let Ended::Error { code, message } = ended_by(&timeout, &st) else {
            panic!("not an error");
        };
        assert_eq!(code, 0);
        assert!(!message.contains("s3cret"), "{message}");
    }
}
