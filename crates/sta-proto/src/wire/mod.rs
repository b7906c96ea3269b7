//! The peer wire protocol of BEP 3: the handshake and the length-prefixed
//! messages that follow it, as values. [`codec`] frames them for
//! `tokio_util`; parsing and encoding here are pure functions over bytes.

pub mod codec;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{InfoHash, PeerId};

pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
pub const HANDSHAKE_LEN: usize = 68;
/// The block size every client requests (BEP 3 recommends 2^14).
pub const BLOCK_LEN: u32 = 16 * 1024;
/// Largest block a peer may request or send; larger requests are refused by
/// most clients and by us.
pub const MAX_BLOCK_LEN: u32 = 128 * 1024;

/// Reserved handshake bits. None are advertised until the feature behind them
/// exists (BEP 6 fast, BEP 10 extension protocol, BEP 5 DHT come later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reserved(pub [u8; 8]);

impl Reserved {
    pub fn extension_protocol(&self) -> bool {
        self.0[5] & 0x10 != 0
    }
    pub fn fast(&self) -> bool {
        self.0[7] & 0x04 != 0
    }
    pub fn dht(&self) -> bool {
        self.0[7] & 0x01 != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: Reserved,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a BitTorrent handshake")]
    BadProtocol,
    #[error("message of {0} bytes is over the {1} byte limit")]
    TooLong(usize, usize),
    #[error("{id} message must be {want} bytes, got {got}")]
    BadLength {
        id: &'static str,
        want: usize,
        got: usize,
    },
    #[error("piece message shorter than its 8-byte header")]
    ShortPiece,
}

impl Handshake {
    pub fn new(info_hash: InfoHash, peer_id: PeerId) -> Self {
        Handshake {
            reserved: Reserved::default(),
            info_hash,
            peer_id,
        }
    }

    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = 19;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved.0);
        out[28..48].copy_from_slice(&self.info_hash.0);
        out[48..68].copy_from_slice(&self.peer_id.0);
        out
    }

    /// Parses the first 48 bytes (protocol, reserved, info-hash): enough for a
    /// listener to route the connection before the peer id arrives.
    pub fn parse_prefix(b: &[u8; 48]) -> Result<(Reserved, InfoHash), WireError> {
        if b[0] != 19 || &b[1..20] != PROTOCOL {
            return Err(WireError::BadProtocol);
        }
        let mut r = [0u8; 8];
        r.copy_from_slice(&b[20..28]);
        let mut h = [0u8; 20];
        h.copy_from_slice(&b[28..48]);
        Ok((Reserved(r), InfoHash(h)))
    }

    pub fn parse(b: &[u8; HANDSHAKE_LEN]) -> Result<Self, WireError> {
        let prefix: &[u8; 48] = b[..48].try_into().expect("48 of 68");
        let (reserved, info_hash) = Self::parse_prefix(prefix)?;
        let mut p = [0u8; 20];
        p.copy_from_slice(&b[48..]);
        Ok(Handshake {
            reserved,
            info_hash,
            peer_id: PeerId(p),
        })
    }
}

/// A block as named in request and cancel messages (raw wire values; the
/// engine checks them against the torrent before use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockInfo {
    pub index: u32,
    pub begin: u32,
    pub length: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(Bytes),
    Request(BlockInfo),
    Piece {
        index: u32,
        begin: u32,
        data: Bytes,
    },
    Cancel(BlockInfo),
    /// BEP 5 DHT port; parsed so that it is not mistaken for garbage, then ignored.
    Port(u16),
    /// Any other id: ignored by the engine, as BEP 3 asks.
    Unknown {
        id: u8,
        payload: Bytes,
    },
}

impl Message {
    pub fn name(&self) -> &'static str {
        match self {
            Message::KeepAlive => "keep-alive",
            Message::Choke => "choke",
            Message::Unchoke => "unchoke",
            Message::Interested => "interested",
            Message::NotInterested => "not interested",
            Message::Have(_) => "have",
            Message::Bitfield(_) => "bitfield",
            Message::Request(_) => "request",
            Message::Piece { .. } => "piece",
            Message::Cancel(_) => "cancel",
            Message::Port(_) => "port",
            Message::Unknown { .. } => "unknown",
        }
    }

    /// Parses one message body (the bytes after the 4-byte length prefix).
    pub fn parse(mut body: Bytes) -> Result<Message, WireError> {
        let Some(&id) = body.first() else {
            return Ok(Message::KeepAlive);
        };
        body.advance(1);
        let want = |name: &'static str, n: usize, body: &Bytes| {
            if body.len() == n {
                Ok(())
            } else {
                Err(WireError::BadLength {
                    id: name,
                    want: n + 1,
                    got: body.len() + 1,
                })
            }
        };
        let block = |b: &mut Bytes| BlockInfo {
            index: b.get_u32(),
            begin: b.get_u32(),
            length: b.get_u32(),
        };
        Ok(match id {
            0 => want("choke", 0, &body).map(|_| Message::Choke)?,
            1 => want("unchoke", 0, &body).map(|_| Message::Unchoke)?,
            2 => want("interested", 0, &body).map(|_| Message::Interested)?,
            3 => want("not interested", 0, &body).map(|_| Message::NotInterested)?,
            4 => {
                want("have", 4, &body)?;
                Message::Have(body.get_u32())
            }
            5 => Message::Bitfield(body),
            6 => {
                want("request", 12, &body)?;
                Message::Request(block(&mut body))
            }
            7 => {
                if body.len() < 8 {
                    return Err(WireError::ShortPiece);
                }
                let index = body.get_u32();
                let begin = body.get_u32();
                Message::Piece {
                    index,
                    begin,
                    data: body,
                }
            }
            8 => {
                want("cancel", 12, &body)?;
                Message::Cancel(block(&mut body))
            }
            9 => {
                want("port", 2, &body)?;
                Message::Port(body.get_u16())
            }
            id => Message::Unknown { id, payload: body },
        })
    }

    /// Length of the encoded message including its 4-byte prefix.
    pub fn encoded_len(&self) -> usize {
        4 + match self {
            Message::KeepAlive => 0,
            Message::Choke | Message::Unchoke | Message::Interested | Message::NotInterested => 1,
            Message::Have(_) => 5,
            Message::Bitfield(b) => 1 + b.len(),
            Message::Request(_) | Message::Cancel(_) => 13,
            Message::Piece { data, .. } => 9 + data.len(),
            Message::Port(_) => 3,
            Message::Unknown { payload, .. } => 1 + payload.len(),
        }
    }

    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_u32((self.encoded_len() - 4) as u32);
        let simple = |dst: &mut BytesMut, id: u8| dst.put_u8(id);
        match self {
            Message::KeepAlive => {}
            Message::Choke => simple(dst, 0),
            Message::Unchoke => simple(dst, 1),
            Message::Interested => simple(dst, 2),
            Message::NotInterested => simple(dst, 3),
            Message::Have(i) => {
                dst.put_u8(4);
                dst.put_u32(*i);
            }
            Message::Bitfield(b) => {
                dst.put_u8(5);
                dst.put_slice(b);
            }
            Message::Request(b) | Message::Cancel(b) => {
                dst.put_u8(if matches!(self, Message::Request(_)) {
                    6
                } else {
                    8
                });
                dst.put_u32(b.index);
                dst.put_u32(b.begin);
                dst.put_u32(b.length);
            }
            Message::Piece { index, begin, data } => {
                dst.put_u8(7);
                dst.put_u32(*index);
                dst.put_u32(*begin);
                dst.put_slice(data);
            }
            Message::Port(p) => {
                dst.put_u8(9);
                dst.put_u16(*p);
            }
            Message::Unknown { id, payload } => {
                dst.put_u8(*id);
                dst.put_slice(payload);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_message() -> impl Strategy<Value = Message> {
        let block =
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(index, begin, length)| {
                BlockInfo {
                    index,
                    begin,
                    length,
                }
            });
        let bytes = proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from);
        prop_oneof![
            Just(Message::KeepAlive),
            Just(Message::Choke),
            Just(Message::Unchoke),
            Just(Message::Interested),
            Just(Message::NotInterested),
            any::<u32>().prop_map(Message::Have),
            bytes.clone().prop_map(Message::Bitfield),
            block.clone().prop_map(Message::Request),
            (any::<u32>(), any::<u32>(), bytes.clone())
                .prop_map(|(index, begin, data)| Message::Piece { index, begin, data }),
            block.prop_map(Message::Cancel),
            any::<u16>().prop_map(Message::Port),
            (10u8..=255, bytes).prop_map(|(id, payload)| Message::Unknown { id, payload }),
        ]
    }

    proptest! {
        #[test]
        fn encode_parse_round_trip(m in arb_message()) {
            let mut buf = BytesMut::new();
            m.encode(&mut buf);
            prop_assert_eq!(buf.len(), m.encoded_len());
            let body = buf.split_off(4).freeze();
            prop_assert_eq!(Message::parse(body).unwrap(), m);
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Message::parse(Bytes::from(b));
        }
    }

    #[test]
    fn handshake_round_trip_and_rejects_other_protocols() {
        let h = Handshake::new(InfoHash([1; 20]), PeerId(*b"-ST0001-abcdefghijkl"));
        let enc = h.encode();
        assert_eq!(Handshake::parse(&enc).unwrap(), h);
        let mut bad = enc;
        bad[5] = b'X';
        assert_eq!(Handshake::parse(&bad), Err(WireError::BadProtocol));
        bad = enc;
        bad[0] = 18;
        assert_eq!(Handshake::parse(&bad), Err(WireError::BadProtocol));
    }

    #[test]
    fn wrong_lengths_are_errors() {
        assert!(matches!(
            Message::parse(Bytes::from_static(&[4, 0, 0])),
            Err(WireError::BadLength { id: "have", .. })
        ));
        assert!(matches!(
            Message::parse(Bytes::from_static(&[0, 1])),
            Err(WireError::BadLength { id: "choke", .. })
        ));
        assert_eq!(
            Message::parse(Bytes::from_static(&[7, 0, 0, 0])),
            Err(WireError::ShortPiece)
        );
    }
}
