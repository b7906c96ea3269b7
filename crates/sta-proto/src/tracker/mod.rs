//! Tracker protocol values: announce and scrape over HTTP (BEP 3, BEP 23
//! compact peers, BEP 7 `peers6`) in [`http`], and over UDP (BEP 15) in
//! [`udp`]. Both directions: the tracker parses requests and writes
//! responses, the node's tracker client does the opposite.

pub mod http;
pub mod udp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::{InfoHash, PeerId};

/// Default and maximum number of peers handed out per announce.
pub const DEFAULT_NUMWANT: u32 = 50;
pub const MAX_NUMWANT: u32 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// A regular re-announce.
    #[default]
    None,
    Started,
    Completed,
    Stopped,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::None => "",
            Event::Started => "started",
            Event::Completed => "completed",
            Event::Stopped => "stopped",
        }
    }
}

/// An announce, whichever transport carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    /// Peers wanted; `None` means the tracker's default.
    pub numwant: Option<u32>,
    pub key: Option<u32>,
    /// Address the client claims; trackers ignore it unless told to trust it.
    pub ip: Option<IpAddr>,
}

/// A peer as a tracker hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerEntry {
    pub addr: SocketAddr,
    pub peer_id: Option<PeerId>,
}

/// The tracker's answer to an announce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    pub interval: u32,
    pub min_interval: Option<u32>,
    /// Seeders.
    pub complete: u32,
    /// Leechers.
    pub incomplete: u32,
    pub peers: Vec<PeerEntry>,
    pub warning: Option<String>,
}

/// Per-torrent counters in a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    pub complete: u32,
    pub downloaded: u32,
    pub incomplete: u32,
}

/// 6 bytes per IPv4 peer, 18 per IPv6 peer, network order (BEP 23, BEP 7).
pub fn write_compact(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr {
        SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Reads compact IPv4 (`v6 == false`) or IPv6 peers; a ragged tail is ignored.
pub fn read_compact(bytes: &[u8], v6: bool) -> Vec<SocketAddr> {
    let size = if v6 { 18 } else { 6 };
    bytes
        .chunks_exact(size)
        .map(|c| {
            let port = u16::from_be_bytes([c[size - 2], c[size - 1]]);
            if v6 {
                let ip: [u8; 16] = c[..16].try_into().expect("16 bytes");
                SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0))
            } else {
                let ip: [u8; 4] = c[..4].try_into().expect("4 bytes");
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))
            }
        })
        .collect()
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), as a dual-stack socket
/// reports IPv4 clients, is an IPv4 peer.
pub fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, a.port())),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_round_trip() {
        let addrs: Vec<SocketAddr> = vec![
            "1.2.3.4:6881".parse().unwrap(),
            "127.0.0.9:1".parse().unwrap(),
        ];
        let mut out = Vec::new();
        for a in &addrs {
            write_compact(a, &mut out);
        }
        assert_eq!(out.len(), 12);
        assert_eq!(read_compact(&out, false), addrs);
        let v6: SocketAddr = "[::1]:6881".parse().unwrap();
        let mut out6 = Vec::new();
        write_compact(&v6, &mut out6);
        assert_eq!(read_compact(&out6, true), vec![v6]);
        assert!(read_compact(&out6[..17], true).is_empty());
    }

    #[test]
    fn mapped_addresses_become_v4() {
        let a: SocketAddr = "[::ffff:127.0.0.2]:5".parse().unwrap();
        assert_eq!(
            canonical_addr(a),
            "127.0.0.2:5".parse::<SocketAddr>().unwrap()
        );
    }
}
