//! The object detector end to end: it learns where a lone rendered object is, and its saved
//! form loads, or fails clearly when damaged or of another kind.

mod common;

use storyvis_core::fit::Fit;
use storyvis_data::clevr::render::Renderer;
use storyvis_data::clevr::scene::Object;
use storyvis_data::clevr::{frame_objects, generate, sample_story, GenerateOptions};
use storyvis_data::dataset::FrameObject;
use storyvis_eval::detector::{self, Detector, DetectorNet, DetectorRequest};
use tch::{nn::VarStore, Device, Kind, Tensor};

/// `n` 64×64 frames of one large object each (the first object of CLEVR-SV stories, made
/// large), in [−1, 1], with their objects.
fn lone_objects(n: usize) -> (Tensor, Vec<Vec<FrameObject>>) {
    let opts = GenerateOptions { size: 64, ..GenerateOptions::default() };
    let (mut pixels, mut objects) = (Vec::new(), Vec::new());
    let mut i = 0;
    while objects.len() < n {
        let (story, _) = sample_story(&opts, i).unwrap();
        i += 1;
        let o = Object { size: 0, ..story.objects[0] };
        if !story.camera.sees_whole(&o) {
            continue;
        }
        let r = Renderer::new(&[o], &story.camera);
        pixels.extend(r.render(64, 1));
        objects.push(frame_objects(&[o], &story.camera, 64, Some(&r)));
    }
    let hwc = Tensor::from_slice(&pixels).view([n as i64, 64, 64, 3]).permute([0, 3, 1, 2]);
    (hwc.to_kind(Kind::Float) / 127.5 - 1.0, objects)
}

#[test]
fn a_briefly_trained_detector_finds_a_lone_large_objects_centre_within_3_pixels() {
    let _turn = common::turn();
    tch::manual_seed(0);
    let (images, objects) = lone_objects(112);
    let (train, test) = (images.narrow(0, 0, 96), images.narrow(0, 96, 16));
    let vs = VarStore::new(Device::Cpu);
    let net = DetectorNet::new(vs.root(), &detector::WIDTHS);
    let fit = Fit { steps: 400, batch: 16, lr: 2e-3, seed: 0, device: Device::Cpu };
    detector::fit(&fit, &vs, &net, &train, &objects[..96], &|_, _, _| {}).unwrap();
    let found = detector::detect_with(&net, &test, detector::THRESHOLD, Device::Cpu);
    let mut errors = Vec::new();
    for (truth, found) in objects[96..].iter().zip(&found) {
        let t = truth[0].centre;
        // The hottest detection is the object.
        let best =
            found.first().map_or(f32::INFINITY, |d| (d.centre[0] - t[0]).hypot(d.centre[1] - t[1]));
        errors.push(best);
    }
    assert!(errors.iter().all(|&e| e <= 3.0), "centre errors (pixels): {errors:?}");
}

#[test]
fn a_saved_detector_loads_and_damaged_or_other_directories_are_clear_errors() {
    let _turn = common::turn();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    generate(
        &GenerateOptions { stories: 8, size: 64, split: 0.75, ..GenerateOptions::default() },
        &data,
        false,
        &|| {},
    )
    .unwrap();
    let out = root.path().join("detector");
    let req = DetectorRequest {
        data: data.clone(),
        out: out.clone(),
        steps: 5,
        batch: 4,
        lr: 1e-3,
        seed: 0,
        device: Device::Cpu,
        force: false,
        widths: vec![8, 8],
    };
    let m = detector::train_detector(&req, &|_, _, _| {}).unwrap();
    assert_eq!((m.held_out.frames, m.held_out.objects), (8, 20));
    let d = Detector::load(&out, Device::Cpu).unwrap();
    assert_eq!(d.manifest.widths, vec![8, 8]);
    let frames = Tensor::zeros([3, 3, 128, 128], (Kind::Uint8, Device::Cpu));
    assert_eq!(d.detect(&frames).len(), 3);
    // An existing directory is kept unless replaced on purpose.
    let e = detector::train_detector(&req, &|_, _, _| {}).unwrap_err().to_string();
    assert!(e.contains("exists"), "{e}");
    let err = |p: &std::path::Path| {
        format!("{:#}", Detector::load(p, Device::Cpu).err().expect("an error"))
    };
    // A classifier is not a detector.
    let classifier = root.path().join("classifier");
    common::tiny_classifier(&data, &classifier, 2);
    assert!(
        err(&classifier).contains("is an attribute classifier, not an object detector"),
        "{}",
        err(&classifier)
    );
    assert!(err(&root.path().join("nowhere")).contains("train-detector"));
    // A truncated weights file.
    let weights = out.join("detector.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    assert!(err(&out).contains("corrupt or truncated"), "{}", err(&out));
    // A dataset rendered before frames listed their objects is refused by name.
    let manifest = data.join("manifest.jsonl");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let stripped: String = text.lines().map(|l| strip_objects(l) + "\n").collect();
    std::fs::write(&manifest, stripped).unwrap();
    let req = DetectorRequest { out: root.path().join("again"), ..req };
    let e = format!("{:#}", detector::train_detector(&req, &|_, _, _| {}).unwrap_err());
    assert!(e.contains("lists no objects") && e.contains("prepare it again"), "{e}");
}

/// A manifest line without its frames' `objects`.
fn strip_objects(line: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
    if let Some(frames) = v.get_mut("frames").and_then(|f| f.as_array_mut()) {
        for f in frames {
            f.as_object_mut().unwrap().remove("objects");
        }
    }
    v.to_string()
}
