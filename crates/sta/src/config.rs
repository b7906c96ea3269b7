//! `sta.toml`: one file with a `[tracker]` and a `[node]` section. Values
//! apply in this order, first found wins: command-line flag, `STA_*`
//! environment variable, the file (`--config FILE` or `STA_CONFIG`), the
//! built-in default. Unknown keys are errors, so a typo never passes silently.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sta_node::config::NodeConfig;
use sta_tracker::config::TrackerConfig;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaToml {
    pub tracker: TrackerConfig,
    pub node: NodeConfig,
}

/// Reads and checks a whole `sta.toml`.
pub fn load(path: &Path) -> anyhow::Result<StaToml> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| {
        format!(
            "config file {} is not valid (see `sta config example`)",
            path.display()
        )
    })
}

/// Each key with its meaning and unit, in file order. Keys whose default is
/// "none" are shown commented out with an example value.
const KEYS: &[(&str, &str, &str)] = &[
    (
        "tracker",
        "http",
        "HTTP announce/scrape/stats/catalog address, or \"off\"",
    ),
    (
        "tracker",
        "udp",
        "UDP (BEP 15) address, or \"off\"; \"[::]:6969\" serves IPv6 and IPv4",
    ),
    (
        "tracker",
        "interval_secs",
        "seconds between announces told to clients; peers expire after twice this",
    ),
    (
        "tracker",
        "min_interval_secs",
        "seconds clients must wait between announces",
    ),
    (
        "tracker",
        "default_numwant",
        "peers handed out when a client does not say",
    ),
    (
        "tracker",
        "max_numwant",
        "most peers handed out per announce",
    ),
    ("tracker", "max_torrents", "torrents tracked at once"),
    ("tracker", "max_peers_per_torrent", "peers per torrent"),
    ("tracker", "max_peers", "peers over all torrents"),
    (
        "tracker",
        "trust_announce_ip",
        "use the address a client claims instead of the one it connects from",
    ),
    (
        "tracker",
        "allowlist",
        "file of hex info-hashes: track only these and published torrents (private tracker; needs publish_token or publishing off); example \"/etc/sta/allowlist\"",
    ),
    (
        "tracker",
        "data_dir",
        "folder of the catalog and completed counters (SQLite); example \"/var/lib/sta/tracker\"",
    ),
    (
        "tracker",
        "publish",
        "accept torrents published with `sta publish`",
    ),
    (
        "tracker",
        "publish_token",
        "token publishers must send; example \"change-me\"",
    ),
    (
        "tracker",
        "max_torrent_bytes",
        "largest .torrent accepted for publishing, bytes",
    ),
    (
        "tracker",
        "max_catalog_torrents",
        "most torrents in the catalog",
    ),
    (
        "tracker",
        "max_catalog_bytes",
        "most bytes of .torrent files the catalog stores in all",
    ),
    (
        "tracker",
        "publish_concurrency",
        "publish bodies received at once; more get HTTP 503",
    ),
    (
        "tracker",
        "http_max_connections",
        "HTTP connections served at once",
    ),
    (
        "tracker",
        "http_request_timeout_secs",
        "seconds a client has to send a request head or a publish body",
    ),
    (
        "tracker",
        "http_connection_secs",
        "seconds an HTTP connection may stay open",
    ),
    ("node", "port", "peer port; 0 picks a free one"),
    (
        "node",
        "bind",
        "address to listen, connect and announce from; example \"192.168.1.20\"",
    ),
    (
        "node",
        "announce_ip",
        "address to give trackers (behind NAT); example \"203.0.113.7\"",
    ),
    (
        "node",
        "announce_port",
        "port to give trackers (NAT port forward); example 51413",
    ),
    (
        "node",
        "state_dir",
        "folder of resume files; example \"/var/lib/sta/node\"",
    ),
    (
        "node",
        "max_upload_rate",
        "node upload limit, bytes per second (2097152 is 2 MiB/s); example 2097152",
    ),
    (
        "node",
        "max_download_rate",
        "node download limit, bytes per second; example 10485760",
    ),
    (
        "node",
        "max_peers_per_torrent",
        "peer connections per torrent",
    ),
    (
        "node",
        "max_connections",
        "peer connections for the whole node",
    ),
    (
        "node",
        "max_half_open",
        "outgoing connection attempts at once, per torrent",
    ),
    (
        "node",
        "max_known_peers",
        "peer addresses remembered per torrent",
    ),
    (
        "node",
        "max_queued_requests",
        "block requests a peer may have queued with us; as many again past it cuts the peer",
    ),
    (
        "node",
        "max_inflight_bytes",
        "memory for pieces being downloaded, per torrent, bytes",
    ),
    (
        "node",
        "request_timeout_secs",
        "seconds without a block before a peer's requests go to others",
    ),
    (
        "node",
        "seed_limit_copies",
        "stop uploading after sending this many copies; example 3.0",
    ),
    (
        "node",
        "picker",
        "piece picker: \"rarest-first\" (or \"random\", for experiments)",
    ),
    (
        "node",
        "serve_order",
        "queued requests served \"least-sent\" pieces first (or \"fifo\", for experiments)",
    ),
    ("node.choker", "upload_slots", "regular upload slots"),
    (
        "node.choker",
        "round_secs",
        "seconds between rechoke rounds",
    ),
    (
        "node.choker",
        "optimistic_rounds",
        "rounds between optimistic unchoke rotations",
    ),
    (
        "node.choker",
        "snub_secs",
        "seconds without a block before a peer counts as snubbing us",
    ),
];

/// A commented `sta.toml` with every key at its default.
pub fn example() -> String {
    let defaults = toml::Table::try_from(StaToml::default()).expect("defaults serialize");
    let mut out = String::from(
        "# sta.toml: every setting with its default. Flags and STA_* variables win over this file.\n\
         # Use it with: sta tracker --config sta.toml, sta node --config sta.toml ...\n",
    );
    let mut section = "";
    for (sec, key, help) in KEYS {
        if *sec != section {
            section = sec;
            out.push_str(&format!("\n[{sec}]\n"));
        }
        let table = sec
            .split('.')
            .try_fold(&defaults, |t, part| t.get(part)?.as_table());
        let value = table.and_then(|t| t.get(*key));
        out.push_str(&format!("# {help}\n"));
        match value {
            Some(v) => out.push_str(&format!("{key} = {v}\n")),
            None => {
                let example = help.rsplit("example ").next().unwrap_or("\"\"");
                out.push_str(&format!("# {key} = {example}\n"));
            }
        }
    }
    out
}

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print a commented sta.toml with every key at its default.
    Example,
    /// Check a config file and print the settings it gives.
    Check {
        /// The file to check.
        file: std::path::PathBuf,
    },
}

pub fn run(cmd: ConfigCmd) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        ConfigCmd::Example => print!("{}", example()),
        ConfigCmd::Check { file } => {
            let c = load(&file)?;
            c.tracker
                .validate()
                .map_err(|e| anyhow::anyhow!("[tracker]: {e}"))?;
            println!(
                "{} is valid; the settings it gives, defaults filled in:\n",
                file.display()
            );
            print!("{}", toml::to_string(&c)?);
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(prefix: &str, t: &toml::Table, out: &mut Vec<(String, String)>) {
        for (k, v) in t {
            match v.as_table() {
                Some(inner) => keys(
                    &if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    },
                    inner,
                    out,
                ),
                None => out.push((prefix.to_string(), k.clone())),
            }
        }
    }

    #[test]
    fn example_lists_every_key_and_reads_back_as_the_defaults() {
        let text = example();
        let back: StaToml = toml::from_str(&text).unwrap();
        assert_eq!(back, StaToml::default());
        let mut all = Vec::new();
        keys(
            "",
            &toml::Table::try_from(StaToml::default()).unwrap(),
            &mut all,
        );
        for (sec, key) in &all {
            assert!(
                KEYS.iter().any(|(s, k, _)| s == sec && k == key),
                "key {sec}.{key} is not documented in KEYS"
            );
        }
        // Keys that default to none are shown commented out, with an example.
        assert!(text.contains("# bind = \"192.168.1.20\""));
        // Uncommenting the examples gives a valid file.
        let uncommented: String = text
            .lines()
            .map(|l| {
                if l.starts_with("# ") && l.contains(" = ") {
                    &l[2..]
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        toml::from_str::<StaToml>(&uncommented).unwrap();
    }

    #[test]
    fn the_deploy_config_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/sta.toml");
        assert_eq!(load(&path).unwrap(), StaToml::default());
        // Every key and comment of `sta config example`, below its own header.
        let deploy = std::fs::read_to_string(&path).unwrap();
        let body = |s: &str| s.lines().skip(2).collect::<Vec<_>>().join("\n");
        assert_eq!(
            body(&deploy),
            body(&example()),
            "deploy/sta.toml is out of date: regenerate it from `sta config example`"
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<StaToml>("[node]\nprot = 1\n").is_err());
        assert!(toml::from_str::<StaToml>("[nodes]\n").is_err());
        let c: StaToml =
            toml::from_str("[node]\nport = 7000\n[node.choker]\nupload_slots = 8\n").unwrap();
        assert_eq!((c.node.port, c.node.choker.upload_slots), (7000, 8));
    }
}
