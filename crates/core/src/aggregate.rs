//! Aggregation: many checks' statuses into one verdict.
//!
//! The rule is the seed's: a failing critical check fails the whole; a failing non-critical
//! check only degrades it (the cache is down, orders still go through). Warnings stay warnings.

use crate::Status;

/// One check's contribution to an aggregate verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub status: Status,
    /// A critical check's failure fails the whole; a non-critical one's only degrades it.
    pub critical: bool,
}

/// The verdict of a set of checks. No checks at all is a pass: a probe with nothing to check
/// (a liveness endpoint with no liveness checks) answers that the process is up.
pub fn aggregate(parts: impl IntoIterator<Item = Part>) -> Status {
    parts
        .into_iter()
        .map(|part| match part.status {
            Status::Fail if !part.critical => Status::Warn,
            status => status,
        })
        .max()
        .unwrap_or(Status::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(parts: &[(Status, bool)], expected: Status) {
        let got = aggregate(
            parts
                .iter()
                .map(|&(status, critical)| Part { status, critical }),
        );
        assert_eq!(got, expected, "parts: {parts:?}");
    }

    #[test]
    fn rules() {
        use Status::*;
        check(&[], Pass);
        check(&[(Pass, true), (Pass, false)], Pass);
        check(&[(Pass, true), (Warn, true)], Warn);
        check(&[(Pass, true), (Fail, false)], Warn);
        check(&[(Warn, false), (Fail, true)], Fail);
        check(&[(Fail, false), (Fail, false)], Warn);
        check(&[(Fail, true)], Fail);
    }
}
