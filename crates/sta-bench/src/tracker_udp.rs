//! UDP announce load (BEP 15): `concurrency` sockets, each a closed loop of
//! one request in flight; connection ids renewed every 50 s.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sta_proto::tracker::Announce;
use sta_proto::tracker::udp::{Request, Response};
use tokio::net::UdpSocket;

use crate::Load;
use crate::hist::Samples;
use crate::swarm::Swarm;

const TIMEOUT: Duration = Duration::from_secs(1);

struct Slot {
    sock: UdpSocket,
    cid: Option<(u64, Instant)>,
    tid: u32,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Slot {
    async fn ask(&mut self, req: &Request) -> Option<Response> {
        self.out.clear();
        req.write(&mut self.out);
        self.sock.send(&self.out).await.ok()?;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let n = tokio::time::timeout_at(deadline, self.sock.recv(&mut self.buf))
                .await
                .ok()?
                .ok()?;
            let r = Response::parse(&self.buf[..n], false).ok()?;
            let tid = match &r {
                Response::Connect { transaction_id, .. }
                | Response::Announce { transaction_id, .. }
                | Response::Scrape { transaction_id, .. }
                | Response::Error { transaction_id, .. } => *transaction_id,
            };
            if tid == self.tid {
                return Some(r);
            }
        }
    }

    /// Sends one announce; Some(true) answered, Some(false) refused, None lost.
    async fn announce(&mut self, a: Announce) -> Option<bool> {
        if self
            .cid
            .is_none_or(|(_, at)| at.elapsed() > Duration::from_secs(50))
        {
            self.tid = self.tid.wrapping_add(1);
            match self
                .ask(&Request::Connect {
                    transaction_id: self.tid,
                })
                .await?
            {
                Response::Connect { connection_id, .. } => {
                    self.cid = Some((connection_id, Instant::now()))
                }
                _ => return Some(false),
            }
        }
        self.tid = self.tid.wrapping_add(1);
        let req = Request::Announce {
            connection_id: self.cid.map_or(0, |c| c.0),
            transaction_id: self.tid,
            announce: a,
        };
        match self.ask(&req).await? {
            Response::Announce { .. } => Some(true),
            _ => {
                self.cid = None;
                Some(false)
            }
        }
    }
}

async fn slot(l: &Load) -> Result<Slot, String> {
    let sock = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    sock.connect(l.target).await.map_err(|e| e.to_string())?;
    Ok(Slot {
        sock,
        cid: None,
        tid: 0,
        buf: vec![0; 4096],
        out: Vec::with_capacity(128),
    })
}

pub async fn run(l: Load) -> Result<(), String> {
    let swarm = Rc::new(RefCell::new(Swarm::new(
        l.torrents, l.peers, l.numwant, l.seed,
    )));
    let samples = Rc::new(RefCell::new(Samples::default()));
    let local = tokio::task::LocalSet::new();
    let mut slots = Vec::new();
    for _ in 0..l.concurrency.max(1) {
        slots.push(slot(&l).await?);
    }
    if let Some(pause) = l.fill_pause {
        let next = Rc::new(RefCell::new(0u32));
        let t0 = Instant::now();
        let mut handles = Vec::new();
        for mut s in slots.drain(..) {
            let (swarm, next) = (swarm.clone(), next.clone());
            handles.push(local.spawn_local(async move {
                let mut lost = 0u32;
                loop {
                    let p = {
                        let mut n = next.borrow_mut();
                        let p = *n;
                        *n += 1;
                        p
                    };
                    if p >= swarm.borrow().peers() {
                        return (s, lost);
                    }
                    let a = swarm.borrow_mut().start(p);
                    // Retry a lost fill announce: every peer must be in.
                    while s.announce(a.clone()).await != Some(true) {
                        lost += 1;
                        if lost > 10_000 {
                            return (s, lost);
                        }
                    }
                }
            }));
        }
        let mut lost = 0;
        for h in handles {
            let (s, n) = local.run_until(h).await.map_err(|e| e.to_string())?;
            lost += n;
            slots.push(s);
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
    for mut s in slots {
        let (swarm, samples) = (swarm.clone(), samples.clone());
        handles.push(local.spawn_local(async move {
            while Instant::now() < end {
                let a = swarm.borrow_mut().next();
                let at = Instant::now();
                let r = s.announce(a).await;
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
    println!("{}", s.report("udp", elapsed));
    Ok(())
}
