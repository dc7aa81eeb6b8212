//! The order service. STUB.
fn main() {}
