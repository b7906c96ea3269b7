//! `magnet`: [`Magnet::parse`] on arbitrary text; an accepted link must be
//! written back by `to_uri` into a link that parses to the same value.

use sta_proto::magnet::Magnet;

pub fn check(data: &[u8]) {
    // Links reach us as text (command line, control API): invalid UTF-8 never
    // gets this far, but its lossy form is still worth parsing.
    let text = String::from_utf8_lossy(data);
    let Ok(m) = Magnet::parse(&text) else { return };
    assert!(
        m.trackers.iter().all(|t| !t.is_empty()),
        "empty tracker kept"
    );
    let uri = m.to_uri();
    let back = Magnet::parse(&uri).unwrap_or_else(|e| panic!("{uri:?} does not parse: {e}"));
    assert_eq!(back, m, "magnet round trip through {uri:?}");
    assert_eq!(back.to_uri(), uri, "to_uri is stable");
}
