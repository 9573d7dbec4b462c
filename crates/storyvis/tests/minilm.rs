//! all-MiniLM-L6-v2 on tch against sentence-transformers' published behaviour: token ids,
//! embedding values and cosine similarities computed by the reference implementation with the
//! same package's weights; and the clear errors for missing or damaged files.

use std::path::Path;
use storyvis::minilm::{default_dir, mean_pool_normalised, MiniLm, DIM};
use tch::{Device, Kind, Tensor};

fn model() -> MiniLm {
    tch::set_num_threads(1);
    MiniLm::load_default(Device::Cpu).unwrap_or_else(|e| panic!("{e:#} (scripts/setup installs the MiniLM files)"))
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
    let m = model();
    let weather = "The weather is lovely today.";
    let sphere = "a small red rubber sphere";
    assert_eq!(m.token_ids(weather).unwrap(), [101, 1996, 4633, 2003, 8403, 2651, 1012, 102]);
    assert_eq!(m.token_ids(sphere).unwrap(), [101, 1037, 2235, 2417, 8903, 10336, 102]);
    let e = m.embed(&[weather, sphere]).unwrap();
    assert_eq!(e.size(), [2, DIM]);
    let w = row(&e, 0);
    close(&w[..8], &[0.019196, 0.120085, 0.159598, 0.067066, 0.050075, -0.025919, 0.056468, -0.092858], 1e-4);
    close(&[w.iter().sum::<f32>()], &[-0.141735], 1e-4);
    close(&row(&e, 1)[..8], &[0.023617, 0.021707, -0.000462, 0.019779, 0.049882, -0.05688, 0.113862, 0.104629], 1e-4);
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
    assert_eq!(ids.len(), m.max_tokens);
    assert_eq!((ids[0], *ids.last().unwrap()), (101, 102));
    assert_eq!(m.embed(&[very_long.as_str()]).unwrap().size(), [1, DIM]);
}

#[test]
fn mean_pooling_skips_padding_and_normalises() {
    // Two sentences of 3 and 2 tokens, 2-wide states; the padded position holds a large value
    // that must not count.
    let states = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 0.0, 3.0, 0.0, 1.0, 4.0, 100.0, 100.0]).view([2, 3, 2]);
    let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 0]).view([2, 3]);
    let got = mean_pool_normalised(&states, &mask);
    // Means (3, 2) and (2, 2); lengths √13 and √8.
    let want = [3.0 / 13f32.sqrt(), 2.0 / 13f32.sqrt(), 2.0 / 8f32.sqrt(), 2.0 / 8f32.sqrt()];
    close(&Vec::<f32>::try_from(got.flatten(0, -1)).unwrap(), &want, 1e-6);
}

/// A copy of the model's directory (links to its files) without the file `drop`, and with one
/// bit of the file `damage` flipped.
fn altered_copy(out: &Path, drop: &str, damage: &str) {
    let src = default_dir();
    for (name, _) in storyvis::minilm::FILES {
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
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    altered_copy(&missing, "model.safetensors", "");
    let e = format!("{:#}", MiniLm::load(&missing, Device::Cpu).unwrap_err());
    assert!(e.contains("model.safetensors") && e.contains("missing") && e.contains("scripts/setup"), "{e}");

    let damaged = dir.path().join("damaged");
    altered_copy(&damaged, "", "tokenizer.json");
    let e = format!("{:#}", MiniLm::load(&damaged, Device::Cpu).unwrap_err());
    assert!(e.contains("tokenizer.json") && e.contains("damaged"), "{e}");
}
