//! Parsing and validating a `.torrent` file. See the module above for the rules.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use bt_bencode::Value;
use bt_bencode::value::Number;
use sha1::{Digest, Sha1};

use super::{
    FileEntry, Info, MAX_PATH_BYTES, MAX_PATH_COMPONENTS, MAX_PIECE_LENGTH, MAX_TORRENT_FILE,
    MAX_TOTAL_LENGTH, MIN_PIECE_LENGTH, Metainfo, MetainfoError as E,
};
use crate::InfoHash;
use crate::bencode::{self, MAX_DEPTH};

#[derive(serde::Deserialize)]
struct RawInfo<'a> {
    #[serde(borrow)]
    info: Option<&'a serde_bytes::Bytes>,
}

/// Parses a `.torrent` file and checks everything a download depends on.
pub fn parse(bytes: &[u8]) -> Result<Metainfo, E> {
    if bytes.len() > MAX_TORRENT_FILE {
        return Err(E::TooLarge(bytes.len()));
    }
    bencode::check(bytes, MAX_DEPTH)?;
    let top: Value = bencode::decode(bytes)?;
    let dict = top.as_dict().ok_or(E::WrongType("(top level)"))?;
    // The raw bytes of `info`, borrowed exactly as they stand in the file.
    let raw: RawInfo<'_> = bencode::decode_borrowed(bytes)?;
    let info_bytes: &[u8] = raw.info.ok_or(E::Missing("info"))?;
    if !info_bytes.starts_with(b"d") {
        return Err(E::WrongType("info"));
    }
    let info_value = dict.get(&b"info"[..]).ok_or(E::Missing("info"))?;
    let info = parse_info(info_value)?;
    let info_hash = InfoHash(Sha1::digest(info_bytes).into());

    let mut trackers: Vec<Vec<String>> = Vec::new();
    if let Some(Value::List(tiers)) = dict.get(&b"announce-list"[..]) {
        for tier in tiers {
            if let Value::List(urls) = tier {
                let urls: Vec<String> = urls
                    .iter()
                    .filter_map(text)
                    .filter(|u| !u.is_empty())
                    .collect();
                if !urls.is_empty() {
                    trackers.push(urls);
                }
            }
        }
    }
    if trackers.is_empty()
        && let Some(a) = dict
            .get(&b"announce"[..])
            .and_then(text)
            .filter(|a| !a.is_empty())
    {
        trackers.push(vec![a]);
    }
    let web_seeds = match dict.get(&b"url-list"[..]) {
        // An empty URL is no web seed, in a list as in a lone string.
        Some(Value::List(l)) => l
            .iter()
            .filter_map(text)
            .filter(|s| !s.is_empty())
            .collect(),
        Some(v) => text(v).into_iter().filter(|s| !s.is_empty()).collect(),
        None => Vec::new(),
    };
    Ok(Metainfo {
        info_hash,
        info,
        trackers,
        creation_date: dict
            .get(&b"creation date"[..])
            .and_then(int)
            .and_then(|i| i64::try_from(i).ok()),
        created_by: dict.get(&b"created by"[..]).and_then(text),
        comment: dict
            .get(&b"comment.utf-8"[..])
            .or_else(|| dict.get(&b"comment"[..]))
            .and_then(text),
        web_seeds,
        info_bytes: info_bytes.to_vec(),
    })
}

fn int(v: &Value) -> Option<i128> {
    match v {
        Value::Int(Number::Signed(i)) => Some(i128::from(*i)),
        Value::Int(Number::Unsigned(u)) => Some(i128::from(*u)),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_byte_str()
        .map(|b| String::from_utf8_lossy(b.as_slice()).into_owned())
}

/// Prefers the `key.utf-8` variant some old clients wrote beside `key`.
fn get_text(
    d: &std::collections::BTreeMap<bt_bencode::ByteString, Value>,
    key: &'static str,
) -> Option<Result<String, E>> {
    let utf8_key = format!("{key}.utf-8");
    if let Some(t) = d
        .get(utf8_key.as_bytes())
        .and_then(|v| v.as_byte_str())
        .and_then(|b| std::str::from_utf8(b.as_slice()).ok())
    {
        return Some(Ok(t.to_owned()));
    }
    d.get(key.as_bytes())
        .map(|v| text(v).ok_or(E::WrongType(key)))
}

fn length(v: Option<&Value>, field: &'static str) -> Result<u64, E> {
    let v = v.ok_or(E::Missing(field))?;
    let n = int(v).ok_or(E::WrongType(field))?;
    if n < 0 || n > i128::from(MAX_TOTAL_LENGTH) {
        return Err(E::BadLength { field, value: n });
    }
    Ok(n as u64)
}

/// Refuses any component that could leave the download folder or that the
/// file system would read differently.
pub(crate) fn check_component(c: &str, whole: &dyn Fn() -> String) -> Result<(), E> {
    let bad = |reason| {
        Err(E::BadPath {
            path: whole(),
            reason,
        })
    };
    if c.is_empty() {
        return bad("empty path component");
    }
    if c == "." || c == ".." {
        return bad("`.` or `..` component");
    }
    if c.contains('/') || c.contains('\\') {
        return bad("path separator inside a component (absolute or nested path)");
    }
    if c.contains('\0') {
        return bad("NUL byte in path");
    }
    if c.len() > 255 {
        return bad("component longer than 255 bytes");
    }
    Ok(())
}

fn parse_info(v: &Value) -> Result<Info, E> {
    let d = v.as_dict().ok_or(E::WrongType("info"))?;
    let meta_version = d.get(&b"meta version"[..]).and_then(int);
    let has_pieces = d.contains_key(&b"pieces"[..]);
    if meta_version == Some(2) && !has_pieces {
        return Err(E::V2Only);
    }
    let hybrid = meta_version == Some(2);

    let name = get_text(d, "name").ok_or(E::Missing("name"))??;
    check_component(&name, &|| name.clone())?;

    let pl = d
        .get(&b"piece length"[..])
        .ok_or(E::Missing("piece length"))?;
    let pl = int(pl).ok_or(E::WrongType("piece length"))?;
    if pl < i128::from(MIN_PIECE_LENGTH)
        || pl > i128::from(MAX_PIECE_LENGTH)
        || (pl as u64).count_ones() != 1
    {
        return Err(E::BadPieceLength(pl));
    }
    let piece_length = pl as u32;

    let pieces_raw = d.get(&b"pieces"[..]).ok_or(E::Missing("pieces"))?;
    let pieces_raw = pieces_raw
        .as_byte_str()
        .ok_or(E::WrongType("pieces"))?
        .as_slice();
    if pieces_raw.len() % 20 != 0 {
        return Err(E::PiecesNotMultipleOf20(pieces_raw.len()));
    }

    let private = d.get(&b"private"[..]).and_then(int) == Some(1);

    let (files, multi_file) = match (d.get(&b"length"[..]), d.get(&b"files"[..])) {
        (Some(_), Some(_)) => return Err(E::Ambiguous),
        (Some(len), None) => {
            let length = length(Some(len), "length")?;
            (
                vec![FileEntry {
                    path: vec![name.clone()],
                    length,
                    offset: 0,
                    padding: false,
                }],
                false,
            )
        }
        (None, Some(files)) => (parse_files(&name, files)?, true),
        (None, None) => return Err(E::Missing("length or files")),
    };
    let total_length = files.last().map_or(0, |f| f.offset + f.length);
    if total_length > MAX_TOTAL_LENGTH {
        return Err(E::BadLength {
            field: "total length",
            value: i128::from(total_length),
        });
    }
    if total_length == 0 {
        return Err(E::Empty);
    }
    let expected = total_length.div_ceil(u64::from(piece_length));
    let got = pieces_raw.len() / 20;
    if expected != got as u64 || expected > u64::from(u32::MAX) {
        return Err(E::PieceCount { expected, got });
    }
    let pieces = pieces_raw
        .chunks_exact(20)
        .map(|c| c.try_into().expect("chunks of 20"))
        .collect();
    Ok(Info {
        name,
        piece_length,
        pieces,
        files,
        private,
        total_length,
        multi_file,
        hybrid,
    })
}

fn parse_files(name: &str, files: &Value) -> Result<Vec<FileEntry>, E> {
    let list = files.as_list().ok_or(E::WrongType("files"))?;
    if list.is_empty() {
        return Err(E::NoFiles);
    }
    let mut out = Vec::with_capacity(list.len());
    let mut offset: u64 = 0;
    let mut tree = PathTree::default();
    for f in list {
        let fd = f.as_dict().ok_or(E::WrongType("files"))?;
        let length = length(fd.get(&b"length"[..]), "files.length")?;
        let path_v = fd
            .get(&b"path.utf-8"[..])
            .filter(|v| {
                v.as_list()
                    .is_some_and(|l| l.iter().all(|c| c.as_str().is_some()))
            })
            .or_else(|| fd.get(&b"path"[..]))
            .ok_or(E::Missing("files.path"))?;
        let comps = path_v.as_list().ok_or(E::WrongType("files.path"))?;
        // Bounded before anything is copied: the limits keep each path, and
        // so every later copy or join of it, small.
        if comps.len() + 1 > MAX_PATH_COMPONENTS {
            return Err(E::PathTooDeep {
                components: comps.len() + 1,
            });
        }
        let mut bytes = name.len();
        for c in comps {
            let b = c.as_byte_str().ok_or(E::WrongType("files.path"))?;
            // One separator before each component below the name.
            bytes += 1 + b.len();
        }
        if bytes > MAX_PATH_BYTES {
            return Err(E::PathTooLong { bytes });
        }
        let mut path = Vec::with_capacity(comps.len() + 1);
        path.push(name.to_owned());
        for c in comps {
            path.push(text(c).ok_or(E::WrongType("files.path"))?);
        }
        let whole = || path.join("/");
        if comps.is_empty() {
            return Err(E::BadPath {
                path: whole(),
                reason: "empty path",
            });
        }
        for c in &path[1..] {
            check_component(c, &whole)?;
        }
        let padding = fd
            .get(&b"attr"[..])
            .and_then(Value::as_byte_str)
            .is_some_and(|a| a.as_slice().contains(&b'p'));
        if !padding {
            tree.insert(&path[1..]).map_err(|depth| {
                E::DuplicatePath(path.get(..=depth + 1).unwrap_or(&path).join("/"))
            })?;
        }
        out.push(FileEntry {
            path,
            length,
            offset,
            padding,
        });
        offset = offset
            .checked_add(length)
            .filter(|o| *o <= MAX_TOTAL_LENGTH)
            .ok_or(E::BadLength {
                field: "total length",
                value: i128::from(offset) + i128::from(length),
            })?;
    }
    Ok(out)
}

/// The folders and files of a multi-file torrent seen so far, as a tree keyed
/// by (parent folder, component): each component is stored once, so checking
/// every path for repeats costs memory and time linear in the input, however
/// deep the paths are.
#[derive(Default)]
struct PathTree {
    /// (parent node, component) -> (node, is a file). Node 0 is the top folder.
    nodes: HashMap<(usize, String), (usize, bool)>,
}

impl PathTree {
    /// Adds a file at `comps` (below the top folder). On a clash (the path
    /// repeats, or one of its folders is a file, or the file is a folder)
    /// returns the index of the component where the clash is.
    fn insert(&mut self, comps: &[String]) -> Result<(), usize> {
        let mut parent = 0;
        let last = comps.len().saturating_sub(1);
        for (depth, c) in comps.iter().enumerate() {
            let is_file = depth == last;
            let next = self.nodes.len() + 1;
            match self.nodes.entry((parent, c.clone())) {
                Entry::Occupied(e) => match *e.get() {
                    (node, false) if !is_file => parent = node,
                    _ => return Err(depth),
                },
                Entry::Vacant(v) => {
                    v.insert((next, is_file));
                    parent = next;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A multi-file torrent of one 1-byte file at `path` (below the name `t`).
    fn one_file(path: &[String]) -> Vec<u8> {
        let comps: String = path.iter().map(|c| format!("{}:{c}", c.len())).collect();
        format!(
            "d4:infod5:filesld6:lengthi1e4:pathl{comps}eee4:name1:t\
             12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee"
        )
        .into_bytes()
    }

    #[test]
    fn path_depth_limit_counts_the_name() {
        let at = vec!["a".to_string(); MAX_PATH_COMPONENTS - 1];
        assert_eq!(
            parse(&one_file(&at)).unwrap().info.files[0].path.len(),
            MAX_PATH_COMPONENTS
        );
        let over = vec!["a".to_string(); MAX_PATH_COMPONENTS];
        assert_eq!(
            parse(&one_file(&over)),
            Err(E::PathTooDeep {
                components: MAX_PATH_COMPONENTS + 1
            })
        );
    }

    #[test]
    fn path_byte_limit_counts_name_and_separators() {
        // "t" + 16 × ("/" + 255 bytes) = 4097; one byte less is allowed.
        let mut comps = vec!["x".repeat(255); 16];
        assert_eq!(
            parse(&one_file(&comps)),
            Err(E::PathTooLong {
                bytes: MAX_PATH_BYTES + 1
            })
        );
        comps[0].pop();
        assert!(parse(&one_file(&comps)).is_ok());
    }

    #[test]
    fn path_tree_finds_every_clash_and_only_those() {
        let p = |s: &str| s.split('/').map(str::to_owned).collect::<Vec<_>>();
        let mut t = PathTree::default();
        for ok in ["a/b/c", "a/b/d", "a/e", "f", "b/c", "b/b/c"] {
            assert_eq!(t.insert(&p(ok)), Ok(()), "{ok}");
        }
        // Repeat; a folder that is a file; a file that is a folder.
        assert_eq!(t.insert(&p("a/b/c")), Err(2));
        assert_eq!(t.insert(&p("f/x")), Err(0));
        assert_eq!(t.insert(&p("a/b")), Err(1));
        assert_eq!(t.insert(&p("a/b/c/d")), Err(2));
    }

    #[test]
    fn duplicate_error_names_the_clashing_path() {
        let t = b"d4:infod5:filesld6:lengthi1e4:pathl1:a1:beed6:lengthi1e4:pathl1:aeee\
4:name1:t12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
        assert_eq!(parse(t), Err(E::DuplicatePath("t/a".into())));
    }
}
