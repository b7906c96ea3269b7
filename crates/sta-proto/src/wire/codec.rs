//! `tokio_util` codec for peer wire messages: bounds the length prefix before
//! any buffer grows, then hands the body to the pure [`Message::parse`].

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{MAX_BLOCK_LEN, Message, WireError};

/// Reads ahead this much when a frame is incomplete, so that a stream of
/// 16 KiB blocks arrives in few large reads rather than many small ones.
const READ_AHEAD: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct PeerCodec {
    max_len: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl PeerCodec {
    /// `max_len` is the largest body accepted: a piece message of the largest
    /// block, or this torrent's bitfield, whichever is longer.
    pub fn new(num_pieces: u32) -> Self {
        let bitfield = 1 + (num_pieces as usize).div_ceil(8);
        let piece = 9 + MAX_BLOCK_LEN as usize;
        PeerCodec {
            max_len: bitfield.max(piece),
        }
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl Decoder for PeerCodec {
    type Item = Message;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        let Some(h) = src.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*h) as usize;
        if len > self.max_len {
            return Err(WireError::TooLong(len, self.max_len).into());
        }
        if src.len() < 4 + len {
            let need = 4 + len - src.len();
            src.reserve(need.max(READ_AHEAD.min(4 + self.max_len)));
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(Message::parse(src.split_to(len).freeze())?))
    }
}

impl Encoder<Message> for PeerCodec {
    type Error = CodecError;

    fn encode(&mut self, m: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        m.encode(dst);
        Ok(())
    }
}

impl Encoder<&Message> for PeerCodec {
    type Error = CodecError;

    fn encode(&mut self, m: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        m.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::BlockInfo;
    use bytes::Bytes;
    use proptest::prelude::*;

    #[test]
    fn frames_split_anywhere_decode_the_same() {
        let msgs = vec![
            Message::Have(3),
            Message::Request(BlockInfo {
                index: 1,
                begin: 16384,
                length: 16384,
            }),
            Message::Piece {
                index: 1,
                begin: 0,
                data: Bytes::from(vec![9u8; 1000]),
            },
            Message::KeepAlive,
            Message::Unchoke,
        ];
        let mut wire = BytesMut::new();
        for m in &msgs {
            m.encode(&mut wire);
        }
        for cut in 0..wire.len() {
            let mut codec = PeerCodec::new(100);
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut out = Vec::new();
            while let Some(m) = codec.decode(&mut buf).unwrap() {
                out.push(m);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(m) = codec.decode(&mut buf).unwrap() {
                out.push(m);
            }
            assert_eq!(out, msgs);
        }
    }

    #[test]
    fn huge_length_prefix_is_refused_before_allocation() {
        let mut codec = PeerCodec::new(100);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 7][..]);
        let cap = buf.capacity();
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::Wire(WireError::TooLong(..)))
        ));
        assert_eq!(buf.capacity(), cap);
    }

    #[test]
    fn bitfield_limit_follows_piece_count() {
        let codec = PeerCodec::new(10_000_000);
        assert_eq!(codec.max_len(), 1 + 1_250_000);
    }

    proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut codec = PeerCodec::new(64);
            let mut buf = BytesMut::from(&b[..]);
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
        }
    }
}
