use super::{Cond, CondNorm, Scbn, WordAttention};
use crate::loss::{contrastive_loss, Contrastive};
use tch::nn::ModuleT;
use tch::nn::VarStore;
use tch::Device;
use tch::{Kind, Tensor};

fn t(v: &[f32], shape: &[i64]) -> Tensor {
    Tensor::from_slice(v).view(shape)
}

#[test]
fn the_contrastive_loss_matches_its_two_forms_on_constructed_pairs() {
    // Pair 0: same image, d = 0.05 (below α); pair 1: same image, d = 0.5; pair 2: different
    // images, d = 0.3 (inside the margin); pair 3: different images, d = 2 (beyond it).
    let v1 = t(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], &[4, 2]);
    let v2 = t(&[0.03, 0.04, 0.3, 0.4, 0.0, 0.3, 2.0, 0.0], &[4, 2]);
    let same = t(&[1.0, 1.0, 0.0, 0.0], &[4]);
    let (eps, alpha) = (1.0, 0.1);
    let margin =
        Tensor::from(0.5 * (0.05f64.powi(2) + 0.5f64.powi(2) + 0.7f64.powi(2) + 0.0) / 4.0);
    let got = contrastive_loss(&v1, &v2, &same, Contrastive::Margin, eps, alpha).double_value(&[]);
    assert!((got - margin.double_value(&[])).abs() < 1e-6, "margin form {got}");
    // The modified form: the same-image pair at 0.05 counts as α = 0.1, not 0.05.
    let want = 0.5 * (0.1f64.powi(2) + 0.5f64.powi(2) + 0.7f64.powi(2)) / 4.0;
    let got =
        contrastive_loss(&v1, &v2, &same, Contrastive::Modified, eps, alpha).double_value(&[]);
    assert!((got - want).abs() < 1e-6, "modified form {got} vs {want}");
    // Below α a same-image pair gets no pull (the modified form keeps it from collapsing); the
    // margin form still pulls it together.
    let near = t(&[0.03, 0.04], &[1, 2]).set_requires_grad(true);
    let zero = t(&[0.0, 0.0], &[1, 2]);
    let one = t(&[1.0], &[1]);
    for (form, pulled) in [(Contrastive::Margin, true), (Contrastive::Modified, false)] {
        let g = Tensor::run_backward(
            &[contrastive_loss(&near, &zero, &one, form, eps, alpha)],
            &[&near],
            false,
            false,
        );
        assert_eq!(g[0].abs().sum(Kind::Float).double_value(&[]) > 0.0, pulled, "{form:?}");
    }
}

/// Sets every variable of `vs` to values drawn from a seeded generator (away from the init).
fn scramble(vs: &VarStore, seed: i64) {
    tch::manual_seed(seed);
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            let r = Tensor::randn(v.size(), (Kind::Float, Device::Cpu)) * 0.5;
            v.copy_(&r);
        }
    });
}

#[test]
fn sentence_level_scbn_is_batch_norm_with_the_predicted_gamma_and_beta() {
    let vs = VarStore::new(Device::Cpu);
    let (b, c, h, w, e) = (3i64, 2i64, 2i64, 3i64, 4i64);
    let norm = CondNorm::new(vs.root() / "n", c, Scbn::Sentence, e, 5);
    scramble(&vs, 1);
    let x = Tensor::randn([b, c, h, w], (Kind::Float, Device::Cpu));
    let s = Tensor::randn([b, e], (Kind::Float, Device::Cpu));
    let got = norm.forward_t(&x, &Cond { sentence: &s, words: None }, true);
    // By hand: per channel the batch mean and (biased) variance over B·H·W; γ = γ0 + W_γ s + b_γ.
    let vars: std::collections::HashMap<String, Tensor> = vs.variables();
    let f = |n: &str| Vec::<f64>::try_from(vars[n].to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let (g0, b0) = (f("n.bn.weight"), f("n.bn.bias"));
    let (wg, bg, wb, bb) = (
        f("n.sentence_gamma.weight"),
        f("n.sentence_gamma.bias"),
        f("n.sentence_beta.weight"),
        f("n.sentence_beta.bias"),
    );
    let xv = Vec::<f64>::try_from(x.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let sv = Vec::<f64>::try_from(s.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let gv = Vec::<f64>::try_from(got.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let (bu, cu, hw, eu) = (b as usize, c as usize, (h * w) as usize, e as usize);
    for ch in 0..cu {
        let vals: Vec<f64> = (0..bu)
            .flat_map(|n| (0..hw).map(move |p| (n, p)))
            .map(|(n, p)| xv[(n * cu + ch) * hw + p])
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
        for n in 0..bu {
            let dot = |wt: &[f64], bias: &[f64]| {
                bias[ch] + (0..eu).map(|k| wt[ch * eu + k] * sv[n * eu + k]).sum::<f64>()
            };
            let (gamma, beta) = (g0[ch] + dot(&wg, &bg), b0[ch] + dot(&wb, &bb));
            for p in 0..hw {
                let i = (n * cu + ch) * hw + p;
                let want = (xv[i] - mean) / (var + 1e-5).sqrt() * gamma + beta;
                assert!((gv[i] - want).abs() < 1e-4, "channel {ch} item {n}: {} vs {want}", gv[i]);
            }
        }
    }
    // Without SCBN the layer is the plain batch norm.
    tch::manual_seed(7);
    let plain = CondNorm::new(vs.root() / "p", c, Scbn::None, e, 5);
    tch::manual_seed(7);
    let bn = crate::nn::bn2d(vs.root() / "q", c);
    assert!(plain.forward_t(&x, &Cond { sentence: &s, words: None }, true).allclose(
        &bn.forward_t(&x, true),
        1e-6,
        1e-6,
        false
    ));
}

#[test]
fn word_attention_weights_sum_to_one_and_pick_the_constructed_word() {
    let vs = VarStore::new(Device::Cpu);
    let att = WordAttention::new(vs.root() / "a", 3, 3);
    // f = 10·identity: a word's feature is its direction, scaled.
    tch::no_grad(|| {
        vs.variables()["a.f.weight"]
            .shallow_clone()
            .copy_(&(Tensor::eye(3, (Kind::Float, Device::Cpu)) * 10.0))
    });
    // One image, 2×1 regions: region 0 points along e0, region 1 along e2.
    let v = t(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0], &[1, 3, 2, 1]);
    // Words: e1, e0, e2, e0 (the last masked out as padding).
    let words = t(&[0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0], &[1, 4, 3]);
    let mask = Tensor::from_slice(&[true, true, true, false]).view([1, 4]);
    let (vse, a) = att.forward(&v, &words, &mask);
    assert_eq!(a.size(), [1, 2, 4]);
    let sums = a.sum_dim_intlist(-1, false, Kind::Float);
    assert!(sums.allclose(&Tensor::ones([1, 2], (Kind::Float, Device::Cpu)), 1e-6, 1e-6, false));
    let a = Vec::<f32>::try_from(a.flatten(0, -1)).unwrap();
    // Region 0 picks word 1 (e0), not the masked word 3; region 1 picks word 2 (e2).
    assert!(a[1] > 0.99 && a[3] == 0.0, "region 0: {:?}", &a[..4]);
    assert!(a[6] > 0.99 && a[7] == 0.0, "region 1: {:?}", &a[4..]);
    // vse_j = Σ_t a_jt f(w_t): region 0 ≈ 10·e0, region 1 ≈ 10·e2.
    let want = t(&[10.0, 0.0, 0.0, 0.0, 0.0, 10.0], &[1, 3, 2, 1]);
    assert!(vse.allclose(&want, 1e-2, 1e-2, false), "{vse}");
}

#[test]
fn word_level_scbn_shifts_each_region_by_its_words() {
    let vs = VarStore::new(Device::Cpu);
    let norm = CondNorm::new(vs.root() / "n", 3, Scbn::Word, 2, 4);
    scramble(&vs, 3);
    let x = Tensor::randn([2, 3, 4, 4], (Kind::Float, Device::Cpu));
    let s = Tensor::randn([2, 2], (Kind::Float, Device::Cpu));
    let words = Tensor::randn([2, 5, 4], (Kind::Float, Device::Cpu));
    let mask = Tensor::ones([2, 5], (Kind::Bool, Device::Cpu));
    let cond =
        |w: &Tensor| norm.forward_t(&x, &Cond { sentence: &s, words: Some((w, &mask)) }, true);
    let (a, b) = (cond(&words), cond(&(&words * 2.0)));
    assert_eq!(a.size(), [2, 3, 4, 4]);
    // Other words, another scale and shift; the sentence alone does not enter.
    assert!(!a.allclose(&b, 1e-4, 1e-4, false));
    let other = Tensor::randn([2, 2], (Kind::Float, Device::Cpu));
    let c = norm.forward_t(&x, &Cond { sentence: &other, words: Some((&words, &mask)) }, true);
    assert!(a.allclose(&c, 1e-6, 1e-6, false));
}
