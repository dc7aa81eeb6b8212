//! The vitals load balancer (`vitals lb`): sends HTTP/1.1 requests only to the healthy
//! backends of a pool. Work in progress (issue 4).
