//! A blocking BEP 15 client for tests: connect, announce, scrape, raw packets.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use sta_proto::InfoHash;
use sta_proto::tracker::Announce;
use sta_proto::tracker::udp::{Request, Response};

pub struct UdpClient {
    pub sock: UdpSocket,
    pub tracker: SocketAddr,
    tid: u32,
}

impl UdpClient {
    /// A socket bound to `from` (an IP on loopback, port chosen by the kernel).
    pub fn new(tracker: SocketAddr, from: &str) -> UdpClient {
        let sock = UdpSocket::bind((from, 0)).expect("bind udp");
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        UdpClient {
            sock,
            tracker,
            tid: 100,
        }
    }

    pub fn local_port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    /// Sends a datagram and waits (at most 5 s) for the answer.
    pub fn raw(&self, packet: &[u8]) -> Option<Vec<u8>> {
        self.sock.send_to(packet, self.tracker).unwrap();
        let mut buf = [0u8; 4096];
        match self.sock.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }

    pub fn ask(&mut self, req: &Request) -> Response {
        let mut b = Vec::new();
        req.write(&mut b);
        let answer = self.raw(&b).expect("the tracker answers within 5 s");
        Response::parse(&answer, self.tracker.is_ipv6()).expect("a valid UDP tracker response")
    }

    pub fn next_tid(&mut self) -> u32 {
        self.tid += 1;
        self.tid
    }

    pub fn connect(&mut self) -> u64 {
        let tid = self.next_tid();
        match self.ask(&Request::Connect {
            transaction_id: tid,
        }) {
            Response::Connect {
                transaction_id,
                connection_id,
            } if transaction_id == tid => connection_id,
            other => panic!("connect: {other:?}"),
        }
    }

    pub fn announce(&mut self, connection_id: u64, announce: Announce) -> Response {
        let tid = self.next_tid();
        self.ask(&Request::Announce {
            connection_id,
            transaction_id: tid,
            announce,
        })
    }

    pub fn scrape(&mut self, connection_id: u64, info_hashes: Vec<InfoHash>) -> Response {
        let tid = self.next_tid();
        self.ask(&Request::Scrape {
            connection_id,
            transaction_id: tid,
            info_hashes,
        })
    }
}
