//! HTTP announce load: `concurrency` closed loops, each opening a new TCP
//! connection per announce (`Connection: close`), as BitTorrent clients do.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sta_proto::tracker::Announce;
use sta_proto::tracker::http::HttpAnnounce;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Load;
use crate::hist::Samples;
use crate::swarm::Swarm;

const TIMEOUT: Duration = Duration::from_secs(5);

/// One announce; Some(true) answered, Some(false) refused, None failed.
async fn announce(target: std::net::SocketAddr, a: Announce, buf: &mut Vec<u8>) -> Option<bool> {
    let q = HttpAnnounce {
        announce: a,
        compact: true,
        no_peer_id: true,
    }
    .to_query();
    let req = format!(
        "GET /announce?{q} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: sta-bench\r\nConnection: close\r\n\r\n"
    );
    let work = async {
        let mut s = TcpStream::connect(target).await.ok()?;
        s.set_nodelay(true).ok()?;
        s.write_all(req.as_bytes()).await.ok()?;
        buf.clear();
        s.read_to_end(buf).await.ok()?;
        Some(())
    };
    tokio::time::timeout(TIMEOUT, work).await.ok()??;
    let ok = buf.starts_with(b"HTTP/1.1 200") && !buf.windows(14).any(|w| w == b"failure reason");
    Some(ok)
}

pub async fn run(l: Load) -> Result<(), String> {
    let swarm = Rc::new(RefCell::new(Swarm::new(
        l.torrents, l.peers, l.numwant, l.seed,
    )));
    let samples = Rc::new(RefCell::new(Samples::default()));
    let local = tokio::task::LocalSet::new();
    let n = l.concurrency.max(1);
    if let Some(pause) = l.fill_pause {
        let next = Rc::new(RefCell::new(0u32));
        let t0 = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..n {
            let (swarm, next, target) = (swarm.clone(), next.clone(), l.target);
            handles.push(local.spawn_local(async move {
                let mut buf = Vec::with_capacity(2048);
                let mut lost = 0u32;
                loop {
                    let p = {
                        let mut n = next.borrow_mut();
                        let p = *n;
                        *n += 1;
                        p
                    };
                    if p >= swarm.borrow().peers() {
                        return lost;
                    }
                    let a = swarm.borrow_mut().start(p);
                    while announce(target, a.clone(), &mut buf).await != Some(true) {
                        lost += 1;
                        if lost > 10_000 {
                            return lost;
                        }
                    }
                }
            }));
        }
        let mut lost = 0;
        for h in handles {
            lost += local.run_until(h).await.map_err(|e| e.to_string())?;
        }
        eprintln!(
            "filled {} peers in {:.1} s ({lost} retries)\nFILLED",
            l.peers,
            t0.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(pause)).await;
    }
    let t0 = Instant::now();
    let end = t0 + l.duration();
    let mut handles = Vec::new();
    for _ in 0..n {
        let (swarm, samples, target) = (swarm.clone(), samples.clone(), l.target);
        handles.push(local.spawn_local(async move {
            let mut buf = Vec::with_capacity(2048);
            while Instant::now() < end {
                let a = swarm.borrow_mut().next();
                let at = Instant::now();
                let r = announce(target, a, &mut buf).await;
                let mut st = samples.borrow_mut();
                match r {
                    Some(true) => {
                        st.ok += 1;
                        st.record(at.elapsed());
                    }
                    Some(false) => st.failures += 1,
                    None => st.timeouts += 1,
                }
            }
        }));
    }
    for h in handles {
        local.run_until(h).await.map_err(|e| e.to_string())?;
    }
    let elapsed = t0.elapsed();
    let s = Rc::try_unwrap(samples)
        .map_err(|_| "samples still shared")?
        .into_inner();
    println!("{}", s.report("http", elapsed));
    Ok(())
}
