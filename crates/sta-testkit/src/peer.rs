//! A peer written in the test suite: speaks the wire protocol over a blocking
//! socket, so tests can behave exactly as badly as they need to.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sta_proto::wire::codec::PeerCodec;
use sta_proto::wire::{HANDSHAKE_LEN, Handshake, Message};
use sta_proto::{InfoHash, PeerId};
use tokio_util::codec::Decoder;

pub struct WirePeer {
    pub stream: TcpStream,
    codec: PeerCodec,
    buf: BytesMut,
}

impl WirePeer {
    /// Connects from `from` (an IP on loopback) and exchanges handshakes.
    pub fn connect(
        to: SocketAddr,
        from: &str,
        info_hash: InfoHash,
        id: PeerId,
        num_pieces: u32,
    ) -> std::io::Result<(WirePeer, Handshake)> {
        let stream = connect_from(to, from)?;
        let mut p = WirePeer {
            stream,
            codec: PeerCodec::new(num_pieces),
            buf: BytesMut::new(),
        };
        p.stream
            .write_all(&Handshake::new(info_hash, id).encode())?;
        let theirs = p.read_handshake()?;
        Ok((p, theirs))
    }

    pub fn from_stream(stream: TcpStream, num_pieces: u32) -> WirePeer {
        WirePeer {
            stream,
            codec: PeerCodec::new(num_pieces),
            buf: BytesMut::new(),
        }
    }

    pub fn read_handshake(&mut self) -> std::io::Result<Handshake> {
        let mut hs = [0u8; HANDSHAKE_LEN];
        self.stream.read_exact(&mut hs)?;
        Handshake::parse(&hs).map_err(std::io::Error::other)
    }

    pub fn send(&mut self, m: &Message) -> std::io::Result<()> {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        self.stream.write_all(&b)
    }

    pub fn send_raw(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(b)
    }

    /// The next message; `Ok(None)` when the other side closed.
    pub fn recv(&mut self, timeout: Duration) -> std::io::Result<Option<Message>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self
                .codec
                .decode(&mut self.buf)
                .map_err(std::io::Error::other)?
            {
                return Ok(Some(m));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no message in time",
                ));
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no message in time",
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads (and drops) everything until the other side closes; true if it
    /// did within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                return false;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }
}

/// A TCP connection from a chosen loopback address.
pub fn connect_from(to: SocketAddr, from: &str) -> std::io::Result<TcpStream> {
    let sock = socket2_like::bind_connect(from, to)?;
    sock.set_nodelay(true)?;
    Ok(sock)
}

mod socket2_like {
    use std::net::{SocketAddr, TcpStream};

    /// std has no bind-before-connect; libc does it in four calls.
    pub fn bind_connect(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
        use std::os::fd::FromRawFd;
        let (SocketAddr::V4(to4), Ok(from4)) = (to, from.parse::<std::net::Ipv4Addr>()) else {
            return TcpStream::connect(to);
        };
        // SAFETY: plain socket syscalls on a descriptor we own; it is handed
        // to TcpStream (which closes it) only after connect succeeded.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mk = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                },
                sin_zero: [0; 8],
            };
            let local = mk(from4, 0);
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) != 0 {
                let e = std::io::Error::last_os_error();
                libc::close(fd);
                return Err(e);
            }
            let remote = mk(*to4.ip(), to4.port());
            if libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len) != 0 {
                let e = std::io::Error::last_os_error();
                libc::close(fd);
                return Err(e);
            }
            Ok(TcpStream::from_raw_fd(fd))
        }
    }
}

/// A seeder in the test suite that claims every piece and answers every
/// request with wrong bytes. Runs until dropped.
pub struct CorruptSeeder {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Blocks sent so far.
    pub blocks_sent: Arc<AtomicU64>,
}

impl CorruptSeeder {
    pub fn start(ip: &str, info_hash: InfoHash, num_pieces: u32) -> std::io::Result<CorruptSeeder> {
        let listener = TcpListener::bind((ip, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (stop2, sent2) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (stop3, sent3) = (stop2.clone(), sent2.clone());
                        std::thread::spawn(move || {
                            let _ = serve_garbage(s, info_hash, num_pieces, &stop3, &sent3);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(CorruptSeeder {
            addr,
            stop,
            blocks_sent: sent,
        })
    }
}

impl Drop for CorruptSeeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_garbage(
    s: TcpStream,
    info_hash: InfoHash,
    num_pieces: u32,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    let mut p = WirePeer::from_stream(s, num_pieces);
    p.read_handshake()?;
    p.send_raw(&Handshake::new(info_hash, PeerId(*b"-XX0001-corruptcorru")).encode())?;
    let mut all = vec![0xffu8; (num_pieces as usize).div_ceil(8)];
    let spare = all.len() * 8 - num_pieces as usize;
    if let Some(last) = all.last_mut() {
        *last = 0xffu8 << spare;
    }
    p.send(&Message::Bitfield(all.into()))?;
    while !stop.load(Ordering::Relaxed) {
        match p.recv(Duration::from_millis(200)) {
            Ok(Some(Message::Interested)) => p.send(&Message::Unchoke)?,
            Ok(Some(Message::Request(b))) => {
                let data = vec![0x5au8; b.length as usize];
                p.send(&Message::Piece {
                    index: b.index,
                    begin: b.begin,
                    data: data.into(),
                })?;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
