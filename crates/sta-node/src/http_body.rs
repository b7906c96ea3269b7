//! Reading HTTP bodies from servers we do not control (trackers, catalogs)
//! with a size cap: a hostile server must not make us buffer without limit.

use bytes::{Bytes, BytesMut};

/// Largest announce or scrape response accepted: 200 peers in the dictionary
/// form take about 20 KiB, so 1 MiB leaves room for any honest tracker.
pub const MAX_TRACKER_RESPONSE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Http(#[from] reqwest::Error),
}

/// Reads the whole body, or fails as soon as it grows past `cap` bytes. A
/// `Content-Length` over the cap is refused before any byte is read.
pub async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Bytes, BodyError> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge(cap));
    }
    let mut out = BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge(cap));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// A tiny HTTP server on loopback for the tests of the HTTP clients here
/// (tracker client, catalog, capped reads).
#[cfg(test)]
pub(crate) mod test_server {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Requests answered so far.
    #[derive(Clone, Default)]
    pub struct Hits(Arc<AtomicU32>);

    impl Hits {
        pub fn get(&self) -> u32 {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// Answers every request on `http://127.0.0.1:PORT/...` with `body`, with
    /// a `Content-Length` or, when `chunked`, without one. Returns the base URL.
    pub async fn serve(body: Vec<u8>, chunked: bool) -> (String, Hits) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let hits = Hits::default();
        let h = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                h.0.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                tokio::spawn(async move {
                    let mut req = [0u8; 4096];
                    let _ = s.read(&mut req).await;
                    let _ = s.write_all(&response(&body, chunked)).await;
                });
            }
        });
        (base, hits)
    }

    fn response(body: &[u8], chunked: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if chunked {
            out.extend_from_slice(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            );
            for part in body.chunks(4096) {
                out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                out.extend_from_slice(part);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(body);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fetch(body: Vec<u8>, chunked: bool, cap: usize) -> Result<Bytes, BodyError> {
        let (url, _) = test_server::serve(body, chunked).await;
        let resp = reqwest::get(url).await.unwrap();
        read_capped(resp, cap).await
    }

    #[tokio::test]
    async fn bodies_within_the_cap_are_read_whole() {
        let body = vec![7u8; 10_000];
        for chunked in [false, true] {
            let got = fetch(body.clone(), chunked, 10_000).await.unwrap();
            assert_eq!(&got[..], &body[..]);
        }
    }

    #[tokio::test]
    async fn bodies_over_the_cap_are_refused_with_or_without_a_length() {
        for chunked in [false, true] {
            let r = fetch(vec![1u8; 20_000], chunked, 10_000).await;
            assert!(matches!(r, Err(BodyError::TooLarge(10_000))), "{r:?}");
        }
    }
}
