//! Magnet links in the BEP 9 form:
//! `magnet:?xt=urn:btih:<hex or base32>&dn=<name>&tr=<tracker>&x.pe=<host:port>`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::InfoHash;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    pub info_hash: InfoHash,
    /// `dn`: a display name until the metadata is known.
    pub display_name: Option<String>,
    /// `tr`: tracker URLs, in order.
    pub trackers: Vec<String>,
    /// `x.pe`: peer addresses (`host:port`) to try directly.
    pub peers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    #[error("not a magnet link: it must start with `magnet:?`")]
    NotMagnet,
    #[error("magnet link has no `xt=urn:btih:` info-hash")]
    MissingInfoHash,
    #[error(
        "magnet link carries only a BitTorrent v2 hash (`urn:btmh:`); sta needs a v1 `urn:btih:` hash"
    )]
    V2Only,
    #[error("bad info-hash {0:?}: expected 40 hex digits or 32 base32 characters")]
    BadInfoHash(String),
    #[error("two different `urn:btih:` info-hashes in one magnet link")]
    ConflictingInfoHash,
    #[error("bad percent-encoding in `{0}`")]
    BadEncoding(String),
}

// Keep the characters URLs need readable; encode the rest.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn decode_btih(s: &str) -> Result<InfoHash, MagnetError> {
    let bad = || MagnetError::BadInfoHash(s.to_owned());
    match s.len() {
        40 => InfoHash::from_hex(s).map_err(|_| bad()),
        32 => {
            let upper = s.to_ascii_uppercase();
            let v = data_encoding::BASE32_NOPAD
                .decode(upper.as_bytes())
                .map_err(|_| bad())?;
            InfoHash::from_slice(&v).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

impl Magnet {
    /// Parses a magnet URI. Unknown parameters are ignored, as other clients do.
    pub fn parse(uri: &str) -> Result<Self, MagnetError> {
        let uri = uri.trim();
        let query = uri
            .get(..8)
            .filter(|p| p.eq_ignore_ascii_case("magnet:?"))
            .map(|_| &uri[8..])
            .ok_or(MagnetError::NotMagnet)?;
        let mut info_hash: Option<InfoHash> = None;
        let mut saw_v2 = false;
        let mut m = Magnet {
            info_hash: InfoHash::default(),
            display_name: None,
            trackers: vec![],
            peers: vec![],
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let value = || -> Result<String, MagnetError> {
                let v = v.replace('+', " ");
                percent_decode_str(&v)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| MagnetError::BadEncoding(k.to_owned()))
            };
            // `xt.1`, `xt.2`, ... are allowed for several topics.
            let base = k.split('.').next().unwrap_or(k);
            match (base, k) {
                ("xt", _) => {
                    let v = value()?;
                    if let Some(h) = v.strip_prefix("urn:btih:") {
                        let h = decode_btih(h)?;
                        if info_hash.is_some_and(|old| old != h) {
                            return Err(MagnetError::ConflictingInfoHash);
                        }
                        info_hash = Some(h);
                    } else if v.starts_with("urn:btmh:") {
                        saw_v2 = true;
                    }
                }
                ("dn", _) => m.display_name = Some(value()?),
                ("tr", _) => {
                    let t = value()?;
                    if !t.is_empty() && !m.trackers.contains(&t) {
                        m.trackers.push(t);
                    }
                }
                (_, "x.pe") => m.peers.push(value()?),
                _ => {}
            }
        }
        m.info_hash = match info_hash {
            Some(h) => h,
            None if saw_v2 => return Err(MagnetError::V2Only),
            None => return Err(MagnetError::MissingInfoHash),
        };
        Ok(m)
    }

    /// Builds the URI: hex info-hash, then `dn`, each `tr`, each `x.pe`.
    pub fn to_uri(&self) -> String {
        let mut s = format!("magnet:?xt=urn:btih:{}", self.info_hash.to_hex());
        if let Some(dn) = &self.display_name {
            s.push_str("&dn=");
            s.extend(utf8_percent_encode(dn, COMPONENT));
        }
        for t in &self.trackers {
            s.push_str("&tr=");
            s.extend(utf8_percent_encode(t, COMPONENT));
        }
        for p in &self.peers {
            s.push_str("&x.pe=");
            s.extend(utf8_percent_encode(p, COMPONENT));
        }
        s
    }
}

impl std::fmt::Display for Magnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_uri())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX: &str = "c9e15763f722f23e98a29decdfae341b98d53056";

    #[test]
    fn parses_hex_and_base32() {
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&dn=My+File%20x&tr=http%3A%2F%2Ft%2Fa&tr=udp%3A%2F%2Fu%3A1&x.pe=1.2.3.4%3A5")).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.display_name.as_deref(), Some("My File x"));
        assert_eq!(m.trackers, ["http://t/a", "udp://u:1"]);
        assert_eq!(m.peers, ["1.2.3.4:5"]);
        let b32 = data_encoding::BASE32_NOPAD.encode(&InfoHash::from_hex(HEX).unwrap().0);
        let m2 = Magnet::parse(&format!("magnet:?xt=urn:btih:{}", b32.to_lowercase())).unwrap();
        assert_eq!(m2.info_hash, m.info_hash);
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(Magnet::parse("http://x"), Err(MagnetError::NotMagnet));
        assert_eq!(
            Magnet::parse("magnet:?dn=x"),
            Err(MagnetError::MissingInfoHash)
        );
        assert!(matches!(
            Magnet::parse("magnet:?xt=urn:btih:1234"),
            Err(MagnetError::BadInfoHash(_))
        ));
        assert!(matches!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{}", "z".repeat(40))),
            Err(MagnetError::BadInfoHash(_))
        ));
        assert_eq!(
            Magnet::parse("magnet:?xt=urn:btmh:1220abcd"),
            Err(MagnetError::V2Only)
        );
        assert!(matches!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&dn=%ff")),
            Err(MagnetError::BadEncoding(_))
        ));
        let other = "0".repeat(40);
        assert_eq!(
            Magnet::parse(&format!(
                "magnet:?xt.1=urn:btih:{HEX}&xt.2=urn:btih:{other}"
            )),
            Err(MagnetError::ConflictingInfoHash)
        );
    }

    proptest! {
        #[test]
        fn round_trip(h in any::<[u8; 20]>(), dn in proptest::option::of(".{0,20}"), trs in proptest::collection::vec("[a-z]{1,5}://[ -~]{1,20}", 0..3)) {
            let mut trs2: Vec<String> = Vec::new();
            for t in trs { if !trs2.contains(&t) { trs2.push(t); } }
            let m = Magnet { info_hash: InfoHash(h), display_name: dn, trackers: trs2, peers: vec!["[::1]:6881".into()] };
            prop_assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
        }

        #[test]
        fn never_panics(s in ".{0,80}") {
            let _ = Magnet::parse(&s);
            let _ = Magnet::parse(&format!("magnet:?{s}"));
        }
    }
}
