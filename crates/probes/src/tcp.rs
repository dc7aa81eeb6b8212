//! `Tcp`: can a TCP connection to `host:port` be opened? The cheapest "is it there" look.

use tokio::net::TcpStream;
use tokio::time::Instant;
use vitals_core::Report;

use crate::{BoxFuture, Probe};

/// Connects to an address and closes the connection again. Passes when the handshake
/// completes; reports the connect time in milliseconds.
#[derive(Debug, Clone)]
pub struct Tcp {
    addr: String,
}

impl Tcp {
    /// `addr` is `host:port`; the host is resolved on every check, so a moved DNS name is
    /// followed.
    pub fn new(addr: impl Into<String>) -> Self {
        Tcp { addr: addr.into() }
    }
}

impl Probe for Tcp {
    fn check(&self) -> BoxFuture<'_, Report> {
        Box::pin(async move {
            let start = Instant::now();
            match TcpStream::connect(&self.addr).await {
                Ok(_) => Report::pass()
                    .with_output(format!("connected to {}", self.addr))
                    .with_observed(millis(start), "ms"),
                Err(error) => Report::fail(format!("connect to {}: {error}", self.addr)),
            }
        })
    }

    fn is_external(&self) -> bool {
        true
    }
}

/// Milliseconds since `start`, for observed latencies.
pub(crate) fn millis(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use vitals_core::Status;

    use super::*;

    #[tokio::test]
    async fn passes_on_a_listening_port_and_fails_on_a_closed_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let report = Tcp::new(addr.to_string()).check().await;
        assert_eq!(report.status, Status::Pass, "{report:?}");

        drop(listener);
        let report = Tcp::new(addr.to_string()).check().await;
        assert_eq!(report.status, Status::Fail);
        let output = report.output.unwrap();
        assert!(output.contains("refused"), "{output}");
    }
}
