//! The UDP front end (BEP 15): connect, announce, scrape. One socket, read by
//! as many tasks as there are cores; each datagram is answered on its own by
//! [`handle`], which is plain code over bytes and is unit tested without a
//! socket. Announces and scrapes need a connection id from [`ConnectionIds`];
//! malformed packets get an error reply when they carry a transaction id and
//! are dropped otherwise; every refusal is counted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use sta_proto::tracker::canonical_addr;
use sta_proto::tracker::udp::{Request, Response, UdpError};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::conn_id::ConnectionIds;
use crate::core::Core;
use crate::stats::{ErrorKind, Proto};

/// Largest datagram read; real requests are at most about 1.5 KB (a scrape
/// of 74 hashes), and anything longer is cut and then refused as malformed.
const MAX_PACKET: usize = 2048;

/// Answers one datagram from `from` into `out`. Returns false when nothing
/// is to be sent.
pub fn handle(
    core: &Core,
    ids: &ConnectionIds,
    now: Instant,
    from: SocketAddr,
    packet: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    let client = canonical_addr(from);
    let error = |out: &mut Vec<u8>, transaction_id: u32, message: String| {
        Response::Error {
            transaction_id,
            message,
        }
        .write(out)
    };
    match Request::parse(packet) {
        Ok(Request::Connect { transaction_id }) => {
            core.stats.udp_connect();
            Response::Connect {
                transaction_id,
                connection_id: ids.issue(now, from),
            }
            .write(out);
        }
        Ok(Request::Announce {
            connection_id,
            transaction_id,
            announce,
        }) => {
            if !ids.check(now, from, connection_id) {
                core.stats.error(ErrorKind::UdpConnectionId);
                error(out, transaction_id, BAD_ID.into());
            } else if announce.port == 0 {
                core.stats.error(ErrorKind::BadPort);
                error(out, transaction_id, "port must be from 1 to 65535".into());
            } else {
                match core.announce(now, &announce, client.ip(), Proto::Udp) {
                    Ok(r) => Response::Announce {
                        transaction_id,
                        interval: core.interval,
                        leechers: r.incomplete,
                        seeders: r.complete,
                        peers: r.peers.iter().map(|p| p.addr).collect(),
                    }
                    .write(out),
                    Err(refused) => error(out, transaction_id, refused.reason),
                }
            }
        }
        Ok(Request::Scrape {
            connection_id,
            transaction_id,
            info_hashes,
        }) => {
            if ids.check(now, from, connection_id) {
                let stats = core.scrape(&info_hashes, Proto::Udp);
                Response::Scrape {
                    transaction_id,
                    stats,
                }
                .write(out);
            } else {
                core.stats.error(ErrorKind::UdpConnectionId);
                error(out, transaction_id, BAD_ID.into());
            }
        }
        Err(e) => match UdpError::transaction_id(packet) {
            Some(tid) => {
                core.stats.error(ErrorKind::UdpMalformed);
                error(out, tid, format!("malformed request: {e}"));
            }
            None => {
                core.stats.error(ErrorKind::UdpDropped);
                return false;
            }
        },
    }
    true
}

const BAD_ID: &str = "connection id expired or invalid: send a connect request first";

/// Reads and answers datagrams until cancelled. Several of these may share
/// one socket.
pub async fn serve(
    socket: Arc<UdpSocket>,
    core: Arc<Core>,
    ids: ConnectionIds,
    cancel: CancellationToken,
) {
    let work = async {
        let mut buf = vec![0u8; MAX_PACKET];
        let mut out = Vec::with_capacity(MAX_PACKET);
        loop {
            let (n, from) = match socket.recv_from(&mut buf).await {
                Ok(x) => x,
                // ICMP errors of earlier sends surface here on some systems.
                Err(e) => {
                    tracing::debug!("udp receive: {e}");
                    continue;
                }
            };
            let packet = buf.get(..n).unwrap_or_default();
            if handle(&core, &ids, Instant::now(), from, packet, &mut out)
                && let Err(e) = socket.send_to(&out, from).await
            {
                tracing::debug!("udp send to {from}: {e}");
            }
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = work => {}
    }
}

/// Binds a UDP socket with a large receive buffer; `[::]` also takes IPv4.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Dual stack unless an explicit IPv6 address was given.
        let _ = s.set_only_v6(!addr.ip().is_unspecified());
    }
    // Bursts of announces wait in the kernel instead of being dropped.
    let _ = s.set_recv_buffer_size(8 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

#[cfg(test)]
mod tests;
