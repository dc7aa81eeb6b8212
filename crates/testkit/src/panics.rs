//! Counting panics anywhere in the test process, for fuzz tests whose code under test runs
//! in spawned tasks (a panic there kills the task, not the test, and would go unseen).
//!
//! [`panics`] installs, once, a panic hook that counts and then runs the previous hook (so
//! the message is still printed). A fuzz test reads the count before and after its cases.
//! What it is not: isolation. Another test of the same binary that panics counts too; run
//! the fuzz test alone to blame it precisely.

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNT: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

/// Panics seen in this process since the hook was installed (by the first call).
pub fn panics() -> usize {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            COUNT.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
    COUNT.load(Ordering::SeqCst)
}
