use super::family::{discriminator_losses, generator_losses};
use super::*;
use tch::{Device, Kind};

fn tiny() -> Config {
    Config::of(&storyvis_core::config::Config::resolve("tganc-tiny", None, &[]).unwrap()).unwrap()
}

fn randn(shape: &[i64]) -> Tensor {
    Tensor::randn(shape, (Kind::Float, Device::Cpu))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// −log σ(x) and −log(1 − σ(x)), by hand.
fn nll_real(x: f64) -> f64 {
    (1.0 + (-x).exp()).ln()
}
fn nll_fake(x: f64) -> f64 {
    (1.0 + x.exp()).ln()
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

fn mean(v: &[f64], f: fn(f64) -> f64) -> f64 {
    v.iter().map(|&x| f(x)).sum::<f64>() / v.len() as f64
}

/// The encoder as a naive loop: the bidirectional LSTM one word at a time (padding leaves
/// the state unchanged), then the sentence LSTM over the joined states up to the last word.
fn encode_by_steps(enc: &CaptionEncoder, ids: &Tensor) -> Tensor {
    let rows = ids.size()[0];
    let mut out = Vec::new();
    for r in 0..rows {
        let row: Vec<i64> = Vec::try_from(ids.get(r)).unwrap();
        let len = row.iter().take_while(|&&w| w != storyvis_core::text::PAD).count() as i64;
        let words =
            enc.embed.forward(&ids.get(r).narrow(0, 0, len.max(1)).unsqueeze(0)).squeeze_dim(0);
        let zero = |d: i64| Tensor::zeros([1, d], (Kind::Float, Device::Cpu));
        let run = |cell: &LstmCell, order: Vec<i64>| -> Vec<Tensor> {
            let (mut h, mut c) = (zero(cell.hidden_dim), zero(cell.hidden_dim));
            let mut states: Vec<Tensor> = (0..len).map(|_| Tensor::new()).collect();
            for t in order {
                (h, c) = cell.step(&words.get(t).unsqueeze(0), &h, &c);
                states[t as usize] = h.shallow_clone();
            }
            states
        };
        if len == 0 {
            out.push(zero(enc.sentence.hidden_dim));
            continue;
        }
        let fwd = run(&enc.forward, (0..len).collect());
        let bwd = run(&enc.backward, (0..len).rev().collect());
        let (mut h, mut c) = (zero(enc.sentence.hidden_dim), zero(enc.sentence.hidden_dim));
        let mut sum = zero(enc.sentence.hidden_dim);
        for t in 0..len as usize {
            (h, c) = enc.sentence.step(&Tensor::cat(&[&fwd[t], &bwd[t]], 1), &h, &c);
            sum += &h;
        }
        out.push(match enc.pooling {
            Sentence::Last => h,
            Sentence::Mean => sum / len as f64,
        });
    }
    Tensor::cat(&out, 0)
}

#[test]
fn the_caption_encoder_equals_the_step_by_step_loop() {
    crate::install();
    for sentence in [Sentence::Last, Sentence::Mean] {
        tch::manual_seed(0);
        let c = Config { word_dim: 5, lstm_dim: 4, sentence_dim: 6, sentence, ..tiny() };
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let enc = CaptionEncoder::new(vs.root(), 12, &c);
        // Captions of 5, 3 and 1 words, right-padded, and one of padding only.
        let ids =
            Tensor::from_slice(&[3i64, 4, 5, 6, 7, 8, 2, 9, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                .view([4, 5]);
        let got = enc.forward(&ids);
        assert_eq!(got.size(), [4, 6]);
        let want = encode_by_steps(&enc, &ids);
        assert!(
            max_diff(&got, &want) < 1e-6,
            "{sentence:?}: max difference {}",
            max_diff(&got, &want)
        );
        // The backward direction matters: reversing a caption's words changes S.
        let rev = Tensor::from_slice(&[7i64, 6, 5, 4, 3]).view([1, 5]);
        assert!(max_diff(&enc.forward(&rev), &got.narrow(0, 0, 1)) > 1e-4);
    }
}

#[test]
fn the_networks_have_the_papers_shapes() {
    crate::install();
    tch::manual_seed(1);
    for (frames, size) in [(16, 64), (4, 32), (8, 64), (32, 64)] {
        let c = Config { frames, image_size: size, ..tiny() };
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let g = Generator::new(vs.root() / "g", &c);
        let d = Discriminator::new(vs.root() / "d", &c, None, None).unwrap();
        let z = randn(&[3, c.noise_dim]);
        let s = randn(&[3, c.sentence_dim]);
        let clip = g.forward_t(&z, &s, true);
        assert_eq!(clip.size(), [3, c.channels, frames, size, size], "{frames} frames of {size}");
        assert!(clip.abs().max().double_value(&[]) <= 1.0);
        let f = d.features(&clip, true);
        let top = c.ndf << (storyvis_core::nn::doublings(size) - 1).min(3);
        assert_eq!(f.frames.size(), [3 * frames, top, 4, 4]);
        assert_eq!(f.video.size(), [3, top * c.base_frames(), 4, 4]);
        assert_eq!(d.video(&f, &s, true).size(), [3]);
        assert_eq!(d.frame(&f, &s, true).size(), [3 * frames]);
        assert_eq!(d.motion(&f, &s, true).size(), [3 * (frames - 1)]);
    }
    let paper =
        Config::of(&storyvis_core::config::Config::resolve("tganc-mnist1", None, &[]).unwrap())
            .unwrap();
    assert_eq!(
        (paper.frames, paper.image_size, paper.noise_dim, paper.temporal),
        (16, 64, 100, Temporal::Adversarial)
    );
}

#[test]
fn the_motion_discriminator_reads_adjacent_frame_feature_differences() {
    crate::install();
    tch::manual_seed(2);
    let c = tiny();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let d = Discriminator::new(vs.root(), &c, None, None).unwrap();
    let clips = randn(&[2, 1, 16, 64, 64]).tanh();
    let f = d.features(&clips, false);
    // Frame i's features are D1's convolutions of frame i alone.
    let frame5 = d.frames.forward_t(&clips.select(2, 5).narrow(0, 1, 1), false);
    assert!(max_diff(&frame5, &f.frames.narrow(0, 16 + 5, 1)) < 1e-6);
    // The motion tensor: f[t] − f[t−1] within each clip, never across clips.
    let m = f.motion();
    assert_eq!(m.size(), [2 * 15, 8 * c.ndf, 4, 4]);
    for (clip, t) in [(0, 1), (0, 15), (1, 1), (1, 9)] {
        let want = f.frames.get(clip * 16 + t) - f.frames.get(clip * 16 + t - 1);
        assert!(max_diff(&m.get(clip * 15 + t - 1), &want) < 1e-6, "clip {clip} frame {t}");
    }
    // D2 judges exactly those differences with each clip's sentence.
    let s = randn(&[2, c.sentence_dim]);
    let rows = Tensor::cat(
        &[
            s.get(0).unsqueeze(0).expand([15, -1], false),
            s.get(1).unsqueeze(0).expand([15, -1], false),
        ],
        0,
    );
    assert!(max_diff(&d.motion(&f, &s, false), &d.motion_judge.forward_t(&m, &rows, false)) < 1e-6);
    // A still clip has no motion.
    let still = clips.narrow(2, 0, 1).expand([2, 1, 16, 64, 64], false).contiguous();
    let fs = d.features(&still, false);
    assert!(fs.motion().abs().max().double_value(&[]) < 1e-6);
    assert!(coherence_constraint(&fs).double_value(&[]) < 1e-10);
    // The constraint is the mean squared difference.
    let by_hand = values(&m).iter().map(|x| x * x).sum::<f64>() / m.numel() as f64;
    assert!((coherence_constraint(&f).double_value(&[]) - by_hand).abs() < 1e-6 * by_hand.max(1.0));
}

#[test]
fn the_matching_aware_terms_are_real_plus_half_fake_and_wrong_for_each_discriminator() {
    crate::install();
    tch::manual_seed(3);
    let c = tiny();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let d = Discriminator::new(vs.root(), &c, None, None).unwrap();
    let real = randn(&[3, 1, 16, 64, 64]).tanh();
    let fake = randn(&[3, 1, 16, 64, 64]).tanh();
    let (s, w) = (randn(&[3, c.sentence_dim]), randn(&[3, c.sentence_dim]));
    let want = |r: Tensor, f: Tensor, wr: Tensor| {
        mean(&values(&r), nll_real)
            + 0.5 * (mean(&values(&f), nll_fake) + mean(&values(&wr), nll_fake))
    };
    let (l, _) = tch::no_grad(|| discriminator_losses(&d, &real, &fake, &s, &w, true, None));
    // By hand from the discriminators' logits (training mode, as the losses run: each batch of
    // clips normalised by its own statistics).
    let (tr, tf) = (d.features(&real, true), d.features(&fake, true));
    let vt = want(d.video(&tr, &s, true), d.video(&tf, &s, true), d.video(&tr, &w, true));
    let ft = want(d.frame(&tr, &s, true), d.frame(&tf, &s, true), d.frame(&tr, &w, true));
    let mt = want(d.motion(&tr, &s, true), d.motion(&tf, &s, true), d.motion(&tr, &w, true));
    for (got, want) in [(&l.video, vt), (&l.frame, ft), (l.motion.as_ref().unwrap(), mt)] {
        assert!((got.double_value(&[]) - want).abs() < 1e-5, "{} vs {want}", got.double_value(&[]));
    }
    // Without the adversarial temporal loss there is no motion term.
    let (l, _) = tch::no_grad(|| discriminator_losses(&d, &real, &fake, &s, &w, false, None));
    assert!(l.motion.is_none());
    assert!(
        (l.total().double_value(&[]) - l.video.double_value(&[]) - l.frame.double_value(&[])).abs()
            < 1e-6
    );
    // The generator's: −log D(fake, right caption) per discriminator, plus the constraint for
    // TGANs-C-C only.
    let (g, cc) = tch::no_grad(|| generator_losses(&d, &fake, &s, Temporal::Adversarial, None));
    let f2 = d.features(&fake, true);
    assert!(
        (g.video.double_value(&[]) - mean(&values(&d.video(&f2, &s, true)), nll_real)).abs() < 1e-5
    );
    assert!(
        (g.frame.double_value(&[]) - mean(&values(&d.frame(&f2, &s, true)), nll_real)).abs() < 1e-5
    );
    assert!(
        (g.motion.unwrap().double_value(&[]) - mean(&values(&d.motion(&f2, &s, true)), nll_real))
            .abs()
            < 1e-5
    );
    assert!(cc.is_none());
    let (g, cc) = tch::no_grad(|| generator_losses(&d, &fake, &s, Temporal::Constraint, None));
    assert!(g.motion.is_none());
    assert!(
        (cc.unwrap().double_value(&[]) - coherence_constraint(&f2).double_value(&[])).abs() < 1e-6
    );
    let (g, cc) = tch::no_grad(|| generator_losses(&d, &fake, &s, Temporal::None, None));
    assert!(g.motion.is_none() && cc.is_none());
}

#[test]
fn the_wrong_caption_term_teaches_the_encoder_and_the_judges() {
    crate::install();
    tch::manual_seed(4);
    let c = tiny();
    let (dvs, tvs) = (tch::nn::VarStore::new(Device::Cpu), tch::nn::VarStore::new(Device::Cpu));
    let d = Discriminator::new(dvs.root(), &c, None, None).unwrap();
    let enc = CaptionEncoder::new(tvs.root(), 10, &c);
    let real = randn(&[2, 1, 16, 64, 64]).tanh();
    let fake = randn(&[2, 1, 16, 64, 64]).tanh();
    let (right, wrong) = (
        Tensor::from_slice(&[2i64, 3, 4, 2, 5, 4]).view([2, 3]),
        Tensor::from_slice(&[2i64, 5, 4, 2, 3, 4]).view([2, 3]),
    );
    let (l, _) = discriminator_losses(
        &d,
        &real,
        &fake,
        &enc.forward(&right),
        &enc.forward(&wrong),
        true,
        None,
    );
    let vars: Vec<Tensor> = tvs.trainable_variables();
    let grads = Tensor::run_backward(&[l.total()], &vars.iter().collect::<Vec<_>>(), false, false);
    let norm: f64 = grads
        .iter()
        .filter(|g| g.defined())
        .map(|g| g.square().sum(Kind::Float).double_value(&[]))
        .sum();
    assert!(norm > 0.0, "the caption encoder gets no gradient");
    // And the mismatched term is what tells captions apart: with the wrong caption the right
    // one, real and "wrong" logits coincide and the loss is the plain one's real + ½ (fake + real).
    let s = enc.forward(&right);
    let (same, _) = tch::no_grad(|| discriminator_losses(&d, &real, &fake, &s, &s, false, None));
    let (fr, ff) = (d.features(&real, true), d.features(&fake, true));
    let (r, f) = (values(&d.video(&fr, &s, true)), values(&d.video(&ff, &s, true)));
    let want = mean(&r, nll_real) + 0.5 * (mean(&f, nll_fake) + mean(&r, nll_fake));
    assert!((same.video.double_value(&[]) - want).abs() < 1e-5);
}

#[test]
fn the_generators_last_layer_sets_the_ground_of_every_frame_with_its_bias() {
    crate::install();
    // With the last layer's weights at zero the clip is tanh(bias) everywhere: the first and
    // last frames too, which its temporal kernel reaches with one tap where the others get two.
    let c = tiny();
    let vs = nn::VarStore::new(Device::Cpu);
    let g = Generator::new(vs.root(), &c);
    let ups = g.clip_layers();
    let last = ups.last().unwrap();
    let bias = last.bs.as_ref().expect("the last layer has a bias");
    assert!(ups[..ups.len() - 1].iter().all(|u| u.bs.is_none()), "batch norm follows the others");
    tch::no_grad(|| {
        let _ = last.ws.shallow_clone().zero_();
        let _ = bias.shallow_clone().fill_(-1.5);
    });
    let clip = g.forward_t(&randn(&[3, c.noise_dim]), &randn(&[3, c.sentence_dim]), false);
    assert_eq!(clip.size(), [3, c.channels, c.frames, c.image_size, c.image_size]);
    assert!(max_diff(&clip, &clip.full_like((-1.5f64).tanh())) < 1e-6);
}

#[test]
fn the_per_frame_attribute_loss_is_the_mean_of_each_frames_loss() {
    crate::install();
    tch::manual_seed(9);
    let names: Vec<String> = (0..10)
        .map(|d| format!("digit:{d}"))
        .chain(["motion:up-down".into(), "motion:left-right".into()])
        .collect();
    let mut on = vec![0f32; 24];
    for k in [3, 10, 12 + 7, 12 + 11] {
        on[k] = 1.0;
    }
    let labels = Tensor::from_slice(&on).view([2, 12]);
    let heads = storyvis_core::recipe::Labels::of(&names, &labels);
    assert!(heads.groups.is_some());
    let mut c = tiny();
    c.attributes_per_frame = true;
    let clips = randn(&[2, 1, c.frames, 64, 64]);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut d = Discriminator::new(vs.root(), &c, Some(heads), None).unwrap();
    // Features of the discriminator's shapes, drawn large (frames that disagree strongly), so
    // that the freshly initialised head's logits are far from zero.
    let shapes = tch::no_grad(|| d.features(&clips, false));
    let f = Features {
        frames: randn(&shapes.frames.size()) * 20.0,
        video: randn(&shapes.video.size()) * 20.0,
        clips: 2,
        projected: None,
    };
    let got = d.attribute_loss(&f, &labels).unwrap().double_value(&[]);
    // By hand: the head on [video ; frame k] for each frame k alone, averaged.
    let t = c.frames;
    let frames = f.frames.view([2, t, -1]);
    let head = d.attributes.as_ref().unwrap();
    let want = (0..t)
        .map(|k| {
            head.loss(&Tensor::cat(&[f.video.flatten(1, -1), frames.select(1, k)], 1), &labels)
                .double_value(&[])
        })
        .sum::<f64>()
        / t as f64;
    assert!((got - want).abs() < 1e-5 * want.abs().max(1.0), "{got} vs {want}");
    // Without the switch the head judges the frames' average once: another value.
    d.per_frame = false;
    let averaged = d.attribute_loss(&f, &labels).unwrap().double_value(&[]);
    let frames_mean = frames.mean_dim(1, false, Kind::Float);
    let want_mean = head
        .loss(&Tensor::cat(&[f.video.flatten(1, -1), frames_mean], 1), &labels)
        .double_value(&[]);
    assert!(
        (averaged - want_mean).abs() < 1e-5 * want_mean.abs().max(1.0)
            && (averaged - got).abs() > 1e-2,
        "{averaged} vs {want_mean}, {got}"
    );
}

#[test]
fn a_path_moves_the_picture_by_whole_pixels_and_brings_in_the_ground() {
    crate::install();
    // Offsets of whole pixels (2k/S in normalised units) sample exact pixel centres: frame t is
    // the picture shifted by −offset, pixel for pixel, with −1 where it came from outside.
    tch::manual_seed(3);
    let (b, ch, s) = (2i64, 2i64, 8i64);
    let pictures = randn(&[b, ch, s, s]).tanh();
    let steps: [[i64; 2]; 3] = [[0, 0], [2, -1], [-3, 4]]; // (x, y) pixels per frame
    let path: Vec<f32> = (0..b)
        .flat_map(|i| steps.iter().flat_map(move |p| p.map(|k| (2 * (k + i)) as f32 / s as f32)))
        .collect();
    let paths = Tensor::from_slice(&path).view([b, 3, 2]);
    let clips = super::along_path(&pictures, &paths);
    assert_eq!(clips.size(), [b, ch, 3, s, s]);
    let pic = Vec::<f32>::try_from(pictures.flatten(0, -1)).unwrap();
    let got = Vec::<f32>::try_from(clips.flatten(0, -1)).unwrap();
    for i in 0..b {
        for (t, step) in steps.iter().enumerate() {
            let (dx, dy) = (step[0] + i, step[1] + i);
            for c in 0..ch {
                for y in 0..s {
                    for x in 0..s {
                        let (sy, sx) = (y + dy, x + dx);
                        let want = if (0..s).contains(&sy) && (0..s).contains(&sx) {
                            pic[(((i * ch + c) * s + sy) * s + sx) as usize]
                        } else {
                            -1.0
                        };
                        let at = ((((i * ch + c) * 3 + t as i64) * s + y) * s + x) as usize;
                        assert!(
                            (got[at] - want).abs() < 1e-5,
                            "clip {i} frame {t} channel {c} ({x}, {y}): {} vs {want}",
                            got[at]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn the_sprite_generator_moves_one_picture_and_learns_its_path() {
    crate::install();
    tch::manual_seed(4);
    let c = Config { generator: super::GeneratorKind::Sprite, ..tiny() };
    let vs = nn::VarStore::new(Device::Cpu);
    let g = Generator::new(vs.root(), &c);
    assert!(g.clip_layers().is_empty());
    let (z, s) = (randn(&[3, c.noise_dim]), randn(&[3, c.sentence_dim]));
    let clip = g.forward_t(&z, &s, true);
    assert_eq!(clip.size(), [3, c.channels, c.frames, c.image_size, c.image_size]);
    assert!(clip.abs().max().double_value(&[]) <= 1.0);
    // The path starts still: every frame is the same picture.
    let first = clip.narrow(2, 0, 1);
    assert!(max_diff(&clip, &first.expand_as(&clip)) < 1e-6);
    // A loss on where the last frame's picture is reaches the path's weights (through the
    // sampler).
    let last = clip.narrow(2, c.frames - 1, 1);
    (&last - last.roll([3], [4]).detach()).square().mean(Kind::Float).backward();
    let vars = vs.variables();
    let hidden_grad = vars["path_hidden.weight"].grad();
    let path_grad = vars["path.weight"].grad();
    assert!(
        path_grad.abs().sum(Kind::Float).double_value(&[]) > 0.0,
        "the path's last layer gets a gradient"
    );
    // (Its hidden layer gets one once the last layer is off zero.)
    assert_eq!(hidden_grad.abs().sum(Kind::Float).double_value(&[]), 0.0);
    assert_eq!(vars["path.weight"].size(), [4, 128]);
}

#[test]
fn the_polar_path_starts_on_the_move_and_reads_a_direction_and_a_speed() {
    crate::install();
    use super::{sprite_travel, SpritePath, PATH_REACH, PATH_TRAVEL};
    use std::f64::consts::PI;
    // By hand: start (tanh o1, tanh o2)·reach; travel (cos πo3, sin πo3)·sigmoid(o4)·most.
    let rows = [[0.3f64, -1.2, 0.0, 0.0], [0.0, 0.0, 0.5, 2.0], [-0.7, 0.4, -0.25, -1.0]];
    let o = Tensor::from_slice(&rows.concat()).view([3, 4]).to_kind(Kind::Float);
    let (start, travel) = sprite_travel(&o, SpritePath::Polar);
    let (start, travel) = (values(&start), values(&travel));
    for (b, r) in rows.iter().enumerate() {
        let speed = PATH_TRAVEL / (1.0 + (-r[3]).exp());
        let want = [
            r[0].tanh() * PATH_REACH,
            r[1].tanh() * PATH_REACH,
            (PI * r[2]).cos() * speed,
            (PI * r[2]).sin() * speed,
        ];
        let got = [start[2 * b], start[2 * b + 1], travel[2 * b], travel[2 * b + 1]];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "row {b}: {got:?} vs {want:?}");
        }
    }
    // The xy reading of the same outputs: tanh per axis.
    let xy = values(&sprite_travel(&o, SpritePath::Xy).1);
    assert!((xy[3] - 2f64.tanh() * PATH_TRAVEL).abs() < 1e-5);
    // From the zero start the polar generator's clips move (half the most travel, along x)
    // where the xy generator's stand still.
    tch::manual_seed(4);
    let c = Config {
        generator: super::GeneratorKind::Sprite,
        sprite_path: SpritePath::Polar,
        ..tiny()
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let g = Generator::new(vs.root(), &c);
    let clip = g.forward_t(&randn(&[2, c.noise_dim]), &randn(&[2, c.sentence_dim]), true);
    let first = clip.narrow(2, 0, 1);
    assert!(max_diff(&clip, &first.expand_as(&clip)) > 0.1, "the polar path starts on the move");
    // sprite_path is for the sprite generator only.
    let resolve = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        storyvis_core::config::Config::resolve("tganc-tiny", None, &sets)
            .and_then(|cfg| Config::of(&cfg))
    };
    let err = format!("{:#}", resolve(&["sprite_path=polar"]).unwrap_err());
    assert!(err.contains("sprite_path"), "{err}");
    assert_eq!(
        resolve(&["sprite_path=polar", "generator=sprite"]).unwrap().sprite_path,
        SpritePath::Polar
    );
}

#[test]
fn the_sprite_window_keeps_the_picture_in_the_middle_and_the_ground_around_it() {
    crate::install();
    let x = Tensor::rand([2, 1, 8, 8], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let got = values(&super::windowed(&x, 4));
    let xs = values(&x);
    for (i, (g, v)) in got.iter().zip(&xs).enumerate() {
        let (row, col) = ((i / 8) % 8, i % 8);
        let inside = (2..6).contains(&row) && (2..6).contains(&col);
        let want = if inside { *v } else { -1.0 };
        assert!((g - want).abs() < 1e-6, "pixel {i} ({row}, {col}): {g} vs {want}");
    }
    assert!(
        max_diff(&super::windowed(&x, 0), &x) == 0.0
            && max_diff(&super::windowed(&x, 8), &x) == 0.0
    );
    // In the generator: the first frame of a still path is the ground outside the window.
    let c = Config { generator: super::GeneratorKind::Sprite, sprite_window: 8, ..tiny() };
    let vs = nn::VarStore::new(Device::Cpu);
    let clip = Generator::new(vs.root(), &c).forward_t(
        &randn(&[2, c.noise_dim]),
        &randn(&[2, c.sentence_dim]),
        true,
    );
    let lo = (c.image_size - 8) / 2;
    let frame = clip.narrow(2, 0, 1);
    let outside = frame.narrow(3, 0, lo);
    assert!(max_diff(&outside, &(outside.ones_like() * -1.0)) < 1e-6);
    assert!(
        max_diff(
            &frame.narrow(3, lo, 8).narrow(4, lo, 8),
            &(frame.narrow(3, lo, 8).narrow(4, lo, 8).ones_like() * -1.0)
        ) > 1e-3
    );
    // A window needs the sprite generator and fits the canvas.
    let resolve = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        storyvis_core::config::Config::resolve("tganc-tiny", None, &sets)
            .and_then(|cfg| Config::of(&cfg))
    };
    assert!(format!("{:#}", resolve(&["sprite_window=8"]).unwrap_err())
        .contains("sprite_window = 8 must be 0"));
    assert!(resolve(&["sprite_window=1000", "generator=sprite"]).is_err());
    assert_eq!(resolve(&["sprite_window=8", "generator=sprite"]).unwrap().sprite_window, 8);
}

#[test]
fn a_bouncing_path_moves_at_a_constant_velocity_and_reflects_off_the_walls() {
    crate::install();
    let reach = 0.5;
    let start = Tensor::from_slice(&[0.1f32, -0.4, 0.0, 0.3]).view([2, 2]);
    let travel = Tensor::from_slice(&[2.7f32, 0.0, -5.3, 1.1]).view([2, 2]);
    let frames = 8;
    let got =
        Vec::<f32>::try_from(super::bouncing_path(&start, &travel, frames, reach).flatten(0, -1))
            .unwrap();
    let (s, v) = ([0.1f64, -0.4, 0.0, 0.3], [2.7f64, 0.0, -5.3, 1.1]);
    for b in 0..2 {
        for t in 0..frames as usize {
            for a in 0..2 {
                // Walk there step by step, turning round at each wall.
                let (mut x, mut dir) = (s[2 * b + a], v[2 * b + a].signum());
                let mut left = v[2 * b + a].abs() * t as f64 / (frames - 1) as f64;
                while left > 0.0 {
                    let wall = if dir > 0.0 { reach - x } else { x + reach };
                    let step = left.min(wall);
                    x += dir * step;
                    left -= step;
                    if left > 0.0 {
                        dir = -dir;
                    }
                }
                let at = (b * frames as usize + t) * 2 + a;
                assert!(
                    (got[at] as f64 - x).abs() < 1e-5,
                    "path {b} frame {t} axis {a}: {} vs {x}",
                    got[at]
                );
            }
        }
    }
}
