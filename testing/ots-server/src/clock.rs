//! The server clock: wall time plus an offset tests can advance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix time in seconds, shifted by whatever tests advanced it by.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_secs: AtomicU64,
}

impl Clock {
    /// Current server time (Unix seconds).
    pub(crate) fn now(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        wall.saturating_add(self.offset_secs.load(Ordering::SeqCst))
    }

    /// Moves the clock forward (whole seconds; sub-second parts round up).
    pub(crate) fn advance(&self, d: Duration) {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        self.offset_secs.fetch_add(secs, Ordering::SeqCst);
    }
}
