//! vitals: STUB.
