//! Configs of storyvis' families: every preset resolves and round-trips, keys are found in their
//! sections, old flat configs read as sectioned ones, user files and resumes.

use storyvis_core::config::Config;
use storyvis_core::registry;

#[test]
fn presets_resolve_and_round_trip() {
    storyvis_models::install();
    for (name, _) in registry::presets() {
        let c = Config::resolve(name, None, &[]).unwrap();
        assert_eq!(c.preset, name);
        let back: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
    }
}

#[test]
fn keys_are_found_in_their_sections() {
    storyvis_models::install();
    let c = Config::resolve(
        "storygan-tiny",
        None,
        &[
            "variant=svc".into(),
            "model.lr_g = 0.001".into(),
            "run.seed=7".into(),
            "max_steps=3".into(),
        ],
    )
    .unwrap();
    assert_eq!(
        (c.model["variant"].as_str(), c.model["lr_g"].as_float(), c.run.seed, c.run.max_steps),
        (Some("svc"), Some(0.001), 7, 3)
    );
    let err = |sets: &[&str]| {
        let s: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        format!("{:#}", Config::resolve("storygan-tiny", None, &s).unwrap_err())
    };
    assert!(err(&["colour=red"]).contains("unknown config key \"colour\""));
    assert!(err(&["run.variant=svc"]).contains("unknown config key \"run.variant\""));
    assert!(err(&["family=toy"]).contains("the family comes with the preset"));
    assert!(err(&["preset=toy"]).contains("chosen with --preset"));
    assert!(err(&["log_every=0"]).contains("log_every = 0 is out of range"));
    assert!(err(&["nonfinite=ignore"]).contains("takes one of"));
    assert!(
        format!("{:#}", Config::resolve("nope", None, &[]).unwrap_err()).contains("storygan-tiny")
    );
}

#[test]
fn a_flat_config_of_before_the_sections_reads_as_the_same_config() {
    storyvis_models::install();
    let c = Config::resolve("storygan-tiny", None, &["seed=5".into()]).unwrap();
    let mut flat = toml::Table::new();
    flat.insert("preset".into(), c.preset.clone().into());
    let run: toml::Table = toml::to_string(&c.run).unwrap().parse().unwrap();
    flat.extend(run);
    flat.extend(c.model.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, toml::to_string(&flat).unwrap()).unwrap();
    assert_eq!(Config::load(&path).unwrap(), c);
}

#[test]
fn a_user_file_may_use_sections_or_bare_keys_and_a_resume_changes_only_run_length_and_reporting() {
    storyvis_models::install();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("mine.toml");
    std::fs::write(&f, "seed = 9\n[model]\nlr_d = 0.0003\n").unwrap();
    let c = Config::resolve("storygan-tiny", Some(&f), &[]).unwrap();
    assert_eq!((c.run.seed, c.model["lr_d"].as_float()), (9, Some(0.0003)));
    std::fs::write(&f, "[model]\nshape = 1\n").unwrap();
    assert!(format!("{:#}", Config::resolve("storygan-tiny", Some(&f), &[]).unwrap_err())
        .contains("unknown config key \"model.shape\""));
    let r = c.resumed_with(&["max_steps=9".into(), "run.log_every=2".into()]).unwrap();
    assert_eq!((r.run.max_steps, r.run.log_every), (9, 2));
    assert!(format!("{:#}", c.resumed_with(&["lr_g=0.1".into()]).unwrap_err())
        .contains("a resumed run keeps its config"));
    assert!(format!("{:#}", c.resumed_with(&["seed=1".into()]).unwrap_err())
        .contains("a resumed run keeps its config"));
}
