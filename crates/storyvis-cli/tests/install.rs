//! `scripts/install`: the binary, the libtorch it links and the shipped models in a prefix, and
//! the installed `storyvis` run from another directory in a clean environment (`env -i`), as a
//! user who put PREFIX/bin on PATH runs it.

mod common;

use common::p;
use std::path::Path;
use std::process::Command;

const STORY: &str = "there is a small red rubber cube. a large blue metal sphere appears. someone adds a green cylinder. a yellow cube appears.";

#[test]
fn an_installed_binary_runs_from_anywhere_in_a_clean_environment() {
    let root = tempfile::tempdir().unwrap();
    let prefix = root.path().join("prefix");
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let o = Command::new(checkout.join("scripts/install"))
        .args(["--prefix", p(&prefix), "--binary", env!("CARGO_BIN_EXE_storyvis")])
        .output()
        .unwrap();
    assert!(o.status.success(), "install: {}", common::text(&o));
    for f in [
        "bin/storyvis",
        "lib/storyvis/libtorch_cpu.so",
        "share/storyvis/models/storygan-default/checkpoint.json",
    ] {
        assert!(prefix.join(f).is_file(), "{f} not installed");
    }

    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let path = format!("{}:/usr/bin:/bin", prefix.join("bin").display());
    let installed = |extra: &[(&str, &str)], args: &[&str]| {
        let mut c = Command::new("env");
        c.arg("-i").arg(format!("HOME={}", root.path().display())).arg(format!("PATH={path}"));
        for (k, v) in extra {
            c.arg(format!("{k}={v}"));
        }
        c.arg("OMP_NUM_THREADS=1")
            .arg("storyvis")
            .args(args)
            .current_dir(&elsewhere)
            .output()
            .unwrap()
    };
    let o = installed(&[], &["generate", "--story", STORY, "--seeds", "0", "--out", "pictures"]);
    let said = common::text(&o);
    assert!(o.status.success(), "{said}");
    assert!(elsewhere.join("pictures/seed0000.png").is_file(), "{said}");
    // It drew with the installed models, not the checkout's.
    let installed_models = prefix.join("share/storyvis/models").canonicalize().unwrap();
    assert!(said.contains(&installed_models.display().to_string()), "{said}");

    // A home that does not exist is an error that names it, whatever the command.
    let o = installed(
        &[("STORYVIS_HOME", "/no/such/dir")],
        &["generate", "--story", STORY, "--out", "x"],
    );
    let said = common::text(&o);
    assert!(!o.status.success() && said.contains("/no/such/dir"), "{said}");
    assert!(!elsewhere.join("x").exists());
}
