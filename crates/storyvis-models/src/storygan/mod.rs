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
use discriminators::{ImageDiscriminator, StoryDiscriminator};
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
}

impl StoryGan {
    pub fn new(cfg: &Config, shape: DataShape, device: Device) -> StoryGan {
        let g_vs = VarStore::new(device);
        let g = Generator::new(g_vs.root(), cfg, shape.vocab, shape.vector_len, shape.labels);
        let di_vs = VarStore::new(device);
        // With the previous frame, D_I judges the pair: the frame and the one it was drawn from.
        let input = if g.sees_previous() { 6 } else { 3 };
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
        StoryGan { g_vs, g, di_vs, di, ds_vs, ds }
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
        v
    }

    pub fn stores_mut(&mut self) -> Vec<(&'static str, &mut VarStore)> {
        let mut v = vec![("generator", &mut self.g_vs), ("image_d", &mut self.di_vs)];
        if let Some(s) = &mut self.ds_vs {
            v.push(("story_d", s));
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
}
