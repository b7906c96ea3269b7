//! The HTTP front end: the accept loop with its limits, and the routes.
//! Limits: at most `http_max_connections` connections (more are closed at
//! accept and counted), 16 KiB of request head (hyper's buffer), a deadline
//! to send the head, a deadline for a publish body, at most
//! `publish_concurrency` publish bodies at once, and a cap on how long a
//! connection lives. Handlers are in `announce`, `pages` and `catalog`.

mod announce;
mod catalog;
mod pages;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::TrackerConfig;
use crate::core::Core;
use crate::stats::ErrorKind;

/// Bytes of request line and headers hyper buffers at most.
const MAX_HEAD: usize = 16 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub core: Arc<Core>,
    pub publish: bool,
    pub token: Option<Arc<str>>,
    pub request_timeout: Duration,
    pub max_torrent_bytes: usize,
    /// One permit per publish body being received (`publish_concurrency`).
    pub publish_slots: Arc<Semaphore>,
    pub publish_concurrency: usize,
    /// Where the HTTP listener is bound, when a request carries no `Host`.
    pub local: Option<SocketAddr>,
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.max_torrent_bytes + 64 * 1024;
    Router::new()
        .route("/announce", get(announce::announce))
        .route("/scrape", get(announce::scrape))
        .route("/", get(pages::index))
        .route("/stats.json", get(pages::stats_json))
        .route("/metrics", get(pages::metrics))
        .route("/torrents", get(catalog::list).post(catalog::publish))
        .route("/torrents.json", get(catalog::list_json))
        .route("/torrents/{file}", get(catalog::download))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Accepts connections until cancelled, then lets open ones finish for a
/// moment.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    config: &TrackerConfig,
    cancel: CancellationToken,
) {
    let app = router(state.clone());
    let slots = Arc::new(Semaphore::new(config.http_max_connections.max(1)));
    let tasks = TaskTracker::new();
    let head_timeout = Duration::from_secs(config.http_request_timeout_secs.max(1));
    let lifetime = Duration::from_secs(config.http_connection_secs.max(1));
    loop {
        let (stream, remote) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off a little
                    // instead of spinning on the error.
                    tracing::warn!("http accept: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            state.core.stats.error(ErrorKind::HttpConnectionsFull);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.oneshot(req).await.unwrap_or_else(|e| match e {})) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(head_timeout)
                .max_buf_size(MAX_HEAD)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = tokio::time::sleep(lifetime) => {}
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
            drop(permit);
        });
    }
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(3), tasks.wait()).await;
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `http://HOST/announce` as the client reached us, for magnet links.
pub fn announce_url(headers: &axum::http::HeaderMap, local: Option<SocketAddr>) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() < 256 && !h.contains(['/', ' ', '"', '<']))
        .map(str::to_owned)
        .or_else(|| local.map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost:6969".into());
    format!("http://{host}/announce")
}
