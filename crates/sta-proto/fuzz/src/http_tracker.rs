//! `http_tracker`: the same bytes read as an announce query, a scrape query,
//! an announce response and a scrape response. Whatever parses must be
//! written back into something that parses to the same value.

use sta_proto::tracker::AnnounceResponse;
use sta_proto::tracker::http::{
    HttpAnnounce, MAX_SCRAPE_HASHES, encode_scrape, parse_scrape, parse_scrape_query, scrape_query,
};

pub fn check(data: &[u8]) {
    if let Ok(a) = HttpAnnounce::parse_query(data) {
        let q = a.to_query();
        let back = HttpAnnounce::parse_query(q.as_bytes())
            .unwrap_or_else(|e| panic!("{q:?} does not parse: {e}"));
        // `key` is kept as a digest of the text the client sent, and to_query
        // writes the digest as hex: only its presence survives.
        let mut want = a.clone();
        want.announce.key = back.announce.key;
        assert_eq!(back, want, "announce query round trip through {q:?}");
        assert_eq!(back.announce.key.is_some(), a.announce.key.is_some());
    }

    if let Ok(hashes) = parse_scrape_query(data) {
        assert!(hashes.len() <= MAX_SCRAPE_HASHES);
        let q = scrape_query(&hashes);
        assert_eq!(
            parse_scrape_query(q.as_bytes()),
            Ok(hashes),
            "scrape query round trip"
        );
    }

    if let Ok(r) = AnnounceResponse::parse(data) {
        // The dictionary form carries everything, peer ids included.
        let dict = r.encode(false, false);
        assert_eq!(
            AnnounceResponse::parse(&dict),
            Ok(r.clone()),
            "dictionary form round trip"
        );
        // The compact form keeps addresses only, IPv4 (`peers`) before IPv6 (`peers6`).
        let compact = AnnounceResponse::parse(&r.encode(true, false)).expect("compact form parses");
        let (v4, v6): (Vec<_>, Vec<_>) = r.peers.iter().map(|p| p.addr).partition(|a| a.is_ipv4());
        let got: Vec<_> = compact.peers.iter().map(|p| p.addr).collect();
        assert_eq!(got, [v4, v6].concat(), "compact form peers");
        assert_eq!(
            (compact.interval, compact.complete),
            (r.interval, r.complete)
        );
    }

    if let Ok(stats) = parse_scrape(data) {
        assert_eq!(
            parse_scrape(&encode_scrape(&stats)),
            Ok(stats),
            "scrape response round trip"
        );
    }
}
