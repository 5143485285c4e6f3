//! `kubectl orca`: the kubectl plugin. The `orca` binary is the plugin
//! when it runs as `kubectl-orca` (a symlink or a copy on PATH, which
//! `make install` puts there) or as `orca kubectl ...`, and answers
//! kubectl's completion requests as `kubectl_complete-orca`.
//!
//! It talks to the Kubernetes API server only, with the kubeconfig's
//! credentials: operations are the annotations orca acts on
//! ([`crate::k8s::crd::names::annotation`]), set with a merge patch on
//! the MySQLCluster, their outcome read from its status; reads and dry
//! runs go to the operator's HTTP API through the API server's service
//! proxy (`/api/v1/namespaces/{ns}/services/{svc}:http/proxy/...`), the
//! caller's token in [`crate::api::TOKEN_HEADER`] since the proxy takes
//! `Authorization` off. So it works wherever `kubectl` works.
//!
//! Exit codes: 0 done, 1 refused or failed, 2 bad usage.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

use super::client::{self, Request};
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::api::model::ErrorBody;
use crate::k8s::crd::cluster::MySQLCluster;
use crate::k8s::crd::parse_duration;

/// The plugin's executable name, which kubectl finds on PATH.
pub const PLUGIN_NAME: &str = "kubectl-orca";
/// The executable kubectl (1.26 and later) asks to complete `kubectl orca ...`.
pub const COMPLETE_NAME: &str = "kubectl_complete-orca";
/// The name of the operator Service's port for the API.
pub const API_PORT_NAME: &str = "http";
/// How many times an operation is asked again when a follower answered
/// (the Service may pick the other replica next time).
pub const LEADER_ATTEMPTS: usize = 5;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-orca",
    bin_name = "kubectl orca",
    version,
    about = "orca's MySQLClusters from kubectl: their topology and history, and operations on them",
    after_help = "Operations are asked for with the annotations orca acts on and their outcome read from the cluster's status; --dry-run asks the operator's API (through the API server's service proxy) for the plan instead."
)]
pub struct PluginCli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// The flags every command takes, as kubectl users expect them.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The namespace of the cluster (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace of the operator's Service.
    #[arg(
        long,
        global = true,
        env = "ORCA_OPERATOR_NAMESPACE",
        default_value = "orca"
    )]
    pub operator_namespace: String,
    /// The operator's Service (its API on the port named `http`).
    #[arg(
        long,
        global = true,
        env = "ORCA_OPERATOR_SERVICE",
        default_value = "orca"
    )]
    pub operator_service: String,
    /// Time limit of each request to the API server, e.g. 30s.
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s")]
    pub request_timeout: String,
    /// Log filter (tracing's env-filter syntax).
    #[arg(long, global = true, env = "ORCA_LOG", default_value = "warn")]
    pub log: String,
}

/// How an operation is asked for and waited on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct OpFlags {
    /// Ask the operator for the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait for the outcome (the default).
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// Return once the operation is asked for.
    #[arg(long, overrides_with = "wait")]
    pub no_wait: bool,
    /// How long to wait for the outcome.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub timeout: String,
    /// Print JSON (the operator's answer of a dry run, the cluster's
    /// lastOperation otherwise).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum PluginCommand {
    /// The cluster's replication tree, as `orca discover` draws it, from
    /// the operator's view (from the cluster's status when the operator's
    /// API cannot be reached).
    Topology {
        /// The MySQLCluster.
        name: String,
        /// Print the operator's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Graceful takeover: move the primary role to POD, or to the best
    /// candidate.
    Switchover {
        name: String,
        /// The replica to promote (default: the best candidate).
        #[arg(long, value_name = "POD")]
        to: Option<String>,
        #[command(flatten)]
        op: OpFlags,
    },
    /// Force a failover: treat the primary as dead now and promote the
    /// best candidate.
    Failover {
        name: String,
        #[command(flatten)]
        op: OpFlags,
    },
    /// Force a takeover: promote POD, discarding the primary.
    Takeover {
        name: String,
        /// The direct replica to promote.
        #[arg(long, value_name = "POD")]
        to: String,
        #[command(flatten)]
        op: OpFlags,
    },
    /// Run the recovery of the problem found now (with automatic failover
    /// off, or within the anti-flap period).
    Recover {
        name: String,
        #[command(flatten)]
        op: OpFlags,
    },
    /// Acknowledge the last recovery, lifting the anti-flap block.
    Ack {
        name: String,
        /// Why, kept in the annotation and the audit.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        op: OpFlags,
    },
    /// Move the replica POD below another instance (`relocate NAME POD --below POD`).
    Relocate {
        name: String,
        /// The pod to move.
        pod: String,
        /// Its new source.
        #[arg(long, value_name = "POD")]
        below: String,
        #[command(flatten)]
        op: OpFlags,
    },
    /// The cluster's operations (or, with --audit, who asked for what),
    /// from the operator's store.
    History {
        name: String,
        /// The audit instead of the operations.
        #[arg(long)]
        audit: bool,
        /// The page, from 0 (newest first).
        #[arg(long, default_value_t = 0)]
        page: u32,
        /// Rows per page.
        #[arg(long, default_value_t = 50)]
        page_size: u32,
        /// Print the operator's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script for kubectl-orca.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// kubectl's plugin completion protocol (what kubectl_complete-orca runs).
    #[command(name = "__complete", hide = true)]
    Complete {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
}

// ---- how the binary was invoked ----

/// What the `orca` binary is asked to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invocation {
    /// `orca ...`
    Orca,
    /// `kubectl-orca ...` or `orca kubectl ...`
    Plugin,
    /// `kubectl_complete-orca ...`
    Complete,
}

/// Which of orca, the plugin and its completer the arguments (argv[0]
/// first) ask for; the arguments the plugin parses (its name first).
pub fn invocation(args: &[OsString]) -> (Invocation, Vec<OsString>) {
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rest = || args.iter().skip(1).cloned();
    match name.as_str() {
        PLUGIN_NAME => (Invocation::Plugin, args.to_vec()),
        COMPLETE_NAME => (
            Invocation::Complete,
            std::iter::once(OsString::from(PLUGIN_NAME))
                .chain(std::iter::once(OsString::from("__complete")))
                .chain(rest())
                .collect(),
        ),
        _ if args.get(1).is_some_and(|a| a == "kubectl") => (
            Invocation::Plugin,
            std::iter::once(OsString::from(PLUGIN_NAME))
                .chain(args.iter().skip(2).cloned())
                .collect(),
        ),
        _ => (Invocation::Orca, args.to_vec()),
    }
}

/// Runs the plugin on `args` (its name first): clap's usage errors exit
/// 2, `--help` and `--version` 0.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let cli = match PluginCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    match &cli.command {
        PluginCommand::Completion { shell } => {
            let mut cmd = PluginCli::command();
            clap_complete::generate(*shell, &mut cmd, PLUGIN_NAME, &mut std::io::stdout());
            return ExitCode::from(EXIT_OK);
        }
        PluginCommand::Complete { words } => {
            for c in complete(words) {
                println!("{c}");
            }
            // cobra's ShellCompDirectiveNoFileComp
            println!(":4");
            return ExitCode::from(EXIT_OK);
        }
        _ => {}
    }
    let log = cli.global.log.clone();
    super::run_async(&log, false, run(cli))
}

/// The words completing the last of `words` (those after `kubectl orca`):
/// subcommands, or flags for a word starting with `-`.
pub fn complete(words: &[String]) -> Vec<String> {
    let root = PluginCli::command();
    let mut cmd = &root;
    let (last, before) = match words.split_last() {
        Some((l, b)) => (l.as_str(), b),
        None => ("", &[][..]),
    };
    let mut skip_value = false;
    for w in before {
        if skip_value {
            skip_value = false;
            continue;
        }
        if let Some(flag) = w.strip_prefix("--") {
            if !flag.contains('=') {
                skip_value = takes_value(&root, cmd, |a| a.get_long() == Some(flag));
            }
            continue;
        }
        if let Some(short) = w.strip_prefix('-') {
            let c = short.chars().next();
            skip_value = short.len() == 1 && takes_value(&root, cmd, |a| a.get_short() == c);
            continue;
        }
        if let Some(sub) = cmd.find_subcommand(w) {
            cmd = sub;
        }
    }
    let mut out: Vec<String> = if last.starts_with('-') {
        cmd.get_arguments()
            .chain(root.get_arguments().filter(|a| a.is_global_set()))
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .filter(|l| l.starts_with(last))
            .collect()
    } else {
        cmd.get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| s.get_name().to_string())
            .filter(|s| s.starts_with(last))
            .collect()
    };
    out.sort();
    out.dedup();
    out
}

fn takes_value(
    root: &clap::Command,
    cmd: &clap::Command,
    matches: impl Fn(&clap::Arg) -> bool,
) -> bool {
    cmd.get_arguments()
        .chain(root.get_arguments())
        .find(|a| matches(a))
        .is_some_and(|a| a.get_action().takes_values())
}

// ---- what each command asks for (pure) ----

/// An operation as the plugin asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// The MySQLCluster.
    pub cluster: String,
    /// What a dry run posts to the operator's API.
    pub request: Request,
    /// The annotations a real one sets on the MySQLCluster (a merge
    /// patch).
    pub annotations: BTreeMap<String, String>,
}

/// The operation a command asks for (`None` for the reads).
pub fn ask_of(command: &PluginCommand) -> Option<(Ask, &OpFlags)> {
    use crate::k8s::annotations::Request as Asked;
    let ask = |cluster: &str,
               kind: &str,
               target: Option<&str>,
               destination: Option<&str>,
               asked: Asked,
               comment: Option<&str>,
               op: &OpFlags| {
        let request = Request {
            kind: kind.to_string(),
            target: target.map(str::to_string),
            destination: destination.map(str::to_string),
            dry_run: op.dry_run,
            comment: None,
            duration: None,
        };
        let (key, value) = asked.as_annotation(comment);
        Ask {
            cluster: cluster.to_string(),
            request,
            annotations: BTreeMap::from([(key.to_string(), value)]),
        }
    };
    Some(match command {
        PluginCommand::Switchover { name, to, op } => (
            ask(
                name,
                "graceful-takeover",
                to.as_deref(),
                None,
                Asked::GracefulTakeover { to: to.clone() },
                None,
                op,
            ),
            op,
        ),
        PluginCommand::Failover { name, op } => (
            ask(
                name,
                "force-failover",
                None,
                None,
                Asked::ForceFailover,
                None,
                op,
            ),
            op,
        ),
        PluginCommand::Takeover { name, to, op } => (
            ask(
                name,
                "force-takeover",
                Some(to),
                None,
                Asked::ForceTakeover { to: to.clone() },
                None,
                op,
            ),
            op,
        ),
        PluginCommand::Recover { name, op } => (
            ask(name, "recover", None, None, Asked::Recover, None, op),
            op,
        ),
        PluginCommand::Ack { name, comment, op } => {
            let mut a = ask(
                name,
                "acknowledge",
                None,
                None,
                Asked::Acknowledge,
                Some(
                    comment
                        .as_deref()
                        .unwrap_or("acknowledged with kubectl orca"),
                ),
                op,
            );
            a.request.comment = comment.clone();
            (a, op)
        }
        PluginCommand::Relocate {
            name,
            pod,
            below,
            op,
        } => (
            ask(
                name,
                "relocate",
                Some(pod),
                Some(below),
                Asked::Operation {
                    kind: crate::plan::operation::OperationKind::Relocate,
                    target: pod.clone(),
                    destination: Some(below.clone()),
                },
                None,
                op,
            ),
            op,
        ),
        PluginCommand::Topology { .. }
        | PluginCommand::History { .. }
        | PluginCommand::Completion { .. }
        | PluginCommand::Complete { .. } => return None,
    })
}

/// The path of `api_path` (the operator's, from `/`) through the API
/// server's service proxy.
pub fn proxy_path(operator_namespace: &str, service: &str, api_path: &str) -> String {
    format!(
        "/api/v1/namespaces/{operator_namespace}/services/{service}:{API_PORT_NAME}/proxy{api_path}"
    )
}

/// The merge patch asking for `ask`.
pub fn patch_of(ask: &Ask) -> Value {
    json!({ "metadata": { "annotations": ask.annotations } })
}

/// A failure: its exit code and what to say (the CLI client's).
pub use super::client::Failure;

fn failed(message: impl Into<String>) -> Failure {
    Failure::failed(message)
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::usage(message)
}

/// What an answer through the proxy that is not a 2xx means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// The API server refused or could not proxy (its Status message):
    /// no endpoints, no Service, no right to `services/proxy`.
    ApiServer(u16, String),
    /// A follower answered; the leader it names.
    NotLeader(Option<String>),
    /// The operator's own refusal or failure (its one line).
    Operator(u16, String),
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::ApiServer(code, m) => {
                write!(
                    f,
                    "the API server could not reach the operator: {m} (HTTP {code})"
                )
            }
            ProxyError::NotLeader(Some(l)) => write!(
                f,
                "the operator replica that answered does not lead; the leader is {l}"
            ),
            ProxyError::NotLeader(None) => {
                write!(
                    f,
                    "the operator replica that answered does not lead; no leader is known"
                )
            }
            ProxyError::Operator(code, m) => write!(f, "{m} (HTTP {code})"),
        }
    }
}

/// Reads an answer that is not a 2xx (pure).
pub fn proxy_error(status: u16, body: &[u8]) -> ProxyError {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(v) = &v
        && v["kind"] == "Status"
    {
        let m = v["message"].as_str().unwrap_or("no message").to_string();
        return ProxyError::ApiServer(status, m);
    }
    if let Some(b) = v.and_then(|v| serde_json::from_value::<ErrorBody>(v).ok()) {
        if status == 503 && b.leader.is_some() {
            return ProxyError::NotLeader(b.leader);
        }
        if status == 503 && b.error.contains("does not lead") {
            return ProxyError::NotLeader(None);
        }
        return ProxyError::Operator(status, b.error);
    }
    let first: String = String::from_utf8_lossy(body)
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    ProxyError::ApiServer(status, first)
}

// ---- running ----

/// The kube client and what the commands share.
struct Ctx {
    client: kube::Client,
    namespace: String,
    /// The kubeconfig's bearer token, passed on to the operator. Never
    /// printed.
    token: Option<String>,
    operator_namespace: String,
    operator_service: String,
    timeout: Duration,
}

fn duration(flag: &str, s: &str) -> Result<Duration, Failure> {
    match parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(usage(format!("{flag} must be above 0"))),
        Err(e) => Err(usage(format!("{flag} {s:?}: {e}"))),
    }
}

/// The kubeconfig as kubectl reads it: `--kubeconfig`, else `KUBECONFIG`
/// (a list of files), else `~/.kube/config`.
fn kubeconfig(g: &Global) -> Result<Kubeconfig, Failure> {
    match &g.kubeconfig {
        Some(p) => Kubeconfig::read_from(p).map_err(|e| failed(format!("{}: {e}", p.display()))),
        None => Kubeconfig::read().map_err(|e| failed(format!("the kubeconfig: {e}"))),
    }
}

async fn ctx(g: &Global) -> Result<Ctx, Failure> {
    let timeout = duration("--request-timeout", &g.request_timeout)?;
    let kc = kubeconfig(g)?;
    let options = KubeConfigOptions {
        context: g.context.clone(),
        cluster: None,
        user: None,
    };
    let mut config =
        tokio::time::timeout(timeout, kube::Config::from_custom_kubeconfig(kc, &options))
            .await
            .map_err(|_| failed("reading the kubeconfig took too long"))?
            .map_err(|e| failed(format!("the kubeconfig: {e}")))?;
    config.connect_timeout = Some(timeout.min(Duration::from_secs(10)));
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    // A follower's 503 is an answer to read, not to retry blindly.
    config.default_retry = false;
    let agent =
        http::HeaderValue::from_str(&format!("{PLUGIN_NAME}/{}", env!("CARGO_PKG_VERSION")))
            .map_err(|e| failed(e.to_string()))?;
    config
        .headers
        .retain(|(k, _)| k != http::header::USER_AGENT);
    config.headers.push((http::header::USER_AGENT, agent));
    let token = token_of(&config.auth_info);
    let namespace = g
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).map_err(|e| failed(e.to_string()))?;
    Ok(Ctx {
        client,
        namespace,
        token,
        operator_namespace: g.operator_namespace.clone(),
        operator_service: g.operator_service.clone(),
        timeout,
    })
}

/// The kubeconfig user's bearer token (inline or in a file), if it has
/// one; other ways of authenticating give the operator none.
fn token_of(auth: &kube::config::AuthInfo) -> Option<String> {
    use secrecy::ExposeSecret as _;
    if let Some(t) = &auth.token {
        let t = t.expose_secret().trim().to_string();
        if !t.is_empty() {
            return Some(t);
        }
    }
    let file = auth.token_file.as_ref()?;
    let t = std::fs::read_to_string(file).ok()?;
    let t = t.trim().to_string();
    (!t.is_empty()).then_some(t)
}

impl Ctx {
    fn clusters(&self) -> Api<MySQLCluster> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// One call to the API server, within the time limit.
    async fn bounded<T, E: std::fmt::Display>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(failed(format!("{what}: {e}"))),
            Err(_) => Err(failed(format!(
                "{what}: no answer within {} s",
                self.timeout.as_secs_f64()
            ))),
        }
    }

    async fn cluster(&self, name: &str) -> Result<MySQLCluster, Failure> {
        let api = self.clusters();
        match tokio::time::timeout(self.timeout, api.get(name)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(kube::Error::Api(s))) => Err(failed(s.message.clone())),
            Ok(Err(e)) => Err(failed(format!("reading the MySQLCluster {name}: {e}"))),
            Err(_) => Err(failed(format!(
                "reading the MySQLCluster {name}: no answer within {} s",
                self.timeout.as_secs_f64()
            ))),
        }
    }

    /// A request to the operator's API through the service proxy.
    async fn operator(
        &self,
        method: http::Method,
        api_path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Result<Value, ProxyError>, Failure> {
        let path = proxy_path(&self.operator_namespace, &self.operator_service, api_path);
        let mut req = http::Request::builder()
            .method(method)
            .uri(&path)
            .header(http::header::ACCEPT, "application/json");
        if let Some(t) = &self.token {
            req = req.header(crate::api::TOKEN_HEADER, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(kube::client::Body::from(body.unwrap_or_default()))
            .map_err(|e| failed(format!("the request to the operator: {e}")))?;
        let what = "the operator's API through the API server";
        let (status, bytes) = self
            .bounded(what, async {
                let r = self.client.send(req).await?;
                let status = r.status().as_u16();
                let bytes = r.into_body().collect_bytes().await?;
                Ok::<_, kube::Error>((status, bytes))
            })
            .await?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes)
                .map(Ok)
                .map_err(|e| failed(format!("{what} answered {status} with no JSON: {e}")));
        }
        Ok(Err(proxy_error(status, &bytes)))
    }
}

/// Prints the failure (one line, `kubectl orca: ...`) and returns its
/// code.
fn finish(r: Result<u8, Failure>) -> u8 {
    match r {
        Ok(c) => c,
        Err(f) => {
            eprintln!("kubectl orca: {}", f.message);
            f.code
        }
    }
}

async fn run(cli: PluginCli) -> u8 {
    let r = async {
        let ctx = ctx(&cli.global).await?;
        match &cli.command {
            PluginCommand::Topology { name, json } => topology(&ctx, name, *json).await,
            PluginCommand::History {
                name,
                audit,
                page,
                page_size,
                json,
            } => history(&ctx, name, *audit, *page, *page_size, *json).await,
            other => match ask_of(other) {
                Some((ask, op)) => operate(&ctx, &ask, op).await,
                None => Err(usage("nothing to do")),
            },
        }
    };
    finish(r.await)
}

fn print_json(v: &Value) -> Result<(), Failure> {
    let s = serde_json::to_string_pretty(v).map_err(|e| failed(e.to_string()))?;
    println!("{s}");
    Ok(())
}

// ---- topology ----

async fn topology(ctx: &Ctx, name: &str, json: bool) -> Result<u8, Failure> {
    // The cluster must exist, whatever the operator says.
    let cluster = ctx.cluster(name).await?;
    let path = format!("/api/v1/clusters/{}/{name}", ctx.namespace);
    let why = match ctx.operator(http::Method::GET, &path, None).await {
        Ok(Ok(view)) => {
            if json {
                print_json(&view)?;
            } else {
                print!(
                    "{}",
                    client::render_topology(&view).map_err(|f| failed(f.message))?
                );
                print!("{}", render_pods(&view));
            }
            return Ok(EXIT_OK);
        }
        Ok(Err(e)) => e.to_string(),
        Err(f) => f.message,
    };
    eprintln!(
        "kubectl orca: the operator's API was not reachable ({why}); from the MySQLCluster's status:"
    );
    let status = serde_json::to_value(&cluster.status).unwrap_or(Value::Null);
    if json {
        print_json(&status)?;
    } else {
        print!("{}", render_status(&ctx.namespace, name, &status));
    }
    Ok(EXIT_OK)
}

/// The pods behind the view's addresses.
pub fn render_pods(view: &Value) -> String {
    let mut rows: Vec<Vec<String>> = view["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let s = |k: &str| i[k].as_str().unwrap_or("-").to_string();
            vec![s("pod"), s("key"), s("role")]
        })
        .collect();
    rows.sort();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("pods:\n");
    for l in client::table(&["POD", "ADDRESS", "ROLE"], &rows).lines() {
        let _ = writeln!(out, "  {l}");
    }
    out
}

/// What the MySQLCluster's status says, for when the operator's API
/// cannot be asked.
pub fn render_status(namespace: &str, name: &str, status: &Value) -> String {
    let mut out = String::new();
    let s = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) if s.is_empty() => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let _ = writeln!(
        out,
        "cluster {namespace}/{name}: primary {}",
        s(&status["primary"])
    );
    let conditions: Vec<String> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{}={}", s(&c["type"]), s(&c["status"])))
        .collect();
    let _ = writeln!(
        out,
        "conditions: {}",
        if conditions.is_empty() {
            "none".into()
        } else {
            conditions.join(" ")
        }
    );
    let rows: Vec<Vec<String>> = status["topology"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            vec![
                s(&i["pod"]),
                s(&i["address"]),
                s(&i["role"]),
                s(&i["source"]),
                s(&i["ioThread"]),
                s(&i["sqlThread"]),
                s(&i["lagSeconds"]),
                s(&i["gtidPosition"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("no instances in status\n");
    } else {
        out.push_str(&client::table(
            &[
                "POD", "ADDRESS", "ROLE", "SOURCE", "IO", "SQL", "LAG", "GTID",
            ],
            &rows,
        ));
    }
    let last = &status["lastOperation"];
    if last.is_object() {
        let _ = writeln!(
            out,
            "last operation: {} {} at {}: {}",
            s(&last["kind"]),
            s(&last["phase"]),
            s(&last["finishedAt"]),
            s(&last["message"])
        );
    }
    out
}

// ---- history ----

async fn history(
    ctx: &Ctx,
    name: &str,
    audit: bool,
    page: u32,
    page_size: u32,
    json: bool,
) -> Result<u8, Failure> {
    let what = if audit { "audit" } else { "recoveries" };
    let path = format!(
        "/api/v1/clusters/{}/{name}/{what}?page={page}&pageSize={page_size}",
        ctx.namespace
    );
    match ctx.operator(http::Method::GET, &path, None).await? {
        Ok(v) => {
            if json {
                print_json(&v)?;
            } else {
                print!(
                    "{}",
                    client::render_history(&v, audit).map_err(|f| failed(f.message))?
                );
            }
            Ok(EXIT_OK)
        }
        // No store: the operations the operator keeps in its view.
        Err(ProxyError::Operator(503, m)) if m.contains("no store") && !audit => {
            eprintln!("kubectl orca: {m}; the recent operations from the operator's view:");
            let view_path = format!("/api/v1/clusters/{}/{name}", ctx.namespace);
            let view = ctx
                .operator(http::Method::GET, &view_path, None)
                .await?
                .map_err(|e| failed(e.to_string()))?;
            if json {
                print_json(&view["recentOperations"])?;
            } else {
                print!("{}", render_recent(&view));
            }
            Ok(EXIT_OK)
        }
        Err(e) => Err(failed(e.to_string())),
    }
}

/// The view's recent operations, as a table.
pub fn render_recent(view: &Value) -> String {
    let rows: Vec<Vec<String>> = view["recentOperations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let s = |k: &str| match &o[k] {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                v => v.to_string(),
            };
            vec![
                s("id"),
                s("kind"),
                s("outcome"),
                s("startedAt"),
                s("successor"),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no recent operations\n".into();
    }
    client::table(&["ID", "KIND", "OUTCOME", "STARTED", "SUCCESSOR"], &rows)
}

// ---- operations ----

async fn operate(ctx: &Ctx, ask: &Ask, op: &OpFlags) -> Result<u8, Failure> {
    let wait = duration("--timeout", &op.timeout)?;
    if op.dry_run {
        return dry_run(ctx, ask, op.json).await;
    }
    let before = ctx.cluster(&ask.cluster).await?;
    let before_op = last_operation(&before);
    let api = ctx.clusters();
    ctx.bounded(
        &format!("annotating the MySQLCluster {}", ask.cluster),
        api.patch(
            &ask.cluster,
            &PatchParams::default(),
            &Patch::Merge(patch_of(ask)),
        ),
    )
    .await?;
    let asked: Vec<String> = ask
        .annotations
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    eprintln!(
        "kubectl orca: asked for {} on {}/{} ({})",
        ask.request.kind,
        ctx.namespace,
        ask.cluster,
        asked.join(", ")
    );
    if op.no_wait {
        println!(
            "{} asked; follow it with: kubectl get mysql {} -n {} -o jsonpath='{{.status.lastOperation}}'",
            ask.request.kind, ask.cluster, ctx.namespace
        );
        return Ok(EXIT_OK);
    }
    wait_outcome(ctx, ask, &before_op, wait, op.json).await
}

fn last_operation(c: &MySQLCluster) -> Value {
    c.status
        .as_ref()
        .and_then(|s| s.last_operation.as_ref())
        .and_then(|o| serde_json::to_value(o).ok())
        .unwrap_or(Value::Null)
}

/// What the cluster says of an operation asked for, once it says
/// something (pure): its annotations and lastOperation now, against the
/// lastOperation before it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not taken up yet, or running.
    Pending,
    /// A new operation ended: succeeded or not, with its line.
    Ended { ok: bool, line: String },
    /// The annotation is gone and no operation followed (an acknowledge;
    /// or an annotation orca could not read).
    Consumed,
}

pub fn progress(
    annotations: &BTreeMap<String, String>,
    asked: &Ask,
    before: &Value,
    now: &Value,
) -> Progress {
    let pending = asked
        .annotations
        .keys()
        .any(|k| annotations.contains_key(k));
    let phase = now["phase"].as_str().unwrap_or_default();
    let finished = matches!(phase, "Succeeded" | "Failed" | "RolledBack");
    if now != before && now.is_object() && finished {
        let line = format!(
            "{} {}{}",
            now["kind"].as_str().unwrap_or("operation"),
            phase,
            now["message"]
                .as_str()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
        return Progress::Ended {
            ok: phase == "Succeeded",
            line,
        };
    }
    if !pending && (now == before || !now.is_object()) {
        return Progress::Consumed;
    }
    Progress::Pending
}

async fn wait_outcome(
    ctx: &Ctx,
    ask: &Ask,
    before: &Value,
    wait: Duration,
    json: bool,
) -> Result<u8, Failure> {
    let deadline = tokio::time::Instant::now() + wait;
    // An annotation consumed without an operation: give the status a
    // moment to follow before reading the Events.
    let mut consumed_since: Option<tokio::time::Instant> = None;
    loop {
        let c = ctx.cluster(&ask.cluster).await?;
        let now = last_operation(&c);
        let annotations = c.metadata.annotations.clone().unwrap_or_default();
        match progress(&annotations, ask, before, &now) {
            Progress::Ended { ok, line } => {
                if json {
                    print_json(&now)?;
                } else {
                    println!("{line}");
                    if let Some(p) = c.status.as_ref().and_then(|s| s.primary.as_deref()) {
                        println!("primary: {p}");
                    }
                }
                return Ok(if ok { EXIT_OK } else { EXIT_FAILED });
            }
            Progress::Consumed if ask.request.kind == "acknowledge" => {
                println!(
                    "the last recovery of {}/{} is acknowledged",
                    ctx.namespace, ask.cluster
                );
                return Ok(EXIT_OK);
            }
            Progress::Consumed => {
                let since = *consumed_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > Duration::from_secs(3) {
                    let why = last_warning(ctx, &ask.cluster).await;
                    return Err(failed(format!(
                        "orca took the annotation off without an operation{}",
                        why.map(|w| format!(": {w}")).unwrap_or_default()
                    )));
                }
            }
            Progress::Pending => consumed_since = None,
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(failed(format!(
                "no outcome within {} s; orca may still act on the annotation: kubectl get mysql {} -n {} -o jsonpath='{{.status.lastOperation}}'",
                wait.as_secs(),
                ask.cluster,
                ctx.namespace
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The newest Warning Event of the cluster's, as `reason: message`.
async fn last_warning(ctx: &Ctx, name: &str) -> Option<String> {
    use k8s_openapi::api::core::v1::Event;
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let lp = ListParams::default().fields(&format!("involvedObject.name={name},type=Warning"));
    let list = ctx
        .bounded("listing the Events", api.list(&lp))
        .await
        .ok()?;
    list.items
        .iter()
        .max_by_key(|e| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
                .unwrap_or_default()
        })
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            )
        })
}

async fn dry_run(ctx: &Ctx, ask: &Ask, json: bool) -> Result<u8, Failure> {
    let path = format!(
        "/api/v1/clusters/{}/{}/operations",
        ctx.namespace, ask.cluster
    );
    let body = serde_json::to_vec(&ask.request).map_err(|e| failed(e.to_string()))?;
    let mut last = None;
    for attempt in 0..LEADER_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        match ctx
            .operator(http::Method::POST, &path, Some(body.clone()))
            .await?
        {
            Ok(answer) => {
                let code = client::print_answer(&answer, json).map_err(|f| failed(f.message))?;
                return Ok(if code == EXIT_OK {
                    EXIT_OK
                } else {
                    EXIT_FAILED
                });
            }
            Err(ProxyError::NotLeader(l)) => last = Some(l),
            Err(e) => return Err(failed(e.to_string())),
        }
    }
    let leader = last.flatten();
    Err(failed(format!(
        "{LEADER_ATTEMPTS} times a follower answered through the Service {}/{}; the leader is {}",
        ctx.operator_namespace,
        ctx.operator_service,
        leader.as_deref().unwrap_or("not known")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::crd::names::annotation;

    fn parse(args: &[&str]) -> Result<PluginCli, clap::Error> {
        PluginCli::try_parse_from(std::iter::once("kubectl-orca").chain(args.iter().copied()))
    }

    fn ann(k: &str, v: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(k.to_string(), v.to_string())])
    }

    #[test]
    fn commands_map_to_requests_and_annotations() {
        // (arguments, kind, target, destination, dry run, annotation)
        type Case<'a> = (
            &'a [&'a str],
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            bool,
            (&'a str, &'a str),
        );
        let table: &[Case] = &[
            (
                &["switchover", "db"],
                "graceful-takeover",
                None,
                None,
                false,
                (annotation::GRACEFUL_TAKEOVER, "auto"),
            ),
            (
                &["switchover", "db", "--to", "db-2"],
                "graceful-takeover",
                Some("db-2"),
                None,
                false,
                (annotation::GRACEFUL_TAKEOVER, "db-2"),
            ),
            (
                &["switchover", "db", "--dry-run"],
                "graceful-takeover",
                None,
                None,
                true,
                (annotation::GRACEFUL_TAKEOVER, "auto"),
            ),
            (
                &["failover", "db"],
                "force-failover",
                None,
                None,
                false,
                (annotation::FORCE_FAILOVER, "true"),
            ),
            (
                &["takeover", "db", "--to", "db-1"],
                "force-takeover",
                Some("db-1"),
                None,
                false,
                (annotation::FORCE_TAKEOVER, "db-1"),
            ),
            (
                &["recover", "db", "--no-wait"],
                "recover",
                None,
                None,
                false,
                (annotation::RECOVER, "true"),
            ),
            (
                &["ack", "db"],
                "acknowledge",
                None,
                None,
                false,
                (annotation::ACKNOWLEDGE, "acknowledged with kubectl orca"),
            ),
            (
                &["ack", "db", "--comment", "seen it"],
                "acknowledge",
                None,
                None,
                false,
                (annotation::ACKNOWLEDGE, "seen it"),
            ),
            (
                &["relocate", "db", "db-2", "--below", "db-1"],
                "relocate",
                Some("db-2"),
                Some("db-1"),
                false,
                (annotation::OPERATION, "relocate db-2 db-1"),
            ),
            (
                &[
                    "-n",
                    "shop",
                    "relocate",
                    "db",
                    "db-2",
                    "--below",
                    "db-1",
                    "--dry-run",
                ],
                "relocate",
                Some("db-2"),
                Some("db-1"),
                true,
                (annotation::OPERATION, "relocate db-2 db-1"),
            ),
        ];
        for (args, kind, target, destination, dry, (k, v)) in table {
            let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let (ask, op) = ask_of(&cli.command).unwrap_or_else(|| panic!("{args:?}"));
            assert_eq!(ask.cluster, "db", "{args:?}");
            assert_eq!(ask.request.kind, *kind, "{args:?}");
            assert_eq!(ask.request.target.as_deref(), *target, "{args:?}");
            assert_eq!(ask.request.destination.as_deref(), *destination, "{args:?}");
            assert_eq!(ask.request.dry_run, *dry, "{args:?}");
            assert_eq!(op.dry_run, *dry, "{args:?}");
            assert_eq!(ask.annotations, ann(k, v), "{args:?}");
            assert_eq!(
                patch_of(&ask),
                json!({"metadata": {"annotations": {*k: *v}}}),
                "{args:?}"
            );
        }
        let cli = parse(&["ack", "db", "--comment", "why"]).unwrap();
        assert_eq!(
            ask_of(&cli.command).unwrap().0.request.comment.as_deref(),
            Some("why")
        );
        for reads in [
            &["topology", "db"][..],
            &["history", "db", "--audit"],
            &["completion", "bash"],
        ] {
            assert!(
                ask_of(&parse(reads).unwrap().command).is_none(),
                "{reads:?}"
            );
        }
        let cli = parse(&["-n", "shop", "--context", "c", "topology", "db"]).unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("shop"));
        assert_eq!(cli.global.context.as_deref(), Some("c"));
        let cli = parse(&["topology", "db", "--namespace", "x"]).unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("x"));
        let cli = parse(&["switchover", "db", "--no-wait", "--wait"]).unwrap();
        assert!(!ask_of(&cli.command).unwrap().1.no_wait);
    }

    #[test]
    fn bad_usage_is_refused_by_the_parser() {
        for bad in [
            &[][..],
            &["topology"],
            &["takeover", "db"],
            &["relocate", "db", "db-2"],
            &["switchover", "db", "--to"],
            &["fly", "db"],
            &["completion", "tcsh"],
        ] {
            let e = parse(bad).map(|_| ()).unwrap_err();
            assert!(e.use_stderr(), "{bad:?}");
        }
    }

    #[test]
    fn the_binary_is_the_plugin_by_its_name() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let table: &[(&[&str], Invocation, &[&str])] = &[
            (
                &["orca", "topology", "x"],
                Invocation::Orca,
                &["orca", "topology", "x"],
            ),
            (
                &["/usr/local/bin/orca"],
                Invocation::Orca,
                &["/usr/local/bin/orca"],
            ),
            (
                &["/usr/local/bin/kubectl-orca", "topology", "db"],
                Invocation::Plugin,
                &["/usr/local/bin/kubectl-orca", "topology", "db"],
            ),
            (&["kubectl-orca"], Invocation::Plugin, &["kubectl-orca"]),
            (
                &["orca", "kubectl", "history", "db"],
                Invocation::Plugin,
                &["kubectl-orca", "history", "db"],
            ),
            (
                &["/x/kubectl_complete-orca", "sw"],
                Invocation::Complete,
                &["kubectl-orca", "__complete", "sw"],
            ),
            (
                &["kubectl-orca-other"],
                Invocation::Orca,
                &["kubectl-orca-other"],
            ),
        ];
        for (args, want, parsed) in table {
            assert_eq!(invocation(&os(args)), (*want, os(parsed)), "{args:?}");
        }
    }

    #[test]
    fn completion_offers_subcommands_and_flags() {
        let w = |v: &[&str]| complete(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(w(&[""]).contains(&"switchover".to_string()));
        assert!(!w(&[""]).iter().any(|c| c.starts_with("__")));
        assert_eq!(w(&["sw"]), ["switchover"]);
        assert_eq!(w(&["-n", "shop", "hi"]), ["history"]);
        let flags = w(&["switchover", "db", "--"]);
        for f in ["--to", "--dry-run", "--no-wait", "--namespace", "--context"] {
            assert!(flags.contains(&f.to_string()), "{f}: {flags:?}");
        }
        assert_eq!(w(&["relocate", "db", "x", "--be"]), ["--below"]);
        assert!(w(&[]).contains(&"topology".to_string()));
    }

    #[test]
    fn proxy_answers_are_told_apart() {
        assert_eq!(
            proxy_path("orca", "orca", "/api/v1/clusters/default/db"),
            "/api/v1/namespaces/orca/services/orca:http/proxy/api/v1/clusters/default/db"
        );
        let table: [(u16, &str, ProxyError); 5] = [
            (
                503,
                r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no endpoints available for service \"orca\"","reason":"ServiceUnavailable","code":503}"#,
                ProxyError::ApiServer(503, "no endpoints available for service \"orca\"".into()),
            ),
            (
                503,
                r#"{"error":"this replica does not lead","leader":"orca-b"}"#,
                ProxyError::NotLeader(Some("orca-b".into())),
            ),
            (
                409,
                r#"{"error":"db-0 is the primary"}"#,
                ProxyError::Operator(409, "db-0 is the primary".into()),
            ),
            (
                503,
                r#"{"error":"this orca has no store (--store-dsn): its history is not kept"}"#,
                ProxyError::Operator(
                    503,
                    "this orca has no store (--store-dsn): its history is not kept".into(),
                ),
            ),
            (
                502,
                "bad gateway\n",
                ProxyError::ApiServer(502, "bad gateway".into()),
            ),
        ];
        for (status, body, want) in table {
            assert_eq!(proxy_error(status, body.as_bytes()), want, "{body}");
        }
    }

    #[test]
    fn the_outcome_is_read_from_status() {
        let cli = parse(&["switchover", "db"]).unwrap();
        let ask = ask_of(&cli.command).unwrap().0;
        let old =
            json!({"kind": "Failover", "phase": "Succeeded", "startedAt": "2026-01-01T00:00:00Z"});
        let running = json!({"kind": "GracefulTakeover", "phase": "Running", "startedAt": "2026-01-02T00:00:00Z"});
        let done = json!({"kind": "GracefulTakeover", "phase": "Succeeded", "message": "db-1 is the primary", "startedAt": "2026-01-02T00:00:00Z"});
        let refused = json!({"kind": "GracefulTakeover", "phase": "Failed", "message": "no candidate", "startedAt": "2026-01-02T00:00:00Z"});
        let asked = ann(annotation::GRACEFUL_TAKEOVER, "auto");
        let none = BTreeMap::new();
        let table: [(&BTreeMap<String, String>, &Value, &Value, Progress); 7] = [
            (&asked, &old, &old, Progress::Pending),
            (&asked, &old, &running, Progress::Pending),
            (&none, &old, &running, Progress::Pending),
            (
                &asked,
                &old,
                &done,
                Progress::Ended {
                    ok: true,
                    line: "GracefulTakeover Succeeded: db-1 is the primary".into(),
                },
            ),
            (
                &none,
                &Value::Null,
                &refused,
                Progress::Ended {
                    ok: false,
                    line: "GracefulTakeover Failed: no candidate".into(),
                },
            ),
            (&none, &old, &old, Progress::Consumed),
            (&none, &Value::Null, &Value::Null, Progress::Consumed),
        ];
        for (annotations, before, now, want) in table {
            assert_eq!(
                progress(annotations, &ask, before, now),
                want,
                "{before} {now}"
            );
        }
    }

    #[test]
    fn status_is_printed_when_the_api_is_not_there() {
        let status = json!({
            "primary": "db-0",
            "conditions": [{"type": "Available", "status": "True"}, {"type": "Healthy", "status": "False"}],
            "topology": [
                {"pod": "db-0", "address": "127.20.0.1:3306", "role": "primary"},
                {"pod": "db-1", "address": "127.20.0.2:3306", "role": "replica", "source": "db-0", "ioThread": "Running", "sqlThread": "Running", "lagSeconds": 0.0}
            ],
            "lastOperation": {"kind": "GracefulTakeover", "phase": "Succeeded", "finishedAt": "2026-01-02T00:00:00Z", "message": "done"}
        });
        let out = render_status("default", "db", &status);
        assert!(
            out.starts_with("cluster default/db: primary db-0\n"),
            "{out}"
        );
        assert!(
            out.contains("conditions: Available=True Healthy=False"),
            "{out}"
        );
        assert!(
            out.contains("db-1  127.20.0.2:3306  replica  db-0"),
            "{out}"
        );
        assert!(
            out.contains(
                "last operation: GracefulTakeover Succeeded at 2026-01-02T00:00:00Z: done"
            ),
            "{out}"
        );
        assert!(render_status("a", "b", &Value::Null).contains("no instances in status"));
    }
}
