//! `infodisent serve`: a live viewer over one cache and its heads. Browse classes, channels and
//! cached test images, and drop in an image to see why each head decides what it does. An axum
//! application on tokio, drawn with the report's page code ([`crate::report::page`]).
//!
//! Safe by default: it listens on loopback, answers only requests whose `Host` is an address or
//! `localhost` (a DNS-rebinding page cannot read the dataset paths the API shows), bounds upload
//! size, queue, header, body and request times, and keeps serving after any bad request.

pub mod pages;
pub mod routes;
pub mod viewer;

pub use viewer::{Viewer, ViewerSources};

use crate::error::{Error, Result};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use routes::{Fail, Shared};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

/// How the server listens and what it allows.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub host: String,
    /// Port (0: any free one).
    pub port: u16,
    /// Largest upload in bytes; larger ones get 413.
    pub max_upload: usize,
    /// Uploads that may wait while one is computed; more get 503 with `Retry-After`.
    pub queue: usize,
    /// Longest wait for a request's headers, and between parts of its body.
    pub read_timeout: Duration,
    /// Longest time for a whole request, queueing included (then 408).
    pub request_timeout: Duration,
    /// Host names accepted in the `Host` header besides addresses and `localhost` (a proxy's).
    pub allow_hosts: Vec<String>,
    /// Worker threads of the async runtime.
    pub threads: usize,
}

/// The default upload limit: 20 MB.
pub const DEFAULT_MAX_UPLOAD: usize = 20_000_000;

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: "127.0.0.1".into(),
            port: 8000,
            max_upload: DEFAULT_MAX_UPLOAD,
            queue: 16,
            read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            allow_hosts: Vec::new(),
            threads: 2,
        }
    }
}

/// Whether the `Host` header names this server the way a local browser would: an IP address
/// (a DNS-rebinding page always has a domain name), `localhost`, or a name allowed by the user.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

async fn check_host(
    State(allowed): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host());
    match host {
        Some(h) if host_allowed(h, &allowed) => next.run(request).await,
        Some(h) => Fail(
            StatusCode::FORBIDDEN,
            format!("Host `{h}` is not this viewer's address; start it with --allow-host {} if a proxy serves it under that name", h.split(':').next().unwrap_or(h)),
        )
        .into_response(),
        None => Fail(StatusCode::BAD_REQUEST, "the request has no Host header".into()).into_response(),
    }
}

/// The whole application: routes, host check, body limit and timeouts.
pub fn app(viewer: Viewer, opts: &ServeOptions) -> axum::Router {
    let drawing = std::thread::available_parallelism().map_or(2, |n| n.get());
    let shared = Arc::new(Shared {
        viewer,
        engine: Arc::new(Semaphore::new(opts.queue + 1)),
        drawing: Arc::new(Semaphore::new(drawing)),
        max_upload: opts.max_upload,
    });
    routes::router(shared)
        .layer(DefaultBodyLimit::max(opts.max_upload))
        .layer(RequestBodyTimeoutLayer::new(opts.read_timeout))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            opts.request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(opts.allow_hosts.clone()),
            check_host,
        ))
}

fn bind(opts: &ServeOptions) -> Result<std::net::TcpListener> {
    let addr = format!("{}:{}", opts.host, opts.port);
    let listener = std::net::TcpListener::bind(&addr)
        .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
    Ok(listener)
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))
}

/// Serves `viewer` until Ctrl-C; `listening` is told the address once it listens.
pub fn serve(
    viewer: Viewer,
    opts: &ServeOptions,
    listening: impl FnOnce(SocketAddr),
) -> Result<()> {
    let listener = bind(opts)?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Config(format!("no local address: {e}")))?;
    let app = app(viewer, opts);
    listening(addr);
    runtime(opts.threads)?.block_on(accept(listener, app, opts.read_timeout, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping: finishing open requests");
    }))
}

/// Accepts connections until `stop`, each served over HTTP/1.1 with a header read timeout;
/// then waits up to 5 s for open requests.
async fn accept(
    listener: std::net::TcpListener,
    app: axum::Router,
    read_timeout: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| Error::Config(format!("cannot listen: {e}")))?;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, then keep serving.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(app.clone());
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new()).header_read_timeout(read_timeout);
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn hosts_are_addresses_localhost_or_allowed_names() {
        let allowed = vec!["jupyter.lab.example".to_owned()];
        for ok in [
            "127.0.0.1:8000",
            "localhost:9",
            "LOCALHOST",
            "[::1]:8000",
            "10.1.2.3",
            "jupyter.lab.example:443",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "attacker.example:8000",
            "127.0.0.1.nip.io",
            "localhost.attacker.example",
            "",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
    }
}
