//! Test support: real backend processes (`vitals-lb-testbackend`), the balancer on loopback,
//! and a client that counts answers per backend. Bounded polls are `vitals_testkit::until`.

#![allow(clippy::unwrap_used)] // test helpers
#![allow(dead_code)] // each test file uses a part

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use vitals_lb::Bound;
use vitals_testkit::free_port;

/// A backend process that answers with its name.
pub struct Backend {
    pub name: String,
    pub address: SocketAddr,
    pub child: Child,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        let address: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vitals-lb-testbackend"))
            .args(["--name", name, "--listen", &address.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next_line().await.unwrap().unwrap();
        assert!(line.starts_with("listening on"), "{line}");
        Backend {
            name: name.to_string(),
            address,
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

/// The balancer running in this process, and where it listens.
pub struct Lb {
    pub base: String,
    pub admin: String,
    pub bound: Bound,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Lb {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One pool "web" over `backends`; `pool_keys` adds TOML lines to the pool.
pub async fn start_lb(backends: &[&Backend], pool_keys: &str) -> Lb {
    start_lb_with(backends, pool_keys, "", "").await
}

/// [`start_lb`], with TOML lines added to `[admin]` and to the `[[listener]]` too.
pub async fn start_lb_with(
    backends: &[&Backend],
    pool_keys: &str,
    admin_keys: &str,
    listener_keys: &str,
) -> Lb {
    let named: Vec<(&str, SocketAddr)> = backends
        .iter()
        .map(|b| (b.name.as_str(), b.address))
        .collect();
    start_lb_on(&named, pool_keys, admin_keys, listener_keys).await
}

/// [`start_lb`] over backends given by name and address (servers of the test's own).
pub async fn start_lb_at(backends: &[(&str, SocketAddr)], pool_keys: &str) -> Lb {
    start_lb_on(backends, pool_keys, "", "").await
}

pub async fn start_lb_on(
    backends: &[(&str, SocketAddr)],
    pool_keys: &str,
    admin_keys: &str,
    listener_keys: &str,
) -> Lb {
    let port = free_port().unwrap();
    let mut text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n{admin_keys}\n\n[[listener]]\nlisten = \"127.0.0.1:{port}\"\npool = \"web\"\n{listener_keys}\n\n[[pool]]\nid = \"web\"\n{pool_keys}\n"
    );
    for (name, address) in backends {
        text.push_str(&format!(
            "\n[[pool.backend]]\nid = \"{name}\"\naddress = \"{address}\"\n"
        ));
    }
    let config =
        vitals_config::lb::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    spawn_lb(None, config).await
}

/// The balancer run from the file at `path`, which `POST /api/v1/reload` reads again.
pub async fn start_lb_file(path: &std::path::Path) -> Lb {
    let config = vitals_config::lb::load(path).unwrap_or_else(|e| panic!("{e}"));
    spawn_lb(Some(path.to_path_buf()), config).await
}

async fn spawn_lb(path: Option<std::path::PathBuf>, config: vitals_config::lb::LbConfig) -> Lb {
    let (tx, rx) = tokio::sync::oneshot::channel::<Bound>();
    let task = tokio::spawn(async move {
        let ready = move |bound: &Bound| {
            let _ = tx.send(bound.clone());
        };
        let result = match path {
            Some(path) => vitals_lb::run_file(path, config, ready, std::future::pending()).await,
            None => vitals_lb::run(config, ready, std::future::pending()).await,
        };
        panic!("the balancer stopped: {result:?}");
    });
    let bound = rx.await.unwrap();
    Lb {
        base: format!("http://{}", bound.listeners[0].0),
        admin: format!("http://{}", bound.admin),
        bound,
        task,
    }
}

/// A WebSocket backend in this process (tokio-tungstenite's server side behind hyper's
/// upgrade): `/readyz` answers 200, `/` its name, and a WebSocket on any path echoes each
/// text message as `"<name>: <message>"`.
pub struct WsBackend {
    pub name: String,
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WsBackend {
    pub async fn start(name: &str) -> WsBackend {
        use http_body_util::Full;
        use hyper::body::Bytes;
        use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
        use tokio_tungstenite::tungstenite::protocol::Role;

        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let me = name.to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = socket.accept().await else {
                    continue;
                };
                let me = me.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |mut request: hyper::Request<hyper::body::Incoming>| {
                            let me = me.clone();
                            async move {
                                let mut response =
                                    hyper::Response::new(Full::new(Bytes::from(me.clone())));
                                let key = request.headers().get("sec-websocket-key").cloned();
                                if request.uri().path() == "/readyz" {
                                    *response.body_mut() = Full::new(Bytes::from_static(b"ready"));
                                } else if let Some(key) = key {
                                    let accept = derive_accept_key(key.as_bytes());
                                    let upgrade = hyper::upgrade::on(&mut request);
                                    tokio::spawn(async move {
                                        use futures_util::{SinkExt, StreamExt};
                                        let upgraded = upgrade.await.unwrap();
                                        let mut ws =
                                            tokio_tungstenite::WebSocketStream::from_raw_socket(
                                                hyper_util::rt::TokioIo::new(upgraded),
                                                Role::Server,
                                                None,
                                            )
                                            .await;
                                        while let Some(Ok(message)) = ws.next().await {
                                            if let Ok(text) = message.to_text()
                                                && message.is_text()
                                            {
                                                let reply = format!("{me}: {text}");
                                                if ws.send(reply.into()).await.is_err() {
                                                    break;
                                                }
                                            }
                                        }
                                    });
                                    *response.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
                                    let headers = response.headers_mut();
                                    headers.insert("connection", "upgrade".parse().unwrap());
                                    headers.insert("upgrade", "websocket".parse().unwrap());
                                    headers.insert("sec-websocket-accept", accept.parse().unwrap());
                                    *response.body_mut() = Full::new(Bytes::new());
                                }
                                Ok::<_, std::convert::Infallible>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        WsBackend {
            name: name.to_string(),
            address,
            task,
        }
    }
}

/// A CA and certificates for `names` (one file each, certificate then key, as HAProxy's
/// `crt`), and the TOML line that gives them to a listener.
pub struct Tls {
    /// The first certificate's CA.
    pub ca: std::path::PathBuf,
    /// Each certificate's own CA, in order.
    pub cas: Vec<std::path::PathBuf>,
    pub files: Vec<std::path::PathBuf>,
    pub dir: tempfile::TempDir,
}

impl Tls {
    pub fn new(names: &[&str]) -> Tls {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        let mut cas = Vec::new();
        for name in names {
            let sub = dir.path().join(name);
            std::fs::create_dir_all(&sub).unwrap();
            let made = vitals_testkit::test_certificates(&sub, name).unwrap();
            let file = dir.path().join(format!("{name}.pem"));
            let mut text = std::fs::read(&made.cert).unwrap();
            text.extend(std::fs::read(&made.key).unwrap());
            std::fs::write(&file, text).unwrap();
            files.push(file);
            cas.push(made.ca);
        }
        Tls {
            ca: cas[0].clone(),
            cas,
            files,
            dir,
        }
    }

    /// `tls_certificates = [...]` for a `[[listener]]`.
    pub fn listener_keys(&self) -> String {
        let list: Vec<String> = self
            .files
            .iter()
            .map(|f| format!("{:?}", f.display().to_string()))
            .collect();
        format!("tls_certificates = [{}]\n", list.join(", "))
    }
}

/// An HTTP/2-only client over TLS that trusts `ca` and asks for `name` (SNI), whatever
/// address it connects to.
pub fn h2_client(
    ca: &std::path::Path,
    name: &str,
) -> hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<hyper::body::Bytes>,
> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(vitals_lb::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        .enable_http2()
        .build();
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(connector)
}

impl Lb {
    /// The admin API's view of backend `name`.
    pub async fn backend(&self, client: &reqwest::Client, name: &str) -> serde_json::Value {
        let pools: serde_json::Value = client
            .get(format!("{}/api/v1/pools", self.admin))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pools[0]["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .cloned()
            .unwrap()
    }

    pub async fn in_rotation(&self, client: &reqwest::Client, name: &str) -> bool {
        self.backend(client, name).await["in_rotation"] == true
    }

    /// Requests failed by the client's doing (`aborted`, `slow`), from `/metrics`.
    pub async fn client_faults(&self, client: &reqwest::Client, reason: &str) -> u64 {
        self.metric_sum(
            client,
            "vitals_lb_client_faults_total{",
            &format!("reason=\"{reason}\""),
        )
        .await
    }

    /// The sum of the series of `/metrics` that start with `prefix` and contain `label`.
    pub async fn metric_sum(&self, client: &reqwest::Client, prefix: &str, label: &str) -> u64 {
        let text = client
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(prefix) && l.contains(label))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }

    /// Tries sent to backend `name` so far (every status class), from `/metrics`.
    pub async fn tries(&self, client: &reqwest::Client, name: &str) -> u64 {
        let text = client
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| {
                l.starts_with("vitals_lb_requests_total{")
                    && l.contains(&format!("backend=\"{name}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }
}

/// Answers of `n` GETs of `path`, counted by body (the backend's name) or by failure.
pub async fn count(client: &reqwest::Client, url: &str, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let key = match client.get(url).send().await {
            Ok(r) if r.status() == 200 => r.text().await.unwrap(),
            Ok(r) => format!("status {}", r.status()),
            Err(e) => format!("error {e}"),
        };
        *seen.entry(key).or_insert(0) += 1;
    }
    seen
}

/// Clients sending requests one after another until [`Load::finish`]: what each request
/// got, per client, in order.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    /// `clients` loops, each calling `send` (one request; its answer as text) in turn.
    pub fn start<F, Fut>(clients: usize, send: F) -> Load
    where
        F: Fn() -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = String> + Send,
    {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|_| {
                let (stop, send) = (std::sync::Arc::clone(&stop), send.clone());
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        answers.push(send().await);
                    }
                    answers
                })
            })
            .collect();
        Load { stop, tasks }
    }

    /// [`Load::start`] with GETs of `url`: the body of a 200, else the status or error.
    pub fn get(clients: usize, client: &reqwest::Client, url: &str) -> Load {
        let (client, url) = (client.clone(), url.to_string());
        Load::start(clients, move || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => r.text().await.unwrap(),
                    Ok(r) => format!("status {} {}", r.status(), r.text().await.unwrap()),
                    Err(e) => format!("error {e}"),
                }
            }
        })
    }

    /// Stops the clients; each one's answers, in order.
    pub async fn finish(self) -> Vec<Vec<String>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = Vec::new();
        for task in self.tasks {
            all.push(task.await.unwrap());
        }
        all
    }
}

/// Asserts that every answer is one of `names` (a backend's), and that there were at least
/// `at_least` of them.
pub fn assert_none_failed(answers: &[String], names: &[&str], at_least: usize) {
    let failed: Vec<&String> = answers
        .iter()
        .filter(|a| !names.contains(&a.as_str()))
        .collect();
    assert!(answers.len() >= at_least, "only {} requests", answers.len());
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(5)]
    );
}
