//! HTTP tracker messages: the announce and scrape query strings (BEP 3) with
//! raw binary `info_hash`/`peer_id` percent-decoding exactly as clients send
//! them, and the bencoded responses (compact BEP 23, dictionary form, BEP 7
//! `peers6`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use bt_bencode::{ByteString, Value};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};

use super::{
    Announce, AnnounceResponse, Event, PeerEntry, ScrapeStats, read_compact, write_compact,
};
use crate::bencode::{self, dict_get};
use crate::{InfoHash, PeerId};

/// Most info-hashes accepted in one scrape request.
pub const MAX_SCRAPE_HASHES: usize = 100;
/// Longest query string accepted (clients send about 300 bytes).
pub const MAX_QUERY_LEN: usize = 8 * 1024;

/// An HTTP announce: the shared [`Announce`] plus the HTTP-only flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnnounce {
    pub announce: Announce,
    /// Compact peer list (BEP 23); clients ask for it, and it is the default.
    pub compact: bool,
    pub no_peer_id: bool,
}

/// A request the tracker refuses; the text goes into `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("missing parameter `{0}`")]
    Missing(&'static str),
    #[error("parameter `{0}` is malformed")]
    Malformed(&'static str),
    #[error("info_hash must be 20 bytes, got {0}")]
    InfoHashLength(usize),
    #[error("peer_id must be 20 bytes, got {0}")]
    PeerIdLength(usize),
    #[error("port must be a number from 1 to 65535")]
    BadPort,
    #[error("unknown event {0:?}: use started, completed, stopped or leave it empty")]
    BadEvent(String),
    #[error("query string longer than {MAX_QUERY_LEN} bytes")]
    TooLong,
    #[error("scrape asks for more than {MAX_SCRAPE_HASHES} info-hashes")]
    TooManyHashes,
}

// Unreserved characters stay as they are; everything else is %XX.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn pairs(query: &[u8]) -> impl Iterator<Item = (&[u8], Vec<u8>)> {
    query
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut it = p.splitn(2, |b| *b == b'=');
            let k = it.next().unwrap_or_default();
            let v = it.next().unwrap_or_default();
            // A literal `+` stays a `+` byte: binary values must not turn it into a space.
            (k, percent_decode(v).collect())
        })
}

fn number<T: std::str::FromStr>(v: &[u8], name: &'static str) -> Result<T, QueryError> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(QueryError::Malformed(name))
}

impl HttpAnnounce {
    /// Parses the query string of `GET /announce?...` (without the `?`).
    pub fn parse_query(query: &[u8]) -> Result<Self, QueryError> {
        if query.len() > MAX_QUERY_LEN {
            return Err(QueryError::TooLong);
        }
        let (mut info_hash, mut peer_id, mut port) = (None, None, None);
        let (mut uploaded, mut downloaded, mut left) = (0u64, 0u64, None);
        let mut event = Event::None;
        let (mut numwant, mut key, mut ip) = (None, None, None);
        let (mut compact, mut no_peer_id) = (true, false);
        for (k, v) in pairs(query) {
            match k {
                b"info_hash" => {
                    info_hash =
                        Some(InfoHash::from_slice(&v).ok_or(QueryError::InfoHashLength(v.len()))?)
                }
                b"peer_id" => {
                    peer_id = Some(PeerId::from_slice(&v).ok_or(QueryError::PeerIdLength(v.len()))?)
                }
                b"port" => {
                    let p: u32 = number(&v, "port").map_err(|_| QueryError::BadPort)?;
                    port = Some(
                        u16::try_from(p)
                            .ok()
                            .filter(|p| *p != 0)
                            .ok_or(QueryError::BadPort)?,
                    );
                }
                b"uploaded" => uploaded = number(&v, "uploaded")?,
                b"downloaded" => downloaded = number(&v, "downloaded")?,
                b"left" => left = Some(number(&v, "left")?),
                b"event" => {
                    event = match &v[..] {
                        b"" | b"empty" | b"paused" => Event::None,
                        b"started" => Event::Started,
                        b"completed" => Event::Completed,
                        b"stopped" => Event::Stopped,
                        other => {
                            return Err(QueryError::BadEvent(
                                String::from_utf8_lossy(other).into_owned(),
                            ));
                        }
                    }
                }
                b"numwant" => {
                    numwant =
                        Some(number::<i64>(&v, "numwant")?.clamp(0, i64::from(u32::MAX)) as u32)
                }
                b"key" => {
                    // Clients send the key as hex or decimal text; keep a stable 32-bit digest of it.
                    key = Some(v.iter().fold(0x811c_9dc5u32, |h, b| {
                        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
                    }))
                }
                b"ip" => {
                    ip = std::str::from_utf8(&v)
                        .ok()
                        .and_then(|s| s.parse::<IpAddr>().ok())
                }
                b"compact" => compact = &v[..] != b"0",
                b"no_peer_id" => no_peer_id = &v[..] == b"1",
                _ => {}
            }
        }
        Ok(HttpAnnounce {
            announce: Announce {
                info_hash: info_hash.ok_or(QueryError::Missing("info_hash"))?,
                peer_id: peer_id.ok_or(QueryError::Missing("peer_id"))?,
                port: port.ok_or(QueryError::Missing("port"))?,
                uploaded,
                downloaded,
                left: left.ok_or(QueryError::Missing("left"))?,
                event,
                numwant,
                key,
                ip,
            },
            compact,
            no_peer_id,
        })
    }

    /// Builds the query string a client appends to the announce URL.
    pub fn to_query(&self) -> String {
        let a = &self.announce;
        let mut q = format!(
            "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact={}",
            percent_encode(&a.info_hash.0, QUERY),
            percent_encode(&a.peer_id.0, QUERY),
            a.port,
            a.uploaded,
            a.downloaded,
            a.left,
            u8::from(self.compact),
        );
        if self.no_peer_id {
            q.push_str("&no_peer_id=1");
        }
        if a.event != Event::None {
            q.push_str("&event=");
            q.push_str(a.event.as_str());
        }
        if let Some(n) = a.numwant {
            q.push_str(&format!("&numwant={n}"));
        }
        if let Some(k) = a.key {
            q.push_str(&format!("&key={k:08x}"));
        }
        if let Some(ip) = a.ip {
            q.push_str(&format!("&ip={ip}"));
        }
        q
    }
}

/// Parses a scrape query: one or many `info_hash` parameters.
pub fn parse_scrape_query(query: &[u8]) -> Result<Vec<InfoHash>, QueryError> {
    if query.len() > MAX_QUERY_LEN {
        return Err(QueryError::TooLong);
    }
    let mut out = Vec::new();
    for (k, v) in pairs(query) {
        if k == b"info_hash" {
            if out.len() == MAX_SCRAPE_HASHES {
                return Err(QueryError::TooManyHashes);
            }
            out.push(InfoHash::from_slice(&v).ok_or(QueryError::InfoHashLength(v.len()))?);
        }
    }
    Ok(out)
}

pub fn scrape_query(hashes: &[InfoHash]) -> String {
    hashes
        .iter()
        .map(|h| format!("info_hash={}", percent_encode(&h.0, QUERY)))
        .collect::<Vec<_>>()
        .join("&")
}

fn key(k: &str) -> ByteString {
    ByteString::from(k.as_bytes().to_vec())
}

/// `d14:failure reason...e`, the answer to any refused request.
pub fn encode_failure(reason: &str) -> Vec<u8> {
    let mut d = BTreeMap::new();
    d.insert(key("failure reason"), Value::ByteStr(key(reason)));
    bencode::encode(&Value::Dict(d))
}

impl AnnounceResponse {
    /// Bencodes the response: compact `peers`/`peers6` strings, or the list of
    /// dictionaries when the client asked for `compact=0`.
    pub fn encode(&self, compact: bool, no_peer_id: bool) -> Vec<u8> {
        let mut d = BTreeMap::new();
        d.insert(key("interval"), Value::from(self.interval));
        if let Some(m) = self.min_interval {
            d.insert(key("min interval"), Value::from(m));
        }
        d.insert(key("complete"), Value::from(self.complete));
        d.insert(key("incomplete"), Value::from(self.incomplete));
        if let Some(w) = &self.warning {
            d.insert(key("warning message"), Value::ByteStr(key(w)));
        }
        if compact {
            let (mut v4, mut v6) = (Vec::new(), Vec::new());
            for p in &self.peers {
                write_compact(&p.addr, if p.addr.is_ipv4() { &mut v4 } else { &mut v6 });
            }
            d.insert(key("peers"), Value::ByteStr(v4.into()));
            if !v6.is_empty() {
                d.insert(key("peers6"), Value::ByteStr(v6.into()));
            }
        } else {
            let list = self
                .peers
                .iter()
                .map(|p| {
                    let mut e = BTreeMap::new();
                    e.insert(key("ip"), Value::ByteStr(key(&p.addr.ip().to_string())));
                    e.insert(key("port"), Value::from(p.addr.port()));
                    if let (false, Some(id)) = (no_peer_id, p.peer_id) {
                        e.insert(key("peer id"), Value::ByteStr(id.0.to_vec().into()));
                    }
                    Value::Dict(e)
                })
                .collect();
            d.insert(key("peers"), Value::List(list));
        }
        bencode::encode(&Value::Dict(d))
    }

    /// Parses a tracker's answer (client side). A `failure reason` is an error.
    pub fn parse(body: &[u8]) -> Result<Self, ResponseError> {
        let v: Value = bencode::decode(body).map_err(|e| ResponseError::Invalid(e.to_string()))?;
        if let Some(r) = dict_get(&v, "failure reason") {
            return Err(ResponseError::Failure(lossy(r)));
        }
        let num = |k: &str| {
            dict_get(&v, k)
                .and_then(Value::as_u64)
                .map(|n| n.min(u64::from(u32::MAX)) as u32)
        };
        let mut peers = Vec::new();
        match dict_get(&v, "peers") {
            Some(Value::ByteStr(b)) => peers.extend(
                read_compact(b.as_slice(), false)
                    .into_iter()
                    .map(|addr| PeerEntry {
                        addr,
                        peer_id: None,
                    }),
            ),
            Some(Value::List(list)) => {
                for e in list {
                    let ip = dict_get(e, "ip")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse::<IpAddr>().ok());
                    let port = dict_get(e, "port")
                        .and_then(Value::as_u64)
                        .and_then(|p| u16::try_from(p).ok());
                    let peer_id = dict_get(e, "peer id")
                        .and_then(Value::as_byte_str)
                        .and_then(|b| PeerId::from_slice(b.as_slice()));
                    if let (Some(ip), Some(port)) = (ip, port) {
                        peers.push(PeerEntry {
                            addr: SocketAddr::new(ip, port),
                            peer_id,
                        });
                    }
                }
            }
            _ => {}
        }
        if let Some(Value::ByteStr(b)) = dict_get(&v, "peers6") {
            peers.extend(
                read_compact(b.as_slice(), true)
                    .into_iter()
                    .map(|addr| PeerEntry {
                        addr,
                        peer_id: None,
                    }),
            );
        }
        Ok(AnnounceResponse {
            interval: num("interval").ok_or(ResponseError::Invalid("no interval".into()))?,
            min_interval: num("min interval"),
            complete: num("complete").unwrap_or(0),
            incomplete: num("incomplete").unwrap_or(0),
            peers,
            warning: dict_get(&v, "warning message").map(lossy),
        })
    }
}

fn lossy(v: &Value) -> String {
    v.as_byte_str()
        .map(|b| String::from_utf8_lossy(b.as_slice()).into_owned())
        .unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("tracker refused: {0}")]
    Failure(String),
    #[error("tracker sent an invalid response: {0}")]
    Invalid(String),
}

/// Bencodes a scrape response: `files` keyed by raw info-hash.
pub fn encode_scrape(stats: &[(InfoHash, ScrapeStats)]) -> Vec<u8> {
    let mut files = BTreeMap::new();
    for (h, s) in stats {
        let mut e = BTreeMap::new();
        e.insert(key("complete"), Value::from(s.complete));
        e.insert(key("downloaded"), Value::from(s.downloaded));
        e.insert(key("incomplete"), Value::from(s.incomplete));
        files.insert(ByteString::from(h.0.to_vec()), Value::Dict(e));
    }
    let mut d = BTreeMap::new();
    d.insert(key("files"), Value::Dict(files));
    bencode::encode(&Value::Dict(d))
}

/// Parses a scrape response (client side).
pub fn parse_scrape(body: &[u8]) -> Result<Vec<(InfoHash, ScrapeStats)>, ResponseError> {
    let v: Value = bencode::decode(body).map_err(|e| ResponseError::Invalid(e.to_string()))?;
    if let Some(r) = dict_get(&v, "failure reason") {
        return Err(ResponseError::Failure(lossy(r)));
    }
    let files = dict_get(&v, "files")
        .and_then(Value::as_dict)
        .ok_or(ResponseError::Invalid("no files".into()))?;
    let mut out = Vec::new();
    for (h, s) in files {
        let Some(h) = InfoHash::from_slice(h.as_slice()) else {
            continue;
        };
        let n = |k: &str| {
            dict_get(s, k)
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(u64::from(u32::MAX)) as u32
        };
        out.push((
            h,
            ScrapeStats {
                complete: n("complete"),
                downloaded: n("downloaded"),
                incomplete: n("incomplete"),
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> HttpAnnounce {
        HttpAnnounce {
            announce: Announce {
                info_hash: InfoHash([
                    0x00, 0xff, b'%', b'&', b'+', b' ', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                    14,
                ]),
                peer_id: PeerId(*b"-ST0001-abc%&+ 12345"),
                port: 6881,
                uploaded: 1,
                downloaded: 2,
                left: 3,
                event: Event::Started,
                numwant: Some(80),
                key: None,
                ip: None,
            },
            compact: true,
            no_peer_id: false,
        }
    }

    #[test]
    fn query_round_trip_with_binary_values() {
        let a = sample();
        assert_eq!(
            HttpAnnounce::parse_query(a.to_query().as_bytes()).unwrap(),
            a
        );
    }

    #[test]
    fn parses_what_transmission_sends() {
        // Lower-case escapes, raw unreserved bytes, extra unknown keys.
        let q = b"info_hash=%9a%81%dd%ec%ef%f2%5d%3e%e0%c1%93%c7%9f%15%c4%e1%20%fd%3b%a0&peer_id=-TR3000-abcdefghijkl&port=51413&uploaded=0&downloaded=0&left=1000&numwant=80&key=4a1b2c3d&compact=1&supportcrypto=1&event=started";
        let a = HttpAnnounce::parse_query(q).unwrap();
        assert_eq!(
            a.announce.info_hash.to_hex(),
            "9a81ddeceff25d3ee0c193c79f15c4e120fd3ba0"
        );
        assert_eq!(a.announce.port, 51413);
        assert_eq!(a.announce.event, Event::Started);
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        let ok = sample().to_query();
        let cases: Vec<(String, QueryError)> = vec![
            (
                ok.replace("info_hash=", "x="),
                QueryError::Missing("info_hash"),
            ),
            ("info_hash=abc".into(), QueryError::InfoHashLength(3)),
            (ok.replace("port=6881", "port=0"), QueryError::BadPort),
            (ok.replace("port=6881", "port=70000"), QueryError::BadPort),
            (ok.replace("port=6881", "port=http"), QueryError::BadPort),
            (
                ok.replace("event=started", "event=bogus"),
                QueryError::BadEvent("bogus".into()),
            ),
            (
                ok.replace("left=3", "left=-1"),
                QueryError::Malformed("left"),
            ),
            (
                ok.replace("peer_id=", "peer_id=x&y="),
                QueryError::PeerIdLength(1),
            ),
            ("a".repeat(MAX_QUERY_LEN + 1), QueryError::TooLong),
        ];
        for (q, want) in cases {
            assert_eq!(HttpAnnounce::parse_query(q.as_bytes()), Err(want), "{q}");
        }
    }

    #[test]
    fn response_compact_and_dict_forms() {
        let r = AnnounceResponse {
            interval: 1800,
            min_interval: Some(60),
            complete: 2,
            incomplete: 3,
            peers: vec![
                PeerEntry {
                    addr: "127.0.0.2:7000".parse().unwrap(),
                    peer_id: Some(PeerId([7; 20])),
                },
                PeerEntry {
                    addr: "[::1]:7001".parse().unwrap(),
                    peer_id: None,
                },
            ],
            warning: None,
        };
        let compact = AnnounceResponse::parse(&r.encode(true, false)).unwrap();
        assert_eq!(
            compact.peers.iter().map(|p| p.addr).collect::<Vec<_>>(),
            r.peers.iter().map(|p| p.addr).collect::<Vec<_>>()
        );
        assert_eq!(
            (
                compact.interval,
                compact.min_interval,
                compact.complete,
                compact.incomplete
            ),
            (1800, Some(60), 2, 3)
        );
        let dict = AnnounceResponse::parse(&r.encode(false, false)).unwrap();
        assert_eq!(dict.peers, r.peers);
        let failure = AnnounceResponse::parse(&encode_failure("nope"));
        assert_eq!(failure, Err(ResponseError::Failure("nope".into())));
    }

    #[test]
    fn scrape_round_trip() {
        let hs = vec![InfoHash([1; 20]), InfoHash([b'&'; 20])];
        assert_eq!(
            parse_scrape_query(scrape_query(&hs).as_bytes()).unwrap(),
            hs
        );
        let stats = vec![(
            hs[0],
            ScrapeStats {
                complete: 1,
                downloaded: 2,
                incomplete: 3,
            },
        )];
        assert_eq!(parse_scrape(&encode_scrape(&stats)).unwrap(), stats);
    }

    proptest! {
        #[test]
        fn never_panics(q in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = HttpAnnounce::parse_query(&q);
            let _ = parse_scrape_query(&q);
            let _ = AnnounceResponse::parse(&q);
        }
    }
}
