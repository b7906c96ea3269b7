//! Newtypes for the 20-byte identifiers of BitTorrent: info-hashes and peer ids.

use std::fmt;

/// SHA-1 of the exact bytes of a torrent's `info` dictionary.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHash(pub [u8; 20]);

/// A peer's self-chosen 20-byte id (sta uses the Azureus style `-ST0001-` prefix).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PeerId(pub [u8; 20]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("expected 40 hex digits, got {0} characters")]
    Length(usize),
    #[error("not a hex digit in {0:?}")]
    Digit(String),
}

fn hex40(s: &str) -> Result<[u8; 20], HexError> {
    if s.len() != 40 {
        return Err(HexError::Length(s.len()));
    }
    let mut out = [0u8; 20];
    data_encoding::HEXLOWER_PERMISSIVE
        .decode_mut(s.as_bytes(), &mut out)
        .map_err(|_| HexError::Digit(s.to_owned()))?;
    Ok(out)
}

impl InfoHash {
    pub fn from_hex(s: &str) -> Result<Self, HexError> {
        hex40(s).map(InfoHash)
    }
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        b.try_into().ok().map(InfoHash)
    }
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl PeerId {
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        b.try_into().ok().map(PeerId)
    }
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }
    /// The client name and version a peer id announces, for peer tables.
    /// Azureus style `-XXnnnn-` and the older Shadow style `Xnnn--`; unknown ids
    /// are shown by their printable prefix.
    pub fn client_name(&self) -> String {
        let id = &self.0;
        if id[0] == b'-' && id[7] == b'-' && id[1..7].iter().all(u8::is_ascii_alphanumeric) {
            let code = std::str::from_utf8(&id[1..3]).unwrap_or("??");
            let v = &id[3..7];
            let name = match code {
                "ST" => "sta",
                "TR" => "Transmission",
                "LT" => "libtorrent",
                "lt" => "libTorrent",
                "qB" => "qBittorrent",
                "DE" => "Deluge",
                "UT" => "µTorrent",
                "AZ" => "Vuze",
                "RQ" | "rQ" => "rqbit",
                "BT" => "BitTorrent",
                "KT" => "KTorrent",
                other => return format!("{other} {}", String::from_utf8_lossy(v)),
            };
            let ver: Vec<String> = v
                .iter()
                .map(|c| (*c as char).to_digit(36).unwrap_or(0).to_string())
                .collect();
            // Transmission packs 3 digits plus a letter; showing four digits is close enough.
            return format!("{name} {}", ver.join("."));
        }
        if id.starts_with(b"A2-") {
            return "aria2".into();
        }
        let printable: String = id
            .iter()
            .take_while(|c| c.is_ascii_graphic())
            .take(8)
            .map(|c| *c as char)
            .collect();
        if printable.is_empty() {
            "unknown".into()
        } else {
            printable
        }
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}
impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PeerId({})",
            String::from_utf8_lossy(&self.0).escape_debug()
        )
    }
}

impl serde::Serialize for InfoHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}
impl<'de> serde::Deserialize<'de> for InfoHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        InfoHash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = InfoHash([0xab; 20]);
        assert_eq!(InfoHash::from_hex(&h.to_hex()).unwrap(), h);
        assert_eq!(InfoHash::from_hex(&h.to_hex().to_uppercase()).unwrap(), h);
        assert!(matches!(
            InfoHash::from_hex("abc"),
            Err(HexError::Length(3))
        ));
        assert!(matches!(
            InfoHash::from_hex(&"zz".repeat(20)),
            Err(HexError::Digit(_))
        ));
    }

    #[test]
    fn client_names() {
        let mut id = [b'x'; 20];
        id[..8].copy_from_slice(b"-TR3000-");
        assert_eq!(PeerId(id).client_name(), "Transmission 3.0.0.0");
        id[..8].copy_from_slice(b"-ST0001-");
        assert_eq!(PeerId(id).client_name(), "sta 0.0.0.1");
        id[..8].copy_from_slice(b"-ZZ1234-");
        assert_eq!(PeerId(id).client_name(), "ZZ 1234");
        assert_eq!(PeerId([0; 20]).client_name(), "unknown");
    }
}
