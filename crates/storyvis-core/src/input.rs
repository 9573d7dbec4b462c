//! Typed input as every drawing command reads it: stories split into sentences and fitted to
//! a model's length, seeds, story files, and short excerpts of input for messages.

use anyhow::{ensure, Context, Result};
use std::path::Path;

/// Longest sentence accepted, in bytes.
pub const MAX_SENTENCE_BYTES: usize = 1000;
/// Longest story accepted, in bytes.
pub const MAX_STORY_BYTES: usize = 64 * 1024;
/// Most seeds one call draws.
pub const MAX_SEEDS: usize = 1000;

/// What to do when the story's sentence count differs from the model's T.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    Exact,
    /// Repeat the last sentence up to T.
    Pad,
    /// Keep the first T sentences.
    Truncate,
}

/// Splits a story into sentences at '.', '!', '?' and line breaks.
pub fn split_sentences(text: &str) -> Vec<String> {
    text.split(['.', '!', '?', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("{s}."))
        .collect()
}

/// "1 sentence", "3 sentences".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The first `chars` characters of `s`, with "…" when it was longer (for echoing input).
pub fn excerpt(s: &str, chars: usize) -> String {
    match s.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// A list of words for a message: the first 20, each shortened to 40 characters.
pub fn words(list: &[String]) -> String {
    let mut out = list.iter().take(20).map(|w| excerpt(w, 40)).collect::<Vec<_>>().join(", ");
    if list.len() > 20 {
        out += &format!(" and {} more", list.len() - 20);
    }
    out
}

/// Reads a story file of at most `MAX_STORY_BYTES` (reading one byte more at most, so that a
/// huge file or a device such as /dev/zero is refused without being read whole).
pub fn read_story_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_STORY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    ensure!(
        bytes.len() <= MAX_STORY_BYTES,
        "{} is longer than {MAX_STORY_BYTES} bytes, the most a story may be",
        path.display()
    );
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))
}

/// Parses "0-3", "7" or "1,5,9" (a seed given twice is drawn once, in first-given order).
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>> {
    let mut seeds = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let bad = || format!("bad seeds {:?}: use N, A-B or a comma list", excerpt(spec, 40));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) =
                    (a.trim().parse().with_context(bad)?, b.trim().parse().with_context(bad)?);
                ensure!(a <= b, "bad seed range {part:?}: start after end");
                ensure!(b - a < MAX_SEEDS as u64, "at most {MAX_SEEDS} seeds per call");
                seeds.extend(a..=b);
            }
            None => seeds.push(part.parse().with_context(bad)?),
        }
        ensure!(seeds.len() <= 2 * MAX_SEEDS, "at most {MAX_SEEDS} seeds per call");
    }
    let mut seen = std::collections::HashSet::new();
    seeds.retain(|s| seen.insert(*s));
    ensure!(seeds.len() <= MAX_SEEDS, "at most {MAX_SEEDS} seeds per call");
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_and_seeds() {
        assert_eq!(
            split_sentences("A red cube. a blue one!\n\nthird?  "),
            ["A red cube.", "a blue one.", "third."]
        );
        assert!(split_sentences(" ... \n").is_empty());
        assert_eq!(parse_seeds("0-3").unwrap(), [0, 1, 2, 3]);
        assert_eq!(parse_seeds("5, 9").unwrap(), [5, 9]);
        assert!(parse_seeds("3-1").is_err());
        assert!(parse_seeds("x").is_err());
        assert!(parse_seeds("0-100000").is_err());
        // Each seed is one file: a repeated seed is drawn once.
        assert_eq!(parse_seeds("1,1,0-2,1").unwrap(), [1, 0, 2]);
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("ab", 3), "ab");
        assert_eq!(excerpt("ééé", 2), "éé…");
        let many: Vec<String> = (0..25).map(|i| format!("w{i}")).collect();
        assert!(words(&many).ends_with("w19 and 5 more"), "{}", words(&many));
        let e = parse_seeds(&"x".repeat(500)).unwrap_err().to_string();
        assert!(e.len() < 120, "{e}");
    }
}
