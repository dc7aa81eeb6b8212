//! Tests of the UDP heartbeat protocol beyond single functions: every reject reason through
//! the verifier, a real socket feeding the listener, the examples of `docs/PROTOCOL.md` run for
//! real, and the throughput benchmarks (ignored by default).
//!
//! Not here: the window's and the wire format's own unit tests, which sit beside them.

mod bench;
mod listener;
mod protocol_doc;
mod verify;
