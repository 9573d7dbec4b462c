use super::*;
use storyvis_core::loss;
use tch::{Device, Kind};

fn tiny() -> Config {
    Config::of(&storyvis_core::config::Config::resolve("gan-int-cls-tiny", None, &[]).unwrap())
        .unwrap()
}

#[test]
fn the_networks_have_the_papers_shapes() {
    crate::install();
    tch::manual_seed(0);
    let paper = Config::of(
        &storyvis_core::config::Config::resolve("gan-int-cls-clevr", None, &[]).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (paper.noise_dim, paper.text_dim, paper.ngf, paper.ndf, paper.batch),
        (100, 128, 128, 64, 64)
    );
    for size in [64, 128] {
        let c = Config { image_size: size, ..tiny() };
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let g = Generator::new(vs.root() / "g", &c, 32);
        let d = Discriminator::new(vs.root() / "d", &c, 32, None);
        let s = StyleEncoder::new(vs.root() / "s", &c);
        let z = Tensor::randn([3, c.noise_dim], (Kind::Float, Device::Cpu));
        let t = Tensor::randn([3, 32], (Kind::Float, Device::Cpu));
        let x = g.forward_t(&z, &t, true);
        assert_eq!(x.size(), [3, 3, size, size]);
        assert!(x.abs().max().double_value(&[]) <= 1.0);
        assert_eq!(d.forward_t(&x, &t, true).size(), [3]);
        assert_eq!(s.forward_t(&x, true).size(), [3, c.noise_dim]);
    }
}

#[test]
fn the_int_term_draws_from_the_mean_of_the_pair() {
    crate::install();
    let (t1, t2) =
        (Tensor::from_slice(&[1.0f32, -2.0, 4.0]), Tensor::from_slice(&[3.0f32, 2.0, 0.0]));
    let got: Vec<f32> = Vec::try_from(interpolate(&t1, &t2, 0.5)).unwrap();
    assert_eq!(got, vec![2.0, 0.0, 2.0]);
    let got: Vec<f32> = Vec::try_from(interpolate(&t1, &t2, 0.25)).unwrap();
    assert_eq!(got, vec![2.5, 1.0, 1.0]);
}

/// −log σ(x) and −log(1 − σ(x)), by hand.
fn nll_real(x: f64) -> f64 {
    (1.0 + (-x).exp()).ln()
}
fn nll_fake(x: f64) -> f64 {
    (1.0 + x.exp()).ln()
}

#[test]
fn the_matching_aware_terms_are_real_plus_half_wrong_and_fake() {
    crate::install();
    let (r, w, f) = ([2.0, -0.5], [0.3, 1.2], [-1.0, 0.7]);
    let t = |v: [f64; 2]| Tensor::from_slice(&v).to_kind(Kind::Float);
    let got = loss::discriminator(&t(r), &t(f), &t(w)).double_value(&[]);
    let mean = |v: [f64; 2], g: fn(f64) -> f64| (g(v[0]) + g(v[1])) / 2.0;
    let want = mean(r, nll_real) + 0.5 * (mean(w, nll_fake) + mean(f, nll_fake));
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    // The plain GAN's: real + fake, no mismatched term.
    let got = loss::real_fake(&t(r), &t(f)).double_value(&[]);
    assert!((got - (mean(r, nll_real) + mean(f, nll_fake))).abs() < 1e-5);
}

#[test]
fn the_style_encoder_learns_to_invert_a_fixed_generator() {
    crate::install();
    tch::manual_seed(1);
    let c = tiny();
    let (gvs, svs) = (tch::nn::VarStore::new(Device::Cpu), tch::nn::VarStore::new(Device::Cpu));
    let g = Generator::new(gvs.root(), &c, 16);
    let s = StyleEncoder::new(svs.root(), &c);
    let mut opt = storyvis_core::optim::Adam::new(&svs, 0.5, 0.999, |_| true);
    let t = Tensor::randn([32, 16], (Kind::Float, Device::Cpu));
    let z = Tensor::randn([32, c.noise_dim], (Kind::Float, Device::Cpu));
    let x = tch::no_grad(|| g.forward_t(&z, &t, false));
    let mut losses = Vec::new();
    for _ in 0..150 {
        let l = style_loss(&z, &s.forward_t(&x, true));
        losses.push(l.double_value(&[]));
        let grads = storyvis_core::optim::Adam::backward(&l, &[&opt]);
        opt.step(&grads[0], 2e-3);
    }
    // ‖z‖² ≈ noise_dim at the start (S outputs near 0); it must fall well below.
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < 0.25 * first, "style loss {first} → {last}");
    // And the loss is ‖z − S(x)‖², batch-averaged.
    let p = s.forward_t(&x, false);
    let by_hand = (0..32)
        .map(|i| {
            (0..c.noise_dim)
                .map(|k| (z.double_value(&[i, k]) - p.double_value(&[i, k])).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / 32.0;
    assert!((style_loss(&z, &p).double_value(&[]) - by_hand).abs() < 1e-3 * by_hand.max(1.0));
}

#[test]
fn skip_layer_excitation_gates_the_maps_two_doublings_up() {
    crate::install();
    for (size, gates) in [(64, 2), (128, 3)] {
        let c = Config { image_size: size, ..tiny() };
        let z = Tensor::randn([4, c.noise_dim], (Kind::Float, Device::Cpu));
        let t = Tensor::randn([4, 16], (Kind::Float, Device::Cpu));
        let (gated_vs, mut plain_vs) =
            (tch::nn::VarStore::new(Device::Cpu), tch::nn::VarStore::new(Device::Cpu));
        let gated_g = Generator::new(gated_vs.root() / "g", &Config { sle: true, ..c.clone() }, 16);
        let plain_g = Generator::new(plain_vs.root() / "g", &c, 16);
        // The same weights but the excitations' (tests share the random generator: copied, not
        // drawn from one seed twice).
        plain_vs.copy(&gated_vs).unwrap();
        let count = |vs: &tch::nn::VarStore| {
            vs.variables().into_keys().filter(|n| n.contains("sle")).count()
        };
        assert_eq!((count(&plain_vs), count(&gated_vs)), (0, 2 * gates));
        // Excitations whose last convolution is zero gate every channel by σ(0) = ½.
        tch::no_grad(|| gated_g.sle.iter().for_each(|s| s.zero_excitation()));
        let (plain, gated) = (plain_g.forward_t(&z, &t, false), gated_g.forward_t(&z, &t, false));
        // Drawn in eval mode by fresh networks (batch-norm's running mean 0 and variance 1), every
        // layer between the 4×4 map and the picture's pre-activation is positively homogeneous:
        // halving the 16×16 map halves the 32×32 one, which its own gate halves again, and so
        // on: the picture's pre-activation is the plain generator's times ½ per gate.
        let want = (plain.atanh() * 0.5f64.powi(gates as i32)).tanh();
        // Relative to the picture's scale (fresh weights draw faint pictures in eval mode).
        let scale = plain.abs().max().double_value(&[]);
        assert!(scale > 0.0);
        let diff = (&gated - &want).abs().max().double_value(&[]) / scale;
        assert!(diff < 1e-3, "{size}: {diff}");
        assert!((&gated - &plain).abs().max().double_value(&[]) > 0.5 * scale);
    }
}
