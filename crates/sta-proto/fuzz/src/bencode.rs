//! `bencode`: the structural pre-scan ([`check`](sta_proto::bencode::check))
//! against `bt_bencode`, and decode→encode→decode on what both accept.

use sta_proto::bencode::{self, BencodeError, MAX_DEPTH, Value};

/// `bt_bencode` recurses once per level and has no limit of its own: it is
/// called unguarded only when the input cannot nest deeper than this (every
/// level opens with an `l` or a `d` byte), which any thread's stack holds.
const RAW_DEPTH_BOUND: usize = 256;

/// `bt_bencode` 0.8.2 adds a string's length to its read position unchecked:
/// a length near `usize::MAX` overflows (a panic with overflow checks, a bad
/// slice index without). This target found it; `bencode::check` refuses such
/// lengths first. Unguarded calls skip inputs with a length of 19+ digits.
fn has_huge_string_length(data: &[u8]) -> bool {
    let mut digits = 0;
    for &b in data {
        match b {
            b'0'..=b'9' => digits += 1,
            b':' if digits >= 19 => return true,
            _ => digits = 0,
        }
    }
    false
}

pub fn check(data: &[u8]) {
    let scanned = bencode::check(data, MAX_DEPTH);
    let decoded = bencode::decode::<Value>(data);

    let opens = data.iter().filter(|b| matches!(b, b'l' | b'd')).count();
    if opens <= RAW_DEPTH_BOUND && !has_huge_string_length(data) {
        let raw = bt_bencode::from_slice::<Value>(data);
        match (&scanned, &raw) {
            // The pre-scan passes integers bt_bencode cannot hold (up to 20
            // digits, beyond u64 or below -i64::MAX): the only disagreement
            // allowed in that direction.
            (Ok(()), Err(e)) => assert!(
                e.to_string().contains("invalid integer"),
                "check passed but bt_bencode failed: {e}"
            ),
            // bt_bencode reads `i03e`, `i-0e` and any run of leading zeros,
            // which BEP 3 forbids (the pre-scan also caps integers at 20
            // digits); depth beyond MAX_DEPTH is refused on purpose.
            (Err(e), Ok(_)) => assert!(
                matches!(
                    e,
                    BencodeError::TooDeep
                        | BencodeError::Invalid(_, "integer with leading zero or -0")
                        | BencodeError::Invalid(_, "bad integer")
                ),
                "bt_bencode accepted what check refused: {e:?}"
            ),
            _ => {}
        }
        if let (Ok(a), Ok(b)) = (&decoded, &raw) {
            assert_eq!(a, b, "decode differs from bt_bencode");
        }
    }

    match (&scanned, &decoded) {
        (Err(e), Ok(_)) => panic!("decode accepted what check refused: {e:?}"),
        (Ok(()), Err(e)) => assert!(
            matches!(e, BencodeError::Shape(s) if s.contains("invalid integer")),
            "check passed but decode failed: {e:?}"
        ),
        _ => {}
    }

    if let Ok(v) = decoded {
        // Canonical output is never longer than an accepted input: duplicate
        // keys collapse, length prefixes lose leading zeros, nothing grows.
        let enc = bencode::encode(&v);
        assert!(enc.len() <= data.len(), "re-encoding grew the value");
        let back: Value = bencode::decode(&enc).expect("canonical bytes decode");
        assert_eq!(back, v, "decode(encode(v)) != v");
    }
}
