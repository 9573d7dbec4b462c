//! `storyvis serve`: a web page where anyone types a story, a caption or a video caption and
//! sees it drawn, and the JSON API behind it.
//!
//! - `GET /`: the page (one HTML file, embedded in the binary; no external resources).
//! - `GET /api/models`: the models served, what each reads, and example inputs.
//! - `POST /api/generate`: `{"model": NAME?, "story": "…" | "text": "…", "seeds": [0, 1],
//!   "fit": "exact" | "pad" | "truncate"?}` → the pictures, base64-encoded PNGs or GIFs.
//!
//! Every error is JSON (`{"error": "…"}`) with its status: 400 bad input, 404 an unknown model
//! or path, 405 a wrong method, 413 a body over the limit, 503 (with Retry-After) when the
//! queue in front of the models is full or a request waited past its timeout.
//!
//! Models are any family's checkpoints, loaded through the family registry
//! (`storyvis_core::registry::load_drawer`). Requests wait in a bounded queue (`queue` places, past which
//! the answer is 503) for one of `workers` threads; libtorch's random generator is one per
//! process, so the drawings themselves run one at a time (`storyvis_core::drawer::DRAW_LOCK`): a
//! seed gives the same pictures as `storyvis generate`.

use anyhow::{bail, ensure, Context, Result};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storyvis_core::drawer::{self, Drawer, Input};
use storyvis_core::input::Fit;
use storyvis_core::registry;
use tokio::sync::Semaphore;

/// The page, served at `/`.
pub const PAGE: &str = include_str!("page.html");
/// Largest request body accepted: a story of the most bytes `generate` takes, with room for
/// JSON escapes.
pub const BODY_LIMIT: usize = 2 * storyvis_core::input::MAX_STORY_BYTES;
/// Most seeds one request draws (a story strip, an image or a clip each).
pub const MAX_SEEDS: usize = 8;
/// Example inputs listed per model.
pub const EXAMPLES: usize = 3;
/// Longest model name accepted on the command line.
const MAX_NAME: usize = 64;

/// What `storyvis serve` runs with.
#[derive(Clone, Debug)]
pub struct Options {
    /// (name, checkpoint or run directory), in the order the page lists them.
    pub models: Vec<(String, PathBuf)>,
    /// Requests waiting or drawing at once; past that, 503.
    pub queue: usize,
    /// Threads that take requests from the queue.
    pub workers: usize,
    /// How long a request may wait and draw before it is answered 503.
    pub timeout: Duration,
    pub device: tch::Device,
    pub weights: storyvis_core::checkpoint::Weights,
}

/// A model as served.
pub struct Served {
    pub name: String,
    pub input: Input,
    pub family: String,
    pub step: usize,
    pub examples: Vec<String>,
    drawer: Mutex<Box<dyn Drawer>>,
}

impl Served {
    /// A loaded model under `name`, with its example inputs.
    pub fn new(name: &str, d: Box<dyn Drawer>) -> Result<Served> {
        check_name(name)?;
        let examples = drawer::examples(d.as_ref(), EXAMPLES);
        let (family, step) = (d.about().family.to_string(), d.about().step);
        Ok(Served {
            name: name.to_string(),
            input: d.input(),
            family,
            step,
            examples,
            drawer: Mutex::new(d),
        })
    }
}

/// A model name: letters, digits, '-', '_' and '.', not starting with '.', at most 64 bytes.
pub fn check_name(name: &str) -> Result<()> {
    ensure!(
        !name.is_empty() && name.len() <= MAX_NAME,
        "model name {:?}: give 1 to {MAX_NAME} characters",
        excerpt(name)
    );
    ensure!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !name.starts_with('.'),
        "model name {:?}: use letters, digits, '-', '_' and '.' (not first)",
        excerpt(name)
    );
    Ok(())
}

/// Parses `NAME=DIR`.
pub fn parse_model(spec: &str) -> Result<(String, PathBuf)> {
    let (name, dir) = spec
        .split_once('=')
        .with_context(|| format!("--model {:?}: give NAME=DIR", excerpt(spec)))?;
    check_name(name)?;
    ensure!(!dir.is_empty(), "--model {name}=: give the checkpoint directory after '='");
    Ok((name.to_string(), PathBuf::from(dir)))
}

/// Loads every model (through the family registry); an error names the model.
pub fn load_models(opts: &Options) -> Result<Vec<Arc<Served>>> {
    ensure!(!opts.models.is_empty(), "no models to serve");
    storyvis_models::install();
    let mut out: Vec<Arc<Served>> = Vec::new();
    for (name, dir) in &opts.models {
        check_name(name)?;
        ensure!(!out.iter().any(|m| &m.name == name), "model name {name:?} is given twice");
        let d = registry::load_drawer(dir, opts.device, opts.weights)
            .with_context(|| format!("model {name} ({})", dir.display()))?;
        out.push(Arc::new(Served::new(name, d)?));
    }
    Ok(out)
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    models: Arc<Vec<Arc<Served>>>,
    queue: Arc<Semaphore>,
    queue_size: usize,
    workers: Arc<Semaphore>,
    timeout: Duration,
}

impl AppState {
    pub fn new(
        models: Vec<Arc<Served>>,
        queue: usize,
        workers: usize,
        timeout: Duration,
    ) -> Result<AppState> {
        ensure!((1..=10_000).contains(&queue), "--queue must be 1..10000, got {queue}");
        ensure!((1..=64).contains(&workers), "--workers must be 1..64, got {workers}");
        ensure!(timeout >= Duration::from_secs(1), "the request timeout must be at least 1 s");
        Ok(AppState {
            models: Arc::new(models),
            queue: Arc::new(Semaphore::new(queue)),
            queue_size: queue,
            workers: Arc::new(Semaphore::new(workers)),
            timeout,
        })
    }

    /// The model a request names, or the default: the first story model, else the first.
    fn model(&self, name: Option<&str>) -> Result<Arc<Served>, ApiError> {
        match name {
            Some(n) => self.models.iter().find(|m| m.name == n).cloned().ok_or_else(|| {
                let names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("unknown model {:?}; served: {}", excerpt(n), names.join(", ")),
                )
            }),
            None => Ok(self
                .models
                .iter()
                .find(|m| matches!(m.input, Input::Story { .. }))
                .unwrap_or(&self.models[0])
                .clone()),
        }
    }
}

/// An error answer: `{"error": message}` with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: None }
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn busy(message: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            retry_after: Some(retry_after),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({ "error": self.message }))).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// The first 60 characters of user input, for messages.
fn excerpt(s: &str) -> String {
    storyvis_core::input::excerpt(s, 60)
}

/// The body of `POST /api/generate`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct GenerateRequest {
    model: Option<String>,
    story: Option<String>,
    text: Option<String>,
    seeds: Option<Vec<u64>>,
    fit: Option<String>,
}

/// The router: the page, the API, JSON errors for everything else, the body limit and a log
/// line per request.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/models", get(models))
        .route("/api/generate", axum::routing::post(generate))
        .fallback(not_found)
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(log))
        .with_state(state)
}

async fn log(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let started = Instant::now();
    let res = next.run(req).await;
    eprintln!(
        "{method} {} {} {:.0} ms",
        excerpt(&path),
        res.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    res
}

async fn page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        PAGE,
    )
}

async fn not_found(method: Method) -> ApiError {
    ApiError::new(
        if method == Method::GET || method == Method::HEAD {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::METHOD_NOT_ALLOWED
        },
        "no such page",
    )
}

fn describe(m: &Served, default: bool) -> Value {
    json!({ "name": m.name, "family": m.family, "input": m.input, "step": m.step, "examples": m.examples, "default": default })
}

async fn models(State(s): State<AppState>) -> Json<Value> {
    let default = s.model(None).ok().map(|m| m.name.clone());
    let list: Vec<Value> =
        s.models.iter().map(|m| describe(m, Some(&m.name) == default.as_ref())).collect();
    Json(json!({ "models": list, "max_seeds": MAX_SEEDS, "body_limit": BODY_LIMIT }))
}

/// Reads the request body as the JSON of `GenerateRequest`.
fn parse(body: Result<Bytes, BytesRejection>) -> Result<GenerateRequest, ApiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over {BODY_LIMIT} bytes"),
        ),
        s => ApiError::new(s, format!("cannot read the request body: {e}")),
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad("the request body is not UTF-8 text"))?;
    serde_json::from_str(text).map_err(|e| {
        ApiError::bad(if e.is_data() {
            format!("bad request: {e} (expected {{\"model\": name, \"story\" or \"text\": string, \"seeds\": [integers], \"fit\": \"exact\"|\"pad\"|\"truncate\"}})")
        } else {
            format!("the request body is not JSON: {e}")
        })
    })
}

/// The checked parts of a request: the model, its input text, the fit and the seeds.
fn validate(
    s: &AppState,
    r: GenerateRequest,
) -> Result<(Arc<Served>, String, Fit, Vec<u64>), ApiError> {
    let model = s.model(r.model.as_deref())?;
    let text = match (&model.input, r.story, r.text) {
        (_, Some(_), Some(_)) => return Err(ApiError::bad("give \"story\" or \"text\", not both")),
        (Input::Story { .. }, Some(t), None) => t,
        (Input::Story { frames }, None, _) => {
            return Err(ApiError::bad(format!(
            "model {} draws stories: give \"story\" with {frames} sentences separated by periods",
            model.name
        )))
        }
        (_, None, Some(t)) => t,
        (Input::Caption, _, None) => {
            return Err(ApiError::bad(format!(
                "model {} draws captions: give \"text\"",
                model.name
            )))
        }
        (Input::Video { .. }, _, None) => {
            return Err(ApiError::bad(format!(
                "model {} draws video captions: give \"text\"",
                model.name
            )))
        }
    };
    let fit = match r.fit.as_deref() {
        None | Some("exact") => Fit::Exact,
        Some("pad") => Fit::Pad,
        Some("truncate") => Fit::Truncate,
        Some(other) => {
            return Err(ApiError::bad(format!(
                "fit {:?}: use \"exact\", \"pad\" or \"truncate\"",
                excerpt(other)
            )))
        }
    };
    let mut seeds = r.seeds.unwrap_or_else(|| vec![0]);
    let mut seen = std::collections::HashSet::new();
    seeds.retain(|x| seen.insert(*x));
    drawer::check_seeds(&seeds, MAX_SEEDS).map_err(|e| ApiError::bad(e.to_string()))?;
    Ok((model, text, fit, seeds))
}

async fn generate(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (model, text, fit, seeds) = validate(&s, parse(body)?)?;
    // A place in the queue, or 503 at once.
    let place = s.queue.clone().try_acquire_owned().map_err(|_| {
        ApiError::busy(
            format!(
                "busy: {} requests are already waiting or drawing; try again shortly",
                s.queue_size
            ),
            2 + s.timeout.as_secs().min(30) / 10,
        )
    })?;
    let timeout = s.timeout;
    let work = async move {
        let worker = s
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::busy("the server is shutting down", 5))?;
        // Drawing blocks: on a blocking thread that holds the queue place and the worker
        // until it ends, even if the request has stopped waiting for it.
        tokio::task::spawn_blocking(move || {
            let _held = (place, worker);
            draw(&model, &text, fit, &seeds)
        })
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("drawing failed: {e}"))
        })?
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r.map(Json),
        Err(_) => Err(ApiError::busy(
            format!(
                "timed out after {} s waiting for a free worker or a drawing; try again shortly",
                timeout.as_secs()
            ),
            5,
        )),
    }
}

/// A drawing's error as the API's user reads it: the command line's options named by the
/// request fields that do the same (`--pad` is `"fit": "pad"`).
fn in_api_terms(message: &str) -> String {
    message
        .replace("pass --pad", "send \"fit\": \"pad\"")
        .replace("pass --truncate", "send \"fit\": \"truncate\"")
        .replace("--pad", "\"fit\": \"pad\"")
        .replace("--truncate", "\"fit\": \"truncate\"")
}

/// Checks the text against the model and draws it (on a worker thread).
fn draw(model: &Served, text: &str, fit: Fit, seeds: &[u64]) -> Result<Value, ApiError> {
    let d = model.drawer.lock().unwrap_or_else(|e| e.into_inner());
    let checked = d.check(text, fit).map_err(|e| ApiError::bad(in_api_terms(&format!("{e:#}"))))?;
    // Words it does not know are read as unknown, each with the nearest word it knows.
    let known =
        if checked.unknown.is_empty() { Vec::new() } else { d.vocabulary().unwrap_or_default() };
    let suggestions = storyvis_core::words::suggestions(&checked.unknown, &known);
    let pictures = {
        let _rng = drawer::DRAW_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        d.draw(&checked, seeds).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("drawing failed: {e:#}"))
        })?
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let pictures: Vec<Value> = pictures.iter().map(|p| json!({ "name": p.name, "seed": p.seed, "mime": p.mime, "base64": b64.encode(&p.bytes) })).collect();
    Ok(json!({
        "model": model.name,
        "family": model.family,
        "input": model.input,
        "sentences": checked.sentences,
        "unknown": checked.unknown,
        "suggestions": suggestions,
        "seeds": seeds,
        "pictures": pictures,
    }))
}

/// Serves on `listener` until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("the server stopped")
}

/// `storyvis serve`: loads the models, binds `host:port` (port 0: any free port), prints
/// `listening on http://…` and serves until Ctrl-C.
pub fn run(opts: &Options, host: &str, port: u16) -> Result<()> {
    if host != "127.0.0.1" && host != "localhost" && host != "::1" {
        eprintln!("warning: serving on {host}, not loopback: anyone who can reach this machine can use the page");
    }
    let models = load_models(opts)?;
    let state = AppState::new(models.clone(), opts.queue, opts.workers, opts.timeout)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(opts.workers.max(1) + 4)
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind((host, port)).await {
            Ok(l) => l,
            Err(e) => bail!("cannot listen on {host}:{port}: {e}"),
        };
        let addr = listener.local_addr()?;
        for m in models.iter() {
            eprintln!(
                "model {}: {} (iteration {}), reads {}",
                m.name,
                m.family,
                m.step,
                serde_json::to_string(&m.input)?
            );
        }
        println!("listening on http://{addr}");
        use std::io::Write;
        std::io::stdout().flush().ok();
        serve(listener, state, async {
            tokio::signal::ctrl_c().await.ok();
            eprintln!("stopping: finishing the requests in flight");
        })
        .await
    })?;
    rt.shutdown_timeout(Duration::from_secs(60));
    Ok(())
}

/// A small blocking HTTP/1.1 client (one request per connection) for the tests and the load
/// benchmark: nothing outside this machine is ever its target.
pub mod client {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    /// An answer: status, headers (names in lower case) and body.
    #[derive(Debug)]
    pub struct Reply {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Reply {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
        }

        /// The body as JSON (`Null` when it is not).
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
        }

        /// The message of a JSON error answer.
        pub fn error(&self) -> String {
            self.json()["error"].as_str().unwrap_or_default().to_string()
        }
    }

    /// Sends one request to a loopback server and reads the whole answer.
    pub fn request(
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> std::io::Result<Reply> {
        assert!(addr.ip().is_loopback(), "the client talks only to this machine");
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes())?;
        // A server may answer (413) and close before reading a large body.
        let _ = s.write_all(body);
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        parse(&raw).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer")
        })
    }

    fn parse(raw: &[u8]) -> Option<Reply> {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&raw[..end]).ok()?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[end + 4..].to_vec();
        if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
            body = unchunk(&body)?;
        }
        Some(Reply { status, headers, body })
    }

    fn unchunk(mut b: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let line = b.windows(2).position(|w| w == b"\r\n")?;
            let n = usize::from_str_radix(
                std::str::from_utf8(&b[..line]).ok()?.split(';').next()?.trim(),
                16,
            )
            .ok()?;
            if n == 0 {
                return Some(out);
            }
            out.extend_from_slice(b.get(line + 2..line + 2 + n)?);
            b = b.get(line + 4 + n..)?;
        }
    }
}

#[cfg(test)]
mod tests;
