use super::*;
use tch::nn::VarStore;
use tch::Device;

fn preset(name: &str, sets: &[&str]) -> Config {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::of(&storyvis_core::config::Config::resolve(name, None, &sets).unwrap()).unwrap()
}

#[test]
fn the_paper_preset_has_the_papers_settings() {
    crate::install();
    let c = preset("stackgan-clevr", &[]);
    assert_eq!(
        (
            c.stage,
            c.image_size,
            c.noise_dim,
            c.condition_dim,
            c.ngf,
            c.ndf,
            c.residual_blocks,
            c.batch
        ),
        (1, 64, 100, 128, 128, 64, 4, 64)
    );
    assert_eq!(
        (c.kl_weight, c.lr_g, c.lr_d, c.beta1, c.lr_halve_epochs),
        (2.0, 2e-4, 2e-4, 0.5, 100)
    );
    let s = preset("sdgan-clevr", &[]);
    assert_eq!(
        (s.siamese, s.contrastive, s.margin, s.alpha, s.scbn),
        (true, Contrastive::Modified, 1.0, 0.1, Scbn::Both)
    );
}

#[test]
fn conditioning_augmentations_kl_is_the_closed_form() {
    crate::install();
    let vs = VarStore::new(Device::Cpu);
    tch::manual_seed(4);
    let ca = CondAug::new(vs.root() / "ca", 6, 3);
    let text = Tensor::randn([5, 6], (Kind::Float, Device::Cpu)) * 3.0;
    let eps = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
    let (c, mu, logvar) = augment(&ca, &text, &eps);
    let v = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let (m, lv, e, cv) = (v(&mu), v(&logvar), v(&eps), v(&c));
    // ĉ = μ + σ ⊙ ε.
    for i in 0..m.len() {
        assert!((cv[i] - (m[i] + (lv[i] / 2.0).exp() * e[i])).abs() < 1e-5);
    }
    // KL(N(μ, σ²) ‖ N(0, 1)) per dimension = ½ (σ² + μ² − 1 − log σ²), averaged over the batch
    // and dimensions (StackGAN-Pytorch's KL_loss takes the mean).
    let want = m.iter().zip(&lv).map(|(mu, lv)| 0.5 * (lv.exp() + mu * mu - 1.0 - lv)).sum::<f64>()
        / m.len() as f64;
    let got = storyvis_core::loss::kl(&mu, &logvar).double_value(&[]);
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    // Zero at the prior.
    let z = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
    assert!(storyvis_core::loss::kl(&z, &z).double_value(&[]).abs() < 1e-9);
}

#[test]
fn stage_two_draws_four_times_stage_ones_side_and_the_discriminators_judge_every_size() {
    crate::install();
    tch::manual_seed(0);
    let one_cfg = preset("stackgan-tiny", &[]);
    let vs = VarStore::new(Device::Cpu);
    let one = StageOne::new(vs.root() / "one", &one_cfg, 12, 5);
    let (b, e) = (3, 12);
    let z = Tensor::randn([b, one_cfg.noise_dim], (Kind::Float, Device::Cpu));
    let text = Tensor::randn([b, e], (Kind::Float, Device::Cpu));
    let eps = Tensor::randn([b, one_cfg.condition_dim], (Kind::Float, Device::Cpu));
    let (x1, mu, _) = one.forward_t(&z, &text, &eps, None, true);
    assert_eq!((x1.size(), mu.size()), (vec![b, 3, 64, 64], vec![b, one_cfg.condition_dim]));
    for size in [128, 256] {
        let c = preset(
            "stackgan-tiny",
            &["stage=2", &format!("image_size={size}"), "stage1=somewhere"],
        );
        let two = StageTwo::new(vs.root() / format!("two{size}"), &c, e, 5);
        let (x2, _, _) = two.forward_t(&x1, &text, &eps, None, true);
        assert_eq!(x2.size(), [b, 3, size, size]);
        assert!(x2.abs().max().double_value(&[]) <= 1.0);
        let d = Discriminator::new(vs.root() / format!("d{size}"), &c, true, None);
        let f = d.features(&x2, true);
        assert_eq!(f.size(), [b, 8 * c.ndf, 4, 4]);
        assert_eq!(
            (d.judge(&f, &mu, true).size(), d.unconditional(&f).map(|u| u.size())),
            (vec![b], Some(vec![b]))
        );
        let v = Discriminator::embedding(&f);
        let norms = v.square().sum_dim_intlist(1, false, Kind::Float);
        assert!(norms.allclose(&Tensor::ones([b], (Kind::Float, Device::Cpu)), 1e-5, 1e-5, false));
    }
    // 256 = 4 × 64: the paper's Stage II.
    let paper = preset("stackgan-clevr-stage2", &["stage1=somewhere"]);
    assert_eq!(paper.image_size, 4 * one_cfg.image_size);
}

#[test]
fn bad_configs_are_clear_errors() {
    crate::install();
    let e = |sets: &[&str], name: &str| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let r =
            storyvis_core::config::Config::resolve(name, None, &sets).and_then(|c| Config::of(&c));
        format!("{:#}", r.expect_err("an error"))
    };
    let no_stage1 = preset("stackgan-small-stage2", &[]);
    let err = format!("{:#}", family::stage_one_run(&no_stage1).unwrap_err());
    assert!(err.contains("stage 2 needs its Stage-I run"), "{err}");
    assert!(e(&["stage=2", "image_size=96", "stage1=x"], "stackgan-tiny").contains("is not 64·2^k"));
    assert!(e(&["image_size=128"], "stackgan-tiny").contains("stage 1 draws 64×64"));
    assert!(e(&["stage=3"], "stackgan-tiny").contains("stage = 3 (1 or 2)"));
    // SDGAN's switches are not StackGAN's keys.
    assert!(e(&["siamese=true"], "stackgan-tiny").contains("unknown config key \"siamese\""));
    assert!(e(&["scbn=\"phrase\""], "sdgan-tiny").contains("phrase"));
}
