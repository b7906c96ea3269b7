//! Counters of what the tracker answered and refused, the announce rate,
//! and their two renderings: JSON (`/stats.json`) and the Prometheus text
//! format (`/metrics`). Counters are relaxed atomics bumped by the front
//! ends; the rate comes from samples taken once a second by `tick`.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use sta_proto::tracker::Event;

/// Transport of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http = 0,
    Udp = 1,
}

const PROTOS: [(Proto, &str); 2] = [(Proto::Http, "http"), (Proto::Udp, "udp")];
const EVENTS: [(Event, &str); 4] = [
    (Event::None, "none"),
    (Event::Started, "started"),
    (Event::Completed, "completed"),
    (Event::Stopped, "stopped"),
];

/// Every kind of refused or dropped request, as counted and exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    MissingParam,
    MalformedParam,
    BadInfoHash,
    BadPeerId,
    BadPort,
    BadEvent,
    QueryTooLong,
    TooManyHashes,
    NotAllowed,
    TorrentCap,
    PeerCap,
    UdpConnectionId,
    UdpMalformed,
    UdpDropped,
    HttpConnectionsFull,
    PublishRefused,
    PublishInvalid,
    PublishBusy,
    CatalogFull,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 19] = [
        ErrorKind::MissingParam,
        ErrorKind::MalformedParam,
        ErrorKind::BadInfoHash,
        ErrorKind::BadPeerId,
        ErrorKind::BadPort,
        ErrorKind::BadEvent,
        ErrorKind::QueryTooLong,
        ErrorKind::TooManyHashes,
        ErrorKind::NotAllowed,
        ErrorKind::TorrentCap,
        ErrorKind::PeerCap,
        ErrorKind::UdpConnectionId,
        ErrorKind::UdpMalformed,
        ErrorKind::UdpDropped,
        ErrorKind::HttpConnectionsFull,
        ErrorKind::PublishRefused,
        ErrorKind::PublishInvalid,
        ErrorKind::PublishBusy,
        ErrorKind::CatalogFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::MissingParam => "missing_param",
            ErrorKind::MalformedParam => "malformed_param",
            ErrorKind::BadInfoHash => "bad_info_hash",
            ErrorKind::BadPeerId => "bad_peer_id",
            ErrorKind::BadPort => "bad_port",
            ErrorKind::BadEvent => "bad_event",
            ErrorKind::QueryTooLong => "query_too_long",
            ErrorKind::TooManyHashes => "too_many_hashes",
            ErrorKind::NotAllowed => "not_allowed",
            ErrorKind::TorrentCap => "torrent_cap",
            ErrorKind::PeerCap => "peer_cap",
            ErrorKind::UdpConnectionId => "udp_bad_connection_id",
            ErrorKind::UdpMalformed => "udp_malformed",
            ErrorKind::UdpDropped => "udp_dropped",
            ErrorKind::HttpConnectionsFull => "http_connections_full",
            ErrorKind::PublishRefused => "publish_refused",
            ErrorKind::PublishInvalid => "publish_invalid",
            ErrorKind::PublishBusy => "publish_busy",
            ErrorKind::CatalogFull => "catalog_full",
        }
    }
}

/// Everything the tracker counts. All counters only grow.
#[derive(Default)]
pub struct Stats {
    announces: [[AtomicU64; 4]; 2],
    scrapes: [AtomicU64; 2],
    udp_connects: AtomicU64,
    errors: [AtomicU64; ErrorKind::ALL.len()],
    published: AtomicU64,
    expired: AtomicU64,
    /// (when, announces so far), one sample a second, the last 11.
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

fn event_index(e: Event) -> usize {
    match e {
        Event::None => 0,
        Event::Started => 1,
        Event::Completed => 2,
        Event::Stopped => 3,
    }
}

/// The tracker's gauges at one moment, for rendering with the counters.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub torrents: usize,
    pub seeders: usize,
    pub leechers: usize,
    pub completed: u64,
    pub catalog: usize,
    /// Bytes of .torrent files in the catalog.
    pub catalog_bytes: u64,
    pub rss_bytes: Option<u64>,
    pub uptime_secs: u64,
}

impl Stats {
    pub fn announce(&self, proto: Proto, event: Event) {
        self.announces[proto as usize][event_index(event)].fetch_add(1, Relaxed);
    }

    pub fn scrape(&self, proto: Proto) {
        self.scrapes[proto as usize].fetch_add(1, Relaxed);
    }

    pub fn udp_connect(&self) {
        self.udp_connects.fetch_add(1, Relaxed);
    }

    pub fn error(&self, kind: ErrorKind) {
        self.errors[kind as usize].fetch_add(1, Relaxed);
    }

    pub fn published(&self) {
        self.published.fetch_add(1, Relaxed);
    }

    pub fn expired(&self, n: usize) {
        self.expired.fetch_add(n as u64, Relaxed);
    }

    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize].load(Relaxed)
    }

    pub fn announces_total(&self) -> u64 {
        self.announces
            .iter()
            .flatten()
            .map(|a| a.load(Relaxed))
            .sum()
    }

    /// Records one rate sample; call about once a second.
    pub fn tick(&self, now: Instant) {
        let total = self.announces_total();
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back((now, total));
        while s.len() > 11 {
            s.pop_front();
        }
    }

    /// Announces per second over the last ten seconds or so.
    pub fn announce_rate(&self) -> f64 {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        match (s.front(), s.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                (b.1 - a.1) as f64 / b.0.duration_since(a.0).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    pub fn to_json(&self, g: &Gauges) -> serde_json::Value {
        let mut announces = serde_json::Map::new();
        for (p, pname) in PROTOS {
            let mut by_event = serde_json::Map::new();
            for (e, ename) in EVENTS {
                let n = self.announces[p as usize][event_index(e)].load(Relaxed);
                by_event.insert(ename.into(), n.into());
            }
            announces.insert(pname.into(), by_event.into());
        }
        let errors: serde_json::Map<String, serde_json::Value> = ErrorKind::ALL
            .iter()
            .map(|k| (k.as_str().to_owned(), self.errors_of(*k).into()))
            .collect();
        serde_json::json!({
            "torrents": g.torrents,
            "seeders": g.seeders,
            "leechers": g.leechers,
            "completed": g.completed,
            "catalog_torrents": g.catalog,
            "catalog_bytes": g.catalog_bytes,
            "announces": announces,
            "announces_total": self.announces_total(),
            "announces_per_second": (self.announce_rate() * 10.0).round() / 10.0,
            "scrapes": {
                "http": self.scrapes[0].load(Relaxed),
                "udp": self.scrapes[1].load(Relaxed),
            },
            "udp_connects": self.udp_connects.load(Relaxed),
            "errors": errors,
            "published": self.published.load(Relaxed),
            "expired_peers": self.expired.load(Relaxed),
            "rss_bytes": g.rss_bytes,
            "uptime_secs": g.uptime_secs,
        })
    }

    /// The Prometheus text exposition format, version 0.0.4.
    pub fn to_prometheus(&self, g: &Gauges) -> String {
        let mut o = String::with_capacity(4096);
        let head = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut o,
            "sta_tracker_announces_total",
            "counter",
            "Announces answered, by transport and event.",
        );
        for (p, pname) in PROTOS {
            for (e, ename) in EVENTS {
                let n = self.announces[p as usize][event_index(e)].load(Relaxed);
                let _ = writeln!(
                    o,
                    "sta_tracker_announces_total{{proto=\"{pname}\",event=\"{ename}\"}} {n}"
                );
            }
        }
        head(
            &mut o,
            "sta_tracker_scrapes_total",
            "counter",
            "Scrape requests answered, by transport.",
        );
        for (p, pname) in PROTOS {
            let n = self.scrapes[p as usize].load(Relaxed);
            let _ = writeln!(o, "sta_tracker_scrapes_total{{proto=\"{pname}\"}} {n}");
        }
        head(
            &mut o,
            "sta_tracker_errors_total",
            "counter",
            "Requests refused or dropped, by kind.",
        );
        for k in ErrorKind::ALL {
            let _ = writeln!(
                o,
                "sta_tracker_errors_total{{kind=\"{}\"}} {}",
                k.as_str(),
                self.errors_of(k)
            );
        }
        let counters = [
            (
                "sta_tracker_udp_connects_total",
                "UDP connect requests answered.",
                self.udp_connects.load(Relaxed),
            ),
            (
                "sta_tracker_published_total",
                "Torrents published to the catalog.",
                self.published.load(Relaxed),
            ),
            (
                "sta_tracker_expired_peers_total",
                "Peers dropped for not announcing.",
                self.expired.load(Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            head(&mut o, name, "counter", help);
            let _ = writeln!(o, "{name} {v}");
        }
        let gauges = [
            (
                "sta_tracker_torrents",
                "Torrents tracked.",
                g.torrents as f64,
            ),
            ("sta_tracker_seeders", "Seeders listed.", g.seeders as f64),
            (
                "sta_tracker_leechers",
                "Leechers listed.",
                g.leechers as f64,
            ),
            (
                "sta_tracker_completed",
                "Completed downloads counted over the torrents tracked.",
                g.completed as f64,
            ),
            (
                "sta_tracker_catalog_torrents",
                "Torrents in the catalog.",
                g.catalog as f64,
            ),
            (
                "sta_tracker_catalog_bytes",
                "Bytes of .torrent files in the catalog.",
                g.catalog_bytes as f64,
            ),
            (
                "sta_tracker_announces_per_second",
                "Announces per second over the last ten seconds.",
                self.announce_rate(),
            ),
            (
                "sta_tracker_uptime_seconds",
                "Seconds since the tracker started.",
                g.uptime_secs as f64,
            ),
        ];
        for (name, help, v) in gauges {
            head(&mut o, name, "gauge", help);
            let _ = writeln!(o, "{name} {v}");
        }
        if let Some(rss) = g.rss_bytes {
            head(
                &mut o,
                "sta_tracker_resident_memory_bytes",
                "gauge",
                "Resident memory of the tracker process.",
            );
            let _ = writeln!(o, "sta_tracker_resident_memory_bytes {rss}");
        }
        o
    }
}

/// Resident memory of this process (Linux), for the stats page.
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn prometheus_text_is_well_formed() {
        let s = Stats::default();
        s.announce(Proto::Udp, Event::Started);
        s.error(ErrorKind::BadPort);
        let text = s.to_prometheus(&Gauges::default());
        assert!(text.contains("sta_tracker_announces_total{proto=\"udp\",event=\"started\"} 1\n"));
        assert!(text.contains("sta_tracker_errors_total{kind=\"bad_port\"} 1\n"));
        // Every sample line is `name{labels} value` after its HELP and TYPE.
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name), "{line}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
    }

    #[test]
    fn rate_from_samples() {
        let s = Stats::default();
        let t0 = Instant::now();
        s.tick(t0);
        for _ in 0..50 {
            s.announce(Proto::Http, Event::None);
        }
        s.tick(t0 + Duration::from_secs(5));
        assert!((s.announce_rate() - 10.0).abs() < 1e-9);
        let j = s.to_json(&Gauges::default());
        assert_eq!(j["announces"]["http"]["none"], 50);
        assert_eq!(j["errors"]["bad_port"], 0);
    }
}
