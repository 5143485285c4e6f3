//! Server-sent events: the clusters' list, or one cluster's view, sent
//! whole when it starts and again whenever it changes (the probe time
//! alone is not a change). The web page draws from these; a keep-alive
//! comment goes out every 15 s so proxies keep the stream open.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::Value;
use tokio::sync::watch;

use super::model::{ClusterId, ClusterList};
use super::{Access, ApiError, ApiState, ReadModel, authorize, known, path_error};

/// The keep-alive period of every stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a stream sends: an event's name and data, or `None` when there
/// is nothing (any more) to send.
type Render = Arc<dyn Fn(&ReadModel) -> Option<(&'static str, Value)> + Send + Sync>;

/// `value` without its probe times, to tell a change from a new round.
fn without_times(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "observedAt")
                .map(|(k, v)| (k.clone(), without_times(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_times).collect()),
        other => other.clone(),
    }
}

struct Cursor {
    model: ReadModel,
    changes: watch::Receiver<u64>,
    render: Render,
    last: Option<Value>,
    ended: bool,
}

/// The events of `render` over `model`: the first at once, the next
/// ones at each change.
fn events(model: ReadModel, render: Render) -> impl Stream<Item = Result<Event, Infallible>> {
    let cursor = Cursor {
        changes: model.subscribe(),
        model,
        render,
        last: None,
        ended: false,
    };
    futures::stream::unfold(cursor, |mut c| async move {
        if c.ended {
            return None;
        }
        loop {
            c.changes.borrow_and_update();
            match (c.render)(&c.model) {
                None => {
                    c.ended = true;
                    let e = Event::default().event("gone").data("{}");
                    return Some((Ok(e), c));
                }
                Some((name, value)) => {
                    let bare = without_times(&value);
                    if c.last.as_ref() != Some(&bare) {
                        c.last = Some(bare);
                        let e = Event::default().event(name).data(value.to_string());
                        return Some((Ok(e), c));
                    }
                }
            }
            if c.changes.changed().await.is_err() {
                return None;
            }
        }
    })
}

fn sse(model: ReadModel, render: Render) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(events(model, render)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// `GET /api/v1/stream/clusters`: `clusters` events, each the whole
/// list (as `GET /api/v1/clusters` answers it).
pub(super) async fn clusters(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    authorize(&s, &headers, Access::Read(None)).await?;
    let render: Render = Arc::new(|m: &ReadModel| {
        let list = ClusterList {
            items: m.list().iter().map(|c| c.summary()).collect(),
        };
        Some((
            "clusters",
            serde_json::to_value(list).unwrap_or(Value::Null),
        ))
    });
    Ok(sse(s.model.clone(), render))
}

/// `GET /api/v1/stream/clusters/{namespace}/{name}`: `cluster` events,
/// each the whole view (as `GET /api/v1/clusters/{namespace}/{name}`
/// answers it), and `gone` when the cluster is no longer watched.
pub(super) async fn cluster(
    State(s): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Path((namespace, name)) = path.map_err(path_error)?;
    let id = ClusterId::new(namespace, name);
    authorize(&s, &headers, Access::Read(Some(id.clone()))).await?;
    known(&s, &id)?;
    let render: Render = Arc::new(move |m: &ReadModel| {
        let view = m.get(&id)?;
        Some((
            "cluster",
            serde_json::to_value(&*view).unwrap_or(Value::Null),
        ))
    });
    Ok(sse(s.model.clone(), render))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use serde_json::json;

    #[test]
    fn probe_times_are_not_changes() {
        let a = json!({"observedAt": "1", "items": [{"observedAt": "1", "x": 1}]});
        let b = json!({"observedAt": "2", "items": [{"observedAt": "2", "x": 1}]});
        let c = json!({"observedAt": "2", "items": [{"observedAt": "2", "x": 2}]});
        assert_eq!(without_times(&a), without_times(&b));
        assert_ne!(without_times(&b), without_times(&c));
    }

    #[tokio::test]
    async fn a_stream_sends_at_once_then_at_each_change_then_gone() {
        let model = ReadModel::default();
        let state = std::sync::Arc::new(std::sync::Mutex::new(Some(1)));
        let seen = state.clone();
        let render: Render = Arc::new(move |_m: &ReadModel| {
            let v = *seen.lock().unwrap();
            v.map(|n| ("n", json!({"n": n, "observedAt": "now"})))
        });
        let mut s = Box::pin(events(model.clone(), render));
        assert!(s.next().await.is_some(), "the first event at once");
        // A change of content is sent (a change of time alone is not:
        // probe_times_are_not_changes).
        *state.lock().unwrap() = Some(2);
        model.changed();
        let next = tokio::time::timeout(Duration::from_secs(5), s.next()).await;
        assert!(matches!(next, Ok(Some(Ok(_)))));
        *state.lock().unwrap() = None;
        model.changed();
        let gone = tokio::time::timeout(Duration::from_secs(5), s.next()).await;
        assert!(matches!(gone, Ok(Some(Ok(_)))));
        let end = tokio::time::timeout(Duration::from_secs(5), s.next()).await;
        assert!(matches!(end, Ok(None)), "the stream ends after gone");
    }
}
