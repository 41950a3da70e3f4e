//! Aggregation of events anyone can cause: failed key checks, cross-organization denials.
//!
//! Without it an anonymous caller grows the audit log by one entry per request. With it, the
//! first occurrence of a (kind, source, reason) in a window is written at once (with
//! `count: 1`), later ones in the same window are only counted, and when the window closes one
//! summary entry records how many there were (`count`, `window_seconds`, `repeated: true`). The
//! number of windows tracked is bounded; beyond it, sources fold into one `*` window per kind
//! and reason, so the log grows by at most a few entries per minute whatever the flood.
//!
//! Pure bookkeeping: the audit log calls [`Aggregator::admit`] before writing and writes what
//! [`Aggregator::closed`] returns.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::event::AuditEvent;

/// How long occurrences of one source and reason are folded into one entry.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most (kind, source, reason) windows tracked at once.
const MAX_WINDOWS: usize = 1000;

struct Window {
    opened: Instant,
    /// Occurrences after the first (which was written when the window opened).
    suppressed: u64,
    /// The first event, the template of the summary.
    event: AuditEvent,
}

/// Whether an occurrence is written now.
#[derive(Debug, PartialEq)]
pub enum Admit {
    /// The first in its window: write it (it says `count: 1`).
    Write(AuditEvent),
    /// Counted; the window's summary will include it.
    Counted,
}

#[derive(Default)]
pub struct Aggregator {
    windows: Mutex<HashMap<String, Window>>,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator").finish_non_exhaustive()
    }
}

impl Aggregator {
    /// Records one occurrence of `event` from `source` for `reason`.
    pub fn admit(&self, event: AuditEvent, source: &str, reason: &str, now: Instant) -> Admit {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let kind = event.event_type.as_str();
        let mut key = format!("{kind}\u{1f}{source}\u{1f}{reason}");
        if !windows.contains_key(&key) && windows.len() >= MAX_WINDOWS {
            key = format!("{kind}\u{1f}*\u{1f}{reason}");
        }
        match windows.get_mut(&key) {
            Some(window) if now.duration_since(window.opened) < WINDOW => {
                window.suppressed += 1;
                Admit::Counted
            }
            _ => {
                let folded = key.split('\u{1f}').nth(1) == Some("*");
                let mut event = event.detail("count", 1);
                if folded {
                    event = event.detail("source", "*");
                }
                windows.insert(
                    key,
                    Window {
                        opened: now,
                        suppressed: 0,
                        event: event.clone(),
                    },
                );
                Admit::Write(event)
            }
        }
    }

    /// Removes the windows that closed before `now` and returns the summaries to write (only
    /// for windows that counted more than their first occurrence).
    pub fn closed(&self, now: Instant) -> Vec<AuditEvent> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let expired: Vec<String> = windows
            .iter()
            .filter(|(_, w)| now.duration_since(w.opened) >= WINDOW)
            .map(|(k, _)| k.clone())
            .collect();
        let mut summaries = Vec::new();
        for key in expired {
            if let Some(window) = windows.remove(&key)
                && window.suppressed > 0
            {
                summaries.push(
                    window
                        .event
                        .detail("count", window.suppressed)
                        .detail("window_seconds", WINDOW.as_secs())
                        .detail("repeated", true),
                );
            }
        }
        summaries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEventType;
    use bifrost_store::Scope;

    fn rejected() -> AuditEvent {
        AuditEvent::new(AuditEventType::KeyRejected, "anonymous", Scope::Global)
    }

    #[test]
    fn a_flood_is_one_entry_and_one_summary_per_source_and_reason() {
        let agg = Aggregator::default();
        let t0 = Instant::now();
        let mut written = 0;
        for i in 0..300 {
            let now = t0 + Duration::from_millis(i);
            if let Admit::Write(_) = agg.admit(rejected(), "203.0.113.7", "unknown_key", now) {
                written += 1;
            }
        }
        assert_eq!(written, 1);
        // Another reason or source is its own window.
        assert!(matches!(
            agg.admit(rejected(), "203.0.113.7", "malformed", t0),
            Admit::Write(_)
        ));
        assert!(agg.closed(t0 + Duration::from_secs(1)).is_empty());
        let summaries = agg.closed(t0 + WINDOW + Duration::from_secs(1));
        assert_eq!(
            summaries.len(),
            1,
            "only the window with repeats is summarized"
        );
        assert_eq!(summaries[0].details["count"], 299);
        assert_eq!(summaries[0].details["repeated"], true);
    }

    #[test]
    fn many_sources_fold_into_one_window() {
        let agg = Aggregator::default();
        let t0 = Instant::now();
        let mut written = 0;
        for i in 0..(MAX_WINDOWS + 500) {
            if let Admit::Write(_) = agg.admit(rejected(), &format!("src-{i}"), "r", t0) {
                written += 1;
            }
        }
        assert_eq!(written, MAX_WINDOWS + 1);
    }
}
