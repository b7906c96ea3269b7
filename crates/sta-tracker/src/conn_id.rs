//! UDP connection ids (BEP 15) without a table: an id is a keyed SipHash of
//! the client's address and the current 60-second window, under a key drawn
//! at random when the process starts. A client can only learn an id by
//! receiving it at its address, so spoofed-source announces are refused, and
//! an id stops working 60 to 120 seconds after it was issued. Time comes in
//! as `now`; nothing is stored per client.

use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use siphasher::sip::SipHasher24;

/// Length of one window. Ids of the current and the previous window are
/// accepted, so an id lives between one and two windows (BEP 15: clients use
/// an id for up to one minute, trackers accept it for two).
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct ConnectionIds {
    key: (u64, u64),
    epoch: Instant,
}

impl ConnectionIds {
    pub fn new(key: [u8; 16], epoch: Instant) -> Self {
        let k0 = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(key[8..].try_into().expect("8 bytes"));
        ConnectionIds {
            key: (k0, k1),
            epoch,
        }
    }

    fn window(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / WINDOW.as_secs()
    }

    fn mac(&self, addr: SocketAddr, window: u64) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.key.0, self.key.1);
        match sta_proto::tracker::canonical_addr(addr).ip() {
            IpAddr::V4(v4) => h.write(&v4.octets()),
            IpAddr::V6(v6) => h.write(&v6.octets()),
        }
        h.write_u16(addr.port());
        h.write_u64(window);
        h.finish()
    }

    /// The id to hand to a client that connects from `addr` now.
    pub fn issue(&self, now: Instant, addr: SocketAddr) -> u64 {
        self.mac(addr, self.window(now))
    }

    /// Whether `id` was issued to `addr` in this window or the previous one.
    pub fn check(&self, now: Instant, addr: SocketAddr, id: u64) -> bool {
        let w = self.window(now);
        id == self.mac(addr, w) || (w > 0 && id == self.mac(addr, w - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (ConnectionIds, Instant) {
        let t0 = Instant::now();
        (ConnectionIds::new(*b"0123456789abcdef", t0), t0)
    }

    #[test]
    fn valid_for_one_to_two_minutes() {
        let (ids, t0) = ids();
        let a: SocketAddr = "127.0.0.5:6881".parse().unwrap();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let id = ids.issue(at(59), a);
        assert!(ids.check(at(59), a, id));
        assert!(ids.check(at(119), a, id), "still good in the next window");
        assert!(!ids.check(at(120), a, id), "expired after two windows");
        let id = ids.issue(at(60), a);
        assert!(ids.check(at(179), a, id));
        assert!(!ids.check(at(180), a, id));
    }

    #[test]
    fn bound_to_the_address_and_the_key() {
        let (ids, t0) = ids();
        let a: SocketAddr = "127.0.0.5:6881".parse().unwrap();
        let id = ids.issue(t0, a);
        assert!(!ids.check(t0, "127.0.0.6:6881".parse().unwrap(), id));
        assert!(!ids.check(t0, "127.0.0.5:6882".parse().unwrap(), id));
        // A dual-stack socket reports IPv4 clients as mapped addresses.
        assert!(ids.check(t0, "[::ffff:127.0.0.5]:6881".parse().unwrap(), id));
        let other = ConnectionIds::new(*b"fedcba9876543210", t0);
        assert!(!other.check(t0, a, id), "another process's key");
        // Guessing: no small id, nor the protocol magic, passes.
        for forged in [0u64, 1, 0x0417_2710_1980, u64::MAX] {
            assert!(!ids.check(t0, a, forged));
        }
    }
}
