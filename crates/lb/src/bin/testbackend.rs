//! A small HTTP backend for the load balancer's tests and benchmark (work in progress).

fn main() {}
