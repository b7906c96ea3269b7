//! `GET /announce` and `GET /scrape` (BEP 3, 23, 7, 48). Refusals are a
//! bencoded `failure reason` with status 200, as clients expect, and are
//! counted by kind.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use sta_proto::tracker::AnnounceResponse;
use sta_proto::tracker::http::{
    HttpAnnounce, QueryError, encode_failure, encode_scrape, parse_scrape_query,
};

use super::AppState;
use crate::stats::{ErrorKind, Proto};

fn bencoded(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

pub fn failure(reason: &str) -> Response {
    bencoded(encode_failure(reason))
}

pub fn kind_of(e: &QueryError) -> ErrorKind {
    match e {
        QueryError::Missing(_) => ErrorKind::MissingParam,
        QueryError::Malformed(_) => ErrorKind::MalformedParam,
        QueryError::InfoHashLength(_) => ErrorKind::BadInfoHash,
        QueryError::PeerIdLength(_) => ErrorKind::BadPeerId,
        QueryError::BadPort => ErrorKind::BadPort,
        QueryError::BadEvent(_) => ErrorKind::BadEvent,
        QueryError::TooLong => ErrorKind::QueryTooLong,
        QueryError::TooManyHashes => ErrorKind::TooManyHashes,
    }
}

pub async fn announce(
    State(s): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    uri: Uri,
) -> Response {
    let query = uri.query().unwrap_or_default();
    let a = match HttpAnnounce::parse_query(query.as_bytes()) {
        Ok(a) => a,
        Err(e) => {
            s.core.stats.error(kind_of(&e));
            return failure(&e.to_string());
        }
    };
    match s
        .core
        .announce(Instant::now(), &a.announce, remote.ip(), Proto::Http)
    {
        Ok(r) => bencoded(
            AnnounceResponse {
                interval: s.core.interval,
                min_interval: Some(s.core.min_interval),
                complete: r.complete,
                incomplete: r.incomplete,
                peers: r.peers,
                warning: None,
            }
            .encode(a.compact, a.no_peer_id),
        ),
        Err(refused) => failure(&refused.reason),
    }
}

pub async fn scrape(State(s): State<AppState>, uri: Uri) -> Response {
    let query = uri.query().unwrap_or_default();
    let hashes = match parse_scrape_query(query.as_bytes()) {
        Ok(h) if h.is_empty() => {
            s.core.stats.error(ErrorKind::MissingParam);
            return failure("scrape needs at least one info_hash parameter");
        }
        Ok(h) => h,
        Err(e) => {
            s.core.stats.error(kind_of(&e));
            return failure(&e.to_string());
        }
    };
    let stats = s.core.scrape(&hashes, Proto::Http);
    let files: Vec<_> = hashes.into_iter().zip(stats).collect();
    bencoded(encode_scrape(&files))
}
