//! The text-to-image commands end to end: prepare clevr-captions, train-text-encoder, train a
//! gan-int-cls-tiny run, generate --text, interpolate, style-transfer, and their bad inputs.

mod common;
use common::{fails, ok, p, trained};

#[test]
fn captions_encoder_gan_and_drawing_commands() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("captions");
    let said = ok(&[
        "prepare",
        "clevr-captions",
        "--out",
        p(&data),
        "--images",
        "16",
        "--supersample",
        "1",
        "--split",
        "0.75",
    ]);
    assert!(said.contains("rendered 16 CLEVR caption images"), "{said}");
    fails(
        &["prepare", "clevr-captions", "--out", p(&root.path().join("x")), "--images", "0"],
        "--images must be between 1",
    );
    fails(
        &[
            "prepare",
            "clevr-captions",
            "--out",
            p(&root.path().join("x")),
            "--images",
            "4",
            "--captions",
            "9",
        ],
        "--captions must be 1..8",
    );
    let enc = root.path().join("enc");
    let said = ok(&[
        "train-text-encoder",
        "--data",
        p(&data),
        "--out",
        p(&enc),
        "--encoder",
        "word",
        "--dim",
        "16",
        "--steps",
        "3",
        "--batch",
        "4",
    ]);
    assert!(said.contains("held-out R-precision"), "{said}");
    fails(
        &["train-text-encoder", "--data", p(&data), "--out", p(&enc), "--steps", "3"],
        "already exists",
    );
    fails(
        &[
            "train-text-encoder",
            "--data",
            p(&data),
            "--out",
            p(&root.path().join("e2")),
            "--encoder",
            "bag",
        ],
        "unknown text encoder",
    );
    let runs = root.path().join("runs");
    let te = format!("text_encoder={:?}", p(&enc));
    ok(&[
        "train",
        "--preset",
        "gan-int-cls-tiny",
        "--data",
        p(&data),
        "--runs",
        p(&runs),
        "--set",
        &te,
        "--set",
        "max_steps=2",
        "--set",
        "batch=4",
        "--set",
        "ema_half_life=2",
        "--set",
        "ema_standing=1",
    ]);
    let run = runs.join("00000-gan-int-cls-tiny");
    let out = root.path().join("out");
    let said = ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--text",
        "a large red metal cube.",
        "--seeds",
        "0-1",
        "--out",
        p(&out),
    ]);
    assert!(said.contains("seed0001.png") && said.contains("row.png"), "{said}");
    // The run keeps a moving average (with its own batch-norm statistics), which `generate`
    // draws by default; `--weights trained` draws the trained weights: another picture.
    let row = std::fs::read(out.join("row.png")).unwrap();
    ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--text",
        "a large red metal cube.",
        "--seeds",
        "0-1",
        "--out",
        p(&out),
        "--weights",
        "trained",
    ]);
    assert_ne!(std::fs::read(out.join("row.png")).unwrap(), row);
    ok(&[
        "generate",
        "--checkpoint",
        p(&run),
        "--text",
        "a large red metal cube.",
        "--seeds",
        "0-1",
        "--out",
        p(&out),
        "--weights",
        "average",
    ]);
    assert_eq!(std::fs::read(out.join("row.png")).unwrap(), row);
    let said = ok(&[
        "interpolate",
        "--checkpoint",
        p(&run),
        "--from",
        "a red cube.",
        "--to",
        "a blue sphere.",
        "--steps",
        "4",
        "--out",
        p(&out),
        "--weights",
        "trained",
    ]);
    assert!(said.contains("interpolate-seed0000.png"), "{said}");
    let said = ok(&[
        "style-transfer",
        "--checkpoint",
        p(&run),
        "--image",
        p(&out.join("seed0000.png")),
        "--text",
        "a cyan cylinder.",
        "--out",
        p(&out),
        "--weights",
        "average",
    ]);
    assert!(said.contains("style-transfer.png"), "{said}");
    // Bad input.
    fails(
        &["generate", "--checkpoint", p(&run), "--text", "", "--out", p(&out)],
        "the caption is empty",
    );
    // A row of images has no video format, not even the default one named.
    for f in ["gif", "strip"] {
        fails(
            &[
                "generate",
                "--checkpoint",
                p(&run),
                "--text",
                "a red cube.",
                "--format",
                f,
                "--out",
                p(&out),
            ],
            "a text-to-image model draws a row of images",
        );
    }
    fails(
        &[
            "generate",
            "--checkpoint",
            p(&run),
            "--story",
            "a red cube. a blue cube. a cube. a cube.",
            "--out",
            p(&out),
        ],
        "is a gan-int-cls checkpoint",
    );
    fails(
        &[
            "style-transfer",
            "--checkpoint",
            p(&run),
            "--image",
            p(&data.join("manifest.jsonl")),
            "--text",
            "a cube.",
            "--out",
            p(&out),
        ],
        "is not an image",
    );
    fails(
        &["train", "--preset", "gan-int-cls-tiny", "--set", "family=storygan", "--dry-run"],
        "the family comes with the preset",
    );
    fails(
        &["train", "--preset", "storygan-tiny", "--data", p(&data), "--runs", p(&runs)],
        "holds captioned images (kind clevr-captions), not stories",
    );
    // prepare import: a folder of images with captions.jsonl, and a CUB tree missing a caption file.
    let folder = root.path().join("folder");
    std::fs::create_dir_all(folder.join("img")).unwrap();
    for (i, rgb) in [[200u8, 0, 0], [0, 0, 200]].iter().enumerate() {
        image::RgbImage::from_pixel(24, 24, image::Rgb(*rgb))
            .save(folder.join(format!("img/{i}.png")))
            .unwrap();
    }
    std::fs::write(folder.join("captions.jsonl"), "{\"image\":\"img/0.png\",\"captions\":[\"red.\"]}\n{\"image\":\"img/1.png\",\"captions\":[\"blue.\"]}\n")
        .unwrap();
    let said = ok(&[
        "prepare",
        "import",
        p(&folder),
        "--layout",
        "folder",
        "--out",
        p(&root.path().join("imported")),
        "--size",
        "16",
    ]);
    assert!(said.contains("imported 2 captioned images"), "{said}");
    let cub = root.path().join("cub");
    std::fs::create_dir_all(cub.join("images/001.A")).unwrap();
    std::fs::create_dir_all(cub.join("text_c10/001.A")).unwrap();
    image::RgbImage::new(20, 20).save(cub.join("images/001.A/x.jpg")).unwrap();
    fails(
        &[
            "prepare",
            "import",
            p(&cub),
            "--layout",
            "cub",
            "--out",
            p(&root.path().join("cub-out")),
        ],
        "text_c10/001.A/x.txt is missing",
    );
    assert!(!root.path().join("cub-out").exists());
    fails(
        &["prepare", "import", p(&cub), "--layout", "coco", "--out", p(&root.path().join("c2"))],
        "unknown layout",
    );
    // A story model's checkpoint given to a text-to-image command.
    let story_root = tempfile::tempdir().unwrap();
    let (_, story_run) = trained(story_root.path());
    fails(
        &["generate", "--checkpoint", p(&story_run), "--text", "a red cube.", "--out", p(&out)],
        "is a storygan checkpoint",
    );
    fails(
        &[
            "interpolate",
            "--checkpoint",
            p(&story_run),
            "--from",
            "a",
            "--to",
            "b",
            "--out",
            p(&out),
        ],
        "is a storygan checkpoint",
    );
}

/// `generate --text` without a checkpoint draws with the shipped model the caption fits: the
/// video model for a Bouncing MNIST caption; for a CLEVR caption, which the three shipped
/// text-to-image models all read, it lists them to choose from, and `--model` chooses.
#[test]
fn generate_text_without_a_checkpoint_uses_the_shipped_model_the_caption_fits() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("video");
    let said = ok(&[
        "generate",
        "--text",
        "digit 3 is moving up and down",
        "--seeds",
        "0",
        "--out",
        p(&out),
    ]);
    assert!(said.contains("drawing with the shipped model tganc-fast"), "{said}");
    assert!(std::fs::read(out.join("seed0000.gif")).unwrap().starts_with(b"GIF8"));
    let caption = "a large red metal cube.";
    let said = common::text(&common::storyvis(&["generate", "--text", caption, "--out", p(&out)]));
    for name in ["gan-int-cls-default", "stackgan-default", "sdgan-default"] {
        assert!(said.contains(&format!("--model {name}")), "{said}");
    }
    assert!(!said.contains("tganc-fast") && said.contains("3 shipped models"), "{said}");
    for (name, size) in
        [("gan-int-cls-default", 64), ("stackgan-default", 128), ("sdgan-default", 64)]
    {
        let o = root.path().join(name);
        ok(&["generate", "--model", name, "--text", caption, "--seeds", "0", "--out", p(&o)]);
        assert_eq!(image::open(o.join("seed0000.png")).unwrap().width(), size, "{name}");
    }
    // The shipped story model by name; a name that is not shipped, or a model and a checkpoint.
    let story = "there is a small red rubber cube. a large blue metal sphere appears. someone adds a green cylinder. a yellow cube appears.";
    ok(&["generate", "--model", "storygan-default", "--story", story, "--out", p(&out)]);
    fails(
        &["generate", "--model", "nope", "--text", caption],
        "no shipped model of that name; the shipped ones: storygan-default, gan-int-cls-default",
    );
    fails(&["generate", "--model", "tganc-fast", "--story", story], "give it with --text");
    fails(
        &["generate", "--model", "tganc-fast", "--checkpoint", "x", "--text", caption],
        "cannot be used with",
    );
}
