//! `Confirm`: the second signal of two-level detection — is the process gone, stalled, or
//! out of reach? (See `vitals_core::confirm` for what each answer means.)
//!
//! A TCP connect to the target's `confirm` address tells three things apart that a health
//! check lumps together as "failed": refused or reset (nothing listens: the process is
//! gone), accepted (the kernel completed the handshake, as it does for a stopped process:
//! alive, perhaps stalled), and no answer within the time (the path or the host; unknown).
//! An HTTP confirmation does the same at the HTTP level: any response is an answer, a
//! refused connection is gone, anything else no answer.
//!
//! What it is not: a health check. It never judges a status code or a body: a 500 from a
//! live process is an answer, and this is only asked whether anything answers.

use std::error::Error as _;
use std::io::ErrorKind;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use vitals_core::Evidence;

/// Where to ask.
#[derive(Debug, Clone)]
pub enum Confirm {
    /// `host:port`, resolved on every confirmation.
    Tcp(String),
    /// An `http://` or `https://` URL, requested with GET through a client of its own
    /// (no connection is kept: a kept connection to a stopped process would say nothing).
    #[cfg(feature = "http")]
    Http {
        url: String,
        client: reqwest::Client,
    },
}

impl Confirm {
    /// A confirmation by TCP connect to `addr` (`host:port`).
    pub fn tcp(addr: impl Into<String>) -> Confirm {
        Confirm::Tcp(addr.into())
    }

    /// A confirmation by HTTP GET of `url`.
    #[cfg(feature = "http")]
    pub fn http(url: impl Into<String>) -> Confirm {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Confirm::Http {
            url: url.into(),
            client,
        }
    }

    /// Where it asks, for people (a URL's userinfo and query left out).
    pub fn describe(&self) -> String {
        match self {
            Confirm::Tcp(addr) => format!("tcp://{addr}"),
            #[cfg(feature = "http")]
            Confirm::Http { url, .. } => crate::redact_url(url),
        }
    }

    /// Ask once, waiting at most `within`.
    pub async fn confirm(&self, within: Duration) -> Evidence {
        let start = Instant::now();
        let asked = self.describe();
        let answer = tokio::time::timeout(within, self.ask()).await;
        let ms = start.elapsed().as_millis();
        match answer {
            Err(_) => Evidence::NoAnswer(format!("no answer from {asked} in {ms} ms")),
            Ok(Answer::Accepted) => Evidence::Answered(format!("{asked} answered in {ms} ms")),
            Ok(Answer::Refused(why)) => Evidence::Refused(format!("{asked} {why}")),
            Ok(Answer::Other(why)) => Evidence::NoAnswer(format!("{asked}: {why}")),
        }
    }

    async fn ask(&self) -> Answer {
        match self {
            Confirm::Tcp(addr) => match TcpStream::connect(addr).await {
                Ok(_) => Answer::Accepted,
                Err(error) => classify(&error),
            },
            #[cfg(feature = "http")]
            Confirm::Http { url, client } => match client.get(url).send().await {
                Ok(_) => Answer::Accepted,
                Err(error) => {
                    let mut source = error.source();
                    while let Some(cause) = source {
                        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                            return classify(io);
                        }
                        source = cause.source();
                    }
                    Answer::Other(crate::error_chain(&error))
                }
            },
        }
    }
}

enum Answer {
    Accepted,
    Refused(&'static str),
    Other(String),
}

fn classify(error: &std::io::Error) -> Answer {
    match error.kind() {
        ErrorKind::ConnectionRefused => Answer::Refused("refused the connection"),
        ErrorKind::ConnectionReset => Answer::Refused("reset the connection"),
        _ => Answer::Other(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listener_answers_a_closed_port_refuses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let confirm = Confirm::tcp(addr.clone());
        let evidence = confirm.confirm(Duration::from_secs(5)).await;
        assert!(matches!(evidence, Evidence::Answered(_)), "{evidence:?}");
        drop(listener);
        let evidence = confirm.confirm(Duration::from_secs(5)).await;
        assert!(matches!(evidence, Evidence::Refused(_)), "{evidence:?}");
        assert!(evidence.detail().contains("refused"), "{evidence:?}");
    }

    #[tokio::test]
    async fn a_full_backlog_is_no_answer_not_gone() {
        // A listener never accepting, its backlog of one filled: further SYNs are dropped,
        // as for a host that is not there. (On Linux the kernel keeps a few more than the
        // backlog, so fill it generously.)
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut held = Vec::new();
        let confirm = Confirm::tcp(addr);
        let mut last = None;
        for _ in 0..16 {
            let evidence = confirm.confirm(Duration::from_millis(200)).await;
            if let Evidence::NoAnswer(_) = evidence {
                last = Some(evidence);
                break;
            }
            assert!(!matches!(evidence, Evidence::Refused(_)), "{evidence:?}");
            held.push(
                tokio::net::TcpStream::connect(listener.local_addr().unwrap())
                    .await
                    .ok(),
            );
        }
        assert!(matches!(last, Some(Evidence::NoAnswer(_))), "{last:?}");
    }

    #[cfg(feature = "http")]
    #[tokio::test]
    async fn http_any_answer_is_alive_a_closed_port_is_gone() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let app = axum::Router::new().route(
                "/",
                axum::routing::get(|| async {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no")
                }),
            );
            axum::serve(listener, app).await
        });
        let confirm = Confirm::http(format!("http://{addr}/"));
        let evidence = confirm.confirm(Duration::from_secs(5)).await;
        assert!(matches!(evidence, Evidence::Answered(_)), "{evidence:?}");
        server.abort();
        let _ = server.await;
        let evidence = confirm.confirm(Duration::from_secs(5)).await;
        assert!(matches!(evidence, Evidence::Refused(_)), "{evidence:?}");
    }
}
