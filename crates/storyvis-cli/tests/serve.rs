//! `storyvis serve` with real models: every family that draws from text served at once
//! through the registry, each drawing byte-for-byte what `generate` draws; bad input with real
//! models; Ctrl-C; and a real browser (headless Chromium, over the DevTools protocol) that
//! types a story into the page, presses Draw and waits for the frames.

mod common;
use base64::Engine;
use common::{fails, ok, p, trained, write_mnist};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storyvis_serve::client::{request, Reply};

/// A `storyvis serve` process on a free loopback port.
struct Serving {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Serving {
    fn start(args: &[&str]) -> Serving {
        let mut child = Command::new(env!("CARGO_BIN_EXE_storyvis"))
            .args(["serve", "--port", "0"])
            .args(args)
            .env("OMP_NUM_THREADS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("storyvis runs");
        let log = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("no address in {line:?}: {}", log.lock().unwrap()))
            .parse()
            .unwrap();
        Serving { child, addr, log }
    }

    fn post(&self, body: &Value) -> Reply {
        request(
            self.addr,
            "POST",
            "/api/generate",
            body.to_string().as_bytes(),
            Duration::from_secs(120),
        )
        .unwrap()
    }

    fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, b"", Duration::from_secs(30)).unwrap()
    }

    /// Ctrl-C; the exit status and everything it logged.
    fn interrupt(mut self) -> (bool, String) {
        Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "the server did not stop on Ctrl-C");
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log.lock().unwrap().clone();
        (status.success(), log)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pictures(r: &Reply) -> Vec<(String, Vec<u8>)> {
    assert_eq!(r.status, 200, "{}", r.error());
    let b64 = base64::engine::general_purpose::STANDARD;
    r.json()["pictures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                b64.decode(p["base64"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// The served pictures are the files `generate` writes for the same input and seeds.
fn same_as_generate(served: &[(String, Vec<u8>)], args: &[&str], out: &Path) {
    ok(&[&["generate", "--seeds", "0-1", "--out", p(out)], args].concat());
    for (name, bytes) in served {
        let written =
            std::fs::read(out.join(name)).unwrap_or_else(|_| panic!("generate wrote no {name}"));
        assert!(
            &written == bytes,
            "{name} differs from generate {args:?} ({} and {} bytes)",
            bytes.len(),
            written.len()
        );
    }
}

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/storygan-default")
}

const STORY: &str = "there is a small red rubber cube. a large blue metal sphere appears. someone adds a green cylinder. a yellow cube appears.";

#[test]
fn every_family_is_served_through_the_registry_and_draws_what_generate_draws() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    // A story model, a caption model (with its text encoder) and a video model, a few
    // iterations each.
    let (_, story_run) = trained(r);
    let captions = r.join("captions");
    ok(&[
        "prepare",
        "clevr-captions",
        "--out",
        p(&captions),
        "--images",
        "16",
        "--supersample",
        "1",
        "--split",
        "0.75",
    ]);
    let enc = r.join("enc");
    ok(&[
        "train-text-encoder",
        "--data",
        p(&captions),
        "--out",
        p(&enc),
        "--encoder",
        "word",
        "--dim",
        "16",
        "--steps",
        "3",
        "--batch",
        "4",
    ]);
    let te = format!("text_encoder={:?}", p(&enc));
    let runs = r.join("runs-t2i");
    ok(&[
        "train",
        "--preset",
        "gan-int-cls-tiny",
        "--data",
        p(&captions),
        "--runs",
        p(&runs),
        "--set",
        &te,
        "--set",
        "max_steps=2",
        "--set",
        "batch=4",
    ]);
    let caption_run = runs.join("00000-gan-int-cls-tiny");
    for preset in ["stackgan-tiny", "sdgan-tiny"] {
        ok(&[
            "train",
            "--preset",
            preset,
            "--data",
            p(&captions),
            "--runs",
            p(&runs),
            "--set",
            &te,
            "--set",
            "max_steps=2",
            "--set",
            "batch=4",
        ]);
    }
    let (stackgan_run, sdgan_run) =
        (runs.join("00001-stackgan-tiny"), runs.join("00002-sdgan-tiny"));
    let mnist = r.join("mnist");
    write_mnist(&mnist, 20);
    let clips = r.join("bm");
    ok(&[
        "prepare",
        "bouncing-mnist",
        "--mnist",
        p(&mnist),
        "--clips",
        "16",
        "--out",
        p(&clips),
        "--split",
        "0.75",
    ]);
    let runs = r.join("runs-video");
    ok(&[
        "train",
        "--preset",
        "tganc-tiny",
        "--data",
        p(&clips),
        "--runs",
        p(&runs),
        "--set",
        "max_steps=2",
    ]);
    let video_run = runs.join("00000-tganc-tiny");

    // Bad models are refused at start, naming the model.
    let classifier = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/clevr-classifier");
    fails(&["serve", "--port", "0", "--model", &format!("clf={}", p(&classifier))], "model clf");
    fails(&["serve", "--port", "0", "--model", &format!("x={}", p(&r.join("none")))], "model x");
    fails(
        &["serve", "--port", "0", "--model", &format!("../x={}", p(&story_run))],
        "model name \"../x\"",
    );
    fails(
        &[
            "serve",
            "--port",
            "0",
            "--model",
            &format!("a={}", p(&story_run)),
            "--model",
            &format!("a={}", p(&video_run)),
        ],
        "given twice",
    );
    fails(
        &["serve", "--port", "0", "--queue", "0", "--model", &format!("a={}", p(&story_run))],
        "--queue must be",
    );

    let s = Serving::start(&[
        "--model",
        &format!("story={}", p(&story_run)),
        "--model",
        &format!("caption={}", p(&caption_run)),
        "--model",
        &format!("video={}", p(&video_run)),
        "--model",
        &format!("shipped={}", p(&shipped())),
        "--model",
        &format!("stackgan={}", p(&stackgan_run)),
        "--model",
        &format!("sdgan={}", p(&sdgan_run)),
    ]);
    let list = s.get("/api/models").json();
    let kinds: Vec<(&str, &str)> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["family"].as_str().unwrap(), m["input"]["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("storygan", "story"),
            ("gan-int-cls", "caption"),
            ("tganc", "video"),
            ("storygan", "story"),
            ("stackgan", "caption"),
            ("sdgan", "caption")
        ]
    );
    // Example prompts in each model's own words (the shipped model's are CLEVR-SV stories).
    for m in list["models"].as_array().unwrap() {
        assert!(!m["examples"].as_array().unwrap().is_empty(), "{m}");
    }

    let out = r.join("generated");
    let story = pictures(&s.post(&json!({"model": "story", "story": STORY, "seeds": [0, 1]})));
    assert_eq!(
        story.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["seed0000.png", "seed0001.png"]
    );
    same_as_generate(
        &story,
        &["--checkpoint", p(&story_run), "--story", STORY],
        &out.join("story"),
    );
    let image = pictures(
        &s.post(&json!({"model": "caption", "text": "a large red metal cube.", "seeds": [0, 1]})),
    );
    assert_eq!(
        image.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["seed0000.png", "seed0001.png", "row.png"]
    );
    same_as_generate(
        &image,
        &["--checkpoint", p(&caption_run), "--text", "a large red metal cube."],
        &out.join("image"),
    );
    for (name, run) in [("stackgan", &stackgan_run), ("sdgan", &sdgan_run)] {
        let image = pictures(
            &s.post(&json!({"model": name, "text": "a large red metal cube.", "seeds": [0, 1]})),
        );
        assert_eq!(image.len(), 3, "{name}");
        same_as_generate(
            &image,
            &["--checkpoint", p(run), "--text", "a large red metal cube."],
            &out.join(name),
        );
    }
    // A video caption the model was trained on: its first example.
    let caption = list["models"][2]["examples"][0].as_str().unwrap().to_string();
    let clip = s.post(&json!({"model": "video", "text": caption, "seeds": [0, 1]}));
    assert_eq!(clip.json()["pictures"][0]["mime"], "image/gif", "{}", clip.error());
    same_as_generate(
        &pictures(&clip),
        &["--checkpoint", p(&video_run), "--text", &caption],
        &out.join("video"),
    );
    // The shipped model draws what `generate` draws without --checkpoint.
    let shipped_story =
        pictures(&s.post(&json!({"model": "shipped", "story": STORY, "seeds": [0, 1]})));
    same_as_generate(&shipped_story, &["--story", STORY], &out.join("shipped"));
    assert_eq!(
        s.post(&json!({"story": STORY})).json()["model"],
        "story",
        "the first story model is the default"
    );

    // Input the models cannot read, reported as the CLI reports it.
    let v = s.post(&json!({"model": "shipped", "story": "a zebra cube. a red cube appears. a blue cube appears. a cube.", "seeds": [0]})).json();
    assert_eq!(v["unknown"], json!(["zebra"]));
    assert!(v["suggestions"].is_object(), "{v}");
    let r400 = s.post(&json!({"model": "shipped", "story": "a red cube. two. three."}));
    assert_eq!((r400.status, r400.error().as_str()), (400, "the story has 3 sentences; this model draws 4 (send \"fit\": \"pad\" to repeat the last sentence)"));
    assert_eq!(s.post(&json!({"model": "shipped", "story": "a red cube. a blue cube appears. a cube.", "fit": "pad"})).status, 200);
    let long = format!("{}. b. c. d.", "a".repeat(10_000));
    let r400 = s.post(&json!({"model": "shipped", "story": long}));
    assert_eq!(r400.status, 400);
    assert!(r400.error().contains("sentence 1 is 10000 bytes long"), "{}", r400.error());
    // A word the video model never saw is read as unknown, as every family reads one.
    let v = s.post(
        &json!({"model": "video", "text": caption.replace("moving", "dancing"), "seeds": [0]}),
    );
    assert_eq!(v.status, 200);
    assert_eq!(v.json()["unknown"], json!(["dancing"]));
    let r400 = s.post(&json!({"model": "caption", "text": ""}));
    assert_eq!((r400.status, r400.error().as_str()), (400, "the caption is empty"));

    // Ctrl-C stops it cleanly; each request left a log line.
    let (clean, log) = s.interrupt();
    assert!(clean, "{log}");
    assert!(
        log.contains("stopping")
            && log.contains("POST /api/generate 200")
            && log.contains("POST /api/generate 400")
            && log.contains("GET /api/models 200"),
        "{log}"
    );
}

/// Chromium from Debian (`scripts/test` installs it when missing), or `STORYVIS_CHROMIUM`.
/// A Pororo-SV story model (trained on the importer's fixture) served: a typed five-sentence
/// story with the characters' names draws what `generate` draws.
#[test]
fn a_pororo_model_draws_a_typed_story_with_character_names() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../storyvis-data/tests/fixtures/pororo-sv");
    let data = r.join("pororo");
    ok(&["prepare", "pororo-sv", "--import", p(&fixture), "--out", p(&data)]);
    let runs = r.join("runs");
    ok(&["train", "--preset", "storygan-pororo-tiny", "--data", p(&data), "--runs", p(&runs)]);
    let run = runs.join("00000-storygan-pororo-tiny");
    let s = Serving::start(&["--model", &format!("pororo={}", p(&run))]);
    let story = "Pororo is in the snow with Eddy. Loopy is in the snow. Crong is in the snow with \
                 Poby. Petty is in the snow with Harry. Rody is in the snow.";
    let served = pictures(&s.post(&json!({"model": "pororo", "story": story, "seeds": [0, 1]})));
    assert_eq!(served.len(), 2);
    same_as_generate(&served, &["--checkpoint", p(&run), "--story", story], &r.join("generated"));
    // Four sentences for a five-frame model: a clear error, not a picture.
    let four = s.post(&json!({"model": "pororo", "story": "Pororo is in the snow. Loopy is in the snow. Eddy is in the snow. Poby is in the snow."}));
    assert_eq!(four.status, 400, "{}", four.error());
}

/// With no --model, every shipped model is served, one per family, and each draws its own
/// example input as `generate --model` draws it.
#[test]
fn with_no_model_the_shipped_model_of_every_family_is_served_and_draws() {
    let root = tempfile::tempdir().unwrap();
    let s = Serving::start(&[]);
    let list = s.get("/api/models").json();
    let models = list["models"].as_array().unwrap();
    let named: Vec<(&str, &str, &str)> = models
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["family"].as_str().unwrap(),
                m["input"]["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            ("storygan-default", "storygan", "story"),
            ("gan-int-cls-default", "gan-int-cls", "caption"),
            ("stackgan-default", "stackgan", "caption"),
            ("sdgan-default", "sdgan", "caption"),
            ("tganc-fast", "tganc", "video"),
        ]
    );
    assert_eq!(list["models"][0]["default"], true);
    for m in models {
        let (name, kind) = (m["name"].as_str().unwrap(), m["input"]["kind"].as_str().unwrap());
        let example = m["examples"][0].as_str().unwrap_or_else(|| panic!("{name}: no example"));
        let key = if kind == "story" { "story" } else { "text" };
        let served = pictures(&s.post(&json!({"model": name, key: example, "seeds": [0, 1]})));
        let flag = format!("--{key}");
        same_as_generate(&served, &["--model", name, &flag, example], &root.path().join(name));
    }
}

fn chromium() -> PathBuf {
    if let Ok(c) = std::env::var("STORYVIS_CHROMIUM") {
        return PathBuf::from(c);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(o) = Command::new("which").arg(name).output() {
            if o.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            }
        }
    }
    panic!("no Chromium found: scripts/test installs Debian's chromium (apt-get install chromium), or set STORYVIS_CHROMIUM");
}

/// A DevTools-protocol session with one page of a headless Chromium.
struct Browser {
    child: Child,
    ws: tungstenite::WebSocket<std::net::TcpStream>,
    session: String,
    next: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        // Chromium writes its port and the browser's endpoint here once it listens.
        let port_file = profile.path().join("DevToolsActivePort");
        let start = Instant::now();
        let (port, path) = loop {
            if let Ok(t) = std::fs::read_to_string(&port_file) {
                let lines: Vec<&str> = t.lines().collect();
                if lines.len() >= 2 {
                    break (lines[0].to_string(), lines[1].to_string());
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "Chromium did not open its DevTools port"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream).unwrap();
        let mut b = Browser { child, ws, session: String::new(), next: 0, _profile: profile };
        let target =
            b.call("Target.createTarget", json!({"url": "about:blank"}))["targetId"].clone();
        b.session = b.call("Target.attachToTarget", json!({"targetId": target, "flatten": true}))
            ["sessionId"]
            .as_str()
            .unwrap()
            .to_string();
        b
    }

    /// Sends a command (to the page once attached) and waits for its answer.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let mut msg = json!({"id": self.next, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(tungstenite::Message::text(msg.to_string())).unwrap();
        loop {
            let m = self.ws.read().unwrap();
            let Ok(v) = serde_json::from_str::<Value>(m.to_text().unwrap_or("")) else { continue };
            if v["id"] == json!(self.next) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates JavaScript in the page; its value.
    fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{js}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until `js` is true.
    fn wait_for(&mut self, js: &str, secs: u64) {
        let start = Instant::now();
        while self.eval(js) != json!(true) {
            assert!(start.elapsed() < Duration::from_secs(secs), "waited {secs} s for {js}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Focuses an element and types text into it as a keyboard would (replacing its value).
    fn type_into(&mut self, selector: &str, text: &str) {
        self.eval(&format!("(() => {{ const e = document.querySelector({selector:?}); e.focus(); e.select(); return true; }})()"));
        self.call("Input.insertText", json!({"text": text}));
    }

    /// A mouse click in the middle of an element.
    fn click(&mut self, selector: &str) {
        let r = self.eval(&format!(
            "(() => {{ const b = document.querySelector({selector:?}).getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; }})()"
        ));
        let (x, y) = (r[0].as_f64().unwrap(), r[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the screenshot goes: `STORYVIS_SCREENSHOT` (docs/serve/page.png is made so), else
/// the test's temporary directory.
fn screenshot_path(tmp: &Path) -> PathBuf {
    std::env::var_os("STORYVIS_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.join("page.png"))
}

#[test]
fn a_browser_types_a_story_into_the_page_and_sees_it_drawn() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Serving::start(&[]);
    let mut b = Browser::start();
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1000, "height": 820, "deviceScaleFactor": 1, "mobile": false}),
    );
    b.call("Page.navigate", json!({"url": format!("http://{}/", s.addr)}));
    b.wait_for("document.body && document.body.dataset.ready === '1'", 60);
    assert_eq!(b.eval("document.querySelector('#model').value"), "storygan-default");
    assert_eq!(b.eval("document.querySelectorAll('#sentences input').length"), 4);
    // A paragraph typed into the first field is split into the four.
    b.type_into("[data-sentence='0']", STORY);
    let fields =
        b.eval("Array.from(document.querySelectorAll('#sentences input')).map((e) => e.value)");
    assert_eq!(
        fields,
        json!([
            "there is a small red rubber cube.",
            "a large blue metal sphere appears.",
            "someone adds a green cylinder.",
            "a yellow cube appears."
        ])
    );
    b.type_into("#seeds", "0-2");
    b.click("#draw");
    b.wait_for("document.querySelectorAll('#results img').length === 3 && Array.from(document.querySelectorAll('#results img')).every((i) => i.complete && i.naturalWidth > 0)", 120);
    assert_eq!(b.eval("document.querySelector('#message').textContent"), "");
    // The whole page in one picture.
    let height = b.eval("document.documentElement.scrollHeight").as_i64().unwrap().min(2400);
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1000, "height": height, "deviceScaleFactor": 1, "mobile": false}),
    );
    let shot = b.call("Page.captureScreenshot", json!({"format": "png"}));
    let png =
        base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
    let path = screenshot_path(tmp.path());
    std::fs::write(&path, &png).unwrap();
    // Not blank: the page and three story strips, in many colours.
    let img = image::load_from_memory(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (1000, height as u32));
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 500, "only {} colours in {}", colours.len(), path.display());
    // The strips are the server's pictures, as drawn for seed 0.
    let seed0 = b.eval("document.querySelector('#results img').src");
    let served = pictures(&s.post(&json!({"story": STORY, "seeds": [0]})));
    assert_eq!(
        seed0.as_str().unwrap(),
        format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&served[0].1)
        )
    );

    // Unknown words and too-long input are shown inline, as the CLI words them.
    b.type_into("[data-sentence='3']", "a zebra appears.");
    b.click("#draw");
    b.wait_for("document.querySelector('#message').textContent.includes('unknown word')", 60);
    let shown = b.eval("document.querySelector('#message').textContent");
    let shown = shown.as_str().unwrap();
    assert!(
        shown.starts_with("unknown word \"zebra\"") && shown.ends_with("read as unknown"),
        "{shown}"
    );
    b.type_into("[data-sentence='3']", &"x".repeat(1200));
    b.click("#draw");
    b.wait_for(
        "document.querySelector('#message').textContent.includes('sentence 4 is 1200 bytes long')",
        60,
    );
    b.type_into("#seeds", "0-20");
    b.click("#draw");
    b.wait_for("document.querySelector('#message').textContent.includes('at most 8 seeds')", 10);

    // A caption model and a video model, chosen in the page: one image, one animated GIF.
    for (model, text, mime) in [
        ("stackgan-default", "a large red metal cube.", "image/png"),
        ("tganc-fast", "digit 3 is moving up and down", "image/gif"),
    ] {
        b.eval(&format!("(() => {{ const s = document.querySelector('#model'); s.value = {model:?}; s.dispatchEvent(new Event('change')); return true; }})()"));
        assert_eq!(b.eval("document.querySelector('#text-input').hidden"), false);
        b.type_into("#text", text);
        b.type_into("#seeds", "0");
        // The last drawing's pictures cleared, so that only this one's can be waited for.
        b.eval("(() => { document.querySelector('#results').textContent = ''; return true; })()");
        b.click("#draw");
        b.wait_for(&format!("Array.from(document.querySelectorAll('#results img')).some((i) => i.src.startsWith('data:{mime}') && i.complete && i.naturalWidth > 0)"), 120);
        assert_eq!(b.eval("document.querySelector('#message').textContent"), "", "{model}");
    }
}
