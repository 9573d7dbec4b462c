//! The load driver of `bench/serve_load`: `clients` threads each send `POST /api/generate`
//! (a four-sentence story, seeds rotating) to a server on this machine, one request at a time,
//! until `seconds` have passed or each has sent `max_per_client`. Prints one JSON line:
//! requests, answers by status, throughput, latency percentiles.
//!
//!   serve_load ADDR [--clients 50] [--seconds 60] [--max-per-client 100000]

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use storyvis_serve::client::request;

const STORIES: [&str; 3] = [
    "there is a small red rubber cube. a large blue metal sphere appears. someone adds a green cylinder. a yellow cube appears.",
    "the story begins with a large gray metal cylinder. someone adds a small purple rubber sphere. a brown cube appears. a large cyan metal sphere appears.",
    "there is a large green rubber sphere in the middle of the scene. a small red metal cube appears behind it. someone adds a blue cylinder. a gray cube appears.",
];

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args
        .get(1)
        .expect("usage: serve_load ADDR [--clients N] [--seconds S]")
        .parse()
        .expect("ADDR: 127.0.0.1:PORT");
    assert!(addr.ip().is_loopback(), "the load goes to this machine only");
    let clients = arg(&args, "--clients", 50).clamp(1, 1000);
    let seconds = arg(&args, "--seconds", 60).clamp(1, 3600);
    let max_per_client = arg(&args, "--max-per-client", 100_000);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut k = 0u64;
                while Instant::now() < deadline && k < max_per_client {
                    let body = serde_json::json!({"story": STORIES[((c + k) % 3) as usize], "seeds": [(c * 7 + k) % 4]}).to_string();
                    let t = Instant::now();
                    let status = match request(addr, "POST", "/api/generate", body.as_bytes(), Duration::from_secs(120)) {
                        Ok(r) => r.status,
                        Err(_) => 0,
                    };
                    seen.push((status, t.elapsed().as_secs_f64() * 1000.0));
                    if status == 503 {
                        // A client that is told to come back later does not hammer the server.
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    k += 1;
                }
                seen
            })
        })
        .collect();
    let all: Vec<(u16, f64)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let wall = start.elapsed().as_secs_f64();
    let mut ok: Vec<f64> = all.iter().filter(|(s, _)| *s == 200).map(|(_, ms)| *ms).collect();
    let mut busy: Vec<f64> = all.iter().filter(|(s, _)| *s == 503).map(|(_, ms)| *ms).collect();
    ok.sort_by(f64::total_cmp);
    busy.sort_by(f64::total_cmp);
    let failed = all.iter().filter(|(s, _)| *s != 200 && *s != 503).count();
    println!(
        "{}",
        serde_json::json!({
            "clients": clients,
            "seconds": wall,
            "requests": all.len(),
            "ok": ok.len(),
            "busy_503": busy.len(),
            "failed": failed,
            "share_503": busy.len() as f64 / all.len().max(1) as f64,
            "throughput_per_s": ok.len() as f64 / wall,
            "p50_ms": percentile(&ok, 0.5),
            "p99_ms": percentile(&ok, 0.99),
            "p50_503_ms": percentile(&busy, 0.5),
        })
    );
}
