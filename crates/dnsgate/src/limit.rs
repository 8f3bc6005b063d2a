//! Per-client rate limiting in bounded memory.
//!
//! A fixed table of token buckets indexed by a keyed hash of the client
//! address (the key is random per process). The table never grows, so a
//! flood from many (spoofed) sources cannot exhaust memory, and there is no
//! eviction an attacker could aim at a victim: two clients that hash to the
//! same bucket share one limit, which only ever makes a limit stricter. Time
//! is passed in, so the limiter is pure and tested without sleeping.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::Instant;

/// One token, in the fixed-point unit the buckets count in.
const TOKEN: u64 = 1_000_000;

#[derive(Clone, Copy)]
struct Bucket {
    /// Tokens × [`TOKEN`].
    level: u64,
    /// Last refill, in ns since the limiter's epoch.
    last_ns: u64,
}

/// Token buckets: `rate` queries per second per client, bursts of `burst`.
pub struct RateLimiter {
    buckets: Box<[Bucket]>,
    hasher: RandomState,
    rate: u64,
    burst: u64,
    epoch: Instant,
}

impl RateLimiter {
    /// `slots` buckets (rounded up to at least 1). `rate` = 0 disables
    /// limiting.
    pub fn new(slots: usize, rate: u32, burst: u32, epoch: Instant) -> RateLimiter {
        let burst = u64::from(burst.max(1)) * TOKEN;
        RateLimiter {
            buckets: vec![
                Bucket {
                    level: burst,
                    last_ns: 0
                };
                slots.max(1)
            ]
            .into_boxed_slice(),
            hasher: RandomState::new(),
            rate: u64::from(rate),
            burst,
            epoch,
        }
    }

    /// Number of buckets (the memory bound).
    pub fn slots(&self) -> usize {
        self.buckets.len()
    }

    /// Takes one token from `client`'s bucket at `now`; false = over the limit.
    pub fn allow(&mut self, client: IpAddr, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let now_ns =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let idx = (self.hasher.hash_one(client) % self.buckets.len() as u64) as usize;
        let (rate, burst) = (self.rate, self.burst);
        let Some(b) = self.buckets.get_mut(idx) else {
            return false;
        };
        let elapsed = now_ns.saturating_sub(b.last_ns);
        // rate tokens per second = rate * TOKEN units per 1e9 ns.
        let refill = u128::from(elapsed) * u128::from(rate) * u128::from(TOKEN) / 1_000_000_000;
        b.level = u64::try_from(u128::from(b.level) + refill)
            .unwrap_or(u64::MAX)
            .min(burst);
        b.last_ns = now_ns;
        if b.level >= TOKEN {
            b.level -= TOKEN;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(1024, 10, 5, t0);
        let c: IpAddr = "192.0.2.10".parse().expect("ip");
        let allowed = (0..20).filter(|_| rl.allow(c, t0)).count();
        assert_eq!(allowed, 5, "the burst, then nothing");
        // 10/s: after 300 ms, 3 more.
        let t1 = t0 + Duration::from_millis(300);
        let allowed = (0..20).filter(|_| rl.allow(c, t1)).count();
        assert_eq!(allowed, 3);
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::from_secs(3600);
        let allowed = (0..20).filter(|_| rl.allow(c, t2)).count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn clients_are_limited_separately() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(65_536, 1, 2, t0);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "2001:db8::2".parse().expect("ip");
        assert!(rl.allow(a, t0) && rl.allow(a, t0));
        assert!(!rl.allow(a, t0));
        // b is almost surely in another bucket (1 in 65,536 otherwise).
        assert!(rl.allow(b, t0));
    }

    #[test]
    fn memory_is_bounded_whatever_the_number_of_sources() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(16, 1, 1, t0);
        // 100,000 distinct sources share 16 buckets: at most 16 are let
        // through at one instant, and the table did not grow.
        let mut passed = 0;
        for i in 0..100_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(
                0xC633_6400 | (i & 0xFF) | (i << 8),
            ));
            if rl.allow(ip, t0) {
                passed += 1;
            }
        }
        assert!(passed <= 16, "{passed}");
        assert_eq!(rl.slots(), 16);
    }

    #[test]
    fn zero_rate_disables() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(4, 0, 1, t0);
        let c: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!((0..1000).all(|_| rl.allow(c, t0)));
    }
}
