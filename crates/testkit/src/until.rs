//! Bounded polls: wait until something holds, or fail the test saying what was awaited and
//! what was last seen.
//!
//! Tests against real processes cannot know when a server has noticed something, so they ask
//! again until it has: [`until`] polls a condition every 20 ms up to a deadline and returns
//! what the condition produced. The condition says "not yet" in one of three ways, which
//! decides what the timeout message shows (see [`Condition`]):
//!
//! - `bool`: `false` is "not yet" (the message can only say it never held);
//! - `Option<T>`: `None` is "not yet", `Some(t)` is done and `t` is returned;
//! - `Result<T, E>`: `Err(e)` is "not yet" and `e` is the last value seen, printed with
//!   `{:?}` when time runs out. Use it to show what the server said instead; [`holds`]
//!   makes one from a value and a predicate.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use vitals_testkit::until;
//!
//! let attempts = AtomicU32::new(0);
//! // Stands for "ask the server for the target's state".
//! let state = async || if attempts.fetch_add(1, Ordering::SeqCst) < 3 { "down" } else { "healthy" };
//! let seen = until("the target to become healthy", Duration::from_secs(20), async || {
//!     let seen = state().await;
//!     if seen == "healthy" { Ok(seen) } else { Err(seen) }
//! })
//! .await;
//! assert_eq!(seen, "healthy");
//! # }
//! ```
//!
//! What it is not: a way to wait for "nothing happens" (a poll cannot prove an absence; that
//! belongs in a sans-IO test with `now` as an argument), nor a retry loop for code under test.
//! It takes time from `tokio::time`, so it also works on the paused clock (where the sleeps
//! advance time instead of waiting); [`until_blocking`] is for tests without a runtime.

use std::fmt::{Debug, Display};
use std::time::Duration;

/// How often [`until`] and [`until_blocking`] ask.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// What a polled condition returns: done (with a value) or not yet (with what was seen).
pub trait Condition {
    /// What the poll returns once the condition holds.
    type Done;

    /// `Ok(done)`, or `Err(what was seen)`, where `None` means there is nothing to show.
    fn check(self) -> Result<Self::Done, Option<String>>;
}

impl Condition for bool {
    type Done = ();

    fn check(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Condition for Option<T> {
    type Done = T;

    fn check(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Debug> Condition for Result<T, E> {
    type Done = T;

    fn check(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(format!("{seen:?}")))
    }
}

/// `Ok(value)` if `done` holds of it, else `Err(value)`: turns "look, then judge" into a
/// [`Condition`] whose timeout message shows what was seen last.
///
/// `until("web to be down", within, async || holds(target("web").await, |t| t["state"] == "down"))`
pub fn holds<T>(value: T, done: impl FnOnce(&T) -> bool) -> Result<T, T> {
    if done(&value) { Ok(value) } else { Err(value) }
}

/// Polls `condition` every [`POLL_EVERY`] until it holds and returns its value; panics after
/// `within`, naming `what` and the last value seen.
///
/// The condition is always asked at least once, and once more after the deadline passed, so a
/// slow condition cannot fail a test that it would have passed.
pub async fn until<C: Condition>(
    what: impl Display,
    within: Duration,
    condition: impl AsyncFnMut() -> C,
) -> C::Done {
    until_every(what, within, POLL_EVERY, condition).await
}

/// [`until`] asking every `every` instead of every 20 ms (for conditions that cost something,
/// like reloading a page in a browser).
pub async fn until_every<C: Condition>(
    what: impl Display,
    within: Duration,
    every: Duration,
    mut condition: impl AsyncFnMut() -> C,
) -> C::Done {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let past = tokio::time::Instant::now() >= deadline;
        match condition().await.check() {
            Ok(done) => return done,
            Err(seen) if past => timed_out(&what, within, seen),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// [`until`] for tests without an async runtime: the condition is synchronous and the thread
/// sleeps between attempts.
#[allow(clippy::disallowed_methods)] // no runtime here: the thread's own clock and sleep
pub fn until_blocking<C: Condition>(
    what: impl Display,
    within: Duration,
    mut condition: impl FnMut() -> C,
) -> C::Done {
    let deadline = std::time::Instant::now() + within;
    loop {
        let past = std::time::Instant::now() >= deadline;
        match condition().check() {
            Ok(done) => return done,
            Err(seen) if past => timed_out(&what, within, seen),
            Err(_) => std::thread::sleep(POLL_EVERY),
        }
    }
}

fn timed_out(what: &dyn Display, within: Duration, seen: Option<String>) -> ! {
    match seen {
        Some(seen) => panic!("timed out after {within:?} waiting for {what}; last seen: {seen}"),
        None => panic!("timed out after {within:?} waiting for {what} (it never held)"),
    }
}
