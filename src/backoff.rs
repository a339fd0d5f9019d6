//! Capped exponential backoff with jitter, for requeueing after server errors and timeouts.
//!
//! Jitter spreads the retries of many resources that failed together (an outage) so they do not come
//! back in lockstep; the cap bounds how stale a resource can get once the server is back.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff: attempt `n` waits between half and all of `min(cap, base * 2^n)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay ceiling of the first attempt (attempt 0).
    pub base: Duration,
    /// Largest delay ceiling.
    pub cap: Duration,
}

impl Default for Backoff {
    /// 5 s doubling up to 5 minutes.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, &mut rand::rng())
    }

    /// [`Backoff::delay`] with a given random source.
    pub fn delay_with(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        // "Equal jitter": never less than half the ceiling, so a retry storm cannot start at ~0 s.
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rng.random_range(0..=spread))
    }

    /// `min(cap, base * 2^attempt)`, without overflow.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .unwrap_or(self.cap)
            .min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        let ceilings: Vec<_> = (0..6).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn delays_stay_between_half_and_all_of_the_ceiling() {
        let b = Backoff::default();
        let mut rng = rand::rng();
        for attempt in 0..40 {
            for _ in 0..50 {
                let d = b.delay_with(attempt, &mut rng);
                let ceiling = b.ceiling(attempt);
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "attempt {attempt}: {d:?} vs {ceiling:?}"
                );
            }
        }
    }

    #[test]
    fn delays_are_spread_not_identical() {
        let b = Backoff::default();
        let delays: std::collections::BTreeSet<_> = (0..100).map(|_| b.delay(3)).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }
}
