//! UDP tracker packets (BEP 15): connect, announce, scrape and error, both
//! directions. Parsers take any byte slice and never panic; lengths are
//! checked before every read.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{Announce, Event, ScrapeStats, read_compact, write_compact};
use crate::{InfoHash, PeerId};

/// The magic constant that opens a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// BEP 15 allows about 74 info-hashes per scrape in one datagram.
pub const MAX_SCRAPE_HASHES: usize = 74;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Connect {
        transaction_id: u32,
    },
    Announce {
        connection_id: u64,
        transaction_id: u32,
        announce: Announce,
    },
    Scrape {
        connection_id: u64,
        transaction_id: u32,
        info_hashes: Vec<InfoHash>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Connect {
        transaction_id: u32,
        connection_id: u64,
    },
    Announce {
        transaction_id: u32,
        interval: u32,
        leechers: u32,
        seeders: u32,
        peers: Vec<SocketAddr>,
    },
    Scrape {
        transaction_id: u32,
        stats: Vec<ScrapeStats>,
    },
    Error {
        transaction_id: u32,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdpError {
    #[error("packet of {0} bytes is too short")]
    Short(usize),
    #[error("connect request without the protocol id")]
    BadProtocolId,
    #[error("unknown action {0}")]
    BadAction(u32),
    #[error("unknown event {0}")]
    BadEvent(u32),
    #[error("scrape without info-hashes, or with more than {MAX_SCRAPE_HASHES}")]
    BadScrape,
}

impl UdpError {
    /// The transaction id to echo in an error reply, when the packet had one.
    pub fn transaction_id(packet: &[u8]) -> Option<u32> {
        packet
            .get(12..16)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }
}

struct Reader<'a>(&'a [u8], usize);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], UdpError> {
        let b = self
            .0
            .get(self.1..self.1 + N)
            .ok_or(UdpError::Short(self.0.len()))?;
        self.1 += N;
        Ok(b.try_into().expect("N bytes"))
    }
    fn u16(&mut self) -> Result<u16, UdpError> {
        self.take().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Result<u32, UdpError> {
        self.take().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Result<u64, UdpError> {
        self.take().map(u64::from_be_bytes)
    }
    fn rest(&self) -> &[u8] {
        &self.0[self.1.min(self.0.len())..]
    }
}

impl Request {
    /// Parses a request datagram (tracker side).
    pub fn parse(b: &[u8]) -> Result<Request, UdpError> {
        let mut r = Reader(b, 0);
        let connection_id = r.u64()?;
        let action = r.u32()?;
        let transaction_id = r.u32()?;
        match action {
            ACTION_CONNECT => {
                if connection_id != PROTOCOL_ID {
                    return Err(UdpError::BadProtocolId);
                }
                Ok(Request::Connect { transaction_id })
            }
            ACTION_ANNOUNCE => {
                let info_hash = InfoHash(r.take()?);
                let peer_id = PeerId(r.take()?);
                let downloaded = r.u64()?;
                let left = r.u64()?;
                let uploaded = r.u64()?;
                let event = match r.u32()? {
                    0 => Event::None,
                    1 => Event::Completed,
                    2 => Event::Started,
                    3 => Event::Stopped,
                    e => return Err(UdpError::BadEvent(e)),
                };
                let ip = u32::from_be_bytes(r.take()?);
                let key = r.u32()?;
                let numwant = r.u32()? as i32;
                let port = r.u16()?;
                // BEP 41 options may follow; they are ignored.
                Ok(Request::Announce {
                    connection_id,
                    transaction_id,
                    announce: Announce {
                        info_hash,
                        peer_id,
                        port,
                        uploaded,
                        downloaded,
                        left,
                        event,
                        numwant: (numwant >= 0).then_some(numwant as u32),
                        key: Some(key),
                        ip: (ip != 0).then(|| IpAddr::V4(Ipv4Addr::from(ip))),
                    },
                })
            }
            ACTION_SCRAPE => {
                let rest = r.rest();
                let n = rest.len() / 20;
                if n == 0 || n > MAX_SCRAPE_HASHES {
                    return Err(UdpError::BadScrape);
                }
                let info_hashes = rest
                    .chunks_exact(20)
                    .map(|c| InfoHash(c.try_into().expect("20")))
                    .collect();
                Ok(Request::Scrape {
                    connection_id,
                    transaction_id,
                    info_hashes,
                })
            }
            a => Err(UdpError::BadAction(a)),
        }
    }

    /// Encodes a request (client side).
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Request::Connect { transaction_id } => {
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
            }
            Request::Announce {
                connection_id,
                transaction_id,
                announce: a,
            } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&a.info_hash.0);
                out.extend_from_slice(&a.peer_id.0);
                out.extend_from_slice(&a.downloaded.to_be_bytes());
                out.extend_from_slice(&a.left.to_be_bytes());
                out.extend_from_slice(&a.uploaded.to_be_bytes());
                let event: u32 = match a.event {
                    Event::None => 0,
                    Event::Completed => 1,
                    Event::Started => 2,
                    Event::Stopped => 3,
                };
                out.extend_from_slice(&event.to_be_bytes());
                let ip = match a.ip {
                    Some(IpAddr::V4(v4)) => u32::from(v4),
                    _ => 0,
                };
                out.extend_from_slice(&ip.to_be_bytes());
                out.extend_from_slice(&a.key.unwrap_or(0).to_be_bytes());
                let numwant = a.numwant.map_or(-1, |n| n.min(i32::MAX as u32) as i32);
                out.extend_from_slice(&numwant.to_be_bytes());
                out.extend_from_slice(&a.port.to_be_bytes());
            }
            Request::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for h in info_hashes {
                    out.extend_from_slice(&h.0);
                }
            }
        }
    }
}

impl Response {
    /// Encodes a response (tracker side). Announce peers must all be of the
    /// family of the requester (BEP 15: the reply's address size follows the
    /// transport).
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Response::Connect {
                transaction_id,
                connection_id,
            } => {
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&connection_id.to_be_bytes());
            }
            Response::Announce {
                transaction_id,
                interval,
                leechers,
                seeders,
                peers,
            } => {
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&interval.to_be_bytes());
                out.extend_from_slice(&leechers.to_be_bytes());
                out.extend_from_slice(&seeders.to_be_bytes());
                for p in peers {
                    write_compact(p, out);
                }
            }
            Response::Scrape {
                transaction_id,
                stats,
            } => {
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for s in stats {
                    out.extend_from_slice(&s.complete.to_be_bytes());
                    out.extend_from_slice(&s.downloaded.to_be_bytes());
                    out.extend_from_slice(&s.incomplete.to_be_bytes());
                }
            }
            Response::Error {
                transaction_id,
                message,
            } => {
                out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(message.as_bytes());
            }
        }
    }

    /// Parses a response (client side). `v6` says whether the request went
    /// over IPv6, which decides the size of announce peer entries.
    pub fn parse(b: &[u8], v6: bool) -> Result<Response, UdpError> {
        let mut r = Reader(b, 0);
        let action = r.u32()?;
        let transaction_id = r.u32()?;
        match action {
            ACTION_CONNECT => Ok(Response::Connect {
                transaction_id,
                connection_id: r.u64()?,
            }),
            ACTION_ANNOUNCE => {
                let interval = r.u32()?;
                let leechers = r.u32()?;
                let seeders = r.u32()?;
                Ok(Response::Announce {
                    transaction_id,
                    interval,
                    leechers,
                    seeders,
                    peers: read_compact(r.rest(), v6),
                })
            }
            ACTION_SCRAPE => {
                let stats = r
                    .rest()
                    .chunks_exact(12)
                    .map(|c| ScrapeStats {
                        complete: u32::from_be_bytes(c[0..4].try_into().expect("4")),
                        downloaded: u32::from_be_bytes(c[4..8].try_into().expect("4")),
                        incomplete: u32::from_be_bytes(c[8..12].try_into().expect("4")),
                    })
                    .collect();
                Ok(Response::Scrape {
                    transaction_id,
                    stats,
                })
            }
            ACTION_ERROR => Ok(Response::Error {
                transaction_id,
                message: String::from_utf8_lossy(r.rest()).into_owned(),
            }),
            a => Err(UdpError::BadAction(a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn announce() -> Announce {
        Announce {
            info_hash: InfoHash([3; 20]),
            peer_id: PeerId([4; 20]),
            port: 6881,
            uploaded: 5,
            downloaded: 6,
            left: 7,
            event: Event::Completed,
            numwant: Some(50),
            key: Some(9),
            ip: None,
        }
    }

    #[test]
    fn requests_round_trip() {
        for req in [
            Request::Connect { transaction_id: 42 },
            Request::Announce {
                connection_id: 1,
                transaction_id: 2,
                announce: announce(),
            },
            Request::Scrape {
                connection_id: 1,
                transaction_id: 3,
                info_hashes: vec![InfoHash([1; 20]), InfoHash([2; 20])],
            },
        ] {
            let mut out = Vec::new();
            req.write(&mut out);
            assert_eq!(Request::parse(&out).unwrap(), req);
        }
        let mut out = Vec::new();
        Request::Announce {
            connection_id: 1,
            transaction_id: 2,
            announce: announce(),
        }
        .write(&mut out);
        assert_eq!(out.len(), 98);
    }

    #[test]
    fn responses_round_trip() {
        for (resp, v6) in [
            (
                Response::Connect {
                    transaction_id: 1,
                    connection_id: 99,
                },
                false,
            ),
            (
                Response::Announce {
                    transaction_id: 2,
                    interval: 60,
                    leechers: 1,
                    seeders: 2,
                    peers: vec!["1.2.3.4:5".parse().unwrap()],
                },
                false,
            ),
            (
                Response::Announce {
                    transaction_id: 2,
                    interval: 60,
                    leechers: 1,
                    seeders: 2,
                    peers: vec!["[::1]:5".parse().unwrap()],
                },
                true,
            ),
            (
                Response::Scrape {
                    transaction_id: 3,
                    stats: vec![ScrapeStats {
                        complete: 1,
                        downloaded: 2,
                        incomplete: 3,
                    }],
                },
                false,
            ),
            (
                Response::Error {
                    transaction_id: 4,
                    message: "bad".into(),
                },
                false,
            ),
        ] {
            let mut out = Vec::new();
            resp.write(&mut out);
            assert_eq!(Response::parse(&out, v6).unwrap(), resp);
        }
    }

    #[test]
    fn malformed_requests() {
        assert_eq!(Request::parse(&[0; 8]), Err(UdpError::Short(8)));
        let mut c = Vec::new();
        Request::Connect { transaction_id: 1 }.write(&mut c);
        c[0] = 9;
        assert_eq!(Request::parse(&c), Err(UdpError::BadProtocolId));
        let mut a = Vec::new();
        Request::Announce {
            connection_id: 1,
            transaction_id: 2,
            announce: announce(),
        }
        .write(&mut a);
        assert_eq!(Request::parse(&a[..97]), Err(UdpError::Short(97)));
        a[83] = 9; // event
        assert_eq!(Request::parse(&a), Err(UdpError::BadEvent(9)));
        let mut s = Vec::new();
        Request::Scrape {
            connection_id: 1,
            transaction_id: 3,
            info_hashes: vec![],
        }
        .write(&mut s);
        assert_eq!(Request::parse(&s), Err(UdpError::BadScrape));
        let mut bad = s.clone();
        bad[11] = 7;
        assert_eq!(Request::parse(&bad), Err(UdpError::BadAction(7)));
        assert_eq!(UdpError::transaction_id(&a), Some(2));
    }

    proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Request::parse(&b);
            let _ = Response::parse(&b, false);
            let _ = Response::parse(&b, true);
        }
    }
}
