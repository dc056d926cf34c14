//! A log line at most once per interval for things that can happen thousands of times a second
//! under a flood (connections evicted, bodies cut, Events dropped): the first occurrence is
//! logged at once, later ones within the interval only counted and reported with the next line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct LogEvery {
    every_ms: u64,
    epoch: Instant,
    /// When the last line was written (ms since `epoch`, at least 1); 0: never.
    last_ms: AtomicU64,
    /// Occurrences not logged since the last line.
    skipped: AtomicU64,
}

impl LogEvery {
    pub fn new(every: Duration) -> LogEvery {
        LogEvery {
            every_ms: every.as_millis() as u64,
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// One occurrence: `Some(n)` when it is to be logged now, `n` being the occurrences not
    /// logged since the last line; `None` when it is only counted.
    pub fn due(&self) -> Option<u64> {
        let now = (self.epoch.elapsed().as_millis() as u64).max(1);
        let last = self.last_ms.load(Ordering::Relaxed);
        if (last != 0 && now.saturating_sub(last) < self.every_ms)
            || self
                .last_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.skipped.swap(0, Ordering::AcqRel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_logged_then_one_per_interval_with_the_count_skipped() {
        let log = LogEvery::new(Duration::from_millis(200));
        assert_eq!(log.due(), Some(0));
        let logged = (0..1000).filter(|_| log.due().is_some()).count();
        assert_eq!(logged, 0, "a line within the interval");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(
            log.due(),
            Some(1000),
            "the next line says how many were not logged"
        );
        assert_eq!(log.due(), None);
    }
}
