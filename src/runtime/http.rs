//! The operator's own HTTP endpoint (`--metrics-addr`): `/metrics`, `/healthz` and `/readyz`.

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::runtime::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};
use crate::runtime::readiness::Readiness;

/// What the endpoints read from.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// Served on `/metrics`.
    pub metrics: Metrics,
    /// Decides `/readyz`.
    pub readiness: Readiness,
}

/// The routes, without a listener (handy for embedding).
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves the routes on `listener` until `shutdown` completes, then finishes open requests and returns.
///
/// Bind with `tokio::net::TcpListener::bind(addr)` first, so a bad address fails at start-up and a
/// test can bind port 0 and read the port back.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(state): State<HttpState>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> Response {
    match state.readiness.check() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::readiness::LeaderState;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    struct Reply {
        status: u16,
        content_type: Option<String>,
        body: String,
    }

    async fn get_path(addr: SocketAddr, path: &str) -> Reply {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("content-type: ").map(str::to_owned));
        Reply {
            status,
            content_type,
            body: body.to_owned(),
        }
    }

    async fn start(
        state: HttpState,
    ) -> (
        SocketAddr,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));
        (addr, stop, task)
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text() {
        let state = HttpState {
            metrics: Metrics::new(),
            readiness: Readiness::new(false),
        };
        state.metrics.share_created();
        let (addr, stop, task) = start(state).await;
        let reply = get_path(addr, "/metrics").await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.content_type.as_deref(),
            Some(OPENMETRICS_CONTENT_TYPE)
        );
        assert!(
            reply.body.contains("ots_operator_shares_created_total 1"),
            "{}",
            reply.body
        );
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn healthz_answers_while_not_ready() {
        let state = HttpState {
            metrics: Metrics::new(),
            readiness: Readiness::new(true),
        };
        let (addr, stop, task) = start(state).await;
        assert_eq!(get_path(addr, "/healthz").await.status, 200);
        assert_eq!(get_path(addr, "/readyz").await.status, 503);
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn readyz_follows_watch_and_leader_state_and_says_why() {
        let readiness = Readiness::new(true);
        let state = HttpState {
            metrics: Metrics::new(),
            readiness: readiness.clone(),
        };
        let (addr, stop, task) = start(state).await;

        let reply = get_path(addr, "/readyz").await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body, "leader election is not healthy\n");

        readiness.set_leader_state(LeaderState::Leading);
        let reply = get_path(addr, "/readyz").await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body, "watch not established\n");

        readiness.set_watch_ready(true);
        assert_eq!(get_path(addr, "/readyz").await.status, 200);

        readiness.set_leader_state(LeaderState::Unhealthy);
        assert_eq!(get_path(addr, "/readyz").await.status, 503);

        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn shutdown_stops_the_server() {
        let state = HttpState {
            metrics: Metrics::new(),
            readiness: Readiness::new(false),
        };
        let (addr, stop, task) = start(state).await;
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
