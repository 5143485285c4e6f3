//! `pods/log`, as `kubectl logs` reads it: checked against the pod as
//! kube-apiserver checks it, then proxied to the kubelet of the pod's node
//! (its `InternalIP` and `daemonEndpoints.kubeletEndpoint.Port`), whose
//! answer is streamed back as it comes (`follow=true` too).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::ApiError;
use super::http::Shared;

/// How long the kubelet may take to begin answering.
const KUBELET_LIMIT: Duration = Duration::from_secs(10);

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect()
}

/// The container a request reads, as kube-apiserver chooses and refuses
/// it.
pub fn container_of(pod: &Value, asked: Option<&str>) -> Result<String, String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let containers = names(pod, "containers");
    let init = names(pod, "initContainers");
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().chain(&init).any(|x| x == c) => Ok(c.to_string()),
        Some(c) => Err(format!("container {c} is not valid for pod {name}")),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(msg)
        }
    }
}

/// Why the container's log cannot be read now, if it cannot.
pub fn unavailable(pod: &Value, container: &str, previous: bool) -> Option<String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let status = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|l| pod["status"][l].as_array().into_iter().flatten())
        .find(|s| s["name"] == container);
    if previous {
        let had = status.is_some_and(|s| s["lastState"]["terminated"].is_object());
        return (!had).then(|| {
            format!("previous terminated container {container:?} in pod {name:?} not found")
        });
    }
    let waiting = match status {
        None => Some("ContainerCreating".to_string()),
        Some(s)
            if s["state"]["waiting"].is_object() && !s["lastState"]["terminated"].is_object() =>
        {
            Some(
                s["state"]["waiting"]["reason"]
                    .as_str()
                    .unwrap_or("ContainerCreating")
                    .to_string(),
            )
        }
        Some(_) => None,
    };
    waiting.map(|reason| {
        format!("container {container:?} in pod {name:?} is waiting to start: {reason}")
    })
}

/// Answers `GET .../pods/{name}/log`.
pub async fn pod_log(
    shared: &Arc<Shared>,
    pod: Value,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let get = |k: &str| params.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    let flag = |k: &str| matches!(get(k), Some("true") | Some("1"));
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let container = container_of(&pod, get("container")).map_err(ApiError::bad_request)?;
    if let Some(why) = unavailable(&pod, &container, flag("previous")) {
        return Err(ApiError::bad_request(why));
    }
    let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let node_obj = {
        let state = shared.lock();
        let rt = state
            .registry
            .find("", "v1", "nodes")
            .cloned()
            .ok_or_else(|| ApiError::internal("no nodes type"))?;
        state.get(&rt, "", node)?
    };
    let address = node_obj["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .unwrap_or("127.0.0.1")
        .to_string();
    let port = node_obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .unwrap_or(10250);
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for k in ["previous", "follow", "tailLines", "limitBytes"] {
            if let Some(v) = get(k) {
                query.append_pair(k, v);
            }
        }
        query.finish()
    };
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let path = format!(
        "/containerLogs/{}/{}/{}?{}",
        enc(&ns),
        enc(&name),
        enc(&container),
        query
    );
    let unreachable =
        |e: String| ApiError::internal(format!("Get \"https://{address}:{port}{path}\": {e}"));
    let mut conn = tokio::time::timeout(
        KUBELET_LIMIT,
        TcpStream::connect((address.as_str(), port as u16)),
    )
    .await
    .map_err(|_| unreachable("dial tcp: i/o timeout".into()))?
    .map_err(|e| unreachable(format!("dial tcp: {e}")))?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {address}:{port}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes())
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    // The kubelet's status line and headers, then the log as it comes.
    let mut head = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let rest = loop {
        let n = tokio::time::timeout(KUBELET_LIMIT, conn.read(&mut buf))
            .await
            .map_err(|_| unreachable("timeout awaiting response headers".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        if n == 0 {
            return Err(unreachable("EOF".into()));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break head.split_off(i + 4);
        }
        if head.len() > 16 * 1024 {
            return Err(unreachable("malformed response".into()));
        }
    };
    let status_line = String::from_utf8_lossy(&head);
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .unwrap_or(500);
    if code != 200 {
        // the kubelet's refusal, whole (it is short)
        let mut body = rest;
        let _ = tokio::time::timeout(KUBELET_LIMIT, conn.read_to_end(&mut body)).await;
        let msg = String::from_utf8_lossy(&body).trim().to_string();
        return Err(match code {
            404 => ApiError::not_found("", "pods", &name).with_message(msg),
            _ => ApiError::bad_request(msg),
        });
    }
    let first = Bytes::from(rest);
    let stream = futures::stream::unfold(
        (Some(first), conn, vec![0u8; 16 * 1024]),
        |(first, mut conn, mut buf)| async move {
            if let Some(f) = first
                && !f.is_empty()
            {
                return Some((Ok::<Bytes, std::io::Error>(f), (None, conn, buf)));
            }
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => Some((Ok(Bytes::copy_from_slice(&buf[..n])), (None, conn, buf))),
            }
        },
    );
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_is_chosen_and_refused_as_the_real_server_does() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(container_of(&one, None).unwrap(), "a");
        assert_eq!(
            container_of(&one, Some("x")).unwrap_err(),
            "container x is not valid for pod p"
        );
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(
            container_of(&two, None).unwrap_err(),
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        assert_eq!(container_of(&two, Some("i")).unwrap(), "i");
    }

    #[test]
    fn waiting_and_never_restarted_containers_have_no_log_to_give() {
        let pod =
            |st: Value| json!({"metadata": {"name": "p"}, "status": {"containerStatuses": [st]}});
        let waiting = pod(
            json!({"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}}),
        );
        assert_eq!(
            unavailable(&waiting, "a", false).unwrap(),
            "container \"a\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        let running = pod(json!({"name": "a", "state": {"running": {}}, "lastState": {}}));
        assert_eq!(unavailable(&running, "a", false), None);
        assert_eq!(
            unavailable(&running, "a", true).unwrap(),
            "previous terminated container \"a\" in pod \"p\" not found"
        );
        let backoff = pod(
            json!({"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1}}}),
        );
        assert_eq!(unavailable(&backoff, "a", false), None);
        assert_eq!(unavailable(&backoff, "a", true), None);
    }
}
