//! Progress for long work: a bar on a terminal, plain one-line ticks otherwise (logs, CI).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Progress {
    bar: Option<ProgressBar>,
    done: AtomicU64,
    total: u64,
    what: String,
}

impl Progress {
    pub fn new(total: u64, what: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_message(what.to_string());
            b
        });
        Progress { bar, done: AtomicU64::new(0), total, what: what.to_string() }
    }

    /// One item done; thread-safe. Without a terminal, prints a line at each tenth.
    pub fn tick(&self) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        self.show(n);
    }

    /// Sets the count of items done (a resumed run starts part-way: its rate and ETA count
    /// from the first value set).
    pub fn set(&self, n: u64) {
        let first = self.done.swap(n, Ordering::Relaxed) == 0;
        self.show(n);
        if let (true, Some(b)) = (first, &self.bar) {
            b.reset_eta();
        }
    }

    fn show(&self, n: u64) {
        match &self.bar {
            Some(b) => b.set_position(n),
            None => {
                let step = self.total.div_ceil(10).max(1);
                if n % step == 0 || n == self.total {
                    eprintln!("{}: {n}/{}", self.what, self.total);
                }
            }
        }
    }

    /// A status line: the bar's message on a terminal, a printed line otherwise.
    pub fn note(&self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
