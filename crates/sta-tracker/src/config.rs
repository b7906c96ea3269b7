//! `TrackerConfig`: every setting of the tracker, with its unit and default.
//! The `[tracker]` section of `sta.toml` deserialises into it; the command
//! line overrides fields one by one. Parsing files and flags is left to `sta`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A listen address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Bind {
    Off,
    On(SocketAddr),
}

impl Bind {
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Bind::Off => None,
            Bind::On(a) => Some(a),
        }
    }
}

impl FromStr for Bind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Bind::Off);
        }
        s.parse()
            .map(Bind::On)
            .map_err(|_| format!("{s:?} is not IP:PORT (e.g. 0.0.0.0:6969, [::]:6969) or `off`"))
    }
}

impl TryFrom<String> for Bind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Bind> for String {
    fn from(b: Bind) -> String {
        b.to_string()
    }
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bind::Off => f.write_str("off"),
            Bind::On(a) => write!(f, "{a}"),
        }
    }
}

/// Where the tracker listens, how it answers, and the caps that keep its
/// memory bounded. `Default` holds the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// HTTP announce, scrape, stats pages and catalog. Default `0.0.0.0:6969`.
    pub http: Bind,
    /// UDP announce and scrape (BEP 15). Default `0.0.0.0:6969`. `[::]:PORT`
    /// serves IPv6 and, on Linux, IPv4 too.
    pub udp: Bind,
    /// Seconds clients are told to wait between announces. Default 300,
    /// at most 14400. Peers that miss announces for 2 × interval expire.
    pub interval_secs: u32,
    /// Seconds clients must wait between announces (`min interval`). Default
    /// 30, never above `interval_secs`.
    pub min_interval_secs: u32,
    /// Peers handed out when the client does not say. Default 50.
    pub default_numwant: u32,
    /// Most peers handed out per announce. Default 200.
    pub max_numwant: u32,
    /// Torrents tracked at once; announces for new torrents are refused
    /// beyond it. Default 1,000,000.
    pub max_torrents: usize,
    /// Peers per torrent; new peers of a full torrent are refused. Default 50,000.
    pub max_peers_per_torrent: usize,
    /// Peers over all torrents. Default 5,000,000 (about 150 MiB of peers).
    pub max_peers: usize,
    /// Take the announce `ip` parameter (and the UDP `IP address` field) as the
    /// peer's address instead of the connection's. Default false.
    pub trust_announce_ip: bool,
    /// File of hex info-hashes, one a line (`#` comments): only these and
    /// published torrents are tracked (private tracker). Default none.
    /// Because published torrents are tracked too, an allowlist needs either
    /// `publish = false` or a `publish_token`: the tracker refuses to start
    /// otherwise, as anyone could make any torrent allowed by publishing it.
    pub allowlist: Option<PathBuf>,
    /// Folder of the catalog and completed counters (SQLite). Default none:
    /// everything is kept in memory and lost at exit.
    pub data_dir: Option<PathBuf>,
    /// Accept `POST /torrents` (publish). Default true.
    pub publish: bool,
    /// When set, publishing needs `Authorization: Bearer TOKEN`. Default none.
    pub publish_token: Option<String>,
    /// Largest .torrent accepted for publishing, in bytes. Default 10 MiB.
    pub max_torrent_bytes: usize,
    /// Most torrents in the catalog. Default 100,000.
    pub max_catalog_torrents: usize,
    /// Most bytes of .torrent files the catalog stores in all (in memory
    /// without a data folder, in SQLite with one); publishing a new torrent
    /// that would go over it is refused with HTTP 507. Default 256 MiB.
    pub max_catalog_bytes: u64,
    /// Publish bodies received at once; a publish arriving while this many
    /// are in progress is refused with HTTP 503 before its body is read, so
    /// connections cannot each hold `max_torrent_bytes` in memory. Default 4.
    pub publish_concurrency: usize,
    /// HTTP connections served at once; more are closed at accept. Default 4096.
    pub http_max_connections: usize,
    /// Seconds a client has to send a request's head, and to send a publish
    /// body. Default 10.
    pub http_request_timeout_secs: u64,
    /// Seconds an HTTP connection may stay open in all (keep-alive included).
    /// Default 120.
    pub http_connection_secs: u64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        let any: SocketAddr = "0.0.0.0:6969".parse().expect("valid address");
        TrackerConfig {
            http: Bind::On(any),
            udp: Bind::On(any),
            interval_secs: 300,
            min_interval_secs: 30,
            default_numwant: sta_proto::tracker::DEFAULT_NUMWANT,
            max_numwant: sta_proto::tracker::MAX_NUMWANT,
            max_torrents: 1_000_000,
            max_peers_per_torrent: 50_000,
            max_peers: 5_000_000,
            trust_announce_ip: false,
            allowlist: None,
            data_dir: None,
            publish: true,
            publish_token: None,
            max_torrent_bytes: 10 * 1024 * 1024,
            max_catalog_torrents: 100_000,
            max_catalog_bytes: 256 * 1024 * 1024,
            publish_concurrency: 4,
            http_max_connections: 4096,
            http_request_timeout_secs: 10,
            http_connection_secs: 120,
        }
    }
}

/// Longest interval accepted: peer ages are kept in 16-bit seconds.
pub const MAX_INTERVAL_SECS: u32 = 4 * 3600;

impl TrackerConfig {
    /// Checks values that would make the tracker misbehave.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval_secs == 0 || self.interval_secs > MAX_INTERVAL_SECS {
            return Err(format!(
                "interval must be 1 to {MAX_INTERVAL_SECS} seconds, got {}",
                self.interval_secs
            ));
        }
        if self.max_numwant == 0 {
            return Err("max_numwant must be at least 1".into());
        }
        if self.max_torrents == 0 || self.max_peers_per_torrent == 0 || self.max_peers == 0 {
            return Err(
                "max_torrents, max_peers_per_torrent and max_peers must be at least 1".into(),
            );
        }
        if self.publish_concurrency == 0 {
            return Err(
                "publish_concurrency must be at least 1 (use publish = false to refuse publishing)"
                    .into(),
            );
        }
        if self.allowlist.is_some() && self.publish && self.publish_token.is_none() {
            return Err(
                "an allowlist makes a private tracker, but published torrents are tracked too, so anyone could \
                 open it by publishing: also pass --publish-token TOKEN (only holders may publish) or \
                 --no-publish"
                    .into(),
            );
        }
        if self.http == Bind::Off && self.udp == Bind::Off {
            return Err("both HTTP and UDP are off: the tracker would serve nothing".into());
        }
        Ok(())
    }

    /// Reads the `[tracker]` section of an `sta.toml` (other sections are
    /// left to their owners); no section gives the defaults.
    pub fn from_sta_toml(text: &str) -> Result<TrackerConfig, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        match table.get("tracker") {
            None => Ok(TrackerConfig::default()),
            Some(v) => v
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| format!("[tracker]: {e}")),
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.interval_secs))
    }

    /// `min interval`, never above the interval.
    pub fn min_interval_secs(&self) -> u32 {
        self.min_interval_secs.min(self.interval_secs)
    }

    /// How long a peer stays listed without announcing: twice the interval.
    pub fn peer_ttl(&self) -> Duration {
        2 * self.interval()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c = TrackerConfig {
            udp: Bind::Off,
            interval_secs: 60,
            publish_token: Some("s3cret".into()),
            ..TrackerConfig::default()
        };
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<TrackerConfig>(&text).unwrap(), c);
        let partial: TrackerConfig = toml::from_str("http = \"127.0.0.1:0\"\n").unwrap();
        assert_eq!(partial.http, Bind::On("127.0.0.1:0".parse().unwrap()));
        assert_eq!(partial.interval_secs, 300);
        assert!(toml::from_str::<TrackerConfig>("intervall = 5\n").is_err());
        assert!(toml::from_str::<TrackerConfig>("http = \"nowhere\"\n").is_err());
        let file = "[node]\nwhatever = 1\n[tracker]\nudp = \"off\"\ninterval_secs = 60\n";
        let c = TrackerConfig::from_sta_toml(file).unwrap();
        assert_eq!((c.udp, c.interval_secs), (Bind::Off, 60));
        assert!(
            TrackerConfig::from_sta_toml("[tracker]\nbogus = 1\n")
                .unwrap_err()
                .contains("bogus")
        );
    }

    #[test]
    fn validation() {
        assert!(TrackerConfig::default().validate().is_ok());
        let mut c = TrackerConfig {
            interval_secs: 0,
            ..TrackerConfig::default()
        };
        assert!(c.validate().is_err());
        c.interval_secs = 10;
        c.min_interval_secs = 60;
        assert_eq!(c.min_interval_secs(), 10);
        c.http = Bind::Off;
        c.udp = Bind::Off;
        assert!(c.validate().unwrap_err().contains("both"));
    }

    #[test]
    fn an_allowlist_needs_a_publish_token_or_no_publishing() {
        let open = TrackerConfig {
            allowlist: Some("allow.txt".into()),
            ..TrackerConfig::default()
        };
        assert!(open.validate().unwrap_err().contains("--publish-token"));
        let token = TrackerConfig {
            publish_token: Some("t".into()),
            ..open.clone()
        };
        assert!(token.validate().is_ok());
        let closed = TrackerConfig {
            publish: false,
            ..open
        };
        assert!(closed.validate().is_ok());
        let none = TrackerConfig {
            publish_concurrency: 0,
            ..TrackerConfig::default()
        };
        assert!(none.validate().unwrap_err().contains("publish_concurrency"));
    }
}
