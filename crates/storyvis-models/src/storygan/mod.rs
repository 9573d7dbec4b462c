//! StoryGAN: A Sequential Conditional GAN for Story Visualization (Li et al., CVPR 2019).
//!
//! `generator.rs` holds the story encoder, the context encoder (GRU + Text2Gist) and the image
//! generator; `discriminators.rs` the image and story discriminators. Each network has its own
//! variable store so that each has its own optimiser and checkpoint file.

pub mod config;
pub mod data;
pub mod discriminators;
pub mod family;
pub mod generator;
pub mod sample;

pub use config::Config;
use discriminators::{ImageDiscriminator, ObjectDiscriminator, StoryDiscriminator};
pub use family::FAMILY;
use generator::Generator;
use tch::nn::VarStore;
use tch::Device;

/// Sizes the networks take from the data rather than the config.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataShape {
    /// Vocabulary size (sentence mode).
    pub vocab: i64,
    /// Attribute vector length (vector mode).
    pub vector_len: i64,
    pub labels: i64,
}

pub struct StoryGan {
    pub g_vs: VarStore,
    pub g: Generator,
    pub di_vs: VarStore,
    pub di: ImageDiscriminator,
    pub ds_vs: Option<VarStore>,
    pub ds: Option<StoryDiscriminator>,
    /// `object_d_weight > 0`: the object discriminator.
    pub od_vs: Option<VarStore>,
    pub od: Option<ObjectDiscriminator>,
}

impl StoryGan {
    pub fn new(cfg: &Config, shape: DataShape, device: Device) -> StoryGan {
        let g_vs = VarStore::new(device);
        let g = Generator::new(g_vs.root(), cfg, shape.vocab, shape.vector_len, shape.labels);
        let di_vs = VarStore::new(device);
        // With the previous frame, D_I judges the pair: the frame and the one it was drawn from.
        // With `layout_d`, also the new object's place mark.
        let input = if g.sees_previous() { 6 } else { 3 } + cfg.layout_d as i64;
        let di = ImageDiscriminator::new(
            di_vs.root(),
            cfg.image_size,
            input,
            cfg.ndf,
            g.text_dim,
            cfg.story_dim,
            shape.labels,
            cfg.fuse,
            cfg.aux_added_weight > 0.0,
        );
        let (ds_vs, ds) = if cfg.has_story_d() {
            let vs = VarStore::new(device);
            let d = StoryDiscriminator::new(
                vs.root(),
                cfg.image_size,
                cfg.ndf,
                cfg.frames as i64,
                g.text_dim,
                cfg.story_embed_dim,
            );
            (Some(vs), Some(d))
        } else {
            (None, None)
        };
        let (od_vs, od) = if cfg.object_d_weight > 0.0 {
            let vs = VarStore::new(device);
            let d = ObjectDiscriminator::new(vs.root(), cfg.image_size, cfg.ndf, shape.labels);
            (Some(vs), Some(d))
        } else {
            (None, None)
        };
        StoryGan { g_vs, g, di_vs, di, ds_vs, ds, od_vs, od }
    }

    /// Runs every convolution stack in the channels-last memory format (`--memory-format`):
    /// the same values, another layout in memory. Images and features enter and leave in the
    /// standard one.
    pub fn set_channels_last(&mut self, on: bool) {
        self.g.channels_last = on;
        self.di.set_channels_last(on);
        if let Some(ds) = &mut self.ds {
            ds.set_channels_last(on);
        }
    }

    /// (name, store) for every network, in checkpoint order.
    pub fn stores(&self) -> Vec<(&'static str, &VarStore)> {
        let mut v = vec![("generator", &self.g_vs), ("image_d", &self.di_vs)];
        if let Some(s) = &self.ds_vs {
            v.push(("story_d", s));
        }
        if let Some(s) = &self.od_vs {
            v.push(("object_d", s));
        }
        v
    }

    pub fn stores_mut(&mut self) -> Vec<(&'static str, &mut VarStore)> {
        let mut v = vec![("generator", &mut self.g_vs), ("image_d", &mut self.di_vs)];
        if let Some(s) = &mut self.ds_vs {
            v.push(("story_d", s));
        }
        if let Some(s) = &mut self.od_vs {
            v.push(("object_d", s));
        }
        v
    }
}

pub use storyvis_core::train::parameters;

#[cfg(test)]
mod tests {
    use super::config::{TextInput, Variant};
    use super::*;
    use generator::TextBatch;
    use tch::{Kind, Tensor};

    fn tiny(sets: &[&str]) -> Config {
        let s: Vec<String> = sets.iter().map(|x| x.to_string()).collect();
        Config::of(&storyvis_core::config::Config::resolve("storygan-tiny", None, &s).unwrap())
            .unwrap()
    }
    const SHAPE: DataShape = DataShape { vocab: 20, vector_len: 75, labels: 15 };

    #[test]
    fn every_variant_produces_stories_and_scores_them() {
        crate::install();
        for sets in [
            vec![],
            vec!["gist=reference"],
            vec!["variant=svc"],
            vec!["variant=svfn"],
            vec!["variant=imagegan"],
            vec!["text=vector", "fuse=concat"],
            vec!["previous=generated"],
            vec!["previous=generated", "gist=reference", "gan_loss=hinge", "aux_added_weight=1"],
            vec!["previous=masked"],
            vec!["previous=masked", "variant=svc", "aux_added_weight=1"],
        ] {
            tch::manual_seed(0);
            let cfg = tiny(&sets);
            let m = StoryGan::new(&cfg, SHAPE, Device::Cpu);
            let (b, t) = (3, 4);
            let text = match cfg.text {
                TextInput::Sentence => TextBatch::Ids(Tensor::randint_low(
                    2,
                    20,
                    [b, t, 6],
                    (Kind::Int64, Device::Cpu),
                )),
                TextInput::Vector => {
                    TextBatch::Vectors(Tensor::rand([b, t, 75], (Kind::Float, Device::Cpu)))
                }
                TextInput::Minilm => TextBatch::Vectors(Tensor::rand(
                    [b, t, storyvis_core::minilm::DIM],
                    (Kind::Float, Device::Cpu),
                )),
            };
            let s = m.g.encode_text(&text);
            let ctx = m.g.context(&s, true);
            let story = m.g.decode_story(&ctx, true);
            assert_eq!(story.size(), [b, t, 3, 64, 64], "{sets:?}");
            let frames = Tensor::from_slice(&[0i64, 3, 1]);
            let sees = m.g.sees_previous();
            assert_eq!(sees, sets.iter().any(|s| s.starts_with("previous=")));
            // A generator that sees the previous frame draws a chosen frame from the story's
            // frame before it (blank before the first).
            let prev = |story: &Tensor| sees.then(|| family::previous_frames(story, &frames));
            let one = m.g.decode_frames(&ctx, &frames, prev(&story).as_ref(), true);
            assert_eq!(one.size(), [b, 3, 64, 64]);
            // Drawing chosen frames is drawing the story and picking them (eval mode, where
            // batch norm does not depend on the batch); with the previous frame, drawing a frame
            // from the story's own previous frame gives the story's frame.
            let story_eval = m.g.decode_story(&ctx, false);
            let one_eval = m.g.decode_frames(&ctx, &frames, prev(&story_eval).as_ref(), false);
            let scale = story_eval.abs().max().double_value(&[]);
            assert!(scale > 0.0, "{sets:?}: blank frames");
            for (i, f) in [0i64, 3, 1].into_iter().enumerate() {
                let d = (story_eval.get(i as i64).get(f) - one_eval.get(i as i64))
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(
                    d <= 1e-4 * scale,
                    "{sets:?}: frame {f} of story {i} differs by {d} (values up to {scale})"
                );
            }
            if sees {
                // ... and from another previous frame, another frame: the input is used.
                let other = m.g.decode_frames(
                    &ctx,
                    &frames,
                    Some(&m.g.blank(b, Device::Cpu).fill_(0.5)),
                    false,
                );
                assert!(
                    (other - &one_eval).abs().max().double_value(&[]) > 1e-3 * scale,
                    "{sets:?}: the previous frame changes nothing"
                );
            }
            let judged = match prev(&story) {
                Some(p) => Tensor::cat(&[&one, &p], 1),
                None => one.shallow_clone(),
            };
            let (logit, labels) =
                m.di.forward_t(&judged, &s.select(1, 0), &ctx.cond.select(1, 0), true);
            assert_eq!((logit.size(), labels.size()), (vec![b], vec![b, 15]));
            let added = m.di.added(&m.di.features(&judged, true)).map(|a| a.size());
            assert_eq!(
                added,
                sets.contains(&"aux_added_weight=1").then(|| vec![b, 15]),
                "{sets:?}"
            );
            assert_eq!(m.ds.is_some(), cfg.variant != Variant::Imagegan);
            if let Some(ds) = &m.ds {
                assert_eq!(ds.forward_t(&story, &s, true).size(), [b]);
            }
            // KL(N(μ, σ²) ‖ N(0, I)) is 0 only at μ = 0, σ = 1, which a random encoder is not.
            let kl = ctx.kl.double_value(&[]);
            assert!(kl.is_finite() && kl > 1e-4, "{sets:?}: KL {kl}");
        }
    }

    #[test]
    fn a_masked_frame_blends_the_drawing_into_the_previous_frame() {
        crate::install();
        tch::manual_seed(3);
        let cfg = tiny(&["previous=masked"]);
        let m = StoryGan::new(&cfg, SHAPE, Device::Cpu);
        let b = 2;
        let s = m.g.encode_text(&TextBatch::Ids(Tensor::randint_low(
            2,
            20,
            [b, 4, 6],
            (Kind::Int64, Device::Cpu),
        )));
        let ctx = m.g.context(&s, false);
        let frames = Tensor::from_slice(&[1i64, 2]);
        // A flat previous frame, whose channels the last convolution reads last (after the
        // up-path's features): a 3×3 convolution's centre tap on it is a constant.
        let prev = Tensor::full([b, 3, 64, 64], 0.5, (Kind::Float, Device::Cpu));
        let vars = m.g_vs.variables();
        let w = &vars["to_rgb.weight"];
        let inputs = w.size()[1];
        // The mask is the 4th output channel: with only the centre tap on the previous
        // frame's first channel, its logit is 0.5 · tap everywhere.
        let draw = |tap: f64| {
            let _ = tch::no_grad(|| {
                let _ = w.get(3).zero_();
                w.get(3).get(inputs - 3).get(1).get(1).fill_(tap)
            });
            m.g.decode_frames(&ctx, &frames, Some(&prev), false)
        };
        let (copied, half, drawn) = (draw(-120.0), draw(0.0), draw(120.0));
        let max = |t: Tensor| t.abs().max().double_value(&[]);
        // m = 0 copies the previous frame; m = 1 is the drawing alone, a different picture;
        // m = ½ is their mean.
        assert!(max(&copied - &prev) < 1e-6, "mask 0 does not copy: {}", max(&copied - &prev));
        assert!(max(&drawn - &prev) > 0.1, "mask 1 copies the previous frame");
        assert!(max(drawn.shallow_clone()) <= 1.0, "a drawing outside [−1, 1]");
        let mean = (&drawn + &prev) * 0.5;
        assert!(max(&half - &mean) < 1e-5, "mask ½ is not the mean: {}", max(&half - &mean));
    }

    #[test]
    fn image_size_sets_the_up_and_down_blocks() {
        crate::install();
        for (size, ngf) in [(128i64, 64i64), (256, 64)] {
            tch::manual_seed(0);
            let cfg = tiny(&[&format!("image_size={size}"), &format!("ngf={ngf}")]);
            let m = StoryGan::new(&cfg, SHAPE, Device::Cpu);
            // One more up-block per doubling: 4×4 → S×S, ngf halved each time.
            let widths = cfg.generator_widths();
            let blocks = (size / 4).trailing_zeros() as usize;
            assert_eq!(widths, (0..=blocks).map(|i| ngf >> i).collect::<Vec<i64>>());
            let vars = m.g_vs.variables();
            assert!(
                vars.contains_key(&format!("up{}.conv.weight", blocks - 1))
                    && !vars.contains_key(&format!("up{blocks}.conv.weight")),
                "{size}"
            );
            let (b, t) = (2, 4);
            let s = m.g.encode_text(&TextBatch::Ids(Tensor::randint_low(
                2,
                20,
                [b, t, 6],
                (Kind::Int64, Device::Cpu),
            )));
            let ctx = m.g.context(&s, true);
            let story = m.g.decode_story(&ctx, true);
            assert_eq!(story.size(), [b, t, 3, size, size]);
            let (logit, labels) =
                m.di.forward_t(&story.select(1, 0), &s.select(1, 0), &ctx.cond.select(1, 0), true);
            assert_eq!((logit.size(), labels.size()), (vec![b], vec![b, 15]));
            assert_eq!(m.ds.as_ref().unwrap().forward_t(&story, &s, true).size(), [b]);
        }
        let err = |sets: &[&str]| {
            let s: Vec<String> = sets.iter().map(|x| x.to_string()).collect();
            format!(
                "{:#}",
                storyvis_core::config::Config::resolve("storygan-tiny", None, &s)
                    .and_then(|c| Config::of(&c))
                    .unwrap_err()
            )
        };
        assert!(
            err(&["image_size=96"]).contains("image_size = 96 is not supported (64, 128 or 256)")
        );
        assert!(
            err(&["image_size=256", "ngf=32"]).contains("ngf must be a multiple of 64 at 256×256")
        );
    }

    #[test]
    fn text2gist_step_equals_a_hand_computation() {
        crate::install();
        tch::manual_seed(5);
        let cfg = tiny(&[]);
        let m = StoryGan::new(&cfg, SHAPE, Device::Cpu);
        let cell = m.g.text2gist();
        let (ci, cs) = (cfg.context_dim as usize, cfg.story_dim as usize);
        let i = Tensor::randn([1, ci as i64], (Kind::Float, Device::Cpu));
        let h = Tensor::randn([1, cs as i64], (Kind::Float, Device::Cpu));
        let got =
            Vec::<f64>::try_from(cell.step(&i, &h).to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let v = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let (iv, hv) = (v(&i), v(&h));
        // y = W x (+ b), W stored [out, in].
        let apply = |l: &tch::nn::Linear, x: &[f64]| -> Vec<f64> {
            let w = v(&l.ws);
            let b = l.bs.as_ref().map(v).unwrap_or_else(|| vec![0.0; cs]);
            (0..cs)
                .map(|o| b[o] + (0..x.len()).map(|j| w[o * x.len() + j] * x[j]).sum::<f64>())
                .collect()
        };
        let sig = |a: f64| 1.0 / (1.0 + (-a).exp());
        let (wz, uz) = (apply(&cell.w_z, &iv), apply(&cell.u_z, &hv));
        let (wr, ur) = (apply(&cell.w_r, &iv), apply(&cell.u_r, &hv));
        let z: Vec<f64> = (0..cs).map(|k| sig(wz[k] + uz[k])).collect();
        let r: Vec<f64> = (0..cs).map(|k| sig(wr[k] + ur[k])).collect();
        let rh: Vec<f64> = (0..cs).map(|k| r[k] * hv[k]).collect();
        let (wh, uh) = (apply(&cell.w_h, &iv), apply(&cell.u_h, &rh));
        for k in 0..cs {
            let want = (1.0 - z[k]) * hv[k] + z[k] * (wh[k] + uh[k]).tanh();
            assert!((got[k] - want).abs() < 1e-5, "unit {k}: {} vs {want}", got[k]);
        }
    }

    /// storygan-clevr's parameter counts over `SHAPE` (G, D_I, D_S).
    const PINNED_G: i64 = 25_571_121;
    const PINNED_DI: i64 = 11_823_760;
    const PINNED_DS: i64 = 18_860_929;

    #[test]
    fn reference_widths_match_the_reference_code() {
        crate::install();
        // The reference CLEVR generator starts from 1536 channels at 4×4 (GF_DIM 192 × 8).
        let cfg = Config::of(
            &storyvis_core::config::Config::resolve("storygan-clevr", None, &[]).unwrap(),
        )
        .unwrap();
        let m = StoryGan::new(&cfg, SHAPE, Device::Cpu);
        let g = parameters(&m.g_vs);
        let di = parameters(&m.di_vs);
        let ds = parameters(m.ds_vs.as_ref().unwrap());
        // The reference code has G 35.0 M, D_I 12.2 M, D_S 28.0 M (README: where ours differs).
        // Pinned: any change of a width or a layer shows here.
        assert_eq!(
            (g, di, ds),
            (PINNED_G, PINNED_DI, PINNED_DS),
            "storygan-clevr parameters G, D_I, D_S"
        );
    }

    #[test]
    fn token_attention_weights_sum_to_one_over_real_tokens_and_pick_the_matching_one() {
        crate::install();
        use generator::TokenAttention;
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let att = TokenAttention::new(vs.root(), 2, 8, 5);
        let states = Tensor::randn([3, 6, 8], (Kind::Float, Device::Cpu));
        // Sentences of 6, 4 and 1 real tokens.
        let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0])
            .view([3, 6])
            .ne(0);
        let a = att.weights(&states, &mask);
        assert_eq!(a.size(), [3, 2, 6]);
        let sums = a.sum_dim_intlist(-1, false, Kind::Double);
        assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-6);
        assert_eq!(
            a.masked_select(&mask.logical_not().unsqueeze(1).expand([3, 2, 6], false))
                .abs()
                .max()
                .double_value(&[]),
            0.0
        );
        assert!(
            (a.get(2).select(1, 0) - 1.0).abs().max().double_value(&[]) < 1e-6,
            "one real token takes all the weight"
        );
        // Padding's states do not reach the encoding.
        let noisy = &states
            + Tensor::randn([3, 6, 8], (Kind::Float, Device::Cpu))
                * mask.logical_not().unsqueeze(2);
        assert!(
            (att.forward(&states, &mask) - att.forward(&noisy, &mask))
                .abs()
                .max()
                .double_value(&[])
                < 1e-6
        );
        // A query along one token's state, scaled up, picks that token.
        tch::no_grad(|| att.queries.get(0).copy_(&(states.get(1).get(2) * 40.0)));
        let a = att.weights(&states, &mask);
        assert!(a.get(1).get(0).get(2).double_value(&[]) > 0.99, "{}", a.get(1).get(0));
    }

    #[test]
    fn a_place_mark_is_the_gaussian_of_a_naive_loop() {
        let places = Tensor::from_slice(&[0.25f32, -0.5, -1.0, 0.9]).view([2, 2]);
        let (r, sigma) = (8i64, 0.3);
        let mark = generator::place_mark(&places, r, sigma);
        assert_eq!(mark.size(), [2, 1, r, r]);
        let p: Vec<f32> = Vec::try_from(places.flatten(0, -1)).unwrap();
        for n in 0..2usize {
            for y in 0..r {
                for x in 0..r {
                    // Cell (x, y)'s centre in [−1, 1], x to the right, y downwards.
                    let (cx, cy) = (
                        (x as f64 + 0.5) / r as f64 * 2.0 - 1.0,
                        (y as f64 + 0.5) / r as f64 * 2.0 - 1.0,
                    );
                    let d2 = (cx - p[2 * n] as f64).powi(2) + (cy - p[2 * n + 1] as f64).powi(2);
                    let want = (-d2 / (2.0 * sigma * sigma)).exp();
                    let got = mark.double_value(&[n as i64, 0, y, x]);
                    assert!((got - want).abs() < 1e-6, "({n}, {x}, {y}): {got} vs {want}");
                }
            }
        }
        // The map: the mark times each channel of the code, then the mark.
        let code = Tensor::from_slice(&[2.0f32, -1.0, 0.5, 3.0]).view([2, 2]);
        let map = generator::place_map(&places, &code, r, sigma);
        assert_eq!(map.size(), [2, 3, r, r]);
        let want = Tensor::cat(&[&mark * 2.0, &mark * -1.0, mark.shallow_clone()], 1).get(0);
        assert!(map.get(0).allclose(&want, 1e-6, 1e-6, false));
    }

    #[test]
    fn a_place_falls_in_the_cell_a_naive_search_finds_and_the_grid_loss_is_its_cross_entropy() {
        let side = 4i64;
        let places = Tensor::from_slice(&[-0.99f32, -0.99, 0.1, -0.6, 0.99, 0.49, -0.3, 1.5])
            .view([1, 4, 2]);
        let got: Vec<i64> =
            Vec::try_from(generator::cell_of(&places, side).flatten(0, -1)).unwrap();
        let p: Vec<f32> = Vec::try_from(places.flatten(0, -1)).unwrap();
        for (n, cell) in got.iter().enumerate() {
            // The cell whose centre is nearest (cells of width 2 / side).
            let centre = |i: i64| (i as f32 + 0.5) * 2.0 / side as f32 - 1.0;
            let near = |v: f32| {
                (0..side)
                    .min_by(|a, b| (centre(*a) - v).abs().total_cmp(&(centre(*b) - v).abs()))
                    .unwrap()
            };
            assert_eq!(*cell, near(p[2 * n + 1]) * side + near(p[2 * n]), "place {n}");
        }
        crate::install();
        tch::manual_seed(2);
        let cfg = tiny(&["previous=masked", "layout=true", "layout_place=grid", "layout_grid=4"]);
        let m = StoryGan::new(&cfg, SHAPE, Device::Cpu);
        let s = m.g.encode_text(&TextBatch::Ids(Tensor::randint_low(
            2,
            20,
            [1, 4, 6],
            (Kind::Int64, Device::Cpu),
        )));
        let placer = m.g.placer.as_ref().unwrap();
        let logits = placer.outputs(&s, &places); // [1, 4, 16]
        let mut want = 0.0;
        for (t, cell) in got.iter().enumerate() {
            let row: Vec<f64> =
                Vec::try_from(logits.get(0).get(t as i64).to_kind(Kind::Double)).unwrap();
            let lse = row.iter().map(|x| x.exp()).sum::<f64>().ln();
            want += (lse - row[*cell as usize]) / 4.0;
        }
        let loss = placer.loss(&s, &places).double_value(&[]);
        assert!((loss - want).abs() < 1e-5, "{loss} vs {want}");
    }

    #[test]
    fn a_layout_model_places_each_object_from_the_earlier_ones_and_draws_it_there() {
        crate::install();
        for place in ["mean", "grid"] {
            tch::manual_seed(5);
            let cfg = tiny(&[
                "previous=masked",
                "layout=true",
                "layout_d=true",
                "coords=true",
                &format!("layout_place={place}"),
                "layout_temperature=0",
            ]);
            let m = StoryGan::new(&cfg, SHAPE, Device::Cpu);
            let (b, t) = (3, 4);
            let s = m.g.encode_text(&TextBatch::Ids(Tensor::randint_low(
                2,
                20,
                [b, t, 6],
                (Kind::Int64, Device::Cpu),
            )));
            let placer = m.g.placer.as_ref().expect("a place head");
            let places = Tensor::rand([b, t, 2], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
            let out = tch::no_grad(|| placer.outputs(&s, &places));
            // Frame k's place reads the places of frames before k only ...
            for k in 0..t {
                let moved = places.copy();
                let _ = tch::no_grad(|| moved.narrow(1, k, t - k).fill_(0.7));
                let again = tch::no_grad(|| placer.outputs(&s, &moved));
                let d = (again.narrow(1, 0, k + 1) - out.narrow(1, 0, k + 1)).abs().max();
                assert!(
                    d.double_value(&[]) < 1e-6,
                    "{place}: frame ≤ {k} reads a later place: {d}"
                );
                if k > 0 {
                    // ... and does read the earlier ones.
                    let moved = places.copy();
                    let _ = tch::no_grad(|| moved.narrow(1, 0, k).fill_(0.7));
                    let d = (tch::no_grad(|| placer.outputs(&s, &moved)).select(1, k)
                        - out.select(1, k))
                    .abs()
                    .max();
                    assert!(
                        d.double_value(&[]) > 1e-5,
                        "{place}: frame {k} ignores the earlier places"
                    );
                }
            }
            // A user's story: each place predicted from the places predicted before it.
            let predicted = tch::no_grad(|| placer.predict(&s));
            let naive = Tensor::zeros([b, t, 2], (Kind::Float, Device::Cpu));
            for k in 0..t {
                let o = tch::no_grad(|| placer.outputs(&s, &naive)).select(1, k);
                let p = if place == "mean" {
                    o.clamp(-1.0, 1.0)
                } else {
                    // The most likely cell's centre (temperature 0).
                    let side = cfg.layout_grid;
                    let c: Vec<i64> = Vec::try_from(o.argmax(-1, false)).unwrap();
                    let centre = |i: i64| (i as f32 + 0.5) * 2.0 / side as f32 - 1.0;
                    let v: Vec<f32> =
                        c.iter().flat_map(|c| [centre(c % side), centre(c / side)]).collect();
                    Tensor::from_slice(&v).view([b, 2])
                };
                tch::no_grad(|| naive.select(1, k).copy_(&p));
            }
            assert!(predicted.allclose(&naive, 1e-6, 1e-6, false), "{place}");
            // Drawing at other places draws other frames, and frame 0 does not see frame 1's
            // place.
            let mut ctx = m.g.context(&s, false);
            ctx.places = Some(places.shallow_clone());
            let story = tch::no_grad(|| m.g.decode_story(&ctx, false));
            assert_eq!(story.size(), [b, t, 3, 64, 64]);
            let moved = places.copy();
            let _ = tch::no_grad(|| moved.select(1, 1).fill_(-0.8));
            ctx.places = Some(moved);
            let other = tch::no_grad(|| m.g.decode_story(&ctx, false));
            let diff =
                |k: i64| (other.select(1, k) - story.select(1, k)).abs().max().double_value(&[]);
            assert!(diff(0) < 1e-6, "frame 0 changed with frame 1's place: {}", diff(0));
            assert!(diff(1) > 1e-4, "frame 1 ignores its place");
            // The image discriminator reads the frame, the one before it and the mark.
            let mark = generator::place_mark(&places.select(1, 0), 64, cfg.layout_sigma);
            let judged = Tensor::cat(&[story.select(1, 1), story.select(1, 0), mark], 1);
            let (logit, _) = m.di.forward_t(&judged, &s.select(1, 1), &ctx.cond.select(1, 1), true);
            assert_eq!(logit.size(), [b]);
            // A user's drawing runs the place head: no places needed.
            let one = TextBatch::Ids(Tensor::ones([1, t, 6], (Kind::Int64, Device::Cpu)));
            assert_eq!(m.g.draw(&one).size(), [1, t, 3, 64, 64]);
        }
    }

    #[test]
    fn an_object_crop_is_the_window_around_its_place_and_the_object_d_reads_its_labels() {
        crate::install();
        tch::manual_seed(4);
        let frames = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        // Window corners at whole pixels: centre pixel boundary c ↔ place c / 32 − 1.
        let places =
            Tensor::from_slice(&[30.0f32 / 32.0 - 1.0, 40.0 / 32.0 - 1.0, 0.0, 0.0]).view([2, 2]);
        let crops = discriminators::crop(&frames, &places, 24);
        assert_eq!(crops.size(), [2, 3, 24, 24]);
        let want = frames.get(0).narrow(1, 28, 24).narrow(2, 18, 24);
        assert!(crops.get(0).allclose(&want, 1e-5, 1e-5, false));
        let want = frames.get(1).narrow(1, 20, 24).narrow(2, 20, 24);
        assert!(crops.get(1).allclose(&want, 1e-5, 1e-5, false));
        // Beyond the frame's edge: zeros.
        let corner = Tensor::from_slice(&[-1.0f32, -1.0]).view([1, 2]);
        let c = discriminators::crop(&frames.narrow(0, 0, 1), &corner, 24);
        assert_eq!(c.narrow(2, 0, 12).narrow(3, 0, 12).abs().max().double_value(&[]), 0.0);
        let inside = frames.get(0).narrow(1, 0, 12).narrow(2, 0, 12);
        assert!(c.get(0).narrow(1, 12, 12).narrow(2, 12, 12).allclose(&inside, 1e-5, 1e-5, false));
        let cfg = tiny(&["previous=masked", "layout=true", "object_d_weight=1"]);
        let m = StoryGan::new(&cfg, SHAPE, Device::Cpu);
        let od = m.od.as_ref().expect("an object discriminator");
        assert_eq!(od.side, 24);
        let labels = Tensor::zeros([2, 15], (Kind::Float, Device::Cpu));
        let (logit, cls) = od.forward(&crops, &labels);
        assert_eq!((logit.size(), cls.size()), (vec![2], vec![2, 15]));
        let (other, _) = od.forward(&crops, &(labels + 1.0));
        assert!((other - logit).abs().max().double_value(&[]) > 1e-6, "labels are not read");
        assert!(m.stores().iter().any(|(n, _)| *n == "object_d"));
    }
}
