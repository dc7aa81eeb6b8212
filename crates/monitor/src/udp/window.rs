//! The anti-replay window of one source: the highest sequence number seen and a 64-bit map of
//! which of the 64 numbers at and below it have been seen, as IPsec (RFC 4303 §3.4.3) and
//! WireGuard do.
//!
//! Not here: authentication or time. The window must only see datagrams whose MAC verified,
//! otherwise anyone could push it forward and make the real sender's datagrams look old.

/// How far below the highest sequence number a datagram may arrive and still be accepted.
pub(crate) const WINDOW: u64 = 64;

/// Sequence numbers seen from one source. Starts empty: with `top` 0 and no bit set, the first
/// datagram is accepted whatever its number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    /// The highest sequence number accepted so far.
    top: u64,
    /// Bit `i` set: `top - i` was accepted.
    seen: u64,
}

impl ReplayWindow {
    /// Accepts `seq` and records it, or refuses it (changing nothing) because it was seen
    /// before or is [`WINDOW`] or more below the highest number seen. A number far below is
    /// refused even if it was never seen: the window cannot tell, and accepting it would let
    /// an old capture be replayed.
    pub(crate) fn accept(&mut self, seq: u64) -> bool {
        if seq > self.top {
            let ahead = seq - self.top;
            // Sliding by 64 or more forgets the whole map; `<<` by 64 would overflow.
            self.seen = if ahead >= WINDOW {
                0
            } else {
                self.seen << ahead
            };
            self.seen |= 1;
            self.top = seq;
            return true;
        }
        let behind = self.top - seq;
        if behind >= WINDOW {
            return false;
        }
        let bit = 1u64 << behind;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn first_number_is_accepted_whatever_it_is() {
        for first in [0, 1, 63, 64, u64::MAX] {
            let mut w = ReplayWindow::default();
            assert!(w.accept(first), "{first}");
            assert!(!w.accept(first), "{first} twice");
        }
    }

    #[test]
    fn reordering_inside_the_window_is_accepted_once() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(100));
        assert!(w.accept(37)); // 63 below: the oldest still inside
        assert!(w.accept(99));
        assert!(!w.accept(99));
        assert!(!w.accept(36)); // 64 below: outside
        assert!(w.accept(164)); // slides by 64: everything forgotten
        assert!(!w.accept(100)); // now outside
        assert!(w.accept(101)); // 63 below 164, never seen
    }

    proptest! {
        /// The bitmap behaves like the obvious model: a set of every number seen and the
        /// highest one.
        #[test]
        fn matches_a_set_of_everything_seen(
            base in any::<u64>(),
            offsets in proptest::collection::vec(0u64..200, 1..300),
        ) {
            let mut w = ReplayWindow::default();
            let mut seen = HashSet::new();
            let mut top: Option<u64> = None;
            for off in offsets {
                let seq = base.saturating_add(off);
                let expected = match top {
                    None => true,
                    Some(t) => !seen.contains(&seq) && (seq > t || t - seq < WINDOW),
                };
                prop_assert_eq!(w.accept(seq), expected, "seq {}", seq);
                if expected {
                    seen.insert(seq);
                    top = Some(top.map_or(seq, |t| t.max(seq)));
                }
            }
        }
    }
}
