//! The `storyvis` binary end to end: what a user types, what they get, and the errors.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn storyvis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_storyvis")).args(args).output().expect("storyvis runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs and expects failure with `want` in the message, exit code `code`, and no panic.
fn fails(args: &[&str], code: i32, want: &str) {
    let o = storyvis(args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {t}");
    assert!(t.contains(want), "{args:?}: expected {want:?} in: {t}");
    assert!(!t.contains("panicked"), "{args:?} panicked: {t}");
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn prepare_then_show_writes_a_contact_sheet() {
    let root = tempfile::tempdir().unwrap();
    let ds = root.path().join("ds");
    let o = storyvis(&[
        "prepare",
        "clevr-sv",
        "--out",
        p(&ds),
        "--stories",
        "3",
        "--seed",
        "4",
        "--size",
        "32",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("rendered 3 CLEVR-SV stories"));
    let sheet = root.path().join("sheet.png");
    let o = storyvis(&["show", p(&ds), "--stories", "2", "--out", p(&sheet)]);
    assert!(o.status.success(), "{}", text(&o));
    let img = image::open(&sheet).unwrap();
    // Two rows of four frames, each frame scaled up to 192 px.
    assert!(img.width() >= 4 * 192 && img.height() >= 2 * 192, "{:?}", (img.width(), img.height()));
}

#[test]
fn import_via_the_cli() {
    let root = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../storyvis-data/tests/fixtures/clevr-sv-original");
    let out = root.path().join("imported");
    let o = storyvis(&["prepare", "clevr-sv", "--import", p(&src), "--out", p(&out)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("imported 3 stories"));
    assert!(out.join("manifest.jsonl").is_file());

    // The published layout with a story CLEVR_dict.npy does not label (as the authors' sample
    // has 000196): imported without it, and the skip reported; --strict makes it an error.
    let src2 = root.path().join("published");
    fs::create_dir_all(src2.join("images")).unwrap();
    fs::copy(src.join("CLEVR_dict.npy"), src2.join("CLEVR_dict.npy")).unwrap();
    for e in fs::read_dir(src.join("images")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), src2.join("images").join(e.file_name())).unwrap();
    }
    for t in 1..=4 {
        fs::copy(
            src.join(format!("images/CLEVR_new_000100_{t}.png")),
            src2.join(format!("images/CLEVR_new_000196_{t}.png")),
        )
        .unwrap();
    }
    let out2 = root.path().join("imported2");
    let o = storyvis(&["prepare", "clevr-sv", "--import", p(&src2), "--out", p(&out2)]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("imported 3 stories")
            && t.contains("skipped 1 story")
            && t.contains("000196: no entry for CLEVR_new_000196_1.png"),
        "{t}"
    );
    let strict = root.path().join("strict");
    fails(
        &["prepare", "clevr-sv", "--import", p(&src2), "--out", p(&strict), "--strict"],
        1,
        "000196",
    );
    assert!(!strict.exists());
    fails(
        &["prepare", "clevr-sv", "--stories", "2", "--out", p(&strict), "--strict"],
        1,
        "--strict applies to --import only",
    );
    assert!(!strict.exists());
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let ds = root.path().join("ds");
    let d = p(&ds);
    fails(&["prepare", "clevr-sv", "--out", d, "--stories", "0"], 1, "--stories must be between 1");
    fails(
        &["prepare", "clevr-sv", "--out", d, "--stories", "2", "--size", "4"],
        1,
        "--size must be between 16 and 1024",
    );
    fails(
        &["prepare", "clevr-sv", "--out", d, "--stories", "2", "--split", "2"],
        1,
        "--split must be a fraction",
    );
    fails(&["prepare", "clevr-sv", "--out", d], 2, "--stories");
    fails(
        &["prepare", "clevr-sv", "--out", d, "--stories", "2", "--import", "x"],
        2,
        "cannot be used with",
    );
    fails(&["prepare", "clevr-sv", "--out", d, "--stories", "many"], 2, "invalid value");
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0, "a failed prepare left files");

    fs::create_dir(&ds).unwrap();
    fs::write(ds.join("notes.txt"), "mine").unwrap();
    fails(
        &["prepare", "clevr-sv", "--out", d, "--stories", "1"],
        1,
        "exists and is not empty; pass --force",
    );
    assert_eq!(fs::read_to_string(ds.join("notes.txt")).unwrap(), "mine");

    let file = root.path().join("a-file");
    fs::write(&file, "x").unwrap();
    fails(
        &["prepare", "clevr-sv", "--out", p(&file.join("ds")), "--stories", "1"],
        1,
        &format!("{} is not a directory", file.display()),
    );

    fails(&["show", p(&root.path().join("missing")), "--out", "x.png"], 1, "does not exist");
    fails(&["show", d, "--out", p(&root.path().join("s.png"))], 1, "manifest.jsonl");
    fails(
        &[
            "prepare",
            "clevr-sv",
            "--import",
            p(&root.path().join("nope")),
            "--out",
            p(&root.path().join("o")),
        ],
        1,
        "not a directory",
    );
    fails(&["doctor", "--device", "gpu"], 1, "use cpu, cuda or cuda:N");
}

#[test]
fn doctor_reports_the_libtorch_it_loaded() {
    let o = storyvis(&["doctor"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    // The library the loader finds: the first on LD_LIBRARY_PATH that has one (how GPU machines
    // swap in their CUDA build), else what setup installed; the torch package's own version
    // file sits beside its lib folder.
    let from_env = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
    let on_path = from_env
        .split(':')
        .filter(|d| !d.is_empty())
        .map(Path::new)
        .find(|d| d.join("libtorch_cpu.so").is_file())
        .map(|d| d.join(".."));
    let torch =
        on_path.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.libtorch"));
    let py = fs::read_to_string(torch.join("version.py")).unwrap();
    let installed = py
        .lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .unwrap()
        .trim_matches(['\'', '"']);
    let release = installed.split('+').next().unwrap();
    let line = t.lines().find(|l| l.starts_with("libtorch")).unwrap();
    let (version, library) = line["libtorch".len()..].trim().split_once(" loaded from ").unwrap();
    assert_eq!(version.split('+').next().unwrap(), release, "{t}");
    let library = Path::new(library.split(" (built for").next().unwrap());
    assert_eq!(
        library.canonicalize().unwrap(),
        torch.join("lib/libtorch_cpu.so").canonicalize().unwrap(),
        "{t}"
    );
    assert!(t.contains("matmul matches"), "{t}");
}

#[test]
fn train_help_names_every_registered_preset() {
    let help = text(&storyvis(&["train", "--help"]));
    // clap may wrap the list anywhere; compare with the whitespace taken out.
    let flat: String = help.split_whitespace().collect();
    for family in storyvis_models::FAMILIES {
        for (preset, _) in family.presets {
            assert!(
                flat.contains(&format!("{preset},"))
                    || flat.contains(&format!("{preset};"))
                    || flat.contains(&format!("{preset}(")),
                "`train --help` does not name {preset}:\n{help}"
            );
        }
    }
    // The test-only toy family is not a preset users see.
    let words: Vec<&str> = help.split(|c: char| !c.is_alphanumeric() && c != '-').collect();
    assert!(!words.contains(&"toy"), "`train --help` names the toy family:\n{help}");
}
