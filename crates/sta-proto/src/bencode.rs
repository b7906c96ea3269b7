//! Bencode through `bt_bencode`, behind a cheap structural pre-scan.
//!
//! `bt_bencode` 0.8 has no nesting limit: a hundred thousand nested lists
//! overflow the stack and abort the process. [`check`] walks the bytes once
//! without allocating, bounds the depth, checks that every string length fits
//! in the input and that exactly one value is present. Only then are the bytes
//! handed to `bt_bencode`, so no attacker-given length reaches an allocator.

use serde::de::DeserializeOwned;

/// Deep enough for any real torrent, tracker response or extension message.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BencodeError {
    #[error("bencode ends early (truncated at byte {0})")]
    Truncated(usize),
    #[error("invalid bencode at byte {0}: {1}")]
    Invalid(usize, &'static str),
    #[error("bencode nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("trailing data after the bencoded value at byte {0}")]
    Trailing(usize),
    #[error("unexpected bencode structure: {0}")]
    Shape(String),
}

/// Validates the structure of `input`: exactly one well-formed value, nesting
/// at most `max_depth`, every string length within the input.
pub fn check(input: &[u8], max_depth: usize) -> Result<(), BencodeError> {
    let end = scan_value(input, 0, max_depth)?;
    if end != input.len() {
        return Err(BencodeError::Trailing(end));
    }
    Ok(())
}

/// Scans one value starting at `pos`, returns the position just past it.
/// Iterative, so hostile nesting cannot exhaust the stack here either.
pub fn scan_value(input: &[u8], mut pos: usize, max_depth: usize) -> Result<usize, BencodeError> {
    // For each open container: is it a dictionary, and is a key expected next?
    let mut stack: Vec<(bool, bool)> = Vec::new();
    loop {
        let Some(&c) = input.get(pos) else {
            return Err(BencodeError::Truncated(pos));
        };
        if c == b'e' {
            match stack.pop() {
                Some((is_dict, expect_key)) => {
                    if is_dict && !expect_key {
                        return Err(BencodeError::Invalid(pos, "dictionary key without value"));
                    }
                    pos += 1;
                }
                None => return Err(BencodeError::Invalid(pos, "unexpected 'e'")),
            }
        } else {
            if let Some((true, true)) = stack.last()
                && !c.is_ascii_digit()
            {
                return Err(BencodeError::Invalid(
                    pos,
                    "dictionary key must be a string",
                ));
            }
            match c {
                b'i' => pos = scan_int(input, pos)?,
                b'0'..=b'9' => pos = scan_str(input, pos)?,
                b'l' | b'd' => {
                    if stack.len() >= max_depth {
                        return Err(BencodeError::TooDeep);
                    }
                    // The container itself is a value of its parent: flip the parent's key flag now.
                    flip(&mut stack);
                    stack.push((c == b'd', true));
                    pos += 1;
                    continue;
                }
                _ => return Err(BencodeError::Invalid(pos, "expected a value")),
            }
            flip(&mut stack);
            if stack.is_empty() {
                return Ok(pos);
            }
            continue;
        }
        if stack.is_empty() {
            return Ok(pos);
        }
    }
}

fn flip(stack: &mut [(bool, bool)]) {
    if let Some((true, expect_key)) = stack.last_mut() {
        *expect_key = !*expect_key;
    }
}

fn scan_int(input: &[u8], start: usize) -> Result<usize, BencodeError> {
    let mut pos = start + 1;
    if input.get(pos) == Some(&b'-') {
        pos += 1;
    }
    let digits = pos;
    while let Some(c) = input.get(pos) {
        match c {
            b'0'..=b'9' => pos += 1,
            b'e' => {
                let n = pos - digits;
                if n == 0 || n > 20 {
                    return Err(BencodeError::Invalid(start, "bad integer"));
                }
                if input[digits] == b'0' && (n > 1 || digits != start + 1) {
                    return Err(BencodeError::Invalid(
                        start,
                        "integer with leading zero or -0",
                    ));
                }
                return Ok(pos + 1);
            }
            _ => return Err(BencodeError::Invalid(pos, "bad integer")),
        }
    }
    Err(BencodeError::Truncated(pos))
}

fn scan_str(input: &[u8], start: usize) -> Result<usize, BencodeError> {
    let mut pos = start;
    let mut len: usize = 0;
    while let Some(&c) = input.get(pos) {
        match c {
            b'0'..=b'9' => {
                len = len
                    .checked_mul(10)
                    .and_then(|l| l.checked_add(usize::from(c - b'0')))
                    .ok_or(BencodeError::Invalid(start, "string length overflows"))?;
                pos += 1;
            }
            b':' => {
                let body = pos + 1;
                // Compare against what is left: the length is never trusted further.
                if len > input.len() - body {
                    return Err(BencodeError::Truncated(input.len()));
                }
                return Ok(body + len);
            }
            _ => return Err(BencodeError::Invalid(pos, "bad string length")),
        }
    }
    Err(BencodeError::Truncated(pos))
}

/// Checks `input` and then deserializes it with `bt_bencode`.
pub fn decode<T: DeserializeOwned>(input: &[u8]) -> Result<T, BencodeError> {
    check(input, MAX_DEPTH)?;
    bt_bencode::from_slice(input).map_err(|e| BencodeError::Shape(e.to_string()))
}

/// Checks `input`, then deserializes a type that may borrow from it.
pub fn decode_borrowed<'a, T: serde::Deserialize<'a>>(input: &'a [u8]) -> Result<T, BencodeError> {
    check(input, MAX_DEPTH)?;
    bt_bencode::from_slice(input).map_err(|e| BencodeError::Shape(e.to_string()))
}

/// Encodes a value; bencode dictionaries built from `BTreeMap`s come out in
/// canonical (sorted) key order.
pub fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Serializing our own types cannot fail: they use only bencode's four shapes.
    bt_bencode::to_vec(v).expect("bencode-serializable value")
}

pub use bt_bencode::Value;

/// Convenience accessors over a decoded dictionary.
pub fn dict_get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_dict()?.get(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_well_formed() {
        for ok in [
            &b"i0e"[..],
            b"i-42e",
            b"4:spam",
            b"0:",
            b"le",
            b"de",
            b"d1:ai1e1:bl1:xee",
            b"lli1eee",
        ] {
            check(ok, MAX_DEPTH)
                .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(ok)));
        }
    }

    #[test]
    fn rejects_malformed() {
        type Check = fn(&BencodeError) -> bool;
        let cases: &[(&[u8], Check)] = &[
            (b"", |e| matches!(e, BencodeError::Truncated(_))),
            (b"i12", |e| matches!(e, BencodeError::Truncated(_))),
            (b"ie", |e| matches!(e, BencodeError::Invalid(..))),
            (b"i-0e", |e| matches!(e, BencodeError::Invalid(..))),
            (b"i03e", |e| matches!(e, BencodeError::Invalid(..))),
            (b"5:abc", |e| matches!(e, BencodeError::Truncated(_))),
            (b"99999999999999999999999999:a", |e| {
                matches!(e, BencodeError::Invalid(..))
            }),
            (b"d1:ae", |e| matches!(e, BencodeError::Invalid(..))),
            (b"di1ei2ee", |e| matches!(e, BencodeError::Invalid(..))),
            (b"l", |e| matches!(e, BencodeError::Truncated(_))),
            (b"e", |e| matches!(e, BencodeError::Invalid(..))),
            (b"i1ei2e", |e| matches!(e, BencodeError::Trailing(3))),
            (b"x", |e| matches!(e, BencodeError::Invalid(..))),
        ];
        for (input, want) in cases {
            let err = check(input, MAX_DEPTH).unwrap_err();
            assert!(
                want(&err),
                "{:?} gave {err:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let mut deep = vec![b'l'; 200_000];
        deep.extend(std::iter::repeat_n(b'e', 200_000));
        assert_eq!(check(&deep, MAX_DEPTH), Err(BencodeError::TooDeep));
        assert!(decode::<Value>(&deep).is_err());
        let ok = [b"l".repeat(MAX_DEPTH), b"e".repeat(MAX_DEPTH)].concat();
        check(&ok, MAX_DEPTH).unwrap();
    }

    #[test]
    fn decode_keeps_unsorted_keys_readable() {
        let v: Value = decode(b"d1:bi2e1:ai1ee").unwrap();
        assert_eq!(dict_get(&v, "a").and_then(Value::as_u64), Some(1));
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<u64>().prop_map(|u| Value::Int(bt_bencode::value::Number::Unsigned(u))),
            (i64::MIN..0).prop_map(|i| Value::Int(bt_bencode::value::Number::Signed(i))),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| Value::ByteStr(b.into())),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 0..8).prop_map(Into::into),
                    inner,
                    0..6
                )
                .prop_map(Value::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trip(v in arb_value()) {
            let bytes = encode(&v);
            check(&bytes, MAX_DEPTH).unwrap();
            let back: Value = decode(&bytes).unwrap();
            prop_assert_eq!(back, v);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<Value>(&bytes);
        }

        #[test]
        fn check_agrees_with_bt_bencode_on_valid_input(v in arb_value(), cut in 0usize..64) {
            let bytes = encode(&v);
            let cut = cut.min(bytes.len());
            // Any strict prefix of a single value is incomplete.
            if cut < bytes.len() {
                prop_assert!(check(&bytes[..cut], MAX_DEPTH).is_err());
            }
        }
    }
}
