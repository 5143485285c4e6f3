//! The client commands: they ask a running orca (`orca standalone
//! --listen`, the operator) through its HTTP API instead of talking to the
//! servers. `orca clusters`, `orca topology NS/NAME` and `orca history
//! NS/NAME` read; `orca acknowledge` and `orca downtime begin|end` change
//! what the running orca does; the one-shot operations ([`super::ops`])
//! given `--api` instead of `--seed` are posted here too
//! ([`operate_op`]).
//!
//! Exit codes, as for the one-shot operations: 0 done (succeeded,
//! planned), 1 failed (rolled back, deposed; the API unreachable, a 5xx,
//! the token refused), 2 bad input (a bad flag; the API's 400, 413, 415,
//! 422), 3 refused (409; 404 for a cluster or an instance orca does not
//! know), 4 vetoed.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ops::{EXIT_REFUSED, EXIT_VETOED, Op, print_plan, print_record};
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, discover};
use crate::api::model::{ErrorBody, rfc3339_s};
use crate::engine::executor::OperationRecord;
use crate::k8s::crd::parse_duration;
use crate::plan::Plan;
use crate::topology::InstanceKey;
use crate::topology::graph::Role;
use crate::topology::instance::Snapshot;

/// How long a read waits for its answer, by default.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an operation waits for its answer (the record), by default:
/// as long as the API lets it run.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(300);

/// How to reach a running orca's HTTP API.
#[derive(Debug, Clone, Default, Args)]
pub struct ApiClientArgs {
    /// The HTTP API of a running orca (`orca standalone --listen`, the
    /// operator), e.g. http://127.0.0.1:8080.
    #[arg(long, env = "ORCA_API", value_name = "URL")]
    pub api: Option<String>,
    /// File whose first line is the API's bearer token; otherwise the
    /// ORCA_API_TOKEN environment variable is read.
    #[arg(long, env = "ORCA_API_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Time limit of the request, e.g. 30s (default: 5m for an
    /// operation, 10s for a read).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

/// A command's failure: its exit code and one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    pub(crate) fn failed(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }
}

/// The exit code of an HTTP status the API answered with (not a 2xx).
pub fn exit_for_status(status: u16) -> u8 {
    match status {
        400 | 405 | 413 | 415 | 422 => EXIT_USAGE,
        404 | 409 => EXIT_REFUSED,
        _ => EXIT_FAILED,
    }
}

/// The exit code of an operation's outcome, as the API names it.
pub fn exit_for_outcome(outcome: &str) -> u8 {
    match outcome {
        "planned" | "succeeded" | "done" | "accepted" => EXIT_OK,
        "vetoed" => EXIT_VETOED,
        // failed, rolled_back, deposed, and whatever this client does not
        // know.
        _ => EXIT_FAILED,
    }
}

/// `NAMESPACE/NAME`.
pub fn parse_cluster(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!(
            "the cluster {s:?} is not NAMESPACE/NAME (`standalone/NAME` for `orca standalone --cluster NAME`)"
        )),
    }
}

/// The API's base URL: http or https, no credentials in it.
pub fn parse_base(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s.trim()).map_err(|e| format!("--api {s:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "--api {s:?}: the URL must start with http:// or https://"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: it holds a secret.
        return Err(
            "--api: put no credentials in the URL; the token goes in --token-file or ORCA_API_TOKEN"
                .into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("--api {s:?}: no query or fragment, please"));
    }
    Ok(url)
}

/// A token as a header value takes: visible ASCII, no spaces.
fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic())
}

/// A connection to the API.
pub struct Client {
    base: reqwest::Url,
    token: Option<String>,
    timeout: Duration,
    http: reqwest::Client,
}

impl ApiClientArgs {
    /// Whether `--api` came from the ORCA_API environment variable.
    fn api_from_env(&self) -> bool {
        self.api.is_some() && std::env::var("ORCA_API").ok() == self.api
    }

    /// The client, `default_timeout` unless `--timeout`.
    pub fn client(&self, default_timeout: Duration) -> Result<Client, Failure> {
        let Some(api) = &self.api else {
            return Err(Failure::usage(
                "--api URL (or ORCA_API) is required: the address of a running orca's API",
            ));
        };
        let base = parse_base(api).map_err(Failure::usage)?;
        let timeout = match &self.timeout {
            None => default_timeout,
            Some(t) => match parse_duration(t) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => return Err(Failure::usage("--timeout must be above 0")),
                Err(e) => return Err(Failure::usage(format!("--timeout: {e}"))),
            },
        };
        let token = match &self.token_file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    Failure::usage(format!("cannot read the token file {}: {e}", p.display()))
                })?;
                let t = text.lines().next().unwrap_or_default().trim().to_string();
                if !valid_token(&t) {
                    return Err(Failure::usage(format!(
                        "the token file {} holds no token on its first line (visible ASCII, no spaces)",
                        p.display()
                    )));
                }
                Some(t)
            }
            None => match std::env::var("ORCA_API_TOKEN") {
                Ok(t) if !t.trim().is_empty() => {
                    let t = t.trim().to_string();
                    if !valid_token(&t) {
                        return Err(Failure::usage(
                            "ORCA_API_TOKEN is not a token (visible ASCII, no spaces)",
                        ));
                    }
                    Some(t)
                }
                _ => None,
            },
        };
        let http = crate::api::http_client(timeout).map_err(Failure::failed)?;
        Ok(Client {
            base,
            token,
            timeout,
            http,
        })
    }
}

/// What to say about a 401 or 403.
const TOKEN_HINT: &str =
    "hint: give the API's token with --token-file FILE (or ORCA_API_TOKEN_FILE, ORCA_API_TOKEN)";

/// The error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s = s.to_string();
        if !out.contains(&s) {
            let _ = write!(out, ": {s}");
        }
        source = s_source(source);
    }
    out
}

fn s_source<'a>(
    e: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    e.and_then(|e| e.source())
}

/// The one line of an error answer: the API's `error`, or the start of
/// whatever else answered.
fn error_line(status: reqwest::StatusCode, body: &str) -> String {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(b) => match b.leader {
            Some(l) if !b.error.contains(&l) => format!("{} (the leader: {l})", b.error),
            _ => b.error,
        },
        Err(_) => {
            let first: String = body
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            if first.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("no reason given")
                    .to_string()
            } else {
                first
            }
        }
    }
}

impl Client {
    /// The URL of `segments` below the base (each one escaped).
    pub fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base.clone();
        // An http(s) URL always has a path to extend.
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty().extend(segments);
        }
        url
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let unreachable = |e: reqwest::Error| {
            Failure::failed(if e.is_timeout() {
                format!(
                    "no answer from the API at {} within {} s",
                    self.base,
                    self.timeout.as_secs_f64()
                )
            } else {
                format!(
                    "cannot reach the API at {}: {}",
                    self.base,
                    chain(&e.without_url())
                )
            })
        };
        let r = req.send().await.map_err(unreachable)?;
        let status = r.status();
        let body = r.text().await.map_err(unreachable)?;
        if status.is_success() {
            return serde_json::from_str(&body).map_err(|e| {
                Failure::failed(format!(
                    "the API at {} answered {} with no JSON: {e}",
                    self.base,
                    status.as_u16()
                ))
            });
        }
        let line = error_line(status, &body);
        let mut message = format!("{line} (HTTP {})", status.as_u16());
        if matches!(status.as_u16(), 401 | 403) {
            let _ = write!(message, "\n{TOKEN_HINT}");
        }
        Err(Failure {
            code: exit_for_status(status.as_u16()),
            message,
        })
    }

    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Value, Failure> {
        self.send(self.http.get(self.url(segments)).query(query))
            .await
    }

    pub async fn post(&self, segments: &[&str], body: &impl Serialize) -> Result<Value, Failure> {
        self.send(self.http.post(self.url(segments)).json(body))
            .await
    }
}

/// An answer in the shape this client knows.
fn shape<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> Result<T, Failure> {
    T::deserialize(v).map_err(|e| Failure::failed(format!("an unexpected answer for {what}: {e}")))
}

fn print_json(v: &Value) -> Result<(), Failure> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Failure::failed(e.to_string()))?;
    println!("{s}");
    Ok(())
}

/// Prints the failure and returns its code.
fn finish(name: &str, r: Result<u8, Failure>) -> u8 {
    match r {
        Ok(code) => code,
        Err(f) => {
            eprintln!("orca {name}: {}", f.message);
            f.code
        }
    }
}

/// A table: a header row and columns as wide as their widest cell (the
/// last one not padded).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                let pad = widths.get(i).copied().unwrap_or(0);
                let _ = write!(line, "{c:<pad$}  ");
            } else {
                line.push_str(c);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn or_dash(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "-".to_string(),
    }
}

// ---- the shapes of the API's answers this client reads ----

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InProgress {
    kind: String,
    target: Option<String>,
    started_at: String,
}

impl InProgress {
    fn line(&self) -> String {
        match &self.target {
            Some(t) => format!("{} {t} since {}", self.kind, self.started_at),
            None => format!("{} since {}", self.kind, self.started_at),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    namespace: String,
    name: String,
    primary: Option<String>,
    healthy: bool,
    instances: usize,
    findings: Vec<String>,
    operation: Option<InProgress>,
}

#[derive(Debug, Clone, Deserialize)]
struct List {
    items: Vec<Summary>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Instance {
    key: InstanceKey,
    role: Role,
    source: Option<InstanceKey>,
    #[serde(default)]
    replicas: Vec<InstanceKey>,
    depth: usize,
    reachable: bool,
    lag_ms: Option<u64>,
    read_only: Option<bool>,
    errant: Option<String>,
    error: Option<String>,
    snapshot: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Finding {
    code: String,
    severity: String,
    instance: String,
    description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recent {
    id: String,
    kind: String,
    outcome: String,
    successor: Option<String>,
    started_at: String,
    duration_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct View {
    namespace: String,
    name: String,
    primary: Option<String>,
    healthy: bool,
    instances: Vec<Instance>,
    findings: Vec<Finding>,
    operation: Option<InProgress>,
    #[serde(default)]
    recent_operations: Vec<Recent>,
    observed_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    dry_run: bool,
    outcome: String,
    message: String,
    plan: Option<Value>,
    record: Option<Value>,
}

// ---- orca clusters ----

#[derive(Debug, Args)]
pub struct ClustersArgs {
    #[command(flatten)]
    pub api: ApiClientArgs,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

/// The table of `orca clusters`.
pub fn render_clusters(list: &Value) -> Result<String, Failure> {
    let list: List = shape(list, "the clusters")?;
    if list.items.is_empty() {
        return Ok("no clusters\n".into());
    }
    let rows: Vec<Vec<String>> = list
        .items
        .iter()
        .map(|c| {
            vec![
                format!("{}/{}", c.namespace, c.name),
                or_dash(c.primary.as_deref()),
                if c.healthy { "yes" } else { "no" }.to_string(),
                c.instances.to_string(),
                or_dash(Some(&c.findings.join(","))),
                c.operation
                    .as_ref()
                    .map(|o| o.line())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    Ok(table(
        &[
            "CLUSTER",
            "PRIMARY",
            "HEALTHY",
            "INSTANCES",
            "FINDINGS",
            "OPERATION",
        ],
        &rows,
    ))
}

pub async fn clusters(args: ClustersArgs) -> u8 {
    let r = async {
        let client = args.api.client(READ_TIMEOUT)?;
        let list = client.get(&["api", "v1", "clusters"], &[]).await?;
        if args.json {
            print_json(&list)?;
        } else {
            print!("{}", render_clusters(&list)?);
        }
        Ok(EXIT_OK)
    };
    finish("clusters", r.await)
}

// ---- orca topology ----

#[derive(Debug, Args)]
pub struct TopologyArgs {
    /// The cluster, as NAMESPACE/NAME (`standalone/NAME` for `orca
    /// standalone --cluster NAME`).
    #[arg(value_name = "NS/NAME")]
    pub cluster: String,
    #[command(flatten)]
    pub api: ApiClientArgs,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// One instance as `orca discover` shows it, from the API's view of it.
fn discover_view(i: &Instance) -> discover::InstanceView {
    // A snapshot this client cannot read is shown without its details.
    let s: Option<Snapshot> = i
        .snapshot
        .as_ref()
        .and_then(|v| Snapshot::deserialize(v).ok());
    let s = s.as_ref();
    let r = s.and_then(|s| s.replica.as_ref());
    let mut replicas = i.replicas.clone();
    replicas.sort();
    discover::InstanceView {
        address: i.key.clone(),
        role: i.role,
        depth: i.depth,
        reachable: i.reachable,
        error: i.error.clone(),
        source: i.source.clone(),
        replicas,
        flavor: s.map(|s| s.flavor),
        version: s.map(|s| s.version.raw.clone()),
        server_id: s.map(|s| s.server_id),
        read_only: s.map(|s| s.is_read_only()).or(i.read_only),
        io_thread: r.map(|r| r.io_running),
        sql_thread: r.map(|r| r.sql_running),
        lag_seconds: i.lag_ms.map(|ms| ms as f64 / 1000.0),
        gtid_executed: s
            .and_then(|s| s.gtid.executed.as_ref())
            .map(|g| g.to_string()),
        binlog: s.and_then(|s| s.binlog.as_ref()).map(|b| b.to_string()),
        errant_gtids: i.errant.clone(),
        last_io_error: r.and_then(|r| non_empty(&r.last_io_error)),
        last_sql_error: r.and_then(|r| non_empty(&r.last_sql_error)),
        problems: Vec::new(),
    }
}

/// The instances in tree order, as `orca discover` lists them: depth
/// first from each top (depth 0), replicas in address order, then any
/// instance not reached so.
fn tree_order(instances: &[Instance]) -> Vec<&Instance> {
    let by_key: std::collections::BTreeMap<&InstanceKey, &Instance> =
        instances.iter().map(|i| (&i.key, i)).collect();
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    fn visit<'a>(
        by_key: &std::collections::BTreeMap<&InstanceKey, &'a Instance>,
        i: &'a Instance,
        seen: &mut BTreeSet<InstanceKey>,
        order: &mut Vec<&'a Instance>,
    ) {
        if !seen.insert(i.key.clone()) {
            return;
        }
        order.push(i);
        let mut children = i.replicas.clone();
        children.sort();
        for c in children {
            if let Some(c) = by_key.get(&c).filter(|c| c.depth > 0) {
                visit(by_key, c, seen, order);
            }
        }
    }
    for i in by_key.values().filter(|i| i.depth == 0) {
        visit(&by_key, i, &mut seen, &mut order);
    }
    for i in by_key.values() {
        visit(&by_key, i, &mut seen, &mut order);
    }
    order
}

/// What `orca topology` prints: the tree as `orca discover` draws it,
/// then the findings, the operation in progress and the recent
/// operations.
pub fn render_topology(view: &Value) -> Result<String, Failure> {
    let v: View = shape(view, "the cluster")?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster {}/{}: primary {}, {}, observed at {}",
        v.namespace,
        v.name,
        or_dash(v.primary.as_deref()),
        if v.healthy { "healthy" } else { "NOT healthy" },
        v.observed_at
    );
    let order = tree_order(&v.instances);
    match order.first() {
        None => out.push_str("no instances\n"),
        Some(first) => {
            let report = discover::Report {
                seed: first.key.clone(),
                instances: order.iter().map(|i| discover_view(i)).collect(),
            };
            out.push_str(&discover::render_tree(&report));
        }
    }
    if v.findings.is_empty() {
        out.push_str("findings: none\n");
    } else {
        out.push_str("findings:\n");
        for f in &v.findings {
            let _ = writeln!(
                out,
                "  {} ({}) on {}: {}",
                f.code, f.severity, f.instance, f.description
            );
        }
    }
    let _ = writeln!(
        out,
        "operation in progress: {}",
        v.operation
            .as_ref()
            .map(|o| o.line())
            .unwrap_or_else(|| "none".into())
    );
    if v.recent_operations.is_empty() {
        out.push_str("recent operations: none\n");
    } else {
        out.push_str("recent operations (newest last):\n");
        let rows: Vec<Vec<String>> = v
            .recent_operations
            .iter()
            .map(|o| {
                vec![
                    o.started_at.clone(),
                    o.kind.clone(),
                    o.outcome.clone(),
                    format!("{} ms", o.duration_ms),
                    or_dash(o.successor.as_deref()),
                    o.id.clone(),
                ]
            })
            .collect();
        for l in table(
            &["STARTED", "KIND", "OUTCOME", "TOOK", "SUCCESSOR", "ID"],
            &rows,
        )
        .lines()
        {
            let _ = writeln!(out, "  {l}");
        }
    }
    Ok(out)
}

pub async fn topology(args: TopologyArgs) -> u8 {
    let r = async {
        let (ns, name) = parse_cluster(&args.cluster).map_err(Failure::usage)?;
        let client = args.api.client(READ_TIMEOUT)?;
        let view = client
            .get(&["api", "v1", "clusters", &ns, &name], &[])
            .await?;
        if args.json {
            print_json(&view)?;
        } else {
            print!("{}", render_topology(&view)?);
        }
        Ok(EXIT_OK)
    };
    finish("topology", r.await)
}

// ---- orca history ----

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The cluster, as NAMESPACE/NAME.
    #[arg(value_name = "NS/NAME")]
    pub cluster: String,
    #[command(flatten)]
    pub api: ApiClientArgs,
    /// The page, from 0 (newest first).
    #[arg(long, default_value_t = 0)]
    pub page: u32,
    /// Rows per page.
    #[arg(long, default_value_t = 50)]
    pub page_size: u32,
    /// The audit (who asked for what, through which door) instead of the
    /// operations.
    #[arg(long)]
    pub audit: bool,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

fn text(v: &Value, field: &str) -> String {
    match &v[field] {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn at_ms(v: &Value, field: &str) -> String {
    v[field]
        .as_i64()
        .map(|ms| rfc3339_s(ms / 1000))
        .unwrap_or_else(|| "-".into())
}

/// The table of `orca history`: the operations, or with `audit` the
/// audit rows, newest first.
pub fn render_history(page: &Value, audit: bool) -> Result<String, Failure> {
    let Some(items) = page["items"].as_array() else {
        return Err(Failure::failed("an unexpected answer: no items"));
    };
    let number = page["page"].as_u64().unwrap_or(0);
    if items.is_empty() {
        return Ok(format!(
            "no {} on page {number}\n",
            if audit { "audit rows" } else { "operations" }
        ));
    }
    let out = if audit {
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|r| {
                vec![
                    at_ms(r, "at_ms"),
                    text(r, "action"),
                    text(r, "target"),
                    text(r, "requested_by"),
                    text(r, "door"),
                    text(r, "detail"),
                ]
            })
            .collect();
        table(
            &["AT", "ACTION", "TARGET", "REQUESTED_BY", "DOOR", "DETAIL"],
            &rows,
        )
    } else {
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|r| {
                vec![
                    text(r, "id"),
                    text(r, "kind"),
                    text(r, "outcome"),
                    at_ms(r, "started_ms"),
                    text(r, "successor"),
                    text(r, "failed_instance"),
                ]
            })
            .collect();
        table(
            &["ID", "KIND", "OUTCOME", "STARTED", "SUCCESSOR", "FAILED"],
            &rows,
        )
    };
    Ok(out)
}

pub async fn history(args: HistoryArgs) -> u8 {
    let r = async {
        let (ns, name) = parse_cluster(&args.cluster).map_err(Failure::usage)?;
        let client = args.api.client(READ_TIMEOUT)?;
        let what = if args.audit { "audit" } else { "recoveries" };
        let page = client
            .get(
                &["api", "v1", "clusters", &ns, &name, what],
                &[
                    ("page", args.page.to_string()),
                    ("pageSize", args.page_size.to_string()),
                ],
            )
            .await?;
        if args.json {
            print_json(&page)?;
        } else {
            print!("{}", render_history(&page, args.audit)?);
        }
        Ok(EXIT_OK)
    };
    finish("history", r.await)
}

// ---- operations ----

/// `POST .../operations`, as the API takes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// Prints an operation's answer as the one-shot commands print theirs
/// (the plan of a dry run, the record of a real one); returns the exit
/// code of its outcome.
pub(crate) fn print_answer(answer: &Value, json: bool) -> Result<u8, Failure> {
    let a: Answer = shape(answer, "the operation")?;
    if json {
        print_json(answer)?;
        return Ok(exit_for_outcome(&a.outcome));
    }
    let plan = a.plan.as_ref().and_then(|p| Plan::deserialize(p).ok());
    let record = a
        .record
        .as_ref()
        .and_then(|r| OperationRecord::deserialize(r).ok());
    match (a.dry_run, plan, record) {
        (_, _, Some(record)) => print_record(&record, false),
        (true, Some(plan), None) => print_plan(&plan, false),
        // Nothing ran on a server (acknowledge, downtimes), or the
        // operator carries it out (accepted), or a shape this client
        // does not know: the API's line.
        _ => println!("{}: {}", a.outcome, a.message),
    }
    Ok(exit_for_outcome(&a.outcome))
}

/// Posts `request` to the operations of `cluster` (NS/NAME) and prints
/// the answer.
pub async fn operate(
    api: &ApiClientArgs,
    cluster: &str,
    request: &Request,
    json: bool,
) -> Result<u8, Failure> {
    let (ns, name) = parse_cluster(cluster).map_err(Failure::usage)?;
    let client = api.client(OPERATION_TIMEOUT)?;
    let answer = client
        .post(
            &["api", "v1", "clusters", &ns, &name, "operations"],
            request,
        )
        .await?;
    print_answer(&answer, json)
}

/// The request a one-shot command asks for (its instances as given: the
/// API resolves them, pod names included).
pub fn request_of(op: &Op) -> Request {
    let (kind, target, destination) = match op {
        Op::GracefulTakeover { to, .. } => ("graceful-takeover", to.clone(), None),
        Op::ForceFailover { .. } => ("force-failover", None, None),
        Op::ForceTakeover { to, .. } => ("force-takeover", Some(to.clone()), None),
        Op::Recover { .. } => ("recover", None, None),
        Op::Relocate {
            instance, below, ..
        } => ("relocate", Some(instance.clone()), Some(below.clone())),
        Op::MoveUp { instance, .. } => ("move-up", Some(instance.clone()), None),
        Op::MoveBelow {
            instance, sibling, ..
        } => ("move-below", Some(instance.clone()), Some(sibling.clone())),
        Op::Repoint { instance, to, .. } => ("repoint", Some(instance.clone()), to.clone()),
        Op::TakeSiblings { instance, .. } => ("take-siblings", Some(instance.clone()), None),
        Op::RegroupReplicas { instance, .. } => ("regroup-replicas", Some(instance.clone()), None),
    };
    Request {
        kind: kind.to_string(),
        target,
        destination,
        dry_run: op.args().dry_run,
        comment: None,
        duration: None,
    }
}

/// Which of `--seed` and `--api` a one-shot command was given: exactly
/// one. `Ok(true)` for the API.
pub fn through_api(op: &Op) -> Result<bool, String> {
    let seeds = !op.args().seeds.is_empty();
    let api = op.api();
    match (seeds, api.api.is_some()) {
        (true, true) => Err(format!(
            "give --seed (to act on the servers) or --api (to ask a running orca), not both{}",
            if api.api_from_env() {
                " (ORCA_API is set in the environment)"
            } else {
                ""
            }
        )),
        (false, false) => Err(
            "one of --seed HOST:PORT (to act on the servers) or --api URL (to ask a running orca) is required"
                .into(),
        ),
        (false, true) => Ok(true),
        (true, false) => Ok(false),
    }
}

/// A one-shot command given `--api`: posted to the running orca, which
/// plans and acts with its own settings.
pub async fn operate_op(name: &str, op: &Op) -> u8 {
    let r = async {
        let args = op.args();
        // What only a command acting on the servers itself uses.
        for (flag, given) in [
            ("--promotion-rule", !args.promotion_rules.is_empty()),
            ("--hook", !args.hooks.is_empty()),
            ("--webhook", !args.webhooks.is_empty()),
            ("--repl-password-file", args.repl_password_file.is_some()),
            ("--password-file", args.credentials.password_file.is_some()),
        ] {
            if given {
                return Err(Failure::usage(format!(
                    "{flag} is for --seed; with --api the running orca's settings apply"
                )));
            }
        }
        let Some(cluster) = &args.cluster else {
            return Err(Failure::usage(
                "--cluster NAMESPACE/NAME is required with --api (`standalone/NAME` for `orca standalone --cluster NAME`)",
            ));
        };
        operate(op.api(), cluster, &request_of(op), args.json).await
    };
    finish(name, r.await)
}

/// What `orca acknowledge` and `orca downtime` take.
#[derive(Debug, Args)]
pub struct ClusterOpArgs {
    #[command(flatten)]
    pub api: ApiClientArgs,
    /// The cluster, as NAMESPACE/NAME (`standalone/NAME` for `orca
    /// standalone --cluster NAME`).
    #[arg(long, value_name = "NS/NAME")]
    pub cluster: String,
    /// Why, for the audit.
    #[arg(long)]
    pub comment: Option<String>,
    /// Say what would be done and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AcknowledgeArgs {
    #[command(flatten)]
    pub op: ClusterOpArgs,
}

#[derive(Debug, Args)]
pub struct DowntimeArgs {
    #[command(subcommand)]
    pub action: DowntimeAction,
}

#[derive(Debug, Subcommand)]
pub enum DowntimeAction {
    /// Neither recover nor promote an instance for a while.
    Begin {
        /// The instance (`host:port`, or a pod name in Kubernetes).
        instance: String,
        /// How long, e.g. 30m (default 1h).
        #[arg(long)]
        duration: Option<String>,
        #[command(flatten)]
        op: ClusterOpArgs,
    },
    /// End an instance's downtime now.
    End {
        instance: String,
        #[command(flatten)]
        op: ClusterOpArgs,
    },
}

async fn cluster_op(name: &str, op: &ClusterOpArgs, mut request: Request) -> u8 {
    request.dry_run = op.dry_run;
    request.comment = op.comment.clone();
    finish(name, operate(&op.api, &op.cluster, &request, op.json).await)
}

pub async fn acknowledge(args: AcknowledgeArgs) -> u8 {
    let request = Request {
        kind: "acknowledge".into(),
        ..Request::default()
    };
    cluster_op("acknowledge", &args.op, request).await
}

pub async fn downtime(args: DowntimeArgs) -> u8 {
    match args.action {
        DowntimeAction::Begin {
            instance,
            duration,
            op,
        } => {
            let request = Request {
                kind: "begin-downtime".into(),
                target: Some(instance),
                duration,
                ..Request::default()
            };
            cluster_op("downtime begin", &op, request).await
        }
        DowntimeAction::End { instance, op } => {
            let request = Request {
                kind: "end-downtime".into(),
                target: Some(instance),
                ..Request::default()
            };
            cluster_op("downtime end", &op, request).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_outcomes_become_exit_codes() {
        for (status, code) in [
            (400, 2),
            (413, 2),
            (422, 2),
            (404, 3),
            (409, 3),
            (401, 1),
            (403, 1),
            (503, 1),
            (504, 1),
        ] {
            assert_eq!(exit_for_status(status), code, "{status}");
        }
        for (outcome, code) in [
            ("planned", 0),
            ("succeeded", 0),
            ("accepted", 0),
            ("vetoed", 4),
            ("rolled_back", 1),
            ("deposed", 1),
            ("new", 1),
        ] {
            assert_eq!(exit_for_outcome(outcome), code, "{outcome}");
        }
    }

    #[test]
    fn clusters_and_addresses_are_checked() {
        assert_eq!(parse_cluster("ns/db").unwrap(), ("ns".into(), "db".into()));
        for bad in ["db", "/db", "ns/", "a/b/c"] {
            assert!(parse_cluster(bad).is_err(), "{bad}");
        }
        assert!(parse_base("http://127.0.0.1:8080").is_ok());
        assert!(parse_base("ftp://x").is_err());
        let e = parse_base("http://u:secret@x").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        assert!(parse_base("http://x/?a=1").is_err());
    }

    #[test]
    fn tables_align_their_columns() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }
}
