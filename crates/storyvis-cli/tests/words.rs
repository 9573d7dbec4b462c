//! The user's words and the defaults, through the binary: `storyvis words`, unknown words named
//! with the nearest known word (one policy for every family), `eval` without `--checkpoint`,
//! `--threads`, config errors in the words the user wrote, and help for every option.

mod common;

use common::{fails, ok, p, small_data, storyvis, text};

#[test]
fn words_lists_the_shipped_vocabulary_by_group() {
    let said = ok(&["words"]);
    for line in
        ["shapes     cube, cylinder, sphere", "sizes      large, small", "materials  metal, rubber"]
    {
        assert!(said.contains(line), "{line:?} not in:\n{said}");
    }
    assert!(said.contains("relations") && said.contains("behind"), "{said}");
    assert!(said.contains("any other word is read as unknown"), "{said}");
}

#[test]
fn an_unknown_word_is_named_with_the_nearest_known_one() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let story = "there is a big red cube. a blue sphere appears. someone adds a green cylinder. a yellow cube appears.";
    let said = ok(&["generate", "--story", story, "--seeds", "0", "--out", p(&out)]);
    // MiniLM (scripts/setup fetches it) knows that "big" is near "large".
    assert!(said.contains("warning: unknown word \"big\" (did you mean \"large\"?)"), "{said}");
    assert!(out.join("seed0000.png").is_file());
    fails(
        &["generate", "--story", story, "--strict-vocab", "--out", p(&out)],
        "unknown word \"big\" (did you mean \"large\"?)",
    );
}

#[test]
fn eval_without_a_checkpoint_scores_the_shipped_model_for_the_data() {
    let root = tempfile::tempdir().unwrap();
    let data = small_data(root.path(), 20);
    let out = root.path().join("eval");
    let said = ok(&["eval", "--data", p(&data), "--stories", "2", "--out", p(&out)]);
    assert!(said.contains("evaluating the shipped model models/storygan-default"), "{said}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    assert_eq!(report["models"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["models"][0]["step"], 7000, "{report}");
}

#[test]
fn threads_limit_the_cpu_threads_of_any_command() {
    let said = ok(&["--threads", "1", "doctor"]);
    assert!(said.contains("cpu threads  1"), "{said}");
    let said = ok(&["doctor", "--threads", "2"]);
    assert!(said.contains("cpu threads  2"), "{said}");
    fails(&["--threads", "0", "doctor"], "--threads must be 1..1024, got 0");
}

#[test]
fn a_bad_config_value_is_named_as_the_user_wrote_it() {
    let bad = |set: &str, want: &str| {
        fails(&["train", "--preset", "storygan-tiny", "--dry-run", "--set", set], want);
        let o = storyvis(&["train", "--preset", "storygan-tiny", "--dry-run", "--set", set]);
        assert!(!text(&o).contains("TOML parse error"), "{}", text(&o));
    };
    bad("max_steps=-3", "--set max_steps=-3: max_steps takes a whole number, 0 or more");
    bad("lr_g=fast", "--set lr_g=fast: lr_g takes a number");
    bad("model.variant=huge", "--set model.variant=huge: variant takes one of `storygan`");
}

#[test]
fn every_option_of_every_command_has_help_and_inputs_read_as_alternatives() {
    let top = text(&storyvis(&["--help"]));
    let commands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() > 12, "{top}");
    let mut pages = Vec::new();
    for c in &commands {
        let help = text(&storyvis(&[c, "-h"]));
        if help.contains("Commands:") {
            // prepare: its datasets.
            for sub in
                help.split("Commands:").nth(1).unwrap().split("Options:").next().unwrap().lines()
            {
                if let Some(s) = sub.split_whitespace().next().filter(|s| *s != "help") {
                    pages.push((format!("{c} {s}"), text(&storyvis(&[c, s, "-h"]))));
                }
            }
        }
        pages.push((c.clone(), help));
    }
    for (name, help) in &pages {
        for line in help.split("Options:").nth(1).unwrap_or("").lines() {
            let l = line.trim_start();
            if !l.starts_with('-') {
                continue;
            }
            // "--out <OUT>  Where … [default: out]": the flag, its value name, its help, then
            // clap's own notes in brackets (which are not help).
            let mut plain = String::new();
            let mut depth = 0;
            for ch in l.chars() {
                match ch {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    c if depth == 0 => plain.push(c),
                    _ => {}
                }
            }
            let words: Vec<&str> = plain.split_whitespace().collect();
            let described = words
                .iter()
                .skip(1)
                .any(|w| !w.starts_with('<') && !w.starts_with('-') && !w.ends_with(','));
            assert!(described, "`storyvis {name}`: {l:?} has no help text");
        }
    }
    let generate = text(&storyvis(&["generate", "-h"]));
    assert!(
        generate.contains("<--story <STORY>|--story-file <STORY_FILE>|--text <TEXT>>"),
        "{generate}"
    );
    let prepare = text(&storyvis(&["prepare", "clevr-sv", "-h"]));
    assert!(prepare.contains("<--stories <STORIES>|--import <DIR>>"), "{prepare}");
}
