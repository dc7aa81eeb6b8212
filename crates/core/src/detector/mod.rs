//! Heartbeat failure detectors. STUB: being written.
