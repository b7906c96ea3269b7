//! A blocking HTTP/1.1 client good enough for tests against sta's tracker
//! and control API: one request per connection (`Connection: close`), whole
//! body read.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    send_and_read(addr, &head, body)
}

/// Sends a complete request head and body on a new connection and reads the
/// response until the server closes it.
fn send_and_read(addr: SocketAddr, head: &str, body: &[u8]) -> std::io::Result<Resp> {
    write_then_read(
        TcpStream::connect_timeout(&addr, Duration::from_secs(5))?,
        head,
        body,
    )
}

/// Writes `head` and `body` on `s` and reads the response until the server
/// closes the connection.
fn write_then_read(mut s: TcpStream, head: &str, body: &[u8]) -> std::io::Result<Resp> {
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse(&raw).ok_or_else(|| {
        std::io::Error::other(format!(
            "bad HTTP response: {:?}",
            String::from_utf8_lossy(&raw)
        ))
    })
}

fn parse(raw: &[u8]) -> Option<Resp> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..nl])
                .ok()?
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        b = &b[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// The head of a `Connection: close` request with a `Content-Length` of `body_len`.
fn head_of(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) -> String {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {body_len}\r\n\r\n"));
    head
}

/// What a server did with a request it may refuse before reading it all.
#[derive(Debug)]
pub enum Outcome {
    /// It answered (possibly before the request was fully sent).
    Answered(Resp),
    /// It closed or reset the connection without a word.
    Closed,
}

/// Sends `head` then `body` on a connection from `stream` while reading
/// on the same connection, so an answer sent before the server stops
/// reading (413, 431) is seen, not lost to the reset that follows. Fails
/// only if nothing happens within `timeout`.
pub fn exchange(stream: TcpStream, raw: Vec<u8>, timeout: Duration) -> std::io::Result<Outcome> {
    stream.set_read_timeout(Some(timeout))?;
    let mut w = stream.try_clone()?;
    // The writer may fail once the server gives up on the request; what
    // the server answered is read below either way.
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&raw);
    });
    let mut s = stream;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let end = loop {
        match s.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                break Ok(());
            }
            Err(e) => break Err(e),
        }
    };
    // Unblock the writer if the server stopped reading without closing.
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    end?;
    if got.is_empty() {
        return Ok(Outcome::Closed);
    }
    parse(&got).map(Outcome::Answered).ok_or_else(|| {
        std::io::Error::other(format!(
            "bad HTTP response: {:?}",
            String::from_utf8_lossy(&got)
        ))
    })
}

/// A request sent with [`exchange`] on a new connection.
pub fn request_exchange(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<Outcome> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    let mut raw = head_of(addr, method, target, headers, body.len()).into_bytes();
    raw.extend_from_slice(body);
    exchange(s, raw, timeout)
}

/// [`request`] on a connection already made (e.g. from a chosen address).
pub fn request_on(
    s: TcpStream,
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
) -> std::io::Result<Resp> {
    write_then_read(s, &head_of(addr, method, target, &[], body.len()), body)
}

pub fn get(addr: SocketAddr, target: &str) -> Resp {
    request(addr, "GET", target, &[], &[]).unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

pub fn post(addr: SocketAddr, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    request(addr, "POST", target, headers, body).unwrap_or_else(|e| panic!("POST {target}: {e}"))
}

/// `127.0.0.1:PORT` out of `http://127.0.0.1:PORT/announce`, `udp://…` or `127.0.0.1:PORT`.
pub fn addr_of(url: &str) -> SocketAddr {
    let rest = url.split("://").nth(1).unwrap_or(url);
    rest.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {url}"))
}

/// Sends `head` (request line and headers, without the blank line) exactly as
/// given, for tests of what a server does with a forged `Host` or `Origin`;
/// `Connection: close` and the body's length are added.
pub fn raw_request(addr: SocketAddr, head: &str, body: &[u8]) -> std::io::Result<Resp> {
    let head = format!(
        "{}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        head.trim_end(),
        body.len()
    );
    send_and_read(addr, &head, body)
}
