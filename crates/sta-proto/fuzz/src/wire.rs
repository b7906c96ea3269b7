//! `wire`: a peer's byte stream. Input layout: byte 0 seeds how the stream is
//! cut into reads, bytes 1..3 give the torrent's piece count (big endian),
//! the rest is what the peer sent. If it opens with a valid handshake, the
//! messages follow it; otherwise the whole rest is read as messages.
//!
//! Whatever the cuts, [`PeerCodec`] must yield the same messages and the same
//! verdict, and every message must re-encode to exactly the frame it came from.

use bytes::BytesMut;
use sta_proto::wire::codec::PeerCodec;
use sta_proto::wire::{HANDSHAKE_LEN, Handshake, Message};
use tokio_util::codec::Decoder;

pub fn check(data: &[u8]) {
    let [seed, hi, lo, stream @ ..] = data else {
        return;
    };
    let num_pieces = u32::from(u16::from_be_bytes([*hi, *lo]));

    let mut messages = stream;
    if let Some(first) = stream.first_chunk::<HANDSHAKE_LEN>()
        && let Ok(h) = Handshake::parse(first)
    {
        assert_eq!(&h.encode(), first, "handshake re-encodes to its bytes");
        assert_eq!(Handshake::parse(&h.encode()), Ok(h));
        messages = &stream[HANDSHAKE_LEN..];
    }

    let whole = decode_in_reads(num_pieces, messages, &mut |_| messages.len());
    let mut one = |_: usize| 1;
    assert_eq!(
        decode_in_reads(num_pieces, messages, &mut one),
        whole,
        "byte-at-a-time reads decode differently"
    );
    let mut state = u32::from(*seed) | 1;
    let mut random = |left: usize| {
        // xorshift: cheap, deterministic cuts of 1..=300 bytes.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        1 + (state as usize % 300).min(left.saturating_sub(1))
    };
    assert_eq!(
        decode_in_reads(num_pieces, messages, &mut random),
        whole,
        "reads cut at random decode differently"
    );

    // Every decoded message is exactly the frame it was read from.
    let mut again = BytesMut::new();
    for m in &whole.0 {
        let before = again.len();
        m.encode(&mut again);
        assert_eq!(again.len() - before, m.encoded_len(), "encoded_len");
    }
    assert!(
        messages.starts_with(&again),
        "re-encoding differs from the input"
    );
}

/// What the decoder saw: the messages, then `Some(error text)` if it stopped
/// on an error, and how many bytes were left unread.
type Outcome = (Vec<Message>, Option<String>, usize);

fn decode_in_reads(
    num_pieces: u32,
    input: &[u8],
    next_read: &mut dyn FnMut(usize) -> usize,
) -> Outcome {
    let mut codec = PeerCodec::new(num_pieces);
    // Growth is bounded by the frame limit and the read-ahead, never by the
    // length a peer announces.
    let cap_limit = 2 * (input.len() + 4 + codec.max_len().max(256 * 1024));
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(m)) => {
                out.push(m);
                continue;
            }
            Ok(None) => {}
            Err(e) => return (out, Some(e.to_string()), input.len() - fed + buf.len()),
        }
        assert!(
            buf.capacity() <= cap_limit,
            "buffer grew to {}",
            buf.capacity()
        );
        if fed == input.len() {
            return (out, None, buf.len());
        }
        let n = next_read(input.len() - fed).clamp(1, input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
    }
}
