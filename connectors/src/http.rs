//! The HTTP endpoint of the engine and the producer: `/metrics` for Prometheus and the
//! probes a supervisor calls (`/healthz`, and the engine's `/readyz`), served by a small
//! blocking server (`tiny_http`) on a thread of its own, so that a scrape never touches a
//! worker. Each program says what its paths answer ([`Endpoint`]); this module only serves.

use std::net::SocketAddr;

/// What one request gets: status code and body (`text/plain`; Prometheus's exposition
/// format for `/metrics`).
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl Answer {
    /// A 200 answer.
    pub fn ok(body: impl Into<String>) -> Self {
        Answer { status: 200, body: body.into() }
    }
}

/// What a program answers on each path (the path has no query string).
pub trait Endpoint: Send + Sync + 'static {
    /// The answer to `GET path`; `None`: 404, listing [`Endpoint::paths`].
    fn answer(&self, path: &str) -> Option<Answer>;
    /// The paths it answers, for the 404 message.
    fn paths(&self) -> &'static [&'static str];
}

/// Why the HTTP endpoint cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address cannot be bound.
    #[error("cannot serve metrics on {addr}: {error} (pass --metrics-addr HOST:PORT with a free port)")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        error: String,
    },
    /// The server is not on an IP address.
    #[error("the metrics server is not on an IP address")]
    NotIp,
    /// Its thread cannot start.
    #[error("cannot start the metrics server's thread")]
    Thread(#[from] std::io::Error),
}

/// Serves `endpoint` on `addr` (port 0: any free port) from a background thread; returns the
/// bound address.
pub fn serve(addr: &str, endpoint: impl Endpoint) -> Result<SocketAddr, ServeError> {
    let server =
        tiny_http::Server::http(addr).map_err(|e| ServeError::Bind { addr: addr.to_owned(), error: e.to_string() })?;
    let bound = server.server_addr().to_ip().ok_or(ServeError::NotIp)?;
    std::thread::Builder::new().name("metrics-http".into()).spawn(move || {
        for request in server.incoming_requests() {
            let path = request.url().split('?').next().unwrap_or("");
            let response = match endpoint.answer(path) {
                Some(Answer { status, body }) => {
                    let text = "Content-Type: text/plain; version=0.0.4".parse::<tiny_http::Header>();
                    let response = tiny_http::Response::from_string(body).with_status_code(status);
                    match (path, text) {
                        ("/metrics", Ok(header)) => response.with_header(header),
                        _ => response,
                    }
                }
                None => tiny_http::Response::from_string(format!("not found: try {}\n", endpoint.paths().join(", ")))
                    .with_status_code(404),
            };
            let _ = request.respond(response);
        }
    })?;
    Ok(bound)
}
