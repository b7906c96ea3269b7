//! The tasks that move one peer's bytes. After the handshake a connection is
//! split: a reader task decodes frames (bounded by [`PeerCodec`]), applies the
//! download rate limit and forwards messages to the torrent; a writer task
//! sends what the torrent asks and serves the peer's requests from disk,
//! under the upload rate limit. Either side ending cancels the other; the
//! reader reports the end to the torrent exactly once.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use sta_proto::wire::codec::PeerCodec;
use sta_proto::wire::{HANDSHAKE_LEN, Handshake, Message, WireError};
use sta_proto::{InfoHash, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::ratelimit::RateLimiter;
use crate::storage::Storage;
use crate::types::{BlockRef, PeerKey};

/// A peer that sends nothing (not even keep-alives) for this long is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(180);
/// Disk reads for uploads fetch this much around the requested block, so a
/// peer asking for a piece block by block costs one read per window.
const READ_WINDOW: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("peer is on another torrent ({0})")]
    WrongInfoHash(InfoHash),
    #[error("handshake timed out")]
    Timeout,
}

/// Sends our handshake and reads theirs (outgoing connections).
pub async fn handshake_outgoing(
    stream: &mut TcpStream,
    ours: &Handshake,
) -> Result<Handshake, HandshakeError> {
    stream.write_all(&ours.encode()).await?;
    let mut buf = [0u8; HANDSHAKE_LEN];
    stream.read_exact(&mut buf).await?;
    let theirs = Handshake::parse(&buf)?;
    if theirs.info_hash != ours.info_hash {
        return Err(HandshakeError::WrongInfoHash(theirs.info_hash));
    }
    Ok(theirs)
}

/// Reads the first 48 bytes of an incoming handshake: enough to route it.
pub async fn read_handshake_prefix(
    stream: &mut TcpStream,
) -> Result<(sta_proto::wire::Reserved, InfoHash), HandshakeError> {
    let mut buf = [0u8; 48];
    stream.read_exact(&mut buf).await?;
    Ok(Handshake::parse_prefix(&buf)?)
}

/// Completes an incoming handshake: sends ours, reads their peer id.
pub async fn finish_incoming(
    stream: &mut TcpStream,
    ours: &Handshake,
) -> Result<PeerId, HandshakeError> {
    stream.write_all(&ours.encode()).await?;
    let mut id = [0u8; 20];
    stream.read_exact(&mut id).await?;
    Ok(PeerId(id))
}

/// Bytes moved, shared between a peer's tasks and the torrent.
#[derive(Debug, Default)]
pub struct Counters {
    pub uploaded: AtomicU64,
    pub downloaded: AtomicU64,
}

/// What the connection tasks tell the torrent.
#[derive(Debug)]
pub enum PeerEvent {
    Message(PeerKey, Message),
    Gone(PeerKey, String),
}

/// Commands for a peer's writer task.
#[derive(Debug)]
pub enum WriterCmd {
    Send(Message),
    /// Upload this block (the torrent checked it).
    Serve(BlockRef),
    /// The peer cancelled this request.
    Unserve(BlockRef),
}

/// Everything a connection's tasks share with their torrent.
#[derive(Clone)]
pub struct ConnContext {
    pub storage: Arc<Storage>,
    pub piece_length: u64,
    pub upload: Vec<Arc<RateLimiter>>,
    pub download: Vec<Arc<RateLimiter>>,
    pub events: mpsc::Sender<PeerEvent>,
    /// Blocks of each piece uploaded so far, by all of this torrent's peers.
    pub sent: Arc<SentCounts>,
    /// Bytes this torrent may still upload (`--seed-limit-copies`), shared by
    /// its writers so that the limit holds to the block, not to the tick.
    pub upload_budget: Option<Arc<AtomicU64>>,
    /// Requests a peer may have queued with us (`max_queued_requests`); more
    /// are dropped, and as many again past the cap is a flood that ends the
    /// connection.
    pub max_queued: usize,
}

/// Takes `n` bytes from a shared upload budget; false when too little is left.
fn take_budget(budget: &AtomicU64, n: u64) -> bool {
    budget
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
            left.checked_sub(n)
        })
        .is_ok()
}

/// How often each piece went out. A peer's queued requests are served
/// pieces-sent-least first, so a seeder whose upload is the bottleneck sends
/// new pieces before second copies: leechers that asked for the same rare
/// piece at once (their haves had not arrived yet) do not make it send twice
/// while other pieces have not left it once.
pub struct SentCounts {
    blocks: Vec<AtomicU32>,
    blocks_per_piece: u32,
    /// Serve in request order instead (experiments that isolate the picker).
    fifo: bool,
}

impl SentCounts {
    pub fn new(num_pieces: u32, piece_length: u32, fifo: bool) -> Self {
        SentCounts {
            blocks: (0..num_pieces).map(|_| AtomicU32::new(0)).collect(),
            blocks_per_piece: piece_length.div_ceil(sta_proto::wire::BLOCK_LEN).max(1),
            fifo,
        }
    }

    /// Copies of the piece sent, a copy under way counting as one: another
    /// writer will not start a piece one writer is already sending.
    fn copies(&self, piece: u32) -> u32 {
        self.blocks
            .get(piece as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
            .div_ceil(self.blocks_per_piece)
    }

    fn record(&self, piece: u32) {
        if let Some(c) = self.blocks.get(piece as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes the queued request whose piece went out least often (the
    /// earliest among equals), looking at the first few entries. The piece
    /// this writer is in the middle of (`current`) is finished first.
    fn take_next(&self, queue: &mut VecDeque<BlockRef>, current: Option<u32>) -> Option<BlockRef> {
        if queue.len() <= 1 || self.fifo {
            return queue.pop_front();
        }
        let best = queue
            .iter()
            .take(128)
            .enumerate()
            .min_by_key(|(i, b)| (Some(b.piece) != current, self.copies(b.piece), *i))
            .map(|(i, _)| i)?;
        queue.remove(best)
    }
}

/// Starts the reader and writer of an established connection. Returns the
/// writer's command channel and the counters.
pub fn spawn(
    stream: TcpStream,
    key: PeerKey,
    num_pieces: u32,
    ctx: ConnContext,
    tasks: &tokio_util::task::TaskTracker,
    cancel: CancellationToken,
) -> (mpsc::Sender<WriterCmd>, Arc<Counters>) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let counters = Arc::new(Counters::default());
    let (tx, rx) = mpsc::channel(ctx.max_queued + 600);
    let reason: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let codec = PeerCodec::new(num_pieces);
    tasks.spawn(write_loop(
        FramedWrite::new(wr, codec.clone()),
        rx,
        ctx.clone(),
        counters.clone(),
        cancel.clone(),
        reason.clone(),
    ));
    tasks.spawn(read_loop(
        FramedRead::with_capacity(rd, codec, 64 * 1024),
        key,
        ctx,
        counters.clone(),
        cancel,
        reason,
    ));
    (tx, counters)
}

async fn read_loop(
    mut framed: FramedRead<tokio::net::tcp::OwnedReadHalf, PeerCodec>,
    key: PeerKey,
    ctx: ConnContext,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
) {
    let why = loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break None,
            r = tokio::time::timeout(IDLE_TIMEOUT, framed.next()) => r,
        };
        let msg = match next {
            Err(_) => break Some("idle for 3 minutes".to_string()),
            Ok(None) => break Some("connection closed by peer".to_string()),
            Ok(Some(Err(e))) => break Some(format!("protocol error: {e}")),
            Ok(Some(Ok(m))) => m,
        };
        if let Message::Piece { data, .. } = &msg {
            let n = data.len() as u64;
            counters.downloaded.fetch_add(n, Ordering::Relaxed);
            for l in &ctx.download {
                l.acquire(n).await;
            }
        }
        if ctx.events.send(PeerEvent::Message(key, msg)).await.is_err() {
            break None;
        }
    };
    cancel.cancel();
    let why = why
        .or_else(|| reason.lock().expect("reason").take())
        .unwrap_or_else(|| "closed".into());
    let _ = ctx.events.send(PeerEvent::Gone(key, why)).await;
}

async fn write_loop(
    mut sink: FramedWrite<tokio::net::tcp::OwnedWriteHalf, PeerCodec>,
    mut rx: mpsc::Receiver<WriterCmd>,
    ctx: ConnContext,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
) {
    let mut queue: VecDeque<BlockRef> = VecDeque::new();
    let mut window = DiskWindow::default();
    let mut current: Option<u32> = None;
    let mut refused = 0usize;
    let work = async {
        loop {
            // Take every command already waiting, without blocking.
            loop {
                match rx.try_recv() {
                    Ok(cmd) => {
                        handle_cmd(cmd, ctx.max_queued, &mut queue, &mut refused, &mut sink).await?
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return Ok(()),
                }
            }
            if let Some(b) = ctx.sent.take_next(&mut queue, current) {
                // Whether the rest of this piece is still to come in this writer's queue.
                current = queue.iter().any(|q| q.piece == b.piece).then_some(b.piece);
                if let Some(budget) = &ctx.upload_budget
                    && !take_budget(budget, u64::from(b.len))
                {
                    // Spent: what is queued is dropped; the torrent chokes
                    // everyone at its next tick.
                    queue.clear();
                    current = None;
                    continue;
                }
                let data = window.block(&ctx, b, &queue).await?;
                let n = data.len() as u64;
                for l in &ctx.upload {
                    l.acquire(n).await;
                }
                sink.feed(Message::Piece {
                    index: b.piece,
                    begin: b.offset,
                    data,
                })
                .await
                .map_err(|e| e.to_string())?;
                counters.uploaded.fetch_add(n, Ordering::Relaxed);
                ctx.sent.record(b.piece);
                continue;
            }
            SinkExt::<Message>::flush(&mut sink)
                .await
                .map_err(|e| e.to_string())?;
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                cmd = rx.recv() => match cmd {
                    Some(cmd) => handle_cmd(cmd, ctx.max_queued, &mut queue, &mut refused, &mut sink).await?,
                    None => return Ok(()),
                },
            }
        }
    };
    // Every await above (socket writes, rate limits, disk reads) ends with the
    // connection: a peer that stops reading cannot hold us in a write.
    let result: Result<(), String> = tokio::select! {
        _ = cancel.cancelled() => Ok(()),
        r = work => r,
    };
    if let Err(e) = result {
        *reason.lock().expect("reason") = Some(e);
    }
    cancel.cancel();
}

async fn handle_cmd(
    cmd: WriterCmd,
    max_queued: usize,
    queue: &mut VecDeque<BlockRef>,
    refused: &mut usize,
    sink: &mut FramedWrite<tokio::net::tcp::OwnedWriteHalf, PeerCodec>,
) -> Result<(), String> {
    match cmd {
        WriterCmd::Send(m) => {
            if m == Message::Choke {
                // BEP 3: choking discards the peer's pending requests.
                queue.clear();
            }
            sink.feed(m).await.map_err(|e| e.to_string())?;
        }
        WriterCmd::Serve(b) => {
            if queue.len() >= max_queued {
                // Refused; a peer that keeps asking past the limit is flooding.
                *refused += 1;
                if *refused > max_queued {
                    return Err(format!(
                        "request flood: {} requests past the {max_queued} queued",
                        *refused
                    ));
                }
            } else {
                queue.push_back(b);
            }
        }
        WriterCmd::Unserve(b) => queue.retain(|q| *q != b),
    }
    Ok(())
}

/// Disk reads for uploads: a window of up to [`READ_WINDOW`] bytes read in
/// one go, and the next window read ahead on a blocking thread while this
/// one is being sent, so that disk and socket work overlap.
/// A window being read: its start and end offsets and the blocking read.
type ReadAhead = (u64, u64, tokio::task::JoinHandle<std::io::Result<Vec<u8>>>);

#[derive(Default)]
struct DiskWindow {
    current: Option<(u64, Bytes)>,
    ahead: Option<ReadAhead>,
    spare: Option<Vec<u8>>,
}

impl DiskWindow {
    fn span(ctx: &ConnContext, b: &BlockRef) -> (u64, u64) {
        let start = b.piece as u64 * ctx.piece_length + u64::from(b.offset);
        (start, start + u64::from(b.len))
    }

    fn covers(&self, start: u64, end: u64) -> bool {
        self.current
            .as_ref()
            .is_some_and(|(w, d)| start >= *w && end <= *w + d.len() as u64)
    }

    /// Starts reading the window that begins at block `b`.
    fn start_read(
        &mut self,
        ctx: &ConnContext,
        b: &BlockRef,
    ) -> (u64, u64, tokio::task::JoinHandle<std::io::Result<Vec<u8>>>) {
        let (start, end) = Self::span(ctx, b);
        let piece_end = b.piece as u64 * ctx.piece_length + ctx.piece_length;
        let wend = (start + READ_WINDOW).min(piece_end).max(end);
        let storage = ctx.storage.clone();
        let mut buf = self.spare.take().unwrap_or_default();
        let h = tokio::task::spawn_blocking(move || {
            buf.resize((wend - start) as usize, 0);
            // The last piece may be short: then read only up to the block's end.
            match storage.read(start, &mut buf) {
                Ok(()) => Ok(buf),
                Err(_) => {
                    buf.truncate((end - start) as usize);
                    storage.read(start, &mut buf).map(|_| buf)
                }
            }
        });
        (start, wend, h)
    }

    fn install(&mut self, start: u64, data: Vec<u8>) {
        // Reuse the old window's memory when no block of it is still in use.
        if let Some((_, old)) = self.current.take()
            && let Ok(m) = old.try_into_mut()
        {
            self.spare = Some(Vec::from(m));
        }
        self.current = Some((start, Bytes::from(data)));
    }

    /// The bytes of `b`; `queue` is what the peer asked for next (read ahead).
    async fn block(
        &mut self,
        ctx: &ConnContext,
        b: BlockRef,
        queue: &VecDeque<BlockRef>,
    ) -> Result<Bytes, String> {
        let (start, end) = Self::span(ctx, &b);
        if !self.covers(start, end) {
            let job = match self.ahead.take() {
                Some((s, e, h)) if start >= s && end <= e => (s, h),
                other => {
                    if let Some((_, _, h)) = other {
                        h.abort();
                    }
                    let (s, _, h) = self.start_read(ctx, &b);
                    (s, h)
                }
            };
            let data = job
                .1
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot read piece {} from disk: {e}", b.piece))?;
            self.install(job.0, data);
        }
        let (w, data) = self.current.as_ref().expect("window installed above");
        let block = data.slice((start - w) as usize..(end - w) as usize);
        if self.ahead.is_none()
            && let Some(next) = queue.iter().take(256).find(|n| {
                let (s, e) = Self::span(ctx, n);
                !self.covers(s, e)
            })
        {
            let next = *next;
            self.ahead = Some(self.start_read(ctx, &next));
        }
        Ok(block)
    }
}

/// Opens a TCP connection from `bind` (if set) to `addr`.
pub async fn connect(
    addr: SocketAddr,
    bind: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if let Some(ip) = bind
        && ip.is_ipv4() == addr.is_ipv4()
        && !ip.is_unspecified()
    {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_sent_pieces_go_first_and_a_started_piece_finishes() {
        let sent = SentCounts::new(4, 32 * 1024, false);
        let b = |piece, offset| BlockRef {
            piece,
            offset,
            len: 16384,
        };
        // Piece 0 already went out once.
        sent.record(0);
        sent.record(0);
        let mut q: VecDeque<BlockRef> = [b(0, 0), b(0, 16384), b(2, 0), b(2, 16384)].into();
        let first = sent.take_next(&mut q, None).unwrap();
        assert_eq!(first, b(2, 0));
        sent.record(2);
        // This writer finishes piece 2 before anything else.
        assert_eq!(sent.take_next(&mut q, Some(2)).unwrap(), b(2, 16384));
        // Another writer with pieces 2 (under way elsewhere) and 3 (never sent) starts 3.
        let mut other: VecDeque<BlockRef> = [b(2, 0), b(3, 0)].into();
        assert_eq!(sent.take_next(&mut other, None).unwrap(), b(3, 0));
        assert_eq!(sent.take_next(&mut q, None).unwrap(), b(0, 0));
    }
}
