//! The catalog over HTTP: `GET /torrents` (HTML with a search box, or JSON
//! with `?format=json`; `?q=` searches), `GET /torrents.json`,
//! `GET /torrents/<info-hash>.torrent` (the exact bytes published) and
//! `POST /torrents` (publish a .torrent sent as the request body).

use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use sta_proto::InfoHash;
use sta_proto::units::format_bytes;

use super::{AppState, announce_url, escape};
use crate::catalog::{CatalogEntry, PublishError};
use crate::stats::ErrorKind;

/// Rows in one listing.
const MAX_ROWS: usize = 1000;

fn row(s: &AppState, e: &CatalogEntry, announce: &str) -> serde_json::Value {
    let st = s.core.scrape_quiet(&e.info_hash);
    json!({
        "name": e.name,
        "size": e.size,
        "files": e.files,
        "info_hash": e.info_hash.to_hex(),
        "seeders": st.complete,
        "leechers": st.incomplete,
        "completed": st.downloaded,
        "private": e.private,
        "added": e.added,
        "magnet": e.magnet(announce),
        "torrent": format!("/torrents/{}.torrent", e.info_hash.to_hex()),
    })
}

fn json_list(s: &AppState, q: &str, headers: &HeaderMap) -> Response {
    let announce = announce_url(headers, s.local);
    let rows: Vec<_> = s
        .core
        .catalog
        .search(q, MAX_ROWS)
        .iter()
        .map(|e| row(s, e, &announce))
        .collect();
    axum::Json(json!({ "announce": announce, "torrents": rows })).into_response()
}

pub async fn list_json(
    State(s): State<AppState>,
    Query(p): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    json_list(&s, p.get("q").map_or("", String::as_str), &headers)
}

pub async fn list(
    State(s): State<AppState>,
    Query(p): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let q = p.get("q").map_or("", String::as_str);
    if p.get("format").is_some_and(|f| f == "json") {
        return json_list(&s, q, &headers);
    }
    let announce = announce_url(&headers, s.local);
    let hits = s.core.catalog.search(q, MAX_ROWS);
    let mut o = String::with_capacity(4096);
    let _ = write!(
        o,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sta tracker: torrents</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px}}\
         td.n{{text-align:right}}td.h{{font-family:monospace}}</style></head><body>\
         <h1>Torrents on this tracker</h1>\
         <form method=\"get\" action=\"/torrents\"><input name=\"q\" value=\"{}\" placeholder=\"name or info-hash\">\
         <button>Search</button></form><p>{} torrent(s). Announce URL: <code>{}</code></p>\
         <table><tr><th>name</th><th>size</th><th>seeders</th><th>leechers</th><th>completed</th>\
         <th>info-hash</th><th></th></tr>",
        escape(q),
        hits.len(),
        escape(&announce)
    );
    for e in &hits {
        let st = s.core.scrape_quiet(&e.info_hash);
        let hex = e.info_hash.to_hex();
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"h\">{hex}</td>\
             <td><a href=\"/torrents/{hex}.torrent\">.torrent</a> <a href=\"{}\">magnet</a></td></tr>",
            escape(&e.name),
            format_bytes(e.size),
            st.complete,
            st.incomplete,
            st.downloaded,
            escape(&e.magnet(&announce)),
        );
    }
    o.push_str("</table><p><a href=\"/\">tracker</a></p></body></html>");
    Html(o).into_response()
}

pub async fn download(State(s): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(h) = file
        .strip_suffix(".torrent")
        .and_then(|hex| InfoHash::from_hex(hex).ok())
    else {
        return (
            StatusCode::NOT_FOUND,
            "ask for /torrents/<40 hex digits>.torrent\n",
        )
            .into_response();
    };
    let core = s.core.clone();
    let found = tokio::task::spawn_blocking(move || core.catalog.bytes(&h)).await;
    match found {
        Ok(Ok(Some(bytes))) => (
            [
                (header::CONTENT_TYPE, "application/x-bittorrent".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}.torrent\"", h.to_hex()),
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(Ok(None)) => (
            StatusCode::NOT_FOUND,
            format!("torrent {} is not in this tracker's catalog\n", h.to_hex()),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!("catalog read: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "catalog read failed\n").into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "catalog read failed\n").into_response(),
    }
}

fn refuse(s: &AppState, status: StatusCode, e: &PublishError) -> Response {
    let kind = match e {
        PublishError::Invalid(_) | PublishError::TooLarge(..) => ErrorKind::PublishInvalid,
        PublishError::Busy(_) => ErrorKind::PublishBusy,
        PublishError::Full(_) | PublishError::BytesFull { .. } => ErrorKind::CatalogFull,
        _ => ErrorKind::PublishRefused,
    };
    s.core.stats.error(kind);
    (status, axum::Json(json!({ "error": e.to_string() }))).into_response()
}

/// Compares without an early exit, so the time taken says nothing about
/// how much of a guessed token was right.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn publish(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if !s.publish {
        return refuse(&s, StatusCode::FORBIDDEN, &PublishError::Disabled);
    }
    if let Some(token) = &s.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !same_token(given.trim().as_bytes(), token.as_bytes()) {
            return refuse(&s, StatusCode::UNAUTHORIZED, &PublishError::BadToken);
        }
    }
    let max = s.max_torrent_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > max) {
        return refuse(
            &s,
            StatusCode::PAYLOAD_TOO_LARGE,
            &PublishError::TooLarge(n, max),
        );
    }
    // Held until the torrent is stored: with it, at most a few bodies are
    // in memory at once, whatever the number of connections.
    let Ok(_slot) = s.publish_slots.clone().try_acquire_owned() else {
        let mut r = refuse(
            &s,
            StatusCode::SERVICE_UNAVAILABLE,
            &PublishError::Busy(s.publish_concurrency),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return r;
    };
    let bytes = match tokio::time::timeout(s.request_timeout, axum::body::to_bytes(body, max)).await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return refuse(
                &s,
                StatusCode::PAYLOAD_TOO_LARGE,
                &PublishError::TooLarge(max + 1, max),
            );
        }
        Err(_) => {
            s.core.stats.error(ErrorKind::PublishRefused);
            return (
                StatusCode::REQUEST_TIMEOUT,
                axum::Json(json!({ "error": "the torrent did not arrive in time" })),
            )
                .into_response();
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    let core = s.core.clone();
    let result = tokio::task::spawn_blocking(move || core.catalog.publish(&bytes, now)).await;
    let announce = announce_url(&headers, s.local);
    match result {
        Ok(Ok((e, new))) => {
            if new {
                s.core.stats.published();
                tracing::info!("published {} ({})", e.name, e.info_hash.to_hex());
            }
            let mut v = row(&s, &e, &announce);
            v["new"] = new.into();
            let status = if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, axum::Json(v)).into_response()
        }
        Ok(Err(e @ (PublishError::Full(_) | PublishError::BytesFull { .. }))) => {
            refuse(&s, StatusCode::INSUFFICIENT_STORAGE, &e)
        }
        Ok(Err(e @ PublishError::Store(_))) => {
            tracing::error!("publish: {e}");
            refuse(&s, StatusCode::INTERNAL_SERVER_ERROR, &e)
        }
        Ok(Err(e)) => refuse(&s, StatusCode::BAD_REQUEST, &e),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "publish failed\n").into_response(),
    }
}
