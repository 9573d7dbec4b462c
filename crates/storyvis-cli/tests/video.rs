//! Text to video end to end: prepare bouncing-mnist from IDX files, show, train a tganc-tiny
//! run, generate --text as GIFs and strips, and their bad inputs.

mod common;
use common::{fails, ok, p, small_data, write_mnist};
use image::AnimationDecoder;

#[test]
fn bouncing_mnist_tganc_and_gifs() {
    let root = tempfile::tempdir().unwrap();
    let mnist = root.path().join("mnist");
    write_mnist(&mnist, 20);
    let data = root.path().join("bm");
    let said = ok(&[
        "prepare",
        "bouncing-mnist",
        "--mnist",
        p(&mnist),
        "--clips",
        "16",
        "--out",
        p(&data),
        "--split",
        "0.75",
    ]);
    assert!(
        said.contains("rendered 16 Bouncing MNIST clips (1 digit, 16 frames of 64×64, seed 0"),
        "{said}"
    );
    let sheet = root.path().join("sheet.png");
    ok(&["show", p(&data), "--stories", "3", "--out", p(&sheet)]);
    assert_eq!(image::open(&sheet).unwrap().width(), 4 + 16 * (128 + 4));

    // Bad input to prepare.
    let x = root.path().join("x");
    fails(
        &[
            "prepare",
            "bouncing-mnist",
            "--mnist",
            p(&mnist),
            "--clips",
            "4",
            "--out",
            p(&x),
            "--frames",
            "0",
        ],
        "--frames must be 1 to 64",
    );
    fails(
        &[
            "prepare",
            "bouncing-mnist",
            "--mnist",
            p(&mnist),
            "--clips",
            "4",
            "--out",
            p(&x),
            "--size",
            "20",
        ],
        "must exceed the 28-pixel digit",
    );
    fails(
        &[
            "prepare",
            "bouncing-mnist",
            "--mnist",
            p(&mnist),
            "--clips",
            "4",
            "--out",
            p(&x),
            "--digits",
            "3",
        ],
        "--digits must be 1 or 2",
    );
    fails(
        &[
            "prepare",
            "bouncing-mnist",
            "--mnist",
            p(&root.path().join("none")),
            "--clips",
            "4",
            "--out",
            p(&x),
        ],
        "does not exist",
    );
    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(
        &["prepare", "bouncing-mnist", "--mnist", p(&empty), "--clips", "4", "--out", p(&x)],
        "holds no train-images-idx3-ubyte",
    );
    let bad = root.path().join("bad");
    write_mnist(&bad, 2);
    let images = std::fs::read(bad.join("train-images-idx3-ubyte")).unwrap();
    std::fs::write(bad.join("train-images-idx3-ubyte"), &images[..images.len() - 100]).unwrap();
    fails(
        &["prepare", "bouncing-mnist", "--mnist", p(&bad), "--clips", "4", "--out", p(&x)],
        "truncated",
    );
    std::fs::write(bad.join("train-images-idx3-ubyte"), [&[0x12, 0x34][..], &images[2..]].concat())
        .unwrap();
    fails(
        &["prepare", "bouncing-mnist", "--mnist", p(&bad), "--clips", "4", "--out", p(&x)],
        "not an IDX file",
    );
    assert!(!x.exists());

    // Train and draw.
    let runs = root.path().join("runs");
    let said = ok(&[
        "train",
        "--preset",
        "tganc-tiny",
        "--data",
        p(&data),
        "--runs",
        p(&runs),
        "--set",
        "max_steps=2",
        "--set",
        "ema_half_life=2",
        "--set",
        "ema_standing=1",
    ]);
    assert!(said.contains("trained at step 2"), "{said}");
    let run = runs.join("00000-tganc-tiny");
    let out = root.path().join("out");
    // A caption of the training split (16 clips do not show every digit).
    let manifest = std::fs::read_to_string(data.join("manifest.jsonl")).unwrap();
    let caption = manifest
        .lines()
        .nth(1)
        .unwrap()
        .split("\"sentence\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(caption.starts_with("digit ") && caption.contains(" is moving "), "{caption}");
    let said = ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--text",
        &caption,
        "--seeds",
        "0-1",
        "--out",
        p(&out),
    ]);
    assert!(said.contains("seed0001.gif") && said.contains("strips.png"), "{said}");
    let gif = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(out.join("seed0000.gif")).unwrap(),
    ))
    .unwrap();
    let frames = gif.into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 16);
    assert!(frames.iter().all(|f| f.buffer().dimensions() == (128, 128)));
    let said = ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--text",
        &caption,
        "--seeds",
        "0",
        "--out",
        p(&out),
        "--format",
        "strip",
    ]);
    assert!(said.contains("seed0000.png"), "{said}");
    assert_eq!(image::open(out.join("seed0000.png")).unwrap().width(), 4 + 16 * (128 + 4));
    // The same seed draws the same clip.
    let first = std::fs::read(out.join("seed0000.gif")).unwrap();
    ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--text",
        &caption,
        "--seeds",
        "0",
        "--out",
        p(&out),
    ]);
    assert_eq!(std::fs::read(out.join("seed0000.gif")).unwrap(), first);

    // The clip classifier and the evaluation on held-out clips (seen and held-out combinations).
    let clf = root.path().join("clf");
    let said = ok(&[
        "train-classifier",
        "--data",
        p(&data),
        "--out",
        p(&clf),
        "--steps",
        "3",
        "--batch",
        "4",
        "--widths",
        "4,4,4,4",
    ]);
    assert!(
        said.contains("clip classifier in") && said.contains("held-out combinations (2)"),
        "{said}"
    );
    fails(
        &["train-classifier", "--data", p(&data), "--steps", "3"],
        "give --out for a clip classifier",
    );
    let ev = root.path().join("eval");
    let said = ok(&[
        "eval",
        "--checkpoint",
        p(&run),
        "--data",
        p(&data),
        "--classifier",
        p(&clf),
        "--seeds",
        "2",
        "--out",
        p(&ev),
    ]);
    assert!(
        said.contains("| real clips | — |") && said.contains("| 00000-tganc-tiny | 2 |"),
        "{said}"
    );
    assert!(std::fs::read_to_string(ev.join("eval.json")).unwrap().contains("\"held_out\""));
    fails(
        &[
            "eval",
            "--checkpoint",
            p(&run),
            "--data",
            p(&data),
            "--classifier",
            p(&run.join("checkpoints/step-0000002")),
            "--out",
            p(&ev),
        ],
        "is not a clip classifier",
    );
    // The frames' classifier on video data says what it is.
    let clevr_classifier =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/clevr-classifier");
    fails(
        &[
            "eval",
            "--checkpoint",
            p(&run),
            "--data",
            p(&data),
            "--classifier",
            p(&clevr_classifier),
            "--out",
            p(&ev),
        ],
        "is not a clip classifier but the CLEVR-SV attribute classifier (it scores frames)",
    );
    // GAM between two runs (the second with another seed, the mean sentence state and the
    // closest mismatched captions).
    let second = ["max_steps=2", "seed=5", "sentence=mean", "mismatch=closest"];
    ok(&["train", "--preset", "tganc-tiny", "--data", p(&data), "--runs", p(&runs)]
        .into_iter()
        .chain(second.iter().flat_map(|s| ["--set", s]))
        .collect::<Vec<_>>());
    let said = ok(&[
        "eval",
        "--gam",
        p(&run),
        p(&runs.join("00001-tganc-tiny")),
        "--data",
        p(&data),
        "--out",
        p(&ev),
    ]);
    assert!(said.contains("GAM on 4 held-out clips") && said.contains("sample ratio"), "{said}");
    // Captions through the frozen MiniLM: no caption encoder trains or is saved, and a word
    // the training captions never used is read, not refused.
    ok(&[
        "train",
        "--preset",
        "tganc-tiny",
        "--data",
        p(&data),
        "--runs",
        p(&runs),
        "--set",
        "max_steps=2",
        "--set",
        "text=minilm",
    ]);
    let minilm = runs.join("00002-tganc-tiny");
    let checkpoint = minilm.join("checkpoints/step-0000002");
    assert!(
        checkpoint.join("generator.safetensors").is_file()
            && !checkpoint.join("text.safetensors").exists()
    );
    let said = ok(&[
        "generate",
        "--checkpoint",
        p(&minilm),
        "--text",
        "digit 1 is moving diagonally",
        "--seeds",
        "0",
        "--out",
        p(&out),
    ]);
    assert!(said.contains("seed0000.gif"), "{said}");
    let said = ok(&[
        "eval",
        "--checkpoint",
        p(&minilm),
        "--data",
        p(&data),
        "--classifier",
        p(&clf),
        "--out",
        p(&ev),
    ]);
    assert!(said.contains("| 00002-tganc-tiny |"), "{said}");
    // Trained with the discriminators (text_finetune): its copy is saved with the run.
    let tuned = ["max_steps=1", "text=minilm", "text_finetune=true", "lr_text=2e-5"];
    ok(&["train", "--preset", "tganc-tiny", "--data", p(&data), "--runs", p(&runs)]
        .into_iter()
        .chain(tuned.iter().flat_map(|s| ["--set", s]))
        .collect::<Vec<_>>());
    let tuned_run = runs.join("00003-tganc-tiny");
    assert!(tuned_run.join("checkpoints/step-0000001/text.safetensors").is_file());
    ok(&[
        "generate",
        "--checkpoint",
        p(&tuned_run),
        "--text",
        "digit 1 is moving diagonally",
        "--seeds",
        "0",
        "--out",
        p(&out),
    ]);
    fails(
        &[
            "train",
            "--preset",
            "tganc-tiny",
            "--data",
            p(&data),
            "--runs",
            p(&runs),
            "--set",
            "text_finetune=true",
        ],
        "text_finetune = true needs text = \"minilm\"",
    );
    // The budget-first recipe (tganc-fast at tiny widths): DiffAugment, the attribute head and
    // mode seeking train, the run draws and is scored, and its discriminators (with their head)
    // load for GAM.
    let fast = [
        "max_steps=2",
        "ngf=2",
        "ndf=2",
        "batch=4",
        "noise_dim=8",
        "cond_dim=4",
        "recipe.diffaugment=color,translation,cutout",
        "ema_standing=1",
    ];
    let said = ok(&["train", "--preset", "tganc-fast", "--data", p(&data), "--runs", p(&runs)]
        .into_iter()
        .chain(fast.iter().flat_map(|s| ["--set", s]))
        .collect::<Vec<_>>());
    assert!(said.contains("trained at step 2"), "{said}");
    let fast_run = runs.join("00004-tganc-fast");
    let stats = std::fs::read_to_string(fast_run.join("stats.jsonl")).unwrap();
    assert!(
        stats.contains("\"loss_d_attributes\"") && stats.contains("\"loss_g_mode_seeking\""),
        "{stats}"
    );
    let said = ok(&["eval", "--gam", p(&fast_run), p(&run), "--data", p(&data), "--out", p(&ev)]);
    assert!(said.contains("GAM on 4 held-out clips"), "{said}");
    // Seen and held-out combinations are the model's own: on clips split by another seed the
    // model's row counts them by its training data's split, the real row by the data's.
    let other = root.path().join("bm-other");
    ok(&[
        "prepare",
        "bouncing-mnist",
        "--mnist",
        p(&mnist),
        "--clips",
        "40",
        "--out",
        p(&other),
        "--split",
        "0.5",
        "--seed",
        "5",
    ]);
    ok(&[
        "eval",
        "--checkpoint",
        p(&fast_run),
        "--data",
        p(&other),
        "--classifier",
        p(&clf),
        "--out",
        p(&ev),
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ev.join("eval.json")).unwrap()).unwrap();
    let ds = storyvis_data::dataset::Dataset::open(&other).unwrap();
    let seen_by = |held: &storyvis_data::bouncing::HeldOut| {
        ds.split(storyvis_data::dataset::Split::Test)
            .filter(|s| !held.holds(&storyvis_data::bouncing::combination_of(&s.frames[0].label)))
            .count()
    };
    let (by_model, by_data) = (
        seen_by(&storyvis_data::bouncing::HeldOut::new(1, 0)),
        seen_by(&storyvis_data::bouncing::held_out_of(&ds.header).unwrap()),
    );
    assert_ne!(by_model, by_data, "the two splits must differ for this check to mean anything");
    assert_eq!(
        report["models"][0]["accuracy"]["seen"]["clips"].as_u64(),
        Some(by_model as u64),
        "{report}"
    );
    assert_eq!(
        report["real"]["accuracy"]["seen"]["clips"].as_u64(),
        Some(by_data as u64),
        "{report}"
    );
    // The floor: the real clips' first frames held still, on the data's split as the real row.
    assert_eq!(
        report["floors"][0]["name"].as_str(),
        Some("floor: first frame held still"),
        "{report}"
    );
    assert_eq!(
        report["floors"][0]["accuracy"]["seen"]["clips"].as_u64(),
        Some(by_data as u64),
        "{report}"
    );
    assert!(std::fs::read_to_string(ev.join("eval.md"))
        .unwrap()
        .contains("| floor: first frame held still |"));
    // The caption reaches the drawing, and so does the noise.
    let clip = |text: &str, seed: &str| {
        let o = root.path().join(format!("fast-{seed}-{}", text.len()));
        ok(&[
            "generate",
            "--checkpoint",
            p(&fast_run),
            "--text",
            text,
            "--seeds",
            seed,
            "--out",
            p(&o),
        ]);
        std::fs::read(o.join(format!("seed000{seed}.gif"))).unwrap()
    };
    let three = clip("digit 3 is moving up and down", "0");
    assert_ne!(
        three,
        clip("digit 7 is moving left and right", "0"),
        "two captions drew the same clip"
    );
    assert_ne!(
        three,
        clip("digit 3 is moving up and down", "1"),
        "another noise drew the same clip"
    );
    assert_eq!(three, clip("digit 3 is moving up and down", "0"));
    // A copy with the moving average only draws what the run draws.
    let average = root.path().join("fast-average");
    ok(&["export", "--checkpoint", p(&fast_run), "--out", p(&average), "--average-only"]);
    assert!(
        !average.join("generator.safetensors").exists()
            && average.join("generator_ema.safetensors").is_file()
    );
    assert!(!average.join("discriminator.safetensors").exists());
    let o = root.path().join("fast-average-out");
    ok(&[
        "generate",
        "--checkpoint",
        p(&average),
        "--text",
        "digit 3 is moving up and down",
        "--seeds",
        "0",
        "--out",
        p(&o),
    ]);
    assert_eq!(std::fs::read(o.join("seed0000.gif")).unwrap(), three);
    // The projected frame discriminator on the frozen EfficientNet-Lite0 (d_backbone): it trains,
    // and the run's discriminators (small discriminators, no backbone) load for GAM. With two
    // generator updates per discriminator update (g_steps), each its own Adam step.
    let said = ok(&[
        "train",
        "--preset",
        "tganc-fast",
        "--data",
        p(&data),
        "--runs",
        p(&runs),
        "--set",
        "d_backbone=efficientnet-lite0",
        "--set",
        "g_steps=2",
    ]
    .into_iter()
    .chain(fast.iter().flat_map(|s| ["--set", s]))
    .collect::<Vec<_>>());
    let projected_run = std::path::PathBuf::from(
        said.split(": run ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or_else(|| panic!("{said}")),
    );
    let manifest = storyvis_core::checkpoint::verify(
        &storyvis_core::checkpoint::resolve(&projected_run).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (manifest.adam_steps["generator"], manifest.adam_steps["discriminator"]),
        (4, 2),
        "{:?}",
        manifest.adam_steps
    );
    let d = storyvis_core::checkpoint::resolve(&projected_run)
        .unwrap()
        .join("discriminator.safetensors");
    // The tensor names in the safetensors header.
    let bytes = std::fs::read(&d).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let names: Vec<String> = header.as_object().unwrap().keys().cloned().collect();
    assert!(
        names.iter().any(|n| n.starts_with("projected.scale3."))
            && !names.iter().any(|n| n.contains("_blocks")),
        "{names:?}"
    );
    let said = ok(&[
        "eval",
        "--gam",
        p(&projected_run),
        p(&fast_run),
        "--data",
        p(&data),
        "--out",
        p(&ev),
    ]);
    assert!(said.contains("GAM on 4 held-out clips"), "{said}");
    fails(
        &[
            "train",
            "--preset",
            "tganc-fast",
            "--data",
            p(&data),
            "--runs",
            p(&runs),
            "--set",
            "diffaugment=color,flip",
        ],
        "unknown transform \"flip\"",
    );
    fails(
        &[
            "train",
            "--preset",
            "tganc-fast",
            "--data",
            p(&data),
            "--runs",
            p(&runs),
            "--set",
            "ma_gp=2",
        ],
        "ma_gp is set, but the tganc family does not use it yet",
    );
    fails(
        &[
            "train",
            "--preset",
            "tganc-tiny",
            "--data",
            p(&data),
            "--runs",
            p(&runs),
            "--set",
            "recipe.mode_seeking=-1",
        ],
        "mode_seeking = -1 is out of range",
    );
    fails(
        &[
            "train",
            "--preset",
            "tganc-tiny",
            "--data",
            p(&data),
            "--runs",
            p(&runs),
            "--set",
            "recipe.dropout=1",
        ],
        "unknown config key \"recipe.dropout\"",
    );
    fails(
        &[
            "train",
            "--preset",
            "storygan-tiny",
            "--data",
            p(&data),
            "--runs",
            p(&runs),
            "--set",
            "aux_attributes=1",
        ],
        "the storygan family does not use it yet",
    );

    // The shipped tganc-fast (the moving average only, with its text norm) draws a 16-frame clip.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/tganc-fast");
    let o = root.path().join("shipped");
    let said = ok(&[
        "generate",
        "--checkpoint",
        p(&shipped),
        "--text",
        "digit 4 is moving left and right",
        "--seeds",
        "0",
        "--out",
        p(&o),
    ]);
    assert!(said.contains("seed0000.gif"), "{said}");
    let gif = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(o.join("seed0000.gif")).unwrap(),
    ))
    .unwrap();
    assert_eq!(gif.into_frames().collect_frames().unwrap().len(), 16);

    let export = root.path().join("export");
    ok(&["export", "--checkpoint", p(&run), "--out", p(&export)]);
    fails(
        &["eval", "--gam", p(&run), p(&export), "--data", p(&data), "--out", p(&ev)],
        "has no discriminators",
    );

    // Bad input to the model.
    fails(
        &[
            "generate",
            "--checkpoint",
            p(&run),
            "--text",
            "digit 1 is moving diagonally",
            "--out",
            p(&out),
            "--strict-vocab",
        ],
        "unknown word \"diagonally\"",
    );
    // Without --strict-vocab it is drawn, read as unknown, with a warning.
    let said = ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--text",
        "digit 1 is moving diagonally",
        "--seeds",
        "0",
        "--out",
        p(&out),
    ]);
    assert!(said.contains("warning: unknown word \"diagonally\""), "{said}");
    fails(
        &["generate", "--checkpoint", p(&run), "--text", "  ", "--out", p(&out)],
        "the caption is empty",
    );
    fails(
        &[
            "generate",
            "--checkpoint",
            p(&run),
            "--text",
            "digit 3",
            "--format",
            "frames",
            "--out",
            p(&out),
        ],
        "--format frames is for story models",
    );
    fails(
        &[
            "generate",
            "--checkpoint",
            p(&run),
            "--story",
            "a red cube. a cube. a cube. a cube.",
            "--out",
            p(&out),
        ],
        "is a tganc checkpoint",
    );
    fails(
        &[
            "train",
            "--preset",
            "tganc-tiny",
            "--data",
            p(&data),
            "--runs",
            p(&runs),
            "--set",
            "frames=8",
        ],
        "the dataset's clips have 16 frames, the model draws 8",
    );
    let clevr = small_data(root.path(), 4);
    fails(
        &["eval", "--gam", p(&run), p(&run), "--data", p(&clevr), "--out", p(&ev)],
        "--gam compares video models",
    );
    fails(
        &["train", "--preset", "tganc-tiny", "--data", p(&clevr), "--runs", p(&runs)],
        "is a story dataset",
    );
    fails(
        &["train", "--preset", "storygan-tiny", "--data", p(&data), "--runs", p(&runs)],
        "holds video clips (kind bouncing-mnist), not stories",
    );
}
