//! Words a model does not know: the nearest word it knows, as a suggestion
//! (`unknown word "big" (did you mean "large"?)`). By the similarity of all-MiniLM-L6-v2's
//! embeddings where its files are on this machine (scripts/setup fetches them), which knows
//! that "big" is near "large" and "ball" near "sphere"; else by edit distance, which catches
//! typos ("sphre").

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// Levenshtein distance between two words (by characters).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb)).min(up + 1).min(row[j] + 1);
            diagonal = up;
        }
    }
    row[b.len()]
}

/// The known word nearest `word` by edit distance, if one is within a third of its length
/// (at least 1): a typo's correction, not a guess.
pub fn nearest_by_spelling(word: &str, known: &[String]) -> Option<String> {
    let limit = (word.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(word, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

/// A suggestion for each of `unknown` among `known` (words without one are left out): by
/// MiniLM similarity where MiniLM is on this machine, else by spelling.
pub fn suggestions(unknown: &[String], known: &[String]) -> BTreeMap<String, String> {
    if unknown.is_empty() || known.is_empty() {
        return BTreeMap::new();
    }
    match by_meaning(unknown, known) {
        Some(s) => s,
        None => unknown
            .iter()
            .filter_map(|w| Some((w.clone(), nearest_by_spelling(w, known)?)))
            .collect(),
    }
}

/// Each unknown word's most similar known word by MiniLM's embeddings (cosine), where the
/// model loads.
fn by_meaning(unknown: &[String], known: &[String]) -> Option<BTreeMap<String, String>> {
    // Loaded once per process (the server suggests on every request with unknown words).
    static MINILM: OnceLock<Option<Mutex<crate::minilm::MiniLm>>> = OnceLock::new();
    let model = MINILM
        .get_or_init(|| crate::minilm::MiniLm::load_default(tch::Device::Cpu).ok().map(Mutex::new))
        .as_ref()?
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let embed = |words: &[String]| {
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        model.embed(&refs).ok()
    };
    let (u, k) = (embed(unknown)?, embed(known)?);
    // Unit-length rows: the dot product is the cosine.
    let best = u.matmul(&k.tr()).argmax(1, false);
    let best: Vec<i64> = Vec::try_from(best).ok()?;
    Some(unknown.iter().cloned().zip(best.into_iter().map(|i| known[i as usize].clone())).collect())
}

/// `unknown word "big" (did you mean "large"?), unknown word "zorb"`: for messages.
pub fn describe(unknown: &[String], suggestions: &BTreeMap<String, String>) -> String {
    unknown
        .iter()
        .take(20)
        .map(|w| match suggestions.get(w) {
            Some(s) => {
                format!("unknown word {:?} (did you mean {s:?}?)", crate::input::excerpt(w, 40))
            }
            None => format!("unknown word {:?}", crate::input::excerpt(w, 40)),
        })
        .collect::<Vec<_>>()
        .join(", ")
        + &if unknown.len() > 20 {
            format!(" and {} more", unknown.len() - 20)
        } else {
            String::new()
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_is_levenshtein() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("sphere", "sphere"), 0);
        assert_eq!(edit_distance("sphre", "sphere"), 1);
        let known: Vec<String> = ["cube", "sphere", "cylinder", "red"].map(String::from).to_vec();
        assert_eq!(nearest_by_spelling("sphre", &known).as_deref(), Some("sphere"));
        assert_eq!(nearest_by_spelling("cubes", &known).as_deref(), Some("cube"));
        // Nothing near: no guess.
        assert_eq!(nearest_by_spelling("zebra", &known), None);
    }

    #[test]
    fn a_message_names_each_word_and_its_suggestion() {
        let s: BTreeMap<String, String> = [("big".to_string(), "large".to_string())].into();
        assert_eq!(
            describe(&["big".into(), "zorb".into()], &s),
            "unknown word \"big\" (did you mean \"large\"?), unknown word \"zorb\""
        );
    }

    #[test]
    fn minilm_suggests_by_meaning_where_it_is_on_the_machine() {
        let Ok(_) = crate::minilm::MiniLm::load_default(tch::Device::Cpu) else {
            eprintln!("MiniLM is not on this machine (scripts/setup fetches it): by spelling only");
            return;
        };
        let known: Vec<String> = [
            "large", "small", "cube", "sphere", "cylinder", "rubber", "metal", "red", "blue",
            "left", "behind",
        ]
        .map(String::from)
        .to_vec();
        let got = suggestions(
            &["big".into(), "tiny".into(), "ball".into(), "block".into(), "shiny".into()],
            &known,
        );
        assert_eq!(got["big"], "large", "{got:?}");
        assert_eq!(got["tiny"], "small", "{got:?}");
        assert_eq!(got["ball"], "sphere", "{got:?}");
        eprintln!("{got:?}");
    }
}
