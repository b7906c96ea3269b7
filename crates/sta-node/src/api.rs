//! The control API: HTTP + JSON on 127.0.0.1 by default. It serves the same
//! data as the prompt (through the shared [`control`](crate::control)
//! language) and accepts pause, resume and quit. Requests from other hosts
//! are refused unless the API was bound off loopback with a token, and then
//! they must carry it (`Authorization: Bearer TOKEN`).
//!
//! A web page in a browser on this machine also connects from loopback, so
//! loopback alone proves nothing: a request is refused when its `Host` is not
//! an address of this API or `localhost` (DNS rebinding: `evil.example`
//! resolving to 127.0.0.1), unless it carries the token, and whenever it
//! carries an `Origin` other than the API's own (a cross-site form or fetch;
//! `sta ctl` and curl send none).

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
    /// Where the API listens: the `Host` and `Origin` it answers to.
    local: SocketAddr,
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
        local: listener.local_addr()?,
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

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    OtherHost,
    ForeignHost,
    ForeignOrigin,
}

fn check(api: &Api, from: SocketAddr, headers: &HeaderMap) -> Result<(), Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let has_token = api.token.as_ref().is_some_and(|token| {
        header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    });
    if !sta_proto::tracker::canonical_addr(from).ip().is_loopback() && !has_token {
        return Err(Refusal::OtherHost);
    }
    let host = header("host");
    if !has_token && !host.is_some_and(|h| own_host(h, api.local)) {
        return Err(Refusal::ForeignHost);
    }
    if let Some(origin) = header("origin") {
        // A browser sends the page's origin; ours is `http://` + the Host
        // it reached us by (checked above, or vouched for by the token).
        let ours = host.is_some_and(|h| {
            origin
                .strip_prefix("http://")
                .is_some_and(|o| o.eq_ignore_ascii_case(h))
        });
        if !ours {
            return Err(Refusal::ForeignOrigin);
        }
    }
    Ok(())
}

/// Whether a `Host` header names this API: an IP literal that is loopback or
/// the bound address, or `localhost`, with our port (or none). Names other
/// than `localhost` are refused because a page can make any name resolve to
/// 127.0.0.1.
fn own_host(host: &str, local: SocketAddr) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        // `[::1]:6880`, `127.0.0.1:6880`, `localhost:6880`; not `::1` bare.
        Some((n, p)) if !n.contains(':') || n.ends_with(']') => (n, Some(p)),
        _ => (host, None),
    };
    if port.is_some_and(|p| p.parse() != Ok(local.port())) {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() || ip == local.ip())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn forbidden(why: Refusal) -> Response {
    let error = match why {
        Refusal::OtherHost => "requests from other hosts need the API token",
        Refusal::ForeignHost => {
            "the Host header does not name this API (use its address, or send the API token)"
        }
        Refusal::ForeignOrigin => "requests from web pages of other origins are refused",
    };
    (
        StatusCode::FORBIDDEN,
        Json(serde_json::json!({ "error": error })),
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
    if let Err(why) = check(&api, from, &headers) {
        return forbidden(why);
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
    if let Err(why) = check(&api, from, &headers) {
        return forbidden(why);
    }
    match control::parse(&body.line) {
        // Each request is a caller of its own: a selection would not outlive
        // it, so saying "selected" would be a lie.
        Ok(Command::Select(n)) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": format!(
                "select does not carry over between API requests: name the torrent in each command (sta ctl --torrent {n} ..., or #{n})"
            )})),
        )
            .into_response(),
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
    if let Err(why) = check(&api, from, &headers) {
        return forbidden(why);
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
    if let Err(why) = check(&api, from, &headers) {
        return forbidden(why);
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    async fn api(local: &str, token: Option<&str>) -> (Api, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::NodeConfig {
            port: 0,
            bind: Some("127.0.0.1".parse().unwrap()),
            state_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let api = Api {
            session: Session::start(config).await.unwrap(),
            default_dir: dir.path().to_path_buf(),
            quit: CancellationToken::new(),
            token: token.map(String::from),
            started: Instant::now(),
            local: local.parse().unwrap(),
        };
        (api, dir)
    }

    fn headers(list: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_host_must_name_this_api() {
        let local: SocketAddr = "127.0.0.1:6880".parse().unwrap();
        for ok in [
            "127.0.0.1:6880",
            "127.0.0.1",
            "127.0.0.2:6880",
            "localhost:6880",
            "LOCALHOST",
            "[::1]:6880",
            "::1",
        ] {
            assert!(own_host(ok, local), "{ok}");
        }
        for bad in [
            "evil.example:6880",
            "evil.example",
            "127.0.0.1:6881",
            "localhost.evil.example:6880",
            "10.0.0.1:6880",
            "",
            "[::1]:1",
        ] {
            assert!(!own_host(bad, local), "{bad}");
        }
        let wide: SocketAddr = "10.0.0.1:6880".parse().unwrap();
        assert!(own_host("10.0.0.1:6880", wide));
    }

    #[tokio::test]
    async fn loopback_callers_need_our_host_and_origin() {
        let (a, _dir) = api("127.0.0.1:6880", None).await;
        let me: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let host = ("host", "127.0.0.1:6880");
        assert_eq!(check(&a, me, &headers(&[host])), Ok(()));
        assert_eq!(
            check(&a, me, &headers(&[("host", "evil.example:6880")])),
            Err(Refusal::ForeignHost)
        );
        assert_eq!(check(&a, me, &headers(&[])), Err(Refusal::ForeignHost));
        assert_eq!(
            check(&a, me, &headers(&[host, ("origin", "http://evil.example")])),
            Err(Refusal::ForeignOrigin)
        );
        assert_eq!(
            check(&a, me, &headers(&[host, ("origin", "null")])),
            Err(Refusal::ForeignOrigin)
        );
        assert_eq!(
            check(
                &a,
                me,
                &headers(&[host, ("origin", "http://127.0.0.1:6880")])
            ),
            Ok(())
        );
    }

    /// Bound off loopback (which the runner allows only with a token): other
    /// hosts get in with the token and only with it.
    #[tokio::test]
    async fn other_hosts_need_the_token() {
        let (a, _dir) = api("10.0.0.1:6880", Some("s3cret")).await;
        let other: SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let host = ("host", "10.0.0.1:6880");
        assert_eq!(check(&a, other, &headers(&[host])), Err(Refusal::OtherHost));
        assert_eq!(
            check(
                &a,
                other,
                &headers(&[host, ("authorization", "Bearer wrong")])
            ),
            Err(Refusal::OtherHost)
        );
        assert_eq!(
            check(
                &a,
                other,
                &headers(&[host, ("authorization", "Bearer s3cret")])
            ),
            Ok(())
        );
        // With the token, a name in Host is fine (a DNS name of the machine)...
        assert_eq!(
            check(
                &a,
                other,
                &headers(&[
                    ("host", "node.lan:6880"),
                    ("authorization", "Bearer s3cret")
                ])
            ),
            Ok(())
        );
        // ...but a foreign page's Origin never is.
        assert_eq!(
            check(
                &a,
                other,
                &headers(&[
                    host,
                    ("authorization", "Bearer s3cret"),
                    ("origin", "http://evil.example")
                ])
            ),
            Err(Refusal::ForeignOrigin)
        );
    }
}
