//! The control API: HTTP + JSON on 127.0.0.1 by default. It serves the same
//! data as the prompt (through the shared [`control`](crate::control)
//! language) and accepts pause, resume and quit. Requests from other hosts
//! are refused unless the API was bound off loopback with a token, and then
//! they must carry it (`Authorization: Bearer TOKEN`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::control::{self, Command, Controller, PeerSort, Target};
use crate::session::Session;
use crate::snapshot::node_snapshot;

#[derive(Clone)]
struct Api {
    session: Session,
    default_dir: PathBuf,
    quit: CancellationToken,
    token: Option<String>,
    started: Instant,
}

#[derive(Deserialize)]
struct CommandBody {
    line: String,
    /// Torrent the command acts on when it names none (the caller's selection).
    #[serde(default)]
    selected: Option<usize>,
}

/// Serves the API on `listener` until `shutdown`. `quit` is cancelled by the
/// quit command.
pub async fn serve(
    listener: TcpListener,
    session: Session,
    default_dir: PathBuf,
    token: Option<String>,
    quit: CancellationToken,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let api = Api {
        session,
        default_dir,
        quit,
        token,
        started: Instant::now(),
    };
    let app = Router::new()
        .route("/api/status", get(status))
        .route("/api/command", post(command))
        .route("/api/{what}", get(query).post(action))
        .with_state(api);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

fn allowed(api: &Api, from: SocketAddr, headers: &HeaderMap) -> bool {
    if sta_proto::tracker::canonical_addr(from).ip().is_loopback() {
        return true;
    }
    let Some(token) = &api.token else {
        return false;
    };
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(serde_json::json!({"error": "requests from other hosts need the API token"})),
    )
        .into_response()
}

async fn run(api: &Api, cmd: Command, selected: Option<usize>) -> Response {
    let mut c = Controller::new(
        api.session.clone(),
        api.default_dir.clone(),
        api.quit.clone(),
    );
    if let Some(n) = selected {
        c.selected = n;
    }
    match c.execute(cmd).await {
        Ok(reply) => Json(reply).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": e})),
        )
            .into_response(),
    }
}

async fn status(
    State(api): State<Api>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !allowed(&api, from, &headers) {
        return forbidden();
    }
    let snaps: Vec<_> = api
        .session
        .torrents()
        .iter()
        .map(|h| h.snapshot())
        .collect();
    Json(node_snapshot(api.started.elapsed().as_secs_f64(), &snaps)).into_response()
}

async fn command(
    State(api): State<Api>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<CommandBody>,
) -> Response {
    if !allowed(&api, from, &headers) {
        return forbidden();
    }
    match control::parse(&body.line) {
        Ok(cmd) => run(&api, cmd, body.selected).await,
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": e})),
        )
            .into_response(),
    }
}

fn target(q: &HashMap<String, String>) -> Result<Target, String> {
    match q.get("torrent") {
        None => Ok(Target::Selected),
        Some(n) => n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .map(Target::Number)
            .ok_or_else(|| format!("torrent must be a number from 1, got {n:?}")),
    }
}

async fn query(
    State(api): State<Api>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::extract::Path(what): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !allowed(&api, from, &headers) {
        return forbidden();
    }
    let t = match target(&q) {
        Ok(t) => t,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": e})),
            )
                .into_response();
        }
    };
    let cmd = match what.as_str() {
        "peers" => Command::Peers(
            t,
            match q.get("sort").map(String::as_str) {
                Some("up") => PeerSort::Up,
                Some("progress") => PeerSort::Progress,
                Some("addr") => PeerSort::Addr,
                _ => PeerSort::Down,
            },
        ),
        "pieces" => Command::Pieces(t, q.get("piece").and_then(|p| p.parse().ok())),
        "speed" => Command::Speed(t),
        "torrents" => Command::Torrents,
        "trackers" => Command::Trackers(t),
        "files" => Command::Files(t),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({"error": format!("no such endpoint /api/{what}")})),
            )
                .into_response();
        }
    };
    run(&api, cmd, None).await
}

async fn action(
    State(api): State<Api>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::extract::Path(what): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !allowed(&api, from, &headers) {
        return forbidden();
    }
    let t = match target(&q) {
        Ok(t) => t,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": e})),
            )
                .into_response();
        }
    };
    let cmd = match what.as_str() {
        "pause" => Command::Pause(t),
        "resume" => Command::Resume(t),
        "quit" => Command::Quit,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({"error": format!("no such action /api/{what}")})),
            )
                .into_response();
        }
    };
    run(&api, cmd, None).await
}
