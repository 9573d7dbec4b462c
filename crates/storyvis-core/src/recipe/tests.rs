use super::*;

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

fn randn(shape: &[i64]) -> Tensor {
    Tensor::randn(shape, (Kind::Float, Device::Cpu))
}

fn policy(p: &str) -> Augment {
    Augment::parse(p).unwrap()
}

/// Per picture (dy, dx) of a shift, and (top, left, side) of a cutout.
type Shifts = Vec<(i64, i64)>;
type Holes = Vec<(i64, i64, i64)>;

/// The shift and cutout parameters of a draw, as plain numbers.
fn parameters(d: &AugmentDraw) -> (Shifts, Holes) {
    let (mut shifts, mut holes) = (Vec::new(), Vec::new());
    for step in &d.steps {
        match step {
            Step::Shift(s) => {
                let v = Vec::<i64>::try_from(s.flatten(0, -1)).unwrap();
                shifts = v.chunks(2).map(|c| (c[0], c[1])).collect();
            }
            Step::Cutout { corner, side } => {
                let v = Vec::<i64>::try_from(corner.flatten(0, -1)).unwrap();
                holes = v.chunks(2).map(|c| (c[0], c[1], *side)).collect();
            }
            Step::Color { .. } => {}
        }
    }
    (shifts, holes)
}

#[test]
fn policies_parse_and_bad_ones_are_named() {
    assert_eq!(
        policy("color, translation,cutout").transforms,
        vec![Transform::Color, Transform::Translation, Transform::Cutout]
    );
    assert!(policy("").is_off());
    let e = Augment::parse("color,flip").unwrap_err().to_string();
    assert!(e.contains("\"flip\"") && e.contains("translation"), "{e}");
    assert!(Augment::parse("cutout,cutout").unwrap_err().to_string().contains("twice"));
}

#[test]
fn translation_and_cutout_equal_a_loop_over_pixels() {
    tch::manual_seed(3);
    let (b, c, s) = (6, 2, 8);
    let x = randn(&[b, c, s, s]);
    let d = policy("translation,cutout").draw(b, s, Device::Cpu);
    let got = values(&d.apply(&x));
    let (shifts, holes) = parameters(&d);
    assert!(
        shifts.iter().all(|&(dy, dx)| dy.abs() <= 1 && dx.abs() <= 1),
        "⅛ of 8 is one pixel: {shifts:?}"
    );
    let xv = values(&x);
    let at = |i: i64, ch: i64, y: i64, x: i64| xv[(((i * c + ch) * s + y) * s + x) as usize];
    for i in 0..b {
        let (dy, dx) = shifts[i as usize];
        let (hy, hx, side) = holes[i as usize];
        for ch in 0..c {
            for y in 0..s {
                for xx in 0..s {
                    let (sy, sx) = (y - dy, xx - dx);
                    let mut want = if (0..s).contains(&sy) && (0..s).contains(&sx) {
                        at(i, ch, sy, sx)
                    } else {
                        0.0
                    };
                    if (hy..hy + side).contains(&y) && (hx..hx + side).contains(&xx) {
                        want = 0.0;
                    }
                    let g = got[(((i * c + ch) * s + y) * s + xx) as usize];
                    assert!(
                        (g - want).abs() < 1e-6,
                        "picture {i} ({dy}, {dx}) hole {hy},{hx}: ({ch}, {y}, {xx}) {g} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn colour_equals_its_closed_form() {
    tch::manual_seed(5);
    let (b, c, s) = (3, 3, 4);
    let x = randn(&[b, c, s, s]);
    let d = policy("color").draw(b, s, Device::Cpu);
    let Step::Color { brightness, saturation, contrast } = &d.steps[0] else {
        panic!("a colour step")
    };
    let (br, sa, co) = (values(brightness), values(saturation), values(contrast));
    assert!(
        br.iter().all(|v| (-0.5..0.5).contains(v))
            && sa.iter().all(|v| (0.0..2.0).contains(v))
            && co.iter().all(|v| (0.5..1.5).contains(v))
    );
    let got = values(&d.apply(&x));
    let xv = values(&x);
    let n = (c * s * s) as usize;
    for i in 0..b as usize {
        let pic: Vec<f64> = xv[i * n..(i + 1) * n].iter().map(|v| v + br[i]).collect();
        // Saturation about each pixel's mean over the channels.
        let px = (s * s) as usize;
        let mut sat = pic.clone();
        for p in 0..px {
            let mean = (0..c as usize).map(|ch| pic[ch * px + p]).sum::<f64>() / c as f64;
            for ch in 0..c as usize {
                sat[ch * px + p] = (pic[ch * px + p] - mean) * sa[i] + mean;
            }
        }
        let mean = sat.iter().sum::<f64>() / n as f64;
        for (k, v) in sat.iter().enumerate() {
            let want = (v - mean) * co[i] + mean;
            assert!(
                (got[i * n + k] - want).abs() < 1e-5,
                "picture {i}, value {k}: {} vs {want}",
                got[i * n + k]
            );
        }
    }
}

#[test]
fn one_draw_gives_real_and_fake_the_same_transform_and_every_frame_of_a_clip_too() {
    tch::manual_seed(11);
    let (b, t, s) = (4, 5, 16);
    let d = policy("color,translation,cutout").draw(b, s, Device::Cpu);
    // Real and fake: the same pictures get the same output, whichever batch they are in.
    let x = randn(&[b, 1, s, s]);
    assert_eq!(values(&d.apply(&x)), values(&d.apply(&x.copy())));
    // A clip of one frame repeated: its frames stay identical.
    let frame = randn(&[b, 1, 1, s, s]);
    let clip = d.apply(&frame.expand([b, 1, t, s, s], false).contiguous());
    for k in 1..t {
        assert_eq!(values(&clip.select(2, k)), values(&clip.select(2, 0)), "frame {k}");
    }
    // Shift and cutout of a clip of different frames: each frame as that picture alone.
    let d = policy("translation,cutout").draw(b, s, Device::Cpu);
    let clip = randn(&[b, 1, t, s, s]);
    let out = d.apply(&clip);
    for k in 0..t {
        assert_eq!(values(&out.select(2, k)), values(&d.apply(&clip.select(2, k))), "frame {k}");
    }
    // Another draw is another transform.
    let other = policy("translation,cutout").draw(b, s, Device::Cpu);
    assert_ne!(values(&other.apply(&clip)), values(&out));
}

#[test]
fn augmentation_passes_gradients_to_the_pictures() {
    tch::manual_seed(2);
    let x = randn(&[3, 3, 8, 8]).set_requires_grad(true);
    let d = policy("color,translation,cutout").draw(3, 8, Device::Cpu);
    d.apply(&x).sum(Kind::Float).backward();
    let g = x.grad();
    assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    assert!(values(&g).iter().all(|v| v.is_finite()));
}

#[test]
fn mode_seeking_equals_its_closed_form_on_pairs() {
    // Items 0, 1 pair with 2, 3 (B = 4, half 2).
    assert_eq!(paired_rows(4), vec![0, 1, 0, 1]);
    assert_eq!(paired_rows(5), vec![0, 1, 2, 0, 1]);
    let fake = Tensor::from_slice(&[1.0f32, 2.0, 0.0, -1.0, 3.0, 2.0, 1.0, 0.0]).view([4, 2]);
    let z = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 1.0, 0.5, 0.0, 1.0, 3.0]).view([4, 2]);
    // |a − b| over pairs (0,2), (1,3): |1−3|, |2−2|, |0−1|, |−1−0| → mean 1; |z| diffs: .5, 0, 0, 2 → .625.
    let want = 1.0 / (1.0 / 0.625 + 1e-5);
    let got = mode_seeking_pairs(&fake, &z, 0.0).double_value(&[]);
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    // The same drawing from both noises costs the most.
    let same = Tensor::ones([4, 2], (Kind::Float, Device::Cpu));
    assert!(mode_seeking_pairs(&same, &z, 0.0).double_value(&[]) > 1e4);
    // Bounded (DSGAN): the ratio 1.6 counts as the cap 0.5, and there the term has no gradient.
    let fake = fake.set_requires_grad(true);
    let capped = mode_seeking_pairs(&fake, &z, 0.5);
    assert!((capped.double_value(&[]) - 1.0 / (0.5 + 1e-5)).abs() < 1e-6);
    capped.backward();
    assert_eq!(fake.grad().abs().sum(Kind::Float).double_value(&[]), 0.0);
    // Below the cap it is the unbounded term.
    assert!((mode_seeking_pairs(&fake, &z, 2.0).double_value(&[]) - want).abs() < 1e-6);
}

#[test]
fn the_matching_aware_penalty_equals_its_closed_form_and_its_gradient_reaches_the_judge() {
    // judge(x, e) = w·x + (x·a)(v·e): ∇ₓ = w + a (v·e), ∇ₑ = v (x·a), per item.
    let x = Tensor::from_slice(&[1.0f64, -2.0, 0.5, 0.0, 3.0, 1.0]).view([2, 3]);
    let e = Tensor::from_slice(&[0.5f64, 1.0, -1.0, 2.0]).view([2, 2]);
    let (w0, a, v) = ([0.3f64, -0.1, 0.2], [1.0f64, 0.5, -0.5], [0.4f64, -0.3]);
    let penalty = |w: &Tensor| {
        let a = Tensor::from_slice(&a);
        let v = Tensor::from_slice(&v);
        matching_aware_penalty(&x, &e, |x, e| x.matmul(w) + x.matmul(&a) * e.matmul(&v))
    };
    let by_hand = |w: &[f64; 3]| {
        let mut total = 0.0;
        for b in 0..2 {
            let xb: Vec<f64> = (0..3).map(|i| values(&x)[b * 3 + i]).collect();
            let eb: Vec<f64> = (0..2).map(|i| values(&e)[b * 2 + i]).collect();
            let ve: f64 = v.iter().zip(&eb).map(|(p, q)| p * q).sum();
            let xa: f64 = a.iter().zip(&xb).map(|(p, q)| p * q).sum();
            let gx: f64 = (0..3).map(|i| (w[i] + a[i] * ve).powi(2)).sum();
            let ge: f64 = v.iter().map(|vi| (vi * xa).powi(2)).sum();
            total += (gx + ge).powi(MA_GP_POWER / 2);
        }
        total / 2.0
    };
    let w = Tensor::from_slice(&w0).set_requires_grad(true);
    let got = penalty(&w);
    assert!(
        (got.double_value(&[]) - by_hand(&w0)).abs() < 1e-9 * by_hand(&w0).max(1.0),
        "{} vs {}",
        got.double_value(&[]),
        by_hand(&w0)
    );
    // Its gradient reaches the judge's weights (through the second derivative), as central
    // differences of the closed form say.
    got.backward();
    let grad = values(&w.grad());
    for i in 0..3 {
        let h = 1e-6;
        let (mut up, mut down) = (w0, w0);
        up[i] += h;
        down[i] -= h;
        let want = (by_hand(&up) - by_hand(&down)) / (2.0 * h);
        assert!(
            (grad[i] - want).abs() < 1e-5 * want.abs().max(1.0),
            "weight {i}: {} vs {want}",
            grad[i]
        );
    }
    // The inputs themselves are left as they were (no gradient kept on them).
    assert!(!x.requires_grad() && !e.requires_grad());
}

#[test]
fn a_family_must_read_every_part_that_is_on() {
    let r = Recipe { diffaugment: "cutout".into(), aux_attributes: 1.0, ..Recipe::default() };
    assert_eq!(r.switched_on(), vec!["diffaugment", "aux_attributes"]);
    r.check("video-family", &KEYS).unwrap();
    let e = r.check("story-family", &[]).unwrap_err().to_string();
    assert!(e.contains("diffaugment") && e.contains("story-family"), "{e}");
    let e = Recipe { mode_seeking: -1.0, ..Recipe::default() }
        .check("video-family", &KEYS)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mode_seeking"), "{e}");
    let e = Recipe { mode_seeking_cap: 0.05, ..Recipe::default() }
        .check("video-family", &KEYS)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mode_seeking_cap bounds the mode-seeking term, which is off"), "{e}");
    assert!(Recipe { mode_seeking: 1.0, mode_seeking_cap: 0.05, ..Recipe::default() }
        .check("video-family", &KEYS)
        .is_ok());
    Recipe::default().check("story-family", &[]).unwrap();
    // The backbone: "none" is off; an unknown one is named.
    let none = Recipe { d_backbone: "none".into(), ..Recipe::default() };
    assert!(none.switched_on().is_empty() && none.backbone().unwrap().is_none());
    let lite = Recipe { d_backbone: "efficientnet-lite1".into(), ..Recipe::default() };
    assert_eq!(lite.switched_on(), vec!["d_backbone"]);
    assert_eq!(lite.backbone().unwrap(), Some(crate::backbone::Variant::Lite1));
    let e = lite.check("video-family", &KEYS[..4]).unwrap_err().to_string();
    assert!(
        e.contains("d_backbone is set, but the video-family family does not use it yet"),
        "{e}"
    );
    assert!(Recipe { ma_gp: -1.0, ..Recipe::default() }
        .check("image-family", &KEYS)
        .unwrap_err()
        .to_string()
        .contains("ma_gp"));
    assert_eq!(Recipe { ma_gp: 2.0, ..Recipe::default() }.switched_on(), vec!["ma_gp"]);
    assert_eq!(Recipe { g_steps: 2, ..Recipe::default() }.switched_on(), vec!["g_steps"]);
    assert!(Recipe { g_steps: 0, ..Recipe::default() }
        .check("image-family", &KEYS)
        .unwrap_err()
        .to_string()
        .contains("g_steps = 0 is out of range"));
    let e = Recipe { ma_gp: 2.0, ..Recipe::default() }
        .check("video-family", &KEYS[..6])
        .unwrap_err()
        .to_string();
    assert!(e.contains("ma_gp is set, but the video-family family does not use it yet"), "{e}");
    let sized = |size: i64, backbone: &str| {
        Recipe { d_backbone: backbone.into(), d_backbone_size: size, ..Recipe::default() }
            .check("image-family", &KEYS)
    };
    assert!(sized(128, "efficientnet-lite0").is_ok() && sized(0, "efficientnet-lite0").is_ok());
    assert!(sized(100, "efficientnet-lite0")
        .unwrap_err()
        .to_string()
        .contains("d_backbone_size = 100 is not 0"));
    assert!(sized(1024, "efficientnet-lite0").is_err());
    assert!(sized(128, "none")
        .unwrap_err()
        .to_string()
        .contains("d_backbone_size sizes the pictures for the backbone, which is off"));
    let e = Recipe { d_backbone: "resnet50".into(), ..Recipe::default() }
        .check("image-family", &KEYS)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "d_backbone \"resnet50\" is not one of none, efficientnet-lite0, efficientnet-lite1"
        ),
        "{e}"
    );
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn exclusive_label_groups_are_found_only_where_every_item_has_one_label_on() {
    let n = names(&["digit:0", "digit:1", "digit:2", "motion:a", "motion:b"]);
    let one_each = Tensor::from_slice(&[0.0f32, 1., 0., 1., 0., 1., 0., 0., 0., 1.]).view([2, 5]);
    assert_eq!(exclusive_groups(&n, &one_each), Some(vec![(0, 3), (3, 2)]));
    // An item with two digits on (or none): not exclusive.
    let two = Tensor::from_slice(&[1.0f32, 1., 0., 1., 0., 1., 0., 0., 0., 1.]).view([2, 5]);
    assert_eq!(exclusive_groups(&n, &two), None);
    // Names without groups, or a group of one label: not exclusive.
    assert_eq!(
        exclusive_groups(&names(&["a", "b"]), &Tensor::from_slice(&[1.0f32, 0.]).view([1, 2])),
        None
    );
    assert_eq!(
        exclusive_groups(&names(&["x:1", "y:1"]), &Tensor::from_slice(&[1.0f32, 1.]).view([1, 2])),
        None
    );
}

#[test]
fn the_grouped_head_loss_is_the_summed_cross_entropy_of_its_groups() {
    tch::manual_seed(4);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let head =
        AttributeHead::new(vs.root(), 6, Labels { count: 5, groups: Some(vec![(0, 3), (3, 2)]) });
    let f = randn(&[2, 6]);
    let labels = Tensor::from_slice(&[0.0f32, 1., 0., 1., 0., 1., 0., 0., 0., 1.]).view([2, 5]);
    let logits = values(&head.forward(&f));
    let ce = |row: usize, start: usize, len: usize, on: usize| {
        let z = &logits[row * 5 + start..row * 5 + start + len];
        let lse = z.iter().map(|x| x.exp()).sum::<f64>().ln();
        lse - z[on]
    };
    let want = (ce(0, 0, 3, 1) + ce(1, 0, 3, 0)) / 2.0 + (ce(0, 3, 2, 0) + ce(1, 3, 2, 1)) / 2.0;
    assert!((head.loss(&f, &labels).double_value(&[]) - want).abs() < 1e-6);
}

#[test]
fn the_attribute_head_loss_is_the_multi_label_loss_of_its_logits() {
    tch::manual_seed(1);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let head = AttributeHead::new(vs.root(), 2 * 3 * 3, Labels { count: 4, groups: None });
    let f = randn(&[5, 2, 3, 3]);
    let labels = Tensor::from_slice(&[
        1.0f32, 0., 0., 1., 0., 1., 0., 1., 1., 0., 0., 0., 0., 0., 1., 1., 0., 1., 0., 0.,
    ])
    .view([5, 4]);
    let logits = values(&head.forward(&f));
    let lv = values(&labels);
    let want = logits
        .iter()
        .zip(&lv)
        .map(|(x, y)| {
            -(y * (1.0 / (1.0 + (-x).exp())).ln() + (1.0 - y) * (1.0 / (1.0 + x.exp())).ln())
        })
        .sum::<f64>()
        / 20.0;
    assert!((head.loss(&f, &labels).double_value(&[]) - want).abs() < 1e-6);
}

#[test]
fn the_text_norm_centres_and_scales_to_unit_mean_variance() {
    let e = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 2.0, 5.0, 2.0]).view([3, 2]);
    let n = TextNorm::fit(&e);
    // Mean (3, 2); deviations (−2, 0), (0, 0), (2, 0): mean square 8/6 over the six entries.
    assert_eq!(n.mean, vec![3.0, 2.0]);
    assert!((n.scale as f64 - (6.0f64 / 8.0).sqrt()).abs() < 1e-6);
    let out = n.apply(&e);
    assert!((out.square().mean(Kind::Float).double_value(&[]) - 1.0).abs() < 1e-5);
    assert!(out.mean_dim(0, false, Kind::Float).abs().max().double_value(&[]) < 1e-6);
    // One caption: nothing to scale by.
    assert_eq!(TextNorm::fit(&e.narrow(0, 0, 1)).scale, 1.0);
    // Saved and read back; a damaged file is named.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(TextNorm::FILE), n.to_json()).unwrap();
    assert_eq!(TextNorm::load(dir.path()).unwrap(), n);
    std::fs::write(dir.path().join(TextNorm::FILE), b"{\"mean\": [1], \"scale\": -1}").unwrap();
    assert!(TextNorm::load(dir.path())
        .unwrap_err()
        .to_string()
        .contains("text-norm.json is damaged"));
}

/// A projected discriminator over EfficientNet-Lite0 (the weights `scripts/setup` installs)
/// at base width 4, for 64×64 pictures and 6-wide texts, its projections drawn from `seed`.
fn projected(seed: u64) -> (tch::nn::VarStore, projected::Projected) {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let labels = Labels { count: 3, groups: None };
    let b = projected::Backbone { variant: crate::backbone::Variant::Lite0, size: 0, seed };
    let d = projected::Projected::new(vs.root(), b, 64, 4, 6, Some(labels))
        .unwrap_or_else(|e| panic!("{e:#} (scripts/setup installs the EfficientNet-Lite weights)"));
    (vs, d)
}

fn copies(ts: &[&Tensor]) -> Vec<Tensor> {
    ts.iter().map(|t| t.copy()).collect()
}

#[test]
fn the_projected_discriminator_draws_its_projections_from_the_seed_and_mixes_four_scales() {
    tch::manual_seed(0);
    let (_, a) = projected(7);
    tch::manual_seed(1);
    let (_, b) = projected(7);
    let (_, c) = projected(8);
    let (fa, fb, fc) = (a.frozen(), b.frozen(), c.frozen());
    assert_eq!(fa.len(), fb.len());
    assert!(fa.iter().zip(&fb).all(|(x, y)| x.equal(y)), "the same seed drew other projections");
    // The backbone's tensors are the same whatever the seed; the projections are not.
    let backbone = a.frozen().len() - 16;
    assert!(fa[..backbone].iter().zip(&fc[..backbone]).all(|(x, y)| x.equal(y)));
    assert!(
        fa[backbone..].iter().zip(&fc[backbone..]).all(|(x, y)| !x.equal(y)),
        "another seed drew the same projections"
    );
    // PyTorch's default bound 1/√fan_in: the first CCM mixes Lite0's 24 channels.
    let ccm0 = fa[backbone].abs().max().double_value(&[]);
    assert!(ccm0 <= 1.0 / 24f64.sqrt() && ccm0 > 0.8 / 24f64.sqrt(), "{ccm0}");
    // Mixed maps twice the backbone's side, with c, c, 2c, 4c channels (c = 4).
    let x = randn(&[2, 3, 64, 64]).tanh();
    let sizes: Vec<Vec<i64>> = a.mixed(&x).iter().map(Tensor::size).collect();
    assert_eq!(
        sizes,
        [vec![2, 4, 32, 32], vec![2, 4, 16, 16], vec![2, 8, 8, 8], vec![2, 16, 4, 4]]
    );
    let logits = a.judge(&a.features(&x, true), &randn(&[2, 6]));
    assert_eq!(logits.size(), [2, 4]);
    // d_backbone_size = 128: the pictures are resized first, and every map is twice as large.
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let b = projected::Backbone { variant: crate::backbone::Variant::Lite0, size: 128, seed: 7 };
    let big = projected::Projected::new(vs.root(), b, 64, 4, 6, None).unwrap();
    let sizes: Vec<Vec<i64>> = big.mixed(&x).iter().map(Tensor::size).collect();
    assert_eq!(
        sizes,
        [vec![2, 4, 64, 64], vec![2, 4, 32, 32], vec![2, 8, 16, 16], vec![2, 16, 8, 8]]
    );
    assert_eq!(big.judge(&big.features(&x, true), &randn(&[2, 6])).size(), [2, 4]);
    let b = projected::Backbone { size: 0, ..b };
    let e = format!(
        "{:#}",
        projected::Projected::new(tch::nn::VarStore::new(Device::Cpu).root(), b, 32, 4, 6, None)
            .unwrap_err()
    );
    assert!(e.contains("these are 32×32 (set d_backbone_size"), "{e}");
}

#[test]
fn a_training_step_moves_the_small_discriminators_and_leaves_the_frozen_parts_bit_identical() {
    use tch::nn::OptimizerConfig;
    tch::manual_seed(0);
    let (vs, d) = projected(3);
    let frozen = copies(&d.frozen());
    let learned: Vec<Tensor> = vs.trainable_variables().iter().map(Tensor::copy).collect();
    assert!(!learned.is_empty() && d.frozen().iter().all(|t| !t.requires_grad()));
    let mut opt = tch::nn::Adam::default().build(&vs, 1e-3).unwrap();
    let x = randn(&[4, 3, 64, 64]).tanh().set_requires_grad(true);
    let f = d.features(&x, true);
    let labels =
        Tensor::from_slice(&[1f32, 0., 1., 0., 1., 0., 1., 1., 0., 0., 0., 1.]).view([4, 3]);
    let loss = crate::loss::real_fake(&d.judge(&f, &randn(&[4, 6])), &d.judge(&f, &randn(&[4, 6])))
        + d.attribute_loss(&f, &labels).unwrap();
    opt.zero_grad();
    loss.backward();
    assert!(
        x.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0,
        "no gradient reached the pictures"
    );
    assert!(d.frozen().iter().all(|t| !t.grad().defined()), "a frozen tensor took a gradient");
    opt.step();
    assert!(
        d.frozen().iter().zip(&frozen).all(|(now, before)| now.equal(before)),
        "a frozen tensor changed"
    );
    let moved = vs
        .trainable_variables()
        .iter()
        .zip(&learned)
        .filter(|(now, before)| !now.equal(before))
        .count();
    assert!(
        moved * 10 >= learned.len() * 9,
        "only {moved} of {} learned tensors moved",
        learned.len()
    );
}
