//! gRPC health checking: `grpc.health.v1.Health/Check` of one service name on a server,
//! over cleartext HTTP/2 or TLS. `SERVING` passes; `NOT_SERVING` (or `UNKNOWN`) fails, and
//! so does a server that cannot be reached or answers with an error status.
//!
//! One channel per probe, made lazily and kept: tonic reconnects it after a failure, so a
//! check costs one RPC on an open connection, not a handshake. [`Grpc::observe`] tells "could
//! not connect", "the call failed" and "the service says it is not serving" apart, which is
//! what `vitals probe grpc://…` turns into grpc_health_probe's exit codes 2, 3 and 4.
//!
//! TLS is rustls (with aws-lc-rs, as reqwest uses) with ALPN `h2`, as gRPC servers require:
//! the system's roots or a CA file, a server name other than the host (SNI and verification),
//! or no verification at all ([`GrpcTls::insecure_skip_verify`], for self-signed test
//! servers; the handshake's signatures are still checked).
//!
//! What it is not: a general gRPC client, or the server side (that is the `vitals` library's
//! `grpc` module).

use std::error::Error as _;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tonic::Code;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use vitals_core::Report;

use crate::{BoxFuture, Probe};

/// How long connecting may take before the check fails, unless the check's own timeout cuts
/// it first.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS for a gRPC probe. Without it the probe speaks cleartext HTTP/2 (h2c).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcTls {
    /// Trust the certificates in this PEM file instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The name to send (SNI) and to verify the certificate against; the host otherwise.
    pub server_name: Option<String>,
    /// Accept any certificate. For self-signed test servers only: anyone on the path can
    /// then pose as the server.
    pub insecure_skip_verify: bool,
}

/// Why a gRPC probe could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrpcError {
    #[error("bad address {address:?}: {reason}; write host:port, like 127.0.0.1:50051")]
    Address { address: String, reason: String },
    #[error("cannot read CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("bad TLS server name {name:?}: {reason}")]
    ServerName { name: String, reason: String },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// What went wrong, for callers that map it to something (an exit code, a routing decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrpcFailure {
    /// No connection: refused, DNS, TLS, or it broke.
    NoConnection,
    /// The call failed with this status (NOT_FOUND for an unknown service, UNIMPLEMENTED for
    /// a server without the health service, DEADLINE_EXCEEDED, …).
    Rpc(Code),
    /// The server answered: the service is not serving (`NOT_SERVING`, or `UNKNOWN`).
    NotServing,
}

/// The outcome of one health check, with what was seen.
#[derive(Debug, Clone)]
pub struct GrpcAnswer {
    pub report: Report,
    pub failure: Option<GrpcFailure>,
    /// The status the server sent, when it sent one.
    pub status: Option<ServingStatus>,
}

/// A `grpc.health.v1` check of `service` at `address`.
#[derive(Clone)]
pub struct Grpc {
    address: String,
    service: String,
    tls: bool,
    endpoint: Endpoint,
    connector: Option<TlsConnect>,
    channel: Channel,
}

impl fmt::Debug for Grpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grpc")
            .field("address", &self.address)
            .field("service", &self.service)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Grpc {
    /// A probe of `service` (`""`: the server as a whole) at `address` (`host:port`), over TLS
    /// when `tls` is given. Nothing connects until the first check.
    pub fn new(
        address: impl Into<String>,
        service: impl Into<String>,
        tls: Option<GrpcTls>,
    ) -> Result<Grpc, GrpcError> {
        let address = address.into();
        let bad = |reason: &str| GrpcError::Address {
            address: address.clone(),
            reason: reason.to_string(),
        };
        let uri: Uri = format!("http://{address}")
            .parse()
            .map_err(|_| bad("not a host and port"))?;
        let Some(authority) = uri.authority() else {
            return Err(bad("no host"));
        };
        if authority.port_u16().is_none() {
            return Err(bad("no port"));
        }
        if authority.host().is_empty() || uri.path() != "/" || authority.as_str() != address {
            return Err(bad("not a host and port"));
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|error| bad(&error.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let connector = match &tls {
            Some(tls) => Some(TlsConnect::new(&address, authority.host(), tls)?),
            None => None,
        };
        let channel = match &connector {
            Some(connector) => endpoint.connect_with_connector_lazy(connector.service()),
            None => endpoint.connect_lazy(),
        };
        Ok(Grpc {
            address,
            service: service.into(),
            tls: tls.is_some(),
            endpoint,
            connector,
            channel,
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// Connect now, on a new connection of its own (for a one-shot check that must tell a
    /// connection failure from a failed call). The error says why, in words.
    pub async fn connect(&self) -> Result<Channel, String> {
        let connected = match &self.connector {
            Some(connector) => {
                self.endpoint
                    .connect_with_connector(connector.service())
                    .await
            }
            None => self.endpoint.connect().await,
        };
        connected.map_err(|error| {
            format!(
                "could not connect to {}: {}",
                self.address,
                said_once(&error)
            )
        })
    }

    /// One check on the probe's own channel.
    pub async fn observe(&self) -> GrpcAnswer {
        self.observe_on(self.channel.clone()).await
    }

    /// One check on `channel` (from [`Grpc::connect`]).
    pub async fn observe_on(&self, channel: Channel) -> GrpcAnswer {
        let mut client = HealthClient::new(channel).max_decoding_message_size(4 * 1024);
        let request = HealthCheckRequest {
            service: self.service.clone(),
        };
        let service = &self.service;
        match client.check(request).await {
            Ok(response) => {
                let status = response.into_inner().status();
                if status == ServingStatus::Serving {
                    GrpcAnswer {
                        report: Report::pass()
                            .with_output(format!("{service:?} is SERVING at {}", self.address)),
                        failure: None,
                        status: Some(status),
                    }
                } else {
                    GrpcAnswer {
                        report: Report::fail(format!(
                            "{service:?} is {} at {}",
                            status.as_str_name(),
                            self.address
                        )),
                        failure: Some(GrpcFailure::NotServing),
                        status: Some(status),
                    }
                }
            }
            Err(status) => {
                // A status tonic made of a transport error carries that error as its source;
                // one the server sent carries none.
                let connection = status.code() == Code::Unavailable && status.source().is_some();
                let (failure, message) = if connection {
                    (
                        GrpcFailure::NoConnection,
                        format!(
                            "could not connect to {}: {}",
                            self.address,
                            said_once(&status)
                        ),
                    )
                } else {
                    let why = match status.code() {
                        Code::NotFound => format!("the server knows no service {service:?}"),
                        Code::Unimplemented => {
                            "the server does not implement grpc.health.v1.Health".to_string()
                        }
                        _ => status.message().to_string(),
                    };
                    (
                        GrpcFailure::Rpc(status.code()),
                        format!(
                            "health check of {service:?} at {} failed: {} ({})",
                            self.address,
                            why,
                            code_name(status.code())
                        ),
                    )
                };
                GrpcAnswer {
                    report: Report::fail(message),
                    failure: Some(failure),
                    status: None,
                }
            }
        }
    }
}

impl Probe for Grpc {
    fn check(&self) -> BoxFuture<'_, Report> {
        Box::pin(async move { self.observe().await.report })
    }

    fn is_external(&self) -> bool {
        true
    }
}

/// An error and its causes, each said once: tonic and hyper wrap the same message in two
/// layers ("tcp connect error: tcp connect error: Connection refused").
fn said_once(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
}

/// A status code as gRPC writes it: `NOT_FOUND`, `DEADLINE_EXCEEDED`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Connects TCP to the address, then TLS with the probe's settings.
#[derive(Clone)]
struct TlsConnect {
    address: String,
    name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
}

impl TlsConnect {
    fn new(address: &str, host: &str, tls: &GrpcTls) -> Result<TlsConnect, GrpcError> {
        let name_text = tls.server_name.clone().unwrap_or_else(|| {
            // `[::1]` in an address is `::1` as a name.
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        });
        let name =
            ServerName::try_from(name_text.clone()).map_err(|error| GrpcError::ServerName {
                name: name_text,
                reason: error.to_string(),
            })?;
        Ok(TlsConnect {
            address: address.to_string(),
            name,
            connector: tokio_rustls::TlsConnector::from(Arc::new(client_config(tls)?)),
        })
    }

    /// The connector as the tower service tonic takes.
    fn service(
        &self,
    ) -> impl tower::Service<
        Uri,
        Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
        Error = std::io::Error,
        Future = impl Send,
    > + Send
    + 'static {
        let this = self.clone();
        tower::service_fn(move |_: Uri| {
            let this = this.clone();
            async move {
                let tcp = TcpStream::connect(&this.address).await?;
                tcp.set_nodelay(true)?;
                let tls = this.connector.connect(this.name.clone(), tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        })
    }
}

fn client_config(tls: &GrpcTls) -> Result<rustls::ClientConfig, GrpcError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| GrpcError::Tls(error.to_string()))?;
    let mut config = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &tls.ca_file {
            Some(path) => {
                let bad = |reason: String| GrpcError::CaFile {
                    path: path.display().to_string(),
                    reason,
                };
                let certs =
                    CertificateDer::pem_file_iter(path).map_err(|error| bad(error.to_string()))?;
                for cert in certs {
                    let cert = cert.map_err(|error| bad(error.to_string()))?;
                    roots
                        .add(cert)
                        .map_err(|error| bad(format!("not a CA certificate: {error}")))?;
                }
                if roots.is_empty() {
                    return Err(bad("no certificate in it (PEM, BEGIN CERTIFICATE)".into()));
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                if roots.is_empty() {
                    return Err(GrpcError::Tls(
                        "no system root certificates found; give a CA file".into(),
                    ));
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Accepts any certificate, but still checks the handshake's signatures with it.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(address: &str, tls: Option<GrpcTls>) -> String {
        match Grpc::new(address, "", tls) {
            Ok(probe) => panic!("{address}: accepted as {probe:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|layer| layer as _)
        }
    }

    #[test]
    fn causes_are_said_once() {
        let layer = |text, inner: Option<Layer>| Some(Layer(text, inner.map(Box::new)));
        let refused = layer("Connection refused", None);
        let error = layer(
            "transport error",
            layer("tcp connect error", layer("tcp connect error", refused)),
        );
        assert_eq!(
            said_once(&error.unwrap_or_else(|| panic!("built"))),
            "transport error: tcp connect error: Connection refused"
        );
    }

    #[tokio::test]
    async fn addresses_are_host_and_port() {
        for good in ["127.0.0.1:50051", "[::1]:443", "orders.internal:8443"] {
            assert!(Grpc::new(good, "", None).is_ok(), "{good}");
        }
        assert!(error("127.0.0.1", None).contains("no port"));
        assert!(error("http://h:1", None).starts_with("bad address \"http://h:1\""));
        assert!(error("h:1/x", None).contains("not a host and port"));
        assert!(error("", None).starts_with("bad address \"\""));
    }

    #[tokio::test]
    async fn a_ca_file_must_hold_certificates() {
        let dir = std::env::temp_dir().join(format!("vitals-grpc-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap_or_else(|e| panic!("{e}"));
        let tls = |path: &std::path::Path| {
            Some(GrpcTls {
                ca_file: Some(path.to_path_buf()),
                ..GrpcTls::default()
            })
        };
        let missing = error("h:1", tls(&dir.join("missing.pem")));
        assert!(missing.starts_with("cannot read CA file"), "{missing}");
        let none = error("h:1", tls(&empty));
        assert!(none.contains("no certificate in it"), "{none}");
        let bad_name = error(
            "h:1",
            Some(GrpcTls {
                server_name: Some("not a name!".into()),
                ..GrpcTls::default()
            }),
        );
        assert!(bad_name.starts_with("bad TLS server name"), "{bad_name}");
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    }
}
