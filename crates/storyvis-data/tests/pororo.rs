//! The Pororo-SV importer on a fixture in the published archive's layout
//! (`scripts/make_pororo_fixture.py`: Python 2 style and protocol 3 and 4 pickles, bytes and
//! str paths, one with the archive's folder prefix): the published splits, five-frame
//! stories, the nine labels, the descriptions, the square cut from each strip, the skip report
//! and every error.

use std::path::{Path, PathBuf};
use storyvis_data::dataset::{Dataset, Split};
use storyvis_data::pororo::{import, Cut, Description, ImportOptions, CHARACTERS, KIND};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn opts(description: Description, cut: Cut) -> ImportOptions {
    ImportOptions { size: 16, description, cut, seed: 7, strict: false }
}

/// A copy of the fixture to break, with `file` replaced by `variant` (from
/// pororo-sv-variants) when given.
fn copy_with(root: &Path, replace: Option<(&str, &str)>) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let dst = root.join("src");
    copy(&fixtures().join("pororo-sv"), &dst);
    if let Some((file, variant)) = replace {
        std::fs::copy(fixtures().join("pororo-sv-variants").join(variant), dst.join(file)).unwrap();
    }
    dst
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("pororo-sv/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_published_layout_imports_with_its_splits_labels_descriptions_and_squares() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("d");
    let report = import(
        &fixtures().join("pororo-sv"),
        &out,
        false,
        &opts(Description::All, Cut::Middle),
        &|| {},
    )
    .unwrap();
    assert_eq!((report.imported, report.skipped.len()), (8, 0));
    let ds = Dataset::open(&out).unwrap();
    assert_eq!(ds.header.kind, KIND);
    assert_eq!(ds.header.frames_per_story, 5);
    assert_eq!(ds.header.image_size, 16);
    assert_eq!(ds.header.label_names[0], "character:Pororo");
    assert_eq!(ds.header.label_names.len(), CHARACTERS.len());
    let count = |s| ds.split(s).count();
    assert_eq!((count(Split::Train), count(Split::Val), count(Split::Test)), (4, 1, 3));
    let want = expected();
    for story in &ds.stories {
        let w = &want[&story.id];
        assert_eq!(w["split"].as_str().unwrap(), format!("{:?}", story.split).to_lowercase());
        for (t, f) in story.frames.iter().enumerate() {
            let labels: Vec<u8> = serde_json::from_value(w["labels"][t].clone()).unwrap();
            assert_eq!(f.label, labels, "story {} frame {t}", story.id);
            assert_eq!(f.vector, labels.iter().map(|&x| x as f32).collect::<Vec<_>>());
            let descs: Vec<String> = serde_json::from_value(w["descriptions"][t].clone()).unwrap();
            assert_eq!(f.sentence, descs[0]);
            // --description all keeps every description of a frame that has several.
            assert_eq!(f.captions, if descs.len() > 1 { descs.clone() } else { vec![] });
            // The middle of the three squares, resized 16 → 16: its colour exactly.
            let img = ds.load_image(f).unwrap();
            let colour: Vec<u8> = serde_json::from_value(w["colours"][t][1].clone()).unwrap();
            assert_eq!(img.get_pixel(8, 8).0.to_vec(), colour, "story {} frame {t}", story.id);
        }
    }
}

#[test]
fn the_first_square_and_random_picks_follow_the_options_and_the_seed() {
    let root = tempfile::tempdir().unwrap();
    let src = fixtures().join("pororo-sv");
    let run = |name: &str, o: &ImportOptions| {
        let out = root.path().join(name);
        import(&src, &out, false, o, &|| {}).unwrap();
        Dataset::open(&out).unwrap()
    };
    let want = expected();
    let first = run("first", &opts(Description::First, Cut::First));
    let a = run("a", &opts(Description::Random, Cut::Random));
    let b = run("b", &opts(Description::Random, Cut::Random));
    let mut squares = std::collections::BTreeSet::new();
    for ((s, sa), sb) in first.stories.iter().zip(&a.stories).zip(&b.stories) {
        let w = &want[&s.id];
        for t in 0..5 {
            let colours: Vec<Vec<u8>> = serde_json::from_value(w["colours"][t].clone()).unwrap();
            let px = |ds: &Dataset, st: &storyvis_data::dataset::StoryRecord| {
                ds.load_image(&st.frames[t]).unwrap().get_pixel(3, 3).0.to_vec()
            };
            assert_eq!(px(&first, s), colours[0]);
            assert!(s.frames[t].captions.is_empty());
            // Random picks: one of the strip's squares and one of the descriptions, the same
            // for the same seed.
            let j = colours.iter().position(|c| *c == px(&a, sa)).expect("a square of the strip");
            squares.insert(j);
            assert_eq!(px(&a, sa), px(&b, sb));
            let descs: Vec<String> = serde_json::from_value(w["descriptions"][t].clone()).unwrap();
            assert!(descs.contains(&sa.frames[t].sentence));
            assert_eq!(sa.frames[t].sentence, sb.frames[t].sentence);
        }
    }
    assert!(squares.len() > 1, "random cuts all took square {squares:?}");
}

#[test]
fn a_frame_without_labels_skips_its_stories_and_strict_names_them() {
    let root = tempfile::tempdir().unwrap();
    let src = copy_with(root.path(), Some(("labels.npy", "labels_missing_one.npy")));
    let out = root.path().join("d");
    let report = import(&src, &out, false, &opts(Description::First, Cut::First), &|| {}).unwrap();
    // Frame 5 of the first episode is in stories 1, 2 and 3 (train, val, test).
    let ids: Vec<&str> = report.skipped.iter().map(|s| s.story.as_str()).collect();
    assert_eq!(ids, ["00001", "00002", "00003"]);
    assert!(report.skipped[0]
        .reason
        .contains("frame Pororo_ENGLISH1_1/Pororo_ENGLISH1_1_ep1/5 has no entry in labels.npy"));
    assert_eq!(report.imported, 5);
    let ds = Dataset::open(&out).unwrap();
    assert_eq!(ds.stories.len(), 5);
    assert_eq!(ds.header.source["skipped"].as_array().unwrap().len(), 3);
    assert_eq!(ds.split(Split::Val).count(), 0);

    let strict = ImportOptions { strict: true, ..opts(Description::First, Cut::First) };
    let err = import(&src, &root.path().join("e"), false, &strict, &|| {}).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("3 of the 8 stories") && msg.contains("story 00001: frame"), "{msg}");
    assert!(!root.path().join("e").exists(), "nothing is written on error");
}

#[test]
fn missing_frames_and_frames_that_are_not_strips_are_skipped() {
    let root = tempfile::tempdir().unwrap();
    let src = copy_with(root.path(), None);
    let ep3 = src.join("Pororo_ENGLISH2_1/Pororo_ENGLISH2_1_ep3");
    std::fs::remove_file(ep3.join("7.png")).unwrap();
    image::RgbImage::new(20, 16).save(ep3.join("0.png")).unwrap();
    // A strip with rows left below its squares is cut as the reference loaders cut it
    // (⌊h / w⌋ squares).
    image::RgbImage::new(16, 40).save(ep3.join("3.png")).unwrap();
    let report =
        import(&src, &root.path().join("d"), false, &opts(Description::First, Cut::First), &|| {})
            .unwrap();
    let skipped: Vec<(String, String)> =
        report.skipped.iter().map(|s| (s.story.clone(), s.reason.clone())).collect();
    // Story 4 starts at frame 0 of episode 3; story 7 ends at its frame 7.
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0].1.contains("20×16: not a vertical strip"), "{skipped:?}");
    assert!(skipped[1].1.contains("ep3/7.png is missing"), "{skipped:?}");
}

/// The other forms the archive's files may take: labels pickled by Python 3 as lists of bools,
/// the splits as a plain pickle (np.load reads those too) or as one [3, N] array.
#[test]
fn other_pickles_and_split_arrays_read_alike() {
    let root = tempfile::tempdir().unwrap();
    let import_with = |name: &str, file: &str, variant: &str| {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let src = copy_with(&dir, Some((file, variant)));
        let out = dir.join("d");
        import(&src, &out, false, &opts(Description::First, Cut::First), &|| {}).unwrap();
        Dataset::open(&out).unwrap()
    };
    let want = expected();
    let ds = import_with("p3", "labels.npy", "labels_protocol3.npy");
    assert_eq!(ds.stories.len(), 8);
    for story in &ds.stories {
        for (t, f) in story.frames.iter().enumerate() {
            let labels: Vec<u8> =
                serde_json::from_value(want[&story.id]["labels"][t].clone()).unwrap();
            assert_eq!(f.label, labels);
        }
    }
    let ds = import_with("plain", "train_seen_unseen_ids.npy", "ids_plain_pickle.npy");
    let count = |ds: &Dataset, s| ds.split(s).count();
    assert_eq!(
        (count(&ds, Split::Train), count(&ds, Split::Val), count(&ds, Split::Test)),
        (4, 1, 3)
    );
    let ds = import_with("2d", "train_seen_unseen_ids.npy", "ids_2d.npy");
    let ids: Vec<(&str, Split)> = ds.stories.iter().map(|s| (s.id.as_str(), s.split)).collect();
    assert_eq!(
        ids,
        [
            ("00000", Split::Train),
            ("00001", Split::Train),
            ("00002", Split::Val),
            ("00003", Split::Val),
            ("00004", Split::Test),
            ("00005", Split::Test)
        ]
    );
    assert_eq!(ds.header.source["in_no_split"], 2);
}

#[test]
fn a_broken_layout_is_an_error_that_names_the_file() {
    let root = tempfile::tempdir().unwrap();
    let fails = |name: &str, src: &Path, want: &str| {
        let out = root.path().join(name);
        let err = import(src, &out, false, &opts(Description::First, Cut::First), &|| {})
            .expect_err(name);
        let msg = format!("{err:#}");
        assert!(msg.contains(want), "{name}: expected {want:?} in {msg}");
        assert!(!out.exists());
    };
    let cases = [
        ("following", "following_cache4.npy", "following_wrong_shape.npy", "expected shape (8, 4)"),
        ("float", "img_cache4.npy", "img_cache_float.npy", "expected an array of paths"),
        (
            "range",
            "train_seen_unseen_ids.npy",
            "ids_out_of_range.npy",
            "names story 99, but there are 8",
        ),
    ];
    for (i, (name, file, variant, want)) in cases.into_iter().enumerate() {
        let dir = root.path().join(format!("case{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let src = copy_with(&dir, Some((file, variant)));
        fails(name, &src, want);
    }
    let dir = root.path().join("case-missing");
    std::fs::create_dir_all(&dir).unwrap();
    let src = copy_with(&dir, None);
    std::fs::remove_file(src.join("descriptions.npy")).unwrap();
    fails("missing", &src, "descriptions.npy is missing: the Pororo-SV layout has");
    fails("nothing", &root.path().join("nowhere"), "is not a directory");
    let bad_size = ImportOptions { size: 8, ..opts(Description::First, Cut::First) };
    let err =
        import(&fixtures().join("pororo-sv"), &root.path().join("s"), false, &bad_size, &|| {});
    assert!(format!("{:#}", err.unwrap_err()).contains("--size must be between 16 and 1024"));
}
