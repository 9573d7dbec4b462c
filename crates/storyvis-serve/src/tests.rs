//! The server against stand-in models (a `Drawer` that sleeps as long as it is told): every
//! error path, the bounded queue, timeouts and graceful shutdown. The real models of every
//! family are served in the CLI's tests (crates/storyvis-cli/tests/serve.rs).

use super::client::{request, Reply};
use super::*;
use std::net::SocketAddr;
use std::path::Path;
use storyvis_core::drawer::{About, Checked, Layout, Picture};

struct Fake {
    input: Input,
    delay: Duration,
}

impl Drawer for Fake {
    fn input(&self) -> Input {
        self.input
    }
    fn about(&self) -> About<'_> {
        About { family: "fake", step: 7, checkpoint: Path::new("fake"), averaged: false }
    }
    fn check(&self, text: &str, _fit: Fit) -> Result<Checked> {
        ensure!(!text.trim().is_empty(), "the caption is empty");
        ensure!(
            text.len() <= 1000,
            "the caption is {} bytes long; at most 1000 are allowed",
            text.len()
        );
        let unknown =
            text.split_whitespace().filter(|w| w.starts_with("zebra")).map(String::from).collect();
        Ok(Checked { sentences: vec![text.to_string()], unknown })
    }
    fn draw_as(&self, _text: &Checked, seeds: &[u64], _layout: &Layout) -> Result<Vec<Picture>> {
        std::thread::sleep(self.delay);
        Ok(seeds
            .iter()
            .map(|&s| Picture {
                name: format!("seed{s:04}.png"),
                seed: Some(s),
                mime: "image/png",
                bytes: vec![s as u8; 3],
            })
            .collect())
    }
}

fn fake(name: &str, input: Input, delay_ms: u64) -> Arc<Served> {
    Arc::new(
        Served::new(name, Box::new(Fake { input, delay: Duration::from_millis(delay_ms) }))
            .unwrap(),
    )
}

/// A server on a free loopback port, in its own runtime; dropping the handle stops it and
/// waits for it.
struct Server {
    _turn: std::sync::MutexGuard<'static, ()>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

/// Held by each test's server: drawings share the process-wide `DRAW_LOCK`, so one test's slow
/// drawing would hold up another's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

impl Server {
    fn start(models: Vec<Arc<Served>>, queue: usize, workers: usize, timeout_s: u64) -> Server {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let state = AppState::new(models, queue, workers, Duration::from_secs(timeout_s)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                tx.send(listener.local_addr()?).unwrap();
                serve(listener, state, async {
                    stopped.await.ok();
                })
                .await
            })
        });
        Server { _turn: turn, addr: rx.recv().unwrap(), stop: Some(stop), thread: Some(thread) }
    }

    fn call(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        request(self.addr, method, path, body, Duration::from_secs(30)).unwrap()
    }

    fn post(&self, body: &str) -> Reply {
        self.call("POST", "/api/generate", body.as_bytes())
    }

    fn stop(mut self) -> Result<()> {
        self.stop.take().unwrap().send(()).ok();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            s.send(()).ok();
            self.thread.take().map(|t| t.join());
        }
    }
}

/// Status, a JSON error body naming `want`.
fn fails(r: &Reply, status: u16, want: &str) {
    assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("content-type").is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.headers
    );
    assert!(r.error().contains(want), "expected {want:?} in {:?}", r.error());
}

#[test]
fn the_api_answers_and_every_bad_input_is_a_json_error_with_its_status() {
    let s = Server::start(
        vec![fake("captions", Input::Caption, 0), fake("stories", Input::Story { frames: 4 }, 0)],
        8,
        2,
        30,
    );
    // The page and the model list.
    let page = s.call("GET", "/", b"");
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("/api/generate"));
    assert!(
        !String::from_utf8_lossy(&page.body).contains("http"),
        "the page loads nothing from elsewhere"
    );
    let list = s.call("GET", "/api/models", b"").json();
    let names: Vec<&str> =
        list["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["captions", "stories"]);
    // The default model is the first story model.
    assert_eq!(list["models"][1]["default"], true);
    assert_eq!(list["models"][1]["input"], json!({"kind": "story", "frames": 4}));
    assert_eq!(list["models"][0]["examples"].as_array().unwrap().len(), EXAMPLES);
    // A drawing: pictures per seed, a repeated seed drawn once, unknown words reported.
    let r = s.post(r#"{"model": "captions", "text": "a zebra cube", "seeds": [3, 1, 3]}"#);
    assert_eq!(r.status, 200, "{:?}", r.error());
    let v = r.json();
    assert_eq!(v["seeds"], json!([3, 1]));
    assert_eq!(v["unknown"], json!(["zebra"]));
    assert_eq!(v["pictures"][0]["base64"], "AwMD");
    assert_eq!(v["pictures"][1]["name"], "seed0001.png");
    // No model named: the default story model; no seeds: seed 0.
    let v = s.post(r#"{"story": "one. two. three. four."}"#).json();
    assert_eq!((v["model"].as_str(), v["seeds"].clone()), (Some("stories"), json!([0])));

    fails(
        &s.post(r#"{"model": "nope", "text": "x"}"#),
        404,
        "unknown model \"nope\"; served: captions, stories",
    );
    fails(&s.post(r#"{"model": "../../etc/passwd", "text": "x"}"#), 404, "unknown model");
    fails(&s.post(r#"{"model": "/etc/passwd", "text": "x"}"#), 404, "unknown model");
    fails(&s.post("a story"), 400, "not JSON");
    fails(&s.post(""), 400, "not JSON");
    fails(&s.call("POST", "/api/generate", b"{\"text\": \"\xff\xfe\"}"), 400, "not UTF-8");
    fails(&s.post(r#"{"model": "captions", "text": 5}"#), 400, "invalid type");
    fails(&s.post(r#"{"model": "captions", "text": "x", "seeds": "0-3"}"#), 400, "invalid type");
    fails(&s.post(r#"{"model": "captions", "text": "x", "seeds": [-1]}"#), 400, "invalid value");
    fails(&s.post(r#"{"model": "captions", "text": "x", "seeds": [1.5]}"#), 400, "invalid type");
    fails(&s.post(r#"{"model": "captions", "text": "x", "seeds": []}"#), 400, "at least one seed");
    fails(
        &s.post(r#"{"model": "captions", "text": "x", "seeds": [0,1,2,3,4,5,6,7,8]}"#),
        400,
        "9 seeds asked; at most 8",
    );
    fails(
        &s.post(r#"{"model": "captions", "text": "x", "sedes": [0]}"#),
        400,
        "unknown field `sedes`",
    );
    fails(&s.post(r#"{"model": "captions", "story": "x"}"#), 400, "draws captions: give \"text\"");
    fails(
        &s.post(r#"{"model": "stories", "text": "x"}"#),
        400,
        "draws stories: give \"story\" with 4 sentences",
    );
    fails(&s.post(r#"{"model": "captions", "text": "x", "story": "y"}"#), 400, "not both");
    fails(
        &s.post(r#"{"model": "stories", "story": "x", "fit": "stretch"}"#),
        400,
        "fit \"stretch\"",
    );
    fails(&s.post(r#"{"model": "captions", "text": "   "}"#), 400, "the caption is empty");
    let long = format!(r#"{{"model": "captions", "text": "{}"}}"#, "a".repeat(10_000));
    fails(&s.post(&long), 400, "10000 bytes long");
    // A range of a million seeds as a list is far over the body limit: 413 before parsing.
    let million = format!(
        r#"{{"model": "captions", "text": "x", "seeds": [{}]}}"#,
        vec!["1"; 1_000_000].join(",")
    );
    fails(&s.post(&million), 413, &format!("over {BODY_LIMIT} bytes"));
    fails(&s.call("GET", "/api/generate", b""), 405, "method not allowed");
    fails(&s.call("GET", "/etc/passwd", b""), 404, "no such page");
    fails(&s.call("GET", "/../models/storygan-default/config.toml", b""), 404, "no such page");
    // The server still answers after all that.
    assert_eq!(s.post(r#"{"model": "captions", "text": "x"}"#).status, 200);
    s.stop().unwrap();
}

#[test]
fn past_the_queue_the_answer_is_503_with_retry_after_and_places_come_back() {
    // Two places, one worker, drawings of 1.5 s: two requests fill the queue.
    let s = Server::start(vec![fake("slow", Input::Caption, 1500)], 2, 1, 30);
    let addr = s.addr;
    let body = r#"{"text": "x"}"#;
    let busy: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                request(addr, "POST", "/api/generate", body.as_bytes(), Duration::from_secs(30))
                    .unwrap()
                    .status
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let r = s.post(body);
    fails(&r, 503, "busy: 2 requests");
    assert!(
        r.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v >= 1),
        "{:?}",
        r.headers
    );
    // Bad input is still told apart at once (it never takes a place).
    fails(&s.post(r#"{"text": "x", "seeds": []}"#), 400, "at least one seed");
    let statuses: Vec<u16> = busy.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(statuses, [200, 200]);
    // The places came back.
    assert_eq!(s.post(body).status, 200);
}

#[test]
fn a_request_past_its_timeout_is_answered_503_and_the_worker_goes_on() {
    // One worker, a 1 s timeout; drawings of 2.5 s and of none.
    let s = Server::start(
        vec![fake("slow", Input::Caption, 2500), fake("quick", Input::Caption, 0)],
        4,
        1,
        1,
    );
    let t = Instant::now();
    let r = s.post(r#"{"model": "slow", "text": "x"}"#);
    fails(&r, 503, "timed out after 1 s");
    assert!(r.header("retry-after").is_some());
    assert!(t.elapsed() < Duration::from_millis(2300), "answered only after {:?}", t.elapsed());
    // The drawing it started goes on and holds the worker: waiting for it counts too.
    fails(&s.post(r#"{"model": "quick", "text": "x"}"#), 503, "timed out");
    // Once it has ended, the worker takes new requests.
    std::thread::sleep(Duration::from_millis(2800).saturating_sub(t.elapsed()));
    assert_eq!(s.post(r#"{"model": "quick", "text": "x"}"#).status, 200);
}

#[test]
fn shutdown_lets_the_request_in_flight_finish() {
    let s = Server::start(vec![fake("slow", Input::Caption, 1000)], 4, 1, 30);
    let addr = s.addr;
    let inflight = std::thread::spawn(move || {
        request(addr, "POST", "/api/generate", br#"{"text": "x"}"#, Duration::from_secs(30))
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    s.stop().unwrap();
    assert_eq!(inflight.join().unwrap().status, 200);
    // Stopped: nothing listens any more.
    assert!(request(addr, "GET", "/", b"", Duration::from_secs(2)).is_err());
}

#[test]
fn model_names_and_specs() {
    assert_eq!(
        parse_model("story=models/x").unwrap(),
        ("story".to_string(), PathBuf::from("models/x"))
    );
    for bad in ["../x=dir", "a/b=dir", ".hidden=dir", "=dir", "name", "sp ace=dir"] {
        assert!(parse_model(bad).is_err(), "{bad}");
    }
    assert!(parse_model("ok=").is_err());
    assert!(check_name(&"x".repeat(65)).is_err());
    assert!(check_name("story-v1.2_b").is_ok());
}
