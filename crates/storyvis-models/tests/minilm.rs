//! all-MiniLM-L6-v2 on tch against sentence-transformers' published behaviour: token ids,
//! embedding values and cosine similarities computed by the reference implementation with the
//! same package's weights; and the clear errors for missing or damaged files.

mod common;

use std::path::Path;
use storyvis_core::minilm::{default_dir, mean_pool_normalised, MiniLm, DIM};
use tch::{Device, Kind, Tensor};

fn model() -> MiniLm {
    tch::set_num_threads(1);
    MiniLm::load_default(Device::Cpu)
        .unwrap_or_else(|e| panic!("{e:#} (scripts/setup installs the MiniLM files)"))
}

fn row(t: &Tensor, i: i64) -> Vec<f32> {
    Vec::<f32>::try_from(t.get(i).to_kind(Kind::Float)).unwrap()
}

fn close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "value {k}: {g} vs {w} (all: {got:?})");
    }
}

fn cosine(m: &MiniLm, a: &str, b: &str) -> f64 {
    let e = m.embed(&[a, b]).unwrap();
    (e.get(0) * e.get(1)).sum(Kind::Double).double_value(&[])
}

#[test]
fn token_ids_embeddings_and_similarities_match_sentence_transformers() {
    storyvis_models::install();
    let m = model();
    let weather = "The weather is lovely today.";
    let sphere = "a small red rubber sphere";
    assert_eq!(m.token_ids(weather).unwrap(), [101, 1996, 4633, 2003, 8403, 2651, 1012, 102]);
    assert_eq!(m.token_ids(sphere).unwrap(), [101, 1037, 2235, 2417, 8903, 10336, 102]);
    let e = m.embed(&[weather, sphere]).unwrap();
    assert_eq!(e.size(), [2, DIM]);
    let w = row(&e, 0);
    close(
        &w[..8],
        &[0.019196, 0.120085, 0.159598, 0.067066, 0.050075, -0.025919, 0.056468, -0.092858],
        1e-4,
    );
    close(&[w.iter().sum::<f32>()], &[-0.141735], 1e-4);
    close(
        &row(&e, 1)[..8],
        &[0.023617, 0.021707, -0.000462, 0.019779, 0.049882, -0.05688, 0.113862, 0.104629],
        1e-4,
    );
    // Unit length (the Normalize module).
    for i in 0..2 {
        let n: f32 = row(&e, i).iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5, "norm² {n}");
    }
    let food = cosine(&m, "A man is eating food.", "A man is eating a piece of bread.");
    let sunny = cosine(&m, weather, "It's so sunny outside!");
    assert!((food - 0.7553).abs() < 1e-4, "{food}");
    assert!((sunny - 0.6660).abs() < 1e-4, "{sunny}");
}

#[test]
fn padding_in_a_batch_does_not_change_a_sentence_and_long_ones_are_cut() {
    storyvis_models::install();
    let m = model();
    let short = "a cube.";
    let long = "a small blue rubber sphere is to the left of a large yellow metal cylinder behind the red cube.";
    let together = m.embed(&[short, long]).unwrap();
    for (i, s) in [short, long].iter().enumerate() {
        let alone = m.embed(&[s]).unwrap();
        close(&row(&together, i as i64), &row(&alone, 0), 1e-5);
    }
    // Past max_seq_length (256 tokens, [CLS] and [SEP] included) the sentence is cut.
    let very_long = "red ".repeat(400);
    let ids = m.token_ids(&very_long).unwrap();
    assert_eq!(ids.len(), m.pieces.max_tokens);
    assert_eq!((ids[0], *ids.last().unwrap()), (101, 102));
    assert_eq!(m.embed(&[very_long.as_str()]).unwrap().size(), [1, DIM]);
}

#[test]
fn mean_pooling_skips_padding_and_normalises() {
    storyvis_models::install();
    // Two sentences of 3 and 2 tokens, 2-wide states; the padded position holds a large value
    // that must not count.
    let states =
        Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 0.0, 3.0, 0.0, 1.0, 4.0, 100.0, 100.0])
            .view([2, 3, 2]);
    let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 0]).view([2, 3]);
    let got = mean_pool_normalised(&states, &mask);
    // Means (3, 2) and (2, 2); lengths √13 and √8.
    let want = [3.0 / 13f32.sqrt(), 2.0 / 13f32.sqrt(), 2.0 / 8f32.sqrt(), 2.0 / 8f32.sqrt()];
    close(&Vec::<f32>::try_from(got.flatten(0, -1)).unwrap(), &want, 1e-6);
}

/// A copy of the model's directory (links to its files) without the file `drop`, and with one
/// bit of the file `damage` flipped.
fn altered_copy(out: &Path, drop: &str, damage: &str) {
    let src = default_dir().unwrap();
    for (name, _) in storyvis_core::minilm::FILES {
        let dest = out.join(name);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if name == drop {
            continue;
        }
        if name == damage {
            let mut bytes = std::fs::read(src.join(name)).unwrap();
            let i = bytes.len() / 2;
            bytes[i] ^= 1;
            std::fs::write(&dest, bytes).unwrap();
        } else {
            std::os::unix::fs::symlink(src.join(name), &dest).unwrap();
        }
    }
}

#[test]
fn a_missing_or_damaged_file_is_an_error_naming_it() {
    storyvis_models::install();
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    altered_copy(&missing, "model.safetensors", "");
    let e = format!("{:#}", MiniLm::load(&missing, Device::Cpu).unwrap_err());
    assert!(
        e.contains("model.safetensors") && e.contains("missing") && e.contains("scripts/setup"),
        "{e}"
    );

    let damaged = dir.path().join("damaged");
    altered_copy(&damaged, "", "tokenizer.json");
    let e = format!("{:#}", MiniLm::load(&damaged, Device::Cpu).unwrap_err());
    assert!(e.contains("tokenizer.json") && e.contains("damaged"), "{e}");
}

#[test]
fn a_dataset_table_is_made_once_cached_beside_it_and_remade_when_damaged() {
    storyvis_models::install();
    use std::cell::Cell;
    use storyvis_core::minilm::cached_embeddings;
    let dir = tempfile::tempdir().unwrap();
    let corpus = ["b cube.", "a sphere.", "b cube.", "c cylinder."];
    let made = Cell::new(0);
    // Row i of the table: the value i everywhere (the distinct sentences sorted).
    let make = |unique: &[&str]| {
        made.set(made.get() + 1);
        assert_eq!(unique, ["a sphere.", "b cube.", "c cylinder."]);
        Ok(Tensor::arange(unique.len() as i64, (Kind::Float, Device::Cpu))
            .unsqueeze(1)
            .repeat([1, DIM]))
    };
    let wanted = ["c cylinder.", "a sphere.", "c cylinder."];
    let firsts = |t: &Tensor| Vec::<f32>::try_from(t.select(1, 0)).unwrap();
    let t = cached_embeddings(dir.path(), corpus.into_iter(), &wanted, make).unwrap();
    assert_eq!(firsts(&t), [2.0, 0.0, 2.0]);
    assert_eq!(made.get(), 1);
    let cached: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        cached.len() == 1
            && cached[0].starts_with("minilm-")
            && cached[0].ends_with(".safetensors"),
        "{cached:?}"
    );
    // Again: read from the cache.
    let t = cached_embeddings(dir.path(), corpus.into_iter(), &["b cube."], make).unwrap();
    assert_eq!((firsts(&t), made.get()), (vec![1.0], 1));
    // A damaged cache file is made again.
    std::fs::write(dir.path().join(&cached[0]), b"not safetensors").unwrap();
    let t = cached_embeddings(dir.path(), corpus.into_iter(), &["b cube."], make).unwrap();
    assert_eq!((firsts(&t), made.get()), (vec![1.0], 2));
    // Another corpus is another table; a sentence outside the corpus is an error.
    let other = ["a sphere.", "b cube.", "c cylinder.", "d."];
    let e = cached_embeddings(dir.path(), other.into_iter(), &["e."], |u: &[&str]| {
        Ok(Tensor::zeros([u.len() as i64, DIM], (Kind::Float, Device::Cpu)))
    })
    .unwrap_err();
    assert!(e.to_string().contains("\"e.\""), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// Eight CLEVR-SV stories (six to train on) rendered into `root`/data.
fn eight_stories(root: &Path) -> std::path::PathBuf {
    use storyvis_data::clevr::{generate, GenerateOptions};
    let data = root.join("data");
    generate(
        &GenerateOptions {
            stories: 8,
            seed: 3,
            split: 0.75,
            supersample: 1,
            ..GenerateOptions::default()
        },
        &data,
        false,
        &|| {},
    )
    .unwrap();
    data
}

/// Two iterations of storygan-tiny with `text = "minilm"` and `extra` settings on `data`, run in
/// `runs`.
fn two_minilm_iterations(
    data: &Path,
    runs: &Path,
    extra: &[&str],
) -> anyhow::Result<storyvis_core::train::Outcome> {
    use storyvis_core::train::{train, Start, TrainRequest};
    let mut sets: Vec<String> =
        ["text=minilm", "max_steps=2", "checkpoint_every=2", "sample_every=1000", "log_every=1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    sets.extend(extra.iter().map(|s| s.to_string()));
    let config = storyvis_core::config::Config::resolve("storygan-tiny", None, &sets)?;
    let req = TrainRequest {
        config,
        overrides: sets,
        data: data.to_path_buf(),
        start: Start::Fresh { runs: runs.to_path_buf() },
        runtime: storyvis_core::precision::Runtime::cpu(),
        group: None,
    };
    train(req, &|_, _, _| {}, &std::sync::atomic::AtomicBool::new(false))
}

#[test]
fn storygan_trains_on_minilm_sentences_and_draws_words_it_never_saw() {
    storyvis_models::install();
    use storyvis_models::storygan::sample;
    let m = model();
    let root = tempfile::tempdir().unwrap();
    let data = eight_stories(root.path());
    let out = two_minilm_iterations(&data, &root.path().join("runs"), &[]).unwrap();
    assert_eq!(out.steps, 2);

    // The table beside the dataset holds every sentence's embedding, as the encoder gives it.
    let ds = storyvis_data::dataset::Dataset::open(&data).unwrap();
    let table = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("minilm-"))
        .unwrap();
    let sentences: Vec<&str> = ds.stories[0].frames.iter().map(|f| f.sentence.as_str()).collect();
    let corpus = ds.stories.iter().flat_map(|s| s.frames.iter().map(|f| f.sentence.as_str()));
    let from_table = storyvis_core::minilm::dataset_embeddings(&data, corpus, &sentences).unwrap();
    assert!(table.is_file());
    let direct = m.embed(&sentences).unwrap();
    assert!((from_table - direct).abs().max().double_value(&[]) < 1e-5);

    // Typed stories in words outside the training vocabulary are accepted even with
    // --strict-vocab and drawn; their embeddings reach the generator: two wordings give two
    // different outputs from the same noise. (Compared before quantising: this test shares
    // libtorch's generator with the tests running beside it, so its two iterations may end
    // anywhere, including a generator whose frames are a flat grey to within a grey level.)
    let loaded = sample::load(&out.checkpoint, Device::Cpu).unwrap();
    assert!(loaded.vocab.encode("a big purple shiny ball").unknown.len() >= 3);
    let t = loaded.cfg.frames;
    let draw = |sentence: &str, dir: &str| {
        let story = vec![sentence; t].join(" ");
        let prepared =
            sample::prepare(&loaded, &story, storyvis_core::input::Fit::Exact, true).unwrap();
        let files = sample::generate(
            &loaded,
            &prepared,
            &[0],
            &root.path().join(dir),
            sample::Format::Frames,
        )
        .unwrap();
        assert_eq!(files.len(), t);
        let refs: Vec<&str> = prepared.sentences.iter().map(String::as_str).collect();
        let text = m.embed(&refs).unwrap().view([1, t as i64, DIM]);
        tch::manual_seed(0);
        loaded.draw(&storyvis_models::storygan::generator::TextBatch::Vectors(text))
    };
    let (ball, block) =
        (draw("a big purple shiny ball.", "ball"), draw("a tiny gray matte block.", "block"));
    assert!(
        (ball - block).abs().max().double_value(&[]) > 0.0,
        "the wording does not reach the generator"
    );
}

#[test]
fn sdgan_reads_captions_and_word_features_through_minilm() {
    storyvis_models::install();
    use std::sync::atomic::AtomicBool;
    use storyvis_core::config::Config;
    use storyvis_core::joint::{EncoderKind, Joint};
    use storyvis_core::precision::Runtime;
    use storyvis_core::train::{train, Start, TrainRequest};
    use storyvis_data::clevr::captions::{generate_captions, CaptionOptions};
    use storyvis_models::stackgan::draw;
    tch::set_num_threads(1);
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("captions");
    generate_captions(
        &CaptionOptions {
            images: 24,
            seed: 2,
            supersample: 1,
            split: 0.75,
            captions: 3,
            ..CaptionOptions::default()
        },
        &data,
        false,
        &|| {},
    )
    .unwrap();
    // The joint embedding with MiniLM: its text side stays as pretrained, the image encoder
    // learns; the directory holds no MiniLM weights (they stay in the cache).
    let encoder = root.path().join("encoder");
    let m = common::tiny_text_encoder(&data, &encoder, EncoderKind::Minilm, 3);
    assert_eq!((m.config.kind, m.config.dim), (EncoderKind::Minilm, DIM));
    assert!((0.0..=1.0).contains(&m.held_out_r_precision));
    let joint = Joint::load(&encoder, Device::Cpu).unwrap();
    assert!(joint.text.vs.variables().is_empty());
    assert!(std::fs::metadata(encoder.join("text_encoder.safetensors")).unwrap().len() < 1024);
    let caption = "a big purple shiny ball.";
    let direct = model().embed(&[caption]).unwrap();
    assert!((joint.text.embed(&[caption]).unwrap() - direct).abs().max().double_value(&[]) < 1e-6);
    assert!(joint.text.unknown_words(caption).is_empty());
    let (features, mask) =
        joint.text.word_features(&joint.text.inputs(&[caption, "a cube."]).unwrap());
    assert_eq!((features.size()[2], joint.text.word_feature_dim()), (DIM, DIM));
    // [CLS] a cube . [SEP]: 5 real tokens of the longer caption's.
    assert_eq!(mask.get(1).sum(Kind::Int64).int64_value(&[]), 5);

    // SDGAN (siamese branches, sentence- and word-level SCBN) trains and draws through it.
    let sets: Vec<String> =
        vec!["max_steps=2".into(), format!("text_encoder={:?}", encoder.display().to_string())];
    let config = Config::resolve("sdgan-tiny", None, &sets).unwrap();
    let req = TrainRequest {
        config,
        overrides: sets,
        data,
        start: Start::Fresh { runs: root.path().join("runs") },
        runtime: Runtime::cpu(),
        group: None,
    };
    let out = train(req, &|_, _, _| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(out.steps, 2);
    let model = draw::load_with(&out.run_dir, Device::Cpu, Default::default()).unwrap();
    let files = draw::generate(&model, caption, &[0], &root.path().join("o"), false).unwrap();
    assert!(!files.is_empty() && files.iter().all(|f| f.is_file()), "{files:?}");
}

#[test]
fn with_text_finetune_storygan_trains_minilm_from_its_pretrained_weights() {
    storyvis_models::install();
    use storyvis_models::storygan::sample;
    tch::set_num_threads(1);
    let root = tempfile::tempdir().unwrap();
    let data = eight_stories(root.path());
    let run =
        |extra: &[&str], name: &str| two_minilm_iterations(&data, &root.path().join(name), extra);
    let frozen = run(&[], "frozen").unwrap();
    let tuned = run(&["text_finetune=true", "lr_text=1e-4"], "tuned").unwrap();
    let weights = |o: &storyvis_core::train::Outcome| -> std::collections::HashMap<String, Tensor> {
        Tensor::read_safetensors(o.checkpoint.join("generator.safetensors"))
            .unwrap()
            .into_iter()
            .collect()
    };
    // Frozen, MiniLM is no part of the generator; trained, it is, moved a little by two Adam
    // steps from the pretrained weights (not from a fresh initialisation).
    assert!(!weights(&frozen).keys().any(|k| k.starts_with("minilm.")));
    let tuned_w = weights(&tuned);
    let pretrained: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(default_dir().unwrap().join("model.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let name = "encoder.layer.5.output.dense.weight";
    let (now, before) = (&tuned_w[&format!("minilm.{name}")], &pretrained[name]);
    let moved = (now - before).abs().max().double_value(&[]);
    assert!(moved > 0.0 && moved < 1e-2, "moved by {moved}");
    assert_eq!(tuned_w.keys().filter(|k| k.starts_with("minilm.")).count(), 101);
    // The tuned model draws typed stories through its own copy.
    let loaded = sample::load(&tuned.checkpoint, Device::Cpu).unwrap();
    let story = vec!["a big purple shiny ball."; loaded.cfg.frames].join(" ");
    let prepared =
        sample::prepare(&loaded, &story, storyvis_core::input::Fit::Exact, true).unwrap();
    assert_eq!(
        sample::generate(&loaded, &prepared, &[0], &root.path().join("out"), sample::Format::Strip)
            .unwrap()
            .len(),
        1
    );
    // text_finetune needs MiniLM.
    let e = format!("{:#}", run(&["text=sentence", "text_finetune=true"], "bad").err().unwrap());
    assert!(e.contains("text_finetune = true needs text = \"minilm\""), "{e}");
}

#[test]
fn with_text_pool_attention_storygan_attends_over_frozen_minilm_tokens() {
    storyvis_models::install();
    use storyvis_models::storygan::generator::TextBatch;
    use storyvis_models::storygan::sample;
    let m = model();
    let root = tempfile::tempdir().unwrap();
    let data = eight_stories(root.path());
    let run =
        |extra: &[&str], name: &str| two_minilm_iterations(&data, &root.path().join(name), extra);
    let out = run(&["text_pool=attention", "text_heads=3"], "attention").unwrap();
    // The checkpoint holds the attention (3 queries of 384, the projection) and the label head,
    // not MiniLM: its weights stay in the cache.
    let w: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(out.checkpoint.join("generator.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    assert!(!w.keys().any(|k| k.starts_with("minilm.")));
    assert_eq!(w["text_pool.queries"].size(), [3, DIM]);
    assert!(w.contains_key("text_labels.weight"));

    // The generator's sentence encodings are, by a loop over tokens in f64, the projection of
    // each query's softmax-weighted mean of frozen MiniLM's last states over the real tokens.
    let loaded = sample::load_with(
        &out.checkpoint,
        Device::Cpu,
        storyvis_core::checkpoint::Weights::Trained,
    )
    .unwrap();
    let story = [
        "a big purple shiny ball sits close to us.",
        "then a tiny cube appears.",
        "a tube.",
        "we see a matte block on the left side of the ball.",
    ];
    let (ids, _) = m.ids(&story).unwrap();
    let got = loaded.encode_text(&TextBatch::Ids(ids.view([1, 4, -1])));
    let sentence_dim = loaded.cfg.sentence_dim;
    assert_eq!(got.size(), [1, 4, sentence_dim]);
    let (states, mask) = m.states(&ids);
    let f = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let (q, pw, pb) =
        (f(&w["text_pool.queries"]), f(&w["text_pool.proj.weight"]), f(&w["text_pool.proj.bias"]));
    let (len, d) = (states.size()[1] as usize, DIM as usize);
    let got = f(&got);
    for s in 0..4 {
        let h = f(&states.get(s as i64));
        let real: Vec<usize> =
            (0..len).filter(|&t| mask.get(s as i64).get(t as i64).int64_value(&[]) != 0).collect();
        let mut pooled = vec![0.0; 3 * d];
        for k in 0..3 {
            let score = |t: usize| {
                (0..d).map(|j| q[k * d + j] * h[t * d + j]).sum::<f64>() / (d as f64).sqrt()
            };
            let top = real.iter().map(|&t| score(t)).fold(f64::MIN, f64::max);
            let e: Vec<f64> = real.iter().map(|&t| (score(t) - top).exp()).collect();
            let z: f64 = e.iter().sum();
            for (a, &t) in e.iter().zip(&real) {
                for j in 0..d {
                    pooled[k * d + j] += a / z * h[t * d + j];
                }
            }
        }
        for o in 0..sentence_dim as usize {
            let want = pb[o] + (0..3 * d).map(|i| pw[o * 3 * d + i] * pooled[i]).sum::<f64>();
            let g = got[s * sentence_dim as usize + o];
            assert!((g - want).abs() < 1e-4, "sentence {s}, value {o}: {g} vs {want}");
        }
    }

    // Typed stories in words it never saw are drawn, and their wording reaches the sentence
    // encodings. (The drawings themselves are not compared: after two iterations on 8 stories
    // the generator may draw a flat frame whatever it reads.)
    let t = loaded.cfg.frames;
    let encode = |sentence: &str, dir: &str| {
        let story = vec![sentence; t].join(" ");
        let prepared =
            sample::prepare(&loaded, &story, storyvis_core::input::Fit::Exact, true).unwrap();
        assert_eq!(
            sample::generate(
                &loaded,
                &prepared,
                &[0],
                &root.path().join(dir),
                sample::Format::Frames
            )
            .unwrap()
            .len(),
            t
        );
        let refs: Vec<&str> = prepared.sentences.iter().map(String::as_str).collect();
        loaded.encode_text(&TextBatch::Ids(m.ids(&refs).unwrap().0.view([1, t as i64, -1])))
    };
    let (ball, block) =
        (encode("a big purple shiny ball.", "ball"), encode("a tiny gray matte block.", "block"));
    assert!(
        (ball - block).abs().max().double_value(&[]) > 1e-3,
        "the wording does not reach the sentence encodings"
    );

    // The attention reads frozen MiniLM only.
    for (sets, want) in [
        (
            &["text=sentence", "text_pool=attention"][..],
            "text_pool = \"attention\" reads frozen MiniLM's token states",
        ),
        (
            &["text_pool=attention", "text_finetune=true", "lr_text=1e-4"][..],
            "text_pool = \"attention\" reads frozen MiniLM's token states",
        ),
        (&["text_pool=attention", "text_heads=0"][..], "text_heads"),
        (&["text_pool=max"][..], "text_pool"),
    ] {
        let e = format!("{:#}", run(sets, "bad").err().unwrap());
        assert!(e.contains(want), "{sets:?}: {e}");
    }
}
