//! Test support: STUB.
