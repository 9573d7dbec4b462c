//! The seams the crate graph cannot keep by itself: inside every crate of the workspace the
//! modules depend on each other without cycles (a family's folder counts as one module), the
//! core names no model family on any code line, and the sources and docs cite papers and
//! in-repository documents rather than documents outside it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

/// A line without its `//` comment (string literals holding `//` are rare enough here).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// The words `crate::…` names in `text`: `crate::a::b` and `crate::{a, b::c}` give `a` (and `b`).
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines().map(code) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().last();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // storyvis_crate::, not crate::
            }
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for part in inner.split(',') {
                    let word: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.insert(word);
                }
            } else {
                out.insert(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
            }
        }
    }
    out
}

/// Each top-level module of a crate's `src` (a file, or a folder with its files) and the other
/// top-level modules its code names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut all = Vec::new();
    files(src, "rs", &mut all);
    let module = |p: &Path| {
        let rel = p.strip_prefix(src).unwrap();
        rel.components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string()
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &all {
        let m = module(f);
        if m != "lib" && m != "main" {
            graph.entry(m).or_default();
        }
    }
    for f in &all {
        let m = module(f);
        if m == "lib" || m == "main" {
            continue;
        }
        let names = crate_paths(&std::fs::read_to_string(f).unwrap());
        let deps: BTreeSet<String> =
            names.into_iter().filter(|n| *n != m && graph.contains_key(n)).collect();
        graph.get_mut(&m).unwrap().extend(deps);
    }
    graph
}

/// The modules on a cycle, if any (depth-first search for a back edge).
fn a_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        v: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(v.to_string(), 1);
        path.push(v.to_string());
        for w in &graph[v] {
            match state.get(w.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = path.iter().position(|p| p == w).unwrap();
                    let mut cycle = path[from..].to_vec();
                    cycle.push(w.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(w, graph, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(v.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for v in graph.keys() {
        if state.get(v.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(v, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let g = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(a_cycle(&g(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    assert_eq!(a_cycle(&g(&[("a", "b"), ("b", "c"), ("c", "a")])).unwrap().len(), 4);
    let names = crate_paths(
        "use crate::x::Y;\nuse crate::{a, b::c};\nlet z = storyvis_crate::q; // crate::w",
    );
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a", "b", "x"]);
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut crates = Vec::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        crates.push(entry.unwrap().path());
    }
    assert!(crates.len() >= 7, "the workspace's crates were not found");
    for krate in crates {
        let graph = module_graph(&krate.join("src"));
        if let Some(cycle) = a_cycle(&graph) {
            panic!(
                "{}: the modules depend on each other in a cycle: {}",
                krate.display(),
                cycle.join(" → ")
            );
        }
    }
}

/// Every family's name, as its presets give it (`family = "…"`), and as a Rust path.
fn family_names() -> BTreeSet<String> {
    let mut presets = Vec::new();
    files(&root().join("presets"), "toml", &mut presets);
    files(&root().join("crates/storyvis-models/tests"), "toml", &mut presets);
    let mut names = BTreeSet::new();
    for p in presets {
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            if let Some(v) = line.trim().strip_prefix("family") {
                let name = v.trim().trim_start_matches('=').trim().trim_matches('"').to_string();
                names.insert(name.replace('-', "_"));
                names.insert(name);
            }
        }
    }
    names
}

#[test]
fn the_core_names_no_family_on_a_code_line() {
    let names = family_names();
    assert!(
        names.len() >= 6 && names.contains("storygan"),
        "the presets' families were not found: {names:?}"
    );
    let mut sources = Vec::new();
    files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), "rs", &mut sources);
    assert!(sources.len() > 20);
    for f in &sources {
        for (i, line) in std::fs::read_to_string(f).unwrap().lines().enumerate() {
            let lower = code(line).to_lowercase();
            let edge = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let names_it = |n: &String| {
                lower.match_indices(n.as_str()).any(|(at, _)| {
                    edge(lower[..at].chars().last()) && edge(lower[at + n.len()..].chars().next())
                })
            };
            if let Some(n) = names.iter().find(|n| names_it(n)) {
                panic!("{}:{} names the family {n}: {line}", f.display(), i + 1);
            }
        }
    }
}

#[test]
fn sources_and_docs_cite_no_document_outside_the_repository() {
    let r = root();
    let mut texts = Vec::new();
    files(&r.join("crates"), "rs", &mut texts);
    files(&r.join("docs"), "md", &mut texts);
    for top in ["README.md", "RESULTS.md", "BENCHMARKS.md"] {
        texts.push(r.join(top));
    }
    // Spelled in parts, so that this file does not cite it.
    let spec = ["SPEC", " §"].concat();
    for f in &texts {
        for (i, line) in std::fs::read_to_string(f).unwrap().lines().enumerate() {
            let bad = line.contains(&spec)
                || line.match_indices("issue ").any(|(at, _)| {
                    line[at + "issue ".len()..].chars().next().is_some_and(|c| c.is_ascii_digit())
                });
            assert!(
                !bad,
                "{}:{} cites a document outside the repository: {line}",
                f.display(),
                i + 1
            );
        }
    }
}
