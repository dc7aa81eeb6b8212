//! TLS, both ways, with rustls and the aws-lc-rs provider the rest of vitals uses (reqwest,
//! tonic): one provider in the binary.
//!
//! - Termination ([`ServerTls`]): each listener's `tls_certificates` are PEM files holding a
//!   certificate chain and its private key (or the key in the same name plus `.key`, as
//!   HAProxy's `crt`). The first file is the default; the others are chosen by the name the
//!   client asks for (SNI), matched against each certificate's names by rustls' own
//!   verifier ([`Sni`]). ALPN offers `h2` and `http/1.1`. [`ServerTls::watch`] reads the
//!   files again when they change (renewed by certbot, say); a bad renewal is logged and the
//!   running certificates stay.
//! - To backends ([`connector`]): optional per pool (`backend_tls`), verified against a CA
//!   file or the system's roots, as HAProxy's `ssl verify required ca-file`; readiness
//!   checks of such a pool go over TLS too, verified alike ([`check_client`]), as HAProxy's
//!   `check-ssl`.
//!
//! Every error names the field and the file, and says what to fix.
//!
//! Not here: accepting connections or HTTP (`listen`), which pool a listener sends to.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_util::sync::CancellationToken;
use vitals_config::lb::{Pool, Protocol};

/// How often certificate files are looked at for a change. Renewals happen days ahead of
/// expiry; a few seconds' delay costs nothing, and a stat per file is all it takes.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// What was wrong with TLS material: the field, the file, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {}: {why}", path.display())]
pub struct TlsError {
    /// Like `listener[0].tls_certificates[1]` or `pool[0] ("web").backend_ca_file`.
    pub field: String,
    pub path: PathBuf,
    pub why: String,
}

/// The one crypto provider: aws-lc-rs, as reqwest and the gRPC probe use.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificates of one listener, the default first.
type Keys = Arc<[Arc<CertifiedKey>]>;

/// Picks the certificate for a client's SNI name: the first whose names cover it, else the
/// first (a client that sends no name, or a name none covers, gets the default, as nginx's
/// `default_server` does).
#[derive(Debug)]
pub struct Sni {
    keys: ArcSwap<Vec<Arc<CertifiedKey>>>,
}

impl Sni {
    fn pick(keys: &[Arc<CertifiedKey>], name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let first = keys.first()?;
        let (Some(name), true) = (name, keys.len() > 1) else {
            return Some(Arc::clone(first));
        };
        let Ok(wanted) = ServerName::try_from(name) else {
            return Some(Arc::clone(first));
        };
        keys.iter()
            .find(|key| {
                key.end_entity_cert().is_ok_and(|der| {
                    webpki::EndEntityCert::try_from(der)
                        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&wanted).is_ok())
                })
            })
            .or(Some(first))
            .cloned()
    }
}

impl ResolvesServerCert for Sni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Sni::pick(&self.keys.load(), hello.server_name())
    }
}

/// TLS termination for one listener.
pub struct ServerTls {
    pub acceptor: TlsAcceptor,
    sni: Arc<Sni>,
    field: String,
    paths: Vec<PathBuf>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("field", &self.field)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads `paths` (the listener's `tls_certificates`; `field` names it in errors).
    pub fn new(field: &str, paths: &[PathBuf]) -> Result<ServerTls, TlsError> {
        let keys = load_all(field, paths)?;
        let sni = Arc::new(Sni {
            keys: ArcSwap::from_pointee(keys.to_vec()),
        });
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError {
                field: field.to_owned(),
                path: paths.first().cloned().unwrap_or_default(),
                why: format!("rustls refused its own defaults: {e}"),
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&sni) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            sni,
            field: field.to_owned(),
            paths: paths.to_vec(),
        })
    }

    /// Whether this listener was built from exactly these files (a reload keeps it then).
    pub fn same_files(&self, paths: &[PathBuf]) -> bool {
        self.paths == paths
    }

    /// Reads the files again whenever one changes (size or modification time), until `stop`.
    /// A change that does not load (a half-written file, a key that does not match) is
    /// logged with its reason and the certificates in use stay.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut seen = stamps(&self.paths);
        loop {
            tokio::select! {
                () = tokio::time::sleep(WATCH_EVERY) => {}
                () = stop.cancelled() => return,
            }
            let now = stamps(&self.paths);
            if now == seen {
                continue;
            }
            seen = now;
            match load_all(&self.field, &self.paths) {
                Ok(keys) => {
                    self.sni.keys.store(Arc::new(keys.to_vec()));
                    tracing::info!(field = %self.field, "certificates changed on disk: reloaded");
                }
                Err(error) => {
                    tracing::warn!(%error, "certificates changed on disk but do not load; the running ones stay");
                }
            }
        }
    }
}

/// Size and modification time of each file and its `.key` companion.
fn stamps(paths: &[PathBuf]) -> Vec<Option<(u64, SystemTime)>> {
    paths
        .iter()
        .flat_map(|path| [path.clone(), key_companion(path)])
        .map(|path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        })
        .collect()
}

/// HAProxy's rule: a PEM file without a key has it in the same name plus `.key`.
fn key_companion(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

fn load_all(field: &str, paths: &[PathBuf]) -> Result<Keys, TlsError> {
    paths
        .iter()
        .enumerate()
        .map(|(i, path)| load(&format!("{field}[{i}]"), path))
        .collect::<Result<Vec<_>, _>>()
        .map(Arc::from)
}

/// One certificate chain and its key, checked to belong together.
fn load(field: &str, path: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let error = |path: &Path, why: String| TlsError {
        field: field.to_owned(),
        path: path.to_owned(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| error(path, format!("cannot read it: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(path, format!("not a valid PEM file: {e}")))?;
    if chain.is_empty() {
        return Err(error(
            path,
            "holds no certificate (expected -----BEGIN CERTIFICATE----- blocks, the server's first)".into(),
        ));
    }
    let key = match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(key) => key,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            let companion = key_companion(path);
            let text = std::fs::read(&companion).map_err(|e| {
                error(
                    path,
                    format!(
                        "holds no private key, and {} cannot be read ({e}); put the key after the certificate, or in that file",
                        companion.display()
                    ),
                )
            })?;
            PrivateKeyDer::from_pem_slice(&text).map_err(|e| {
                error(
                    &companion,
                    format!("holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
                )
            })?
        }
        Err(e) => return Err(error(path, format!("its private key cannot be read: {e}"))),
    };
    let provider = provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        error(
            path,
            format!(
                "the private key does not fit the certificate, or its kind is not supported: {e}"
            ),
        )
    })?;
    if let Ok(der) = certified.end_entity_cert() {
        webpki::EndEntityCert::try_from(der).map_err(|e| {
            error(
                path,
                format!("its first certificate is not a usable X.509 server certificate: {e:?}"),
            )
        })?;
    }
    Ok(Arc::new(certified))
}

/// The connector for a pool's backends: plain TCP, or TLS verified against the pool's CA
/// file (or the system's roots), offering the pool's protocol by ALPN. `field` is the
/// pool's name in errors, like `pool[0] ("web")`.
pub fn connector(pool: &Pool, field: &str) -> Result<HttpsConnector<HttpConnector>, TlsError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(pool.connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let config = client_config(pool, field)?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    let builder = match pool.tls.as_ref().and_then(|tls| tls.server_name.clone()) {
        Some(name) => match ServerName::try_from(name) {
            Ok(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
            // The config checked the name; were it wrong, the backend's address is used.
            Err(_) => builder,
        },
        None => builder,
    };
    Ok(match pool.protocol {
        Protocol::Http1 => builder.enable_http1().wrap_connector(http),
        Protocol::Http2 => builder.enable_http2().wrap_connector(http),
    })
}

/// The client of a TLS pool's HTTP readiness checks: `https://address/health_path`, the
/// backend's certificate verified as the data path verifies it (the pool's CA file, and
/// `backend_server_name` when set), as HAProxy's `check-ssl`.
pub fn check_client(pool: &Pool, field: &str) -> Result<reqwest::Client, TlsError> {
    let mut config = client_config(pool, field)?;
    if let Some(name) = pool.tls.as_ref().and_then(|tls| tls.server_name.clone())
        && let Ok(name) = ServerName::try_from(name)
    {
        // The URL names the address; the certificate names the host: verify against it.
        let inner = config.crypto_provider().clone();
        let verifier = Named {
            inner: rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(pool, field)?),
                inner,
            )
            .build()
            .map_err(|e| TlsError {
                field: field.to_owned(),
                path: PathBuf::new(),
                why: format!("cannot verify backends with these roots: {e}"),
            })?,
            name,
        };
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(verifier));
    }
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .build()
        .map_err(|e| TlsError {
            field: field.to_owned(),
            path: PathBuf::new(),
            why: format!("cannot build the readiness checks' client: {e}"),
        })
}

/// Verifies a certificate for one fixed name, whatever address was dialled.
#[derive(Debug)]
struct Named {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl rustls::client::danger::ServerCertVerifier for Named {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A TLS client configuration for a pool's backends, without ALPN (the caller's).
fn client_config(pool: &Pool, field: &str) -> Result<ClientConfig, TlsError> {
    let roots = roots(pool, field)?;
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError {
            field: field.to_owned(),
            path: PathBuf::new(),
            why: format!("rustls refused its own defaults: {e}"),
        })
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
}

/// The roots a pool's backends are verified against: its CA file, else the system's; none
/// for a pool without TLS.
fn roots(pool: &Pool, field: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    if let Some(tls) = &pool.tls {
        match &tls.ca_file {
            Some(path) => {
                let error = |why: String| TlsError {
                    field: format!("{field}.backend_ca_file"),
                    path: path.clone(),
                    why,
                };
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| error(format!("cannot be read: {e}")))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| error(format!("not a valid PEM file: {e}")))?;
                if certs.is_empty() {
                    return Err(error(
                        "holds no certificate (expected -----BEGIN CERTIFICATE----- blocks)".into(),
                    ));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| error(format!("a certificate in it is not usable: {e}")))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for cert in native.certs {
                    // A system root rustls cannot parse is skipped, as reqwest does.
                    let _ = roots.add(cert);
                }
            }
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests;
