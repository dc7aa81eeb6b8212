//! Probes: STUB.
