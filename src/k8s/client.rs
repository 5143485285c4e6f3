//! The Kubernetes client orca and its tools use: from a kubeconfig file,
//! else inferred (in-cluster configuration, `KUBECONFIG`), with a timeout
//! on every connect, write and read.

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Connecting to the API server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Sending a request.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(295);
/// Waiting for the next bytes of a response, counted from the request:
/// longer than the 290 s after which the API server ends a watch that
/// kube's watcher opens, so an idle watch is not cut short.
pub const READ_TIMEOUT: Duration = Duration::from_secs(295);

/// The User-Agent of orca's clients unless told otherwise.
pub const AGENT: &str = "orca";

/// The User-Agent of the operator's client.
pub const OPERATOR_AGENT: &str = "orca-operator";

/// A client from `kubeconfig`, or from the inferred configuration when
/// `None`. Errors name the file.
pub async fn client<P: AsRef<Path>>(kubeconfig: Option<P>) -> Result<Client, String> {
    client_as(kubeconfig, AGENT).await
}

/// [`client`] with its requests sent as `agent` (their User-Agent), which
/// the API server's audit and request logs show.
pub async fn client_as<P: AsRef<Path>>(
    kubeconfig: Option<P>,
    agent: &str,
) -> Result<Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let path = path.as_ref();
            let kc = Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Config::infer().await.map_err(|e| e.to_string())?,
    };
    let mut config = with_timeouts(config);
    let agent = http::HeaderValue::from_str(&format!("{agent}/{}", env!("CARGO_PKG_VERSION")))
        .map_err(|e| format!("User-Agent {agent:?}: {e}"))?;
    config
        .headers
        .retain(|(k, _)| k != http::header::USER_AGENT);
    config.headers.push((http::header::USER_AGENT, agent));
    Client::try_from(config).map_err(|e| e.to_string())
}

/// Sets each timeout the configuration leaves unset; a read timeout then
/// counts from the request, not from when its pooled connection went idle.
fn with_timeouts(mut config: Config) -> Config {
    config.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
    config.write_timeout.get_or_insert(WRITE_TIMEOUT);
    if config.read_timeout.is_none() {
        config.read_timeout = Some(READ_TIMEOUT);
        config.reset_reader_on_write = true;
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new("https://127.0.0.1:6443".parse().expect("uri"))
    }

    #[test]
    fn unset_timeouts_are_set_and_set_ones_kept() {
        let mut none = config();
        none.connect_timeout = None;
        none.write_timeout = None;
        none.read_timeout = None;
        let c = with_timeouts(none);
        assert_eq!(c.connect_timeout, Some(CONNECT_TIMEOUT));
        assert_eq!(c.write_timeout, Some(WRITE_TIMEOUT));
        assert_eq!(c.read_timeout, Some(READ_TIMEOUT));
        assert!(c.reset_reader_on_write);

        let mut set = config();
        set.connect_timeout = Some(Duration::from_secs(1));
        set.write_timeout = Some(Duration::from_secs(2));
        set.read_timeout = Some(Duration::from_secs(3));
        let c = with_timeouts(set);
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(1)));
        assert_eq!(c.write_timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.read_timeout, Some(Duration::from_secs(3)));
        assert!(!c.reset_reader_on_write);
        assert!(READ_TIMEOUT > Duration::from_secs(290));
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_is_named() {
        let Err(err) = client(Some("/nonexistent/kubeconfig")).await else {
            panic!("a client from a missing file");
        };
        assert!(err.starts_with("/nonexistent/kubeconfig: "), "{err}");
    }
}
