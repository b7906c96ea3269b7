//! `udp_tracker`: BEP 15 datagrams in both directions. What parses must be
//! written back into a datagram that parses to the same value, and (the
//! format being fixed-width) into a prefix of the input.

use sta_proto::tracker::udp::{Request, Response, UdpError};

pub fn check(data: &[u8]) {
    let _ = UdpError::transaction_id(data);

    if let Ok(req) = Request::parse(data) {
        let mut out = Vec::new();
        req.write(&mut out);
        assert_eq!(Request::parse(&out), Ok(req.clone()), "request round trip");
        // BEP 41 options and a ragged scrape tail are ignored, and every
        // negative numwant (bytes 92..96) means "default" and comes back as
        // -1; every other byte is written back as it came.
        let mut want = data
            .get(..out.len())
            .expect("re-encoding is no longer")
            .to_vec();
        if let (Request::Announce { announce, .. }, Some(numwant)) = (&req, want.get_mut(92..96))
            && announce.numwant.is_none()
        {
            numwant.copy_from_slice(&(-1i32).to_be_bytes());
        }
        assert_eq!(want, out, "request re-encodes to its bytes");
    }

    for v6 in [false, true] {
        let Ok(resp) = Response::parse(data, v6) else {
            continue;
        };
        let mut out = Vec::new();
        resp.write(&mut out);
        assert_eq!(
            Response::parse(&out, v6),
            Ok(resp.clone()),
            "response round trip"
        );
        // An error text is read lossily; everything else is byte for byte.
        let lossy = matches!(&resp, Response::Error { .. })
            && data
                .get(8..)
                .is_some_and(|m| std::str::from_utf8(m).is_err());
        assert!(
            lossy || data.starts_with(&out),
            "response re-encodes to its bytes"
        );
    }
}
