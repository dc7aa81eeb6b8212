//! The `vitals` command. STUB.
fn main() {}
