//! Building blocks shared by the models: DCGAN-style initialisation, a GRU cell, up-blocks,
//! and the per-sample ("dynamic") convolutions at the heart of StoryGAN's Text2Gist.

use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

/// N(0, 0.02), the DCGAN / StoryGAN weight initialisation.
pub const INIT: nn::Init = nn::Init::Randn { mean: 0.0, stdev: 0.02 };

pub fn linear(p: nn::Path, i: i64, o: i64, bias: bool) -> nn::Linear {
    let bs_init = bias.then_some(nn::Init::Const(0.0));
    nn::linear(p, i, o, nn::LinearConfig { ws_init: INIT, bs_init, bias })
}

/// U(−1/√fan_in, 1/√fan_in) weights and biases, PyTorch's default for recurrent cells and
/// linear layers. The recurrent parts use it: N(0, 0.02) shrinks a signal at every step.
pub fn recurrent_linear(p: nn::Path, i: i64, o: i64, bias: bool) -> nn::Linear {
    let k = 1.0 / (i as f64).sqrt();
    let init = nn::Init::Uniform { lo: -k, up: k };
    nn::linear(p, i, o, nn::LinearConfig { ws_init: init, bs_init: bias.then_some(init), bias })
}

pub fn conv(p: nn::Path, i: i64, o: i64, k: i64, stride: i64, padding: i64) -> nn::Conv2D {
    nn::conv2d(
        p,
        i,
        o,
        k,
        nn::ConvConfig { stride, padding, bias: false, ws_init: INIT, ..Default::default() },
    )
}

/// Batch norm (tch's layer and variables: `weight`, `bias`, `running_mean`, `running_var`)
/// whose running statistics can also be re-estimated for weights as they are now: inside
/// `standing_statistics`, a training-mode pass makes them the plain average over every batch
/// the layer has seen there (momentum 1/n for its n-th batch, PyTorch's `momentum=None`),
/// instead of an exponential average over training (momentum 0.1).
#[derive(Debug)]
pub struct BatchNorm {
    inner: nn::BatchNorm,
    /// (standing pass id, batches this layer has seen in it).
    standing: std::cell::Cell<(u64, u64)>,
}

const BN_MOMENTUM: f64 = 0.1;
const BN_EPS: f64 = 1e-5;

thread_local! {
    /// The `standing_statistics` pass running on this thread (0: none).
    static STANDING: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}
static STANDING_PASSES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs `f` (training-mode forward passes, typically under `no_grad`) so that every batch-norm
/// layer it reaches ends with the mean and (unbiased) variance averaged over the batches it saw
/// in `f` with equal weights: "standing statistics" (Brock et al., BigGAN, ICLR 2019, App. C.1)
/// for weights that training never ran with, such as a moving average of them.
pub fn standing_statistics<T>(f: impl FnOnce() -> T) -> T {
    /// Puts back the pass that ran before (none, or an enclosing one).
    struct Restore(u64);
    impl Drop for Restore {
        fn drop(&mut self) {
            STANDING.with(|s| s.set(self.0));
        }
    }
    let id = STANDING_PASSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let _restore = Restore(STANDING.with(|s| s.replace(id)));
    f()
}

impl BatchNorm {
    /// The momentum of this forward pass (see `standing_statistics`).
    fn momentum(&self, train: bool) -> f64 {
        let pass = STANDING.with(|s| s.get());
        if train && pass != 0 {
            let (id, seen) = self.standing.get();
            let seen = if id == pass { seen } else { 0 };
            self.standing.set((pass, seen + 1));
            1.0 / (seen + 1) as f64
        } else {
            BN_MOMENTUM
        }
    }

    /// x normalised by the batch's (train) or the running (eval) statistics, without the affine
    /// map: what conditional batch norms scale and shift with their own γ and β.
    pub fn normalise(&self, x: &Tensor, train: bool) -> Tensor {
        let b = &self.inner;
        Tensor::batch_norm(
            x,
            None::<&Tensor>,
            None::<&Tensor>,
            Some(&b.running_mean),
            Some(&b.running_var),
            train,
            self.momentum(train),
            BN_EPS,
            true,
        )
    }

    /// The layer's own (γ, β) [C].
    pub fn affine(&self) -> (&Tensor, &Tensor) {
        (
            self.inner.ws.as_ref().expect("an affine batch norm"),
            self.inner.bs.as_ref().expect("an affine batch norm"),
        )
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let momentum = self.momentum(train);
        let b = &self.inner;
        Tensor::batch_norm(
            x,
            b.ws.as_ref(),
            b.bs.as_ref(),
            Some(&b.running_mean),
            Some(&b.running_var),
            train,
            momentum,
            BN_EPS,
            true,
        )
    }
}

/// Batch-norm with γ ~ N(1, 0.02), β = 0 (StoryGAN's init).
fn batch_norm(p: nn::Path, c: i64, nd: usize) -> BatchNorm {
    let config = nn::BatchNormConfig {
        ws_init: nn::Init::Randn { mean: 1.0, stdev: 0.02 },
        bs_init: nn::Init::Const(0.0),
        momentum: BN_MOMENTUM,
        eps: BN_EPS,
        ..Default::default()
    };
    let inner =
        if nd == 1 { nn::batch_norm1d(p, c, config) } else { nn::batch_norm2d(p, c, config) };
    BatchNorm { inner, standing: Default::default() }
}
pub fn bn2d(p: nn::Path, c: i64) -> BatchNorm {
    batch_norm(p, c, 2)
}
pub fn bn1d(p: nn::Path, c: i64) -> BatchNorm {
    batch_norm(p, c, 1)
}

/// A 1-d convolution (stride 1, no padding) with libtorch's default (Kaiming-uniform) init.
pub fn conv1d(p: nn::Path, i: i64, o: i64, k: i64) -> nn::Conv1D {
    nn::conv1d(p, i, o, k, Default::default())
}

/// Leaky ReLU with slope 0.2 (the discriminators').
pub fn leaky(x: &Tensor) -> Tensor {
    x.maximum(&(x * 0.2))
}

/// Conditioning augmentation (Zhang et al., StackGAN, ICCV 2017, §3.1), shared by StoryGAN's
/// story encoder (Li et al. 2019, §3.2) and StackGAN (GAN-INT-CLS, which predates it, projects
/// its text with a plain linear layer): a linear
/// map of the text embedding to (μ, log σ²), a sample ĉ = μ + σ ⊙ ε, ε ~ N(0, I), and the
/// regulariser KL(N(μ, σ²) ‖ N(0, I)).
#[derive(Debug)]
pub struct CondAug {
    fc: nn::Linear,
    pub output_dim: i64,
}

impl CondAug {
    /// `input` → `output` (the linear map's variables sit at `p` itself: `p.weight`, `p.bias`).
    pub fn new(p: nn::Path, input: i64, output: i64) -> CondAug {
        CondAug { fc: linear(p, input, 2 * output, true), output_dim: output }
    }

    /// (μ, log σ²) of x [..., input].
    pub fn stats(&self, x: &Tensor) -> (Tensor, Tensor) {
        let s = x.apply(&self.fc).chunk(2, -1);
        (s[0].shallow_clone(), s[1].shallow_clone())
    }

    /// (ĉ, KL) with ε = `noise(shape)` (N(0, I) draws, or fixed ones in tests).
    pub fn sample(&self, x: &Tensor, noise: impl FnOnce(&[i64]) -> Tensor) -> (Tensor, Tensor) {
        let (mu, logvar) = self.stats(x);
        let c = &mu + (&logvar * 0.5).exp() * noise(&mu.size());
        (c, crate::loss::kl(&mu, &logvar))
    }
}

/// A GRU cell (Cho et al. 2014):
///   r = σ(W_r x + U_r h), z = σ(W_z x + U_z h), n = tanh(W_n x + r ⊙ (U_n h)),
///   h' = (1 − z) ⊙ n + z ⊙ h.
#[derive(Debug)]
pub struct GruCell {
    input: nn::Linear,  // x → [r, z, n] pre-activations
    hidden: nn::Linear, // h → [r, z, n]
    pub hidden_dim: i64,
}

impl GruCell {
    pub fn new(p: nn::Path, input_dim: i64, hidden_dim: i64) -> GruCell {
        GruCell {
            input: recurrent_linear(&p / "input", input_dim, 3 * hidden_dim, true),
            hidden: recurrent_linear(&p / "hidden", hidden_dim, 3 * hidden_dim, true),
            hidden_dim,
        }
    }

    /// The cell over whole sequences x [B, L, input_dim] from h0 [B, hidden_dim] in one
    /// libtorch RNN call (cuDNN on a GPU): the states after every step, [B, L, hidden_dim].
    /// Same equations and weight layout as `step` (PyTorch's GRU: gates r, z, n).
    pub fn sequence(&self, x: &Tensor, h0: &Tensor) -> Tensor {
        let bias = |l: &nn::Linear| l.bs.as_ref().expect("GRU biases").shallow_clone();
        let params = [
            self.input.ws.shallow_clone(),
            self.hidden.ws.shallow_clone(),
            bias(&self.input),
            bias(&self.hidden),
        ];
        // `train` only matters for dropout (none here), but cuDNN needs it for a backward pass.
        x.gru(&h0.unsqueeze(0), &params, true, 1, 0.0, true, false, true).0
    }

    /// x: [B, input_dim], h: [B, hidden_dim] → [B, hidden_dim].
    pub fn step(&self, x: &Tensor, h: &Tensor) -> Tensor {
        let gi = self.input.forward(x).chunk(3, 1);
        let gh = self.hidden.forward(h).chunk(3, 1);
        let r = (&gi[0] + &gh[0]).sigmoid();
        let z = (&gi[1] + &gh[1]).sigmoid();
        let n = (&gi[2] + &r * &gh[2]).tanh();
        (1.0 - &z) * n + z * h
    }
}

/// The up-stack of a DCGAN generator (Radford et al. 2016): each layer, then batch-norm and
/// ReLU after every layer but the last, tanh after the last. `bns` has one norm fewer than
/// `layers`.
pub fn dcgan_up<L>(
    mut h: Tensor,
    layers: &[L],
    bns: &[BatchNorm],
    train: bool,
    forward: impl Fn(&L, &Tensor) -> Tensor,
) -> Tensor {
    let last = layers.len() - 1;
    for (i, layer) in layers.iter().enumerate() {
        h = forward(layer, &h);
        h = if i < last { bns[i].forward_t(&h, train).relu() } else { h.tanh() };
    }
    h
}

/// An LSTM cell (Hochreiter & Schmidhuber 1997) with PyTorch's gate order and weight layout
/// (input, forget, cell, output), so that whole sequences run as one libtorch RNN call.
#[derive(Debug)]
pub struct LstmCell {
    input: nn::Linear,  // x → [i, f, g, o] pre-activations
    hidden: nn::Linear, // h → [i, f, g, o]
    pub hidden_dim: i64,
}

impl LstmCell {
    pub fn new(p: nn::Path, input_dim: i64, hidden_dim: i64) -> LstmCell {
        LstmCell {
            input: recurrent_linear(&p / "input", input_dim, 4 * hidden_dim, true),
            hidden: recurrent_linear(&p / "hidden", hidden_dim, 4 * hidden_dim, true),
            hidden_dim,
        }
    }

    /// The cell over whole sequences x [B, L, input_dim] from zero states in one libtorch RNN
    /// call: the hidden states after every step, [B, L, hidden_dim].
    pub fn sequence(&self, x: &Tensor) -> Tensor {
        let bias = |l: &nn::Linear| l.bs.as_ref().expect("LSTM biases").shallow_clone();
        let params = [
            self.input.ws.shallow_clone(),
            self.hidden.ws.shallow_clone(),
            bias(&self.input),
            bias(&self.hidden),
        ];
        let zeros = Tensor::zeros([1, x.size()[0], self.hidden_dim], (x.kind(), x.device()));
        x.lstm(&[zeros.shallow_clone(), zeros], &params, true, 1, 0.0, true, false, true).0
    }

    /// One step: x [B, input_dim], (h, c) [B, hidden_dim] → (h, c).
    pub fn step(&self, x: &Tensor, h: &Tensor, c: &Tensor) -> (Tensor, Tensor) {
        let g = self.input.forward(x) + self.hidden.forward(h);
        let g = g.chunk(4, 1);
        let (i, f, cell, o) = (g[0].sigmoid(), g[1].sigmoid(), g[2].tanh(), g[3].sigmoid());
        let c = f * c + i * cell;
        (o * c.tanh(), c)
    }
}

/// The DCGAN discriminator's body (Radford et al. 2016; Reed et al. 2016 §3.1; StoryGAN's
/// image encoder): `size`×`size` → 4×4 by strided 4×4 convolutions that double the channels
/// from `ndf` (64×64: ndf, 2ndf, 4ndf, 8ndf), leaky ReLU 0.2, batch-norm on every layer but
/// the first. Variables `conv0…`, `bn1…`.
#[derive(Debug)]
pub struct DownStack {
    convs: Vec<nn::Conv2D>,
    bns: Vec<BatchNorm>,
    /// Channels of the 4×4 output.
    pub out_channels: i64,
    /// Run the convolutions in the channels-last memory format.
    pub channels_last: bool,
}

/// How many ×2 steps take 4×4 to `size`×`size` (`size` = 4·2^k, k ≥ 1).
pub fn doublings(size: i64) -> usize {
    assert!(size >= 8 && (size & (size - 1)) == 0, "image size {size} is not a power of two ≥ 8");
    (size / 4).trailing_zeros() as usize
}

impl DownStack {
    pub fn new(p: nn::Path, size: i64, ndf: i64) -> DownStack {
        Self::with_input(p, size, ndf, 3)
    }

    /// A stack over `input` channels (an image and the one before it: 6).
    pub fn with_input(p: nn::Path, size: i64, ndf: i64, input: i64) -> DownStack {
        let widths: Vec<i64> = (0..doublings(size)).map(|i| ndf << i.min(5)).collect();
        Self::with_widths(p, input, &widths)
    }

    /// A stack of `widths.len()` halvings over `input` channels, `widths[i]` channels after
    /// halving i, batch-normalised after every halving but the first (DCGAN's discriminator).
    pub fn with_widths(p: nn::Path, input: i64, widths: &[i64]) -> DownStack {
        Self::build(p, input, widths, true)
    }

    /// `with_widths` without batch norm: for inputs that can be the same across a batch (a
    /// blank canvas), where a batch's statistics would be those of the padding alone.
    pub fn unnormalised(p: nn::Path, input: i64, widths: &[i64]) -> DownStack {
        Self::build(p, input, widths, false)
    }

    fn build(p: nn::Path, input: i64, widths: &[i64], normalised: bool) -> DownStack {
        let k = widths.len();
        let widths: Vec<i64> = std::iter::once(input).chain(widths.iter().copied()).collect();
        // The convolutions first: the order the weights are initialised in (seeded runs).
        let convs = (0..k)
            .map(|i| conv(&p / format!("conv{i}"), widths[i], widths[i + 1], 4, 2, 1))
            .collect();
        let bns = if normalised {
            (1..k).map(|i| bn2d(&p / format!("bn{i}"), widths[i + 1])).collect()
        } else {
            Vec::new()
        };
        DownStack { convs, bns, out_channels: widths[k], channels_last: false }
    }

    /// [N, input, size, size] → [N, out_channels, 4, 4]
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x =
            if self.channels_last { crate::precision::channels_last(x) } else { x.shallow_clone() };
        let h = self.maps(&x, train).pop().expect("at least one halving");
        // The features leave in the standard layout, whatever the convolutions ran in.
        h.contiguous()
    }

    /// The map after every halving, in the layout `x` has: [N, widths[i], size/2^(i+1), …].
    pub fn maps(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let mut h = leaky(&self.convs[0].forward(x));
        let mut maps = vec![h.shallow_clone()];
        for (i, c) in self.convs[1..].iter().enumerate() {
            let y = c.forward(&h);
            h = leaky(&match self.bns.get(i) {
                Some(bn) => bn.forward_t(&y, train),
                None => y,
            });
            maps.push(h.shallow_clone());
        }
        maps
    }
}

/// Nearest ×2, 3×3 conv, batch-norm, ReLU: one generator up-block.
#[derive(Debug)]
pub struct UpBlock {
    conv: nn::Conv2D,
    bn: BatchNorm,
}

impl UpBlock {
    pub fn new(p: nn::Path, i: i64, o: i64) -> UpBlock {
        UpBlock { conv: conv(&p / "conv", i, o, 3, 1, 1), bn: bn2d(&p / "bn", o) }
    }
    /// [N, i, H, W] → [N, o, 2H, 2W]
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let (h, w) = (x.size()[2], x.size()[3]);
        let up = x.upsample_nearest2d([2 * h, 2 * w], None, None);
        self.bn.forward_t(&self.conv.forward(&up), train).relu()
    }
}

/// FastGAN's skip-layer excitation (Liu et al., ICLR 2021, §3.1, Fig. 3): a low-resolution map
/// gates the channels of a high-resolution one. The low map is average-pooled to 4×4, a 4×4
/// convolution takes it to 1×1, then leaky ReLU (slope 0.1), a 1×1 convolution and a sigmoid
/// give one weight in (0, 1) per channel of the high map, which multiplies it.
#[derive(Debug)]
pub struct SkipExcitation {
    squeeze: nn::Conv2D,
    excite: nn::Conv2D,
}

impl SkipExcitation {
    /// `low`: the low map's channels; `high`: the high map's.
    pub fn new(p: nn::Path, low: i64, high: i64) -> SkipExcitation {
        SkipExcitation {
            squeeze: conv(&p / "squeeze", low, high, 4, 1, 0),
            excite: conv(&p / "excite", high, high, 1, 1, 0),
        }
    }

    /// low [N, low, h, w] (h, w ≥ 4) → the gates [N, high, 1, 1].
    pub fn gates(&self, low: &Tensor) -> Tensor {
        let s = self.squeeze.forward(&low.adaptive_avg_pool2d([4, 4]));
        self.excite.forward(&s.maximum(&(&s * 0.1))).sigmoid()
    }

    /// Zero the last convolution, so that every gate is σ(0) = ½ (for tests).
    #[cfg(any(test, feature = "testing"))]
    pub fn zero_excitation(&self) {
        let mut w = self.excite.ws.shallow_clone();
        let _ = w.zero_();
    }

    /// high [N, high, H, W] gated by low.
    pub fn forward(&self, low: &Tensor, high: &Tensor) -> Tensor {
        high * self.gates(low)
    }
}

/// Each sample's own bank of 1-d filters applied to its own signal ("same" padding):
/// signal [B, D], filters [B, K, L] (L odd) → [B, K, D], where
/// out[b, k, d] = Σ_j filters[b, k, j] · signal[b, d + j − L/2] (cross-correlation, as
/// convolution layers compute it). Done as one grouped convolution: the batch becomes the
/// channel axis and each group sees one sample.
pub fn dynamic_conv1d(signal: &Tensor, filters: &Tensor) -> Tensor {
    let (b, d) = (signal.size()[0], signal.size()[1]);
    let (k, l) = (filters.size()[1], filters.size()[2]);
    let x = signal.view([1, b, d]);
    let w = filters.reshape([b * k, 1, l]);
    x.conv1d(&w, None::<Tensor>, [1], [l / 2], [1], b).view([b, k, d])
}

/// Picks one entry per row along dimension 1: x [B, T, ...], index [B] → [B, ...].
pub fn pick_frames(x: &Tensor, index: &Tensor) -> Tensor {
    let rows = Tensor::arange(x.size()[0], (tch::Kind::Int64, x.device()));
    x.index(&[Some(rows), Some(index.to_device(x.device()))])
}

/// The 2-d counterpart: maps [B, 1, H, W], filters [B, 1, kh, kw] (odd) → [B, 1, H, W].
pub fn dynamic_conv2d(maps: &Tensor, filters: &Tensor) -> Tensor {
    let s = maps.size();
    let f = filters.size();
    let x = maps.view([1, s[0], s[2], s[3]]);
    let w = filters.view([s[0], 1, f[2], f[3]]);
    x.conv2d(&w, None::<Tensor>, [1, 1], [f[2] / 2, f[3] / 2], [1, 1], s[0])
        .view([s[0], 1, s[2], s[3]])
}

/// Pictures [N, C, S, S] each moved by `offsets` [N, 2] (x, y in normalised units, where the
/// picture spans 2): output pixel (i, j) samples the picture at its centre plus the offset, so
/// the content moves by minus the offset, with zeros from outside. `interpolation`: libtorch's
/// grid-sampler mode (0 bilinear, 1 nearest); a whole-pixel offset (2k/S) with nearest sampling
/// lands on exact pixel centres and blends nothing.
pub fn translated(pictures: &Tensor, offsets: &Tensor, interpolation: i64) -> Tensor {
    let (n, s) = (pictures.size()[0], pictures.size()[3]);
    // Normalised pixel centres (align_corners = false): (2j + 1) / S − 1.
    let centres =
        (Tensor::arange(s, (Kind::Float, pictures.device())) * 2.0 + 1.0) / s as f64 - 1.0;
    let xs = centres.view([1, 1, s, 1]).expand([n, s, s, 1], false);
    let ys = centres.view([1, s, 1, 1]).expand([n, s, s, 1], false);
    // [N, S, S, 2]; sampled with padding 0: zeros.
    let grid = Tensor::cat(&[xs, ys], 3).to_kind(offsets.kind()) + offsets.view([n, 1, 1, 2]);
    pictures.grid_sampler_2d(&grid.to_kind(pictures.kind()), interpolation, 0, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn standing_statistics_average_every_batch_seen_with_equal_weights() {
        let vs = nn::VarStore::new(Device::Cpu);
        let bn = bn2d(vs.root() / "bn", 2);
        let vars = vs.variables();
        let stat = |n: &str| Vec::<f64>::try_from(vars[n].to_kind(Kind::Double)).unwrap();
        // Three batches [N=2, C=2, 2×2] with different means and spreads per channel.
        let batches: Vec<Tensor> = (0..3)
            .map(|k| {
                Tensor::randn([2, 2, 2, 2], (Kind::Float, Device::Cpu)) * (1.0 + k as f64)
                    + 3.0 * k as f64
            })
            .collect();
        // By hand: each batch's per-channel mean and unbiased variance (8 values a channel).
        let moments = |x: &Tensor, c: i64| {
            let v =
                Vec::<f64>::try_from(x.select(1, c).flatten(0, -1).to_kind(Kind::Double)).unwrap();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            (m, v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64)
        };
        // Outside a standing pass: the exponential average, momentum 0.1, from (0, 1).
        let _ = bn.forward_t(&batches[0], true);
        for c in 0..2 {
            let (m, v) = moments(&batches[0], c);
            assert!((stat("bn.running_mean")[c as usize] - 0.1 * m).abs() < 1e-5);
            assert!((stat("bn.running_var")[c as usize] - (0.9 + 0.1 * v)).abs() < 1e-5);
        }
        // Inside: the plain mean over the batches seen there (the first pass above forgotten);
        // an eval-mode pass changes nothing; a second standing pass starts afresh.
        for round in 0..2 {
            let seen = if round == 0 { &batches[..] } else { &batches[1..] };
            standing_statistics(|| {
                for x in seen {
                    let _ = bn.forward_t(x, true);
                    let _ = bn.forward_t(&(x * 10.0), false);
                }
            });
            for c in 0..2 {
                let n = seen.len() as f64;
                let m = seen.iter().map(|x| moments(x, c).0).sum::<f64>() / n;
                let v = seen.iter().map(|x| moments(x, c).1).sum::<f64>() / n;
                assert!(
                    (stat("bn.running_mean")[c as usize] - m).abs() < 1e-4,
                    "round {round} channel {c}: mean {:?} vs {m}",
                    stat("bn.running_mean")
                );
                assert!(
                    (stat("bn.running_var")[c as usize] - v).abs() < 1e-4 * v.max(1.0),
                    "round {round} channel {c}: var {:?} vs {v}",
                    stat("bn.running_var")
                );
            }
        }
        // After the pass, training mode is the exponential average again.
        let before = stat("bn.running_mean")[0];
        let _ = bn.forward_t(&batches[0], true);
        assert!(
            (stat("bn.running_mean")[0] - (0.9 * before + 0.1 * moments(&batches[0], 0).0)).abs()
                < 1e-4
        );
    }

    #[test]
    fn conditioning_augmentation_is_mu_plus_sigma_epsilon_with_its_kl() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let ca = CondAug::new(vs.root() / "ca", 5, 3);
        let x = Tensor::randn([2, 5], (Kind::Float, Device::Cpu));
        let eps = Tensor::randn([2, 3], (Kind::Float, Device::Cpu));
        let (c, kl) = ca.sample(&x, |size| {
            assert_eq!(size, [2, 3]);
            eps.shallow_clone()
        });
        // By hand: [μ ; log σ²] = W x + b, then μ + exp(log σ² / 2) ε and
        // KL = −½ mean(1 + log σ² − μ² − σ²).
        let vars = vs.variables();
        let (w, bias, xs, e) =
            (to_vec(&vars["ca.weight"]), to_vec(&vars["ca.bias"]), to_vec(&x), to_vec(&eps));
        let (got, mut kl_sum) = (to_vec(&c), 0.0);
        for i in 0..2 {
            for k in 0..3 {
                let pre =
                    |o: usize| bias[o] + (0..5).map(|j| w[o * 5 + j] * xs[i * 5 + j]).sum::<f64>();
                let (mu, logvar) = (pre(k), pre(3 + k));
                let want = mu + (logvar / 2.0).exp() * e[i * 3 + k];
                assert!(
                    (got[i * 3 + k] - want).abs() < 1e-5,
                    "({i}, {k}): {} vs {want}",
                    got[i * 3 + k]
                );
                kl_sum += 1.0 + logvar - mu * mu - logvar.exp();
            }
        }
        assert!((kl.double_value(&[]) + 0.5 * kl_sum / 6.0).abs() < 1e-5);
    }

    fn to_vec(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
    }

    #[test]
    fn dynamic_conv1d_equals_a_naive_loop() {
        tch::manual_seed(1);
        let (b, k, l, d) = (5, 3, 5, 11);
        let signal = Tensor::randn([b, d], (Kind::Float, Device::Cpu));
        let filters = Tensor::randn([b, k, l], (Kind::Float, Device::Cpu));
        let got = to_vec(&dynamic_conv1d(&signal, &filters));
        let (s, f) = (to_vec(&signal), to_vec(&filters));
        let (b, k, l, d) = (b as usize, k as usize, l as usize, d as usize);
        for bi in 0..b {
            for ki in 0..k {
                for di in 0..d {
                    let mut want = 0.0;
                    for j in 0..l {
                        let pos = di as i64 + j as i64 - (l / 2) as i64;
                        if (0..d as i64).contains(&pos) {
                            want += f[(bi * k + ki) * l + j] * s[bi * d + pos as usize];
                        }
                    }
                    let g = got[(bi * k + ki) * d + di];
                    assert!((g - want).abs() < 1e-5, "b{bi} k{ki} d{di}: {g} vs {want}");
                }
            }
        }
    }

    #[test]
    fn dynamic_conv2d_equals_a_naive_loop() {
        tch::manual_seed(2);
        let (b, h, w, kh) = (3usize, 7usize, 6usize, 3usize);
        let maps = Tensor::randn([b as i64, 1, h as i64, w as i64], (Kind::Float, Device::Cpu));
        let filt = Tensor::randn([b as i64, 1, kh as i64, kh as i64], (Kind::Float, Device::Cpu));
        let got = to_vec(&dynamic_conv2d(&maps, &filt));
        let (m, f) = (to_vec(&maps), to_vec(&filt));
        for bi in 0..b {
            for y in 0..h {
                for x in 0..w {
                    let mut want = 0.0;
                    for dy in 0..kh {
                        for dx in 0..kh {
                            let (yy, xx) = (y as i64 + dy as i64 - 1, x as i64 + dx as i64 - 1);
                            if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                                want += f[(bi * kh + dy) * kh + dx]
                                    * m[(bi * h + yy as usize) * w + xx as usize];
                            }
                        }
                    }
                    assert!((got[(bi * h + y) * w + x] - want).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn lstm_sequence_equals_its_steps_and_the_equations() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cell = LstmCell::new(vs.root() / "l", 3, 2);
        let x = Tensor::randn([2, 4, 3], (Kind::Float, Device::Cpu));
        let seq = cell.sequence(&x);
        let (mut h, mut c) = (
            Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)),
            Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)),
        );
        for t in 0..4 {
            (h, c) = cell.step(&x.select(1, t), &h, &c);
            let d = (&h - seq.select(1, t)).abs().max().double_value(&[]);
            assert!(d < 1e-6, "step {t}: {d}");
        }
        // One step by hand from zero states: c = i·g, h = o·tanh(c).
        let (wi, bi) = (to_vec(&cell.input.ws), to_vec(cell.input.bs.as_ref().unwrap()));
        let bh = to_vec(cell.hidden.bs.as_ref().unwrap());
        let xv = to_vec(&x.select(1, 0).get(0));
        let pre =
            |row: usize| bi[row] + bh[row] + (0..3).map(|j| wi[row * 3 + j] * xv[j]).sum::<f64>();
        let sig = |a: f64| 1.0 / (1.0 + (-a).exp());
        let got = to_vec(&seq.get(0).get(0));
        for (k, got) in got.iter().enumerate() {
            let c = sig(pre(k)) * pre(4 + k).tanh();
            let want = sig(pre(6 + k)) * c.tanh();
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn gru_cell_matches_its_equations() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let cell = GruCell::new(vs.root() / "g", 3, 2);
        let x = Tensor::randn([1, 3], (Kind::Float, Device::Cpu));
        let h = Tensor::randn([1, 2], (Kind::Float, Device::Cpu));
        let got = to_vec(&cell.step(&x, &h));
        let (wi, bi) = (to_vec(&cell.input.ws), to_vec(cell.input.bs.as_ref().unwrap()));
        let (wh, bh) = (to_vec(&cell.hidden.ws), to_vec(cell.hidden.bs.as_ref().unwrap()));
        let (xv, hv) = (to_vec(&x), to_vec(&h));
        let pre = |w: &[f64], b: &[f64], v: &[f64], row: usize| {
            b[row] + (0..v.len()).map(|j| w[row * v.len() + j] * v[j]).sum::<f64>()
        };
        let sig = |a: f64| 1.0 / (1.0 + (-a).exp());
        for i in 0..2 {
            let r = sig(pre(&wi, &bi, &xv, i) + pre(&wh, &bh, &hv, i));
            let z = sig(pre(&wi, &bi, &xv, 2 + i) + pre(&wh, &bh, &hv, 2 + i));
            let n = (pre(&wi, &bi, &xv, 4 + i) + r * pre(&wh, &bh, &hv, 4 + i)).tanh();
            let want = (1.0 - z) * n + z * hv[i];
            assert!((got[i] - want).abs() < 1e-6, "{} vs {want}", got[i]);
        }
    }

    #[test]
    fn skip_excitation_matches_a_loop_over_its_equations() {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut sle = SkipExcitation::new(vs.root() / "s", 2, 3);
        // Weights of order one, so that the gates spread over (0, 1).
        tch::no_grad(|| {
            sle.squeeze.ws.copy_(&Tensor::randn([3, 2, 4, 4], (Kind::Float, Device::Cpu)));
            sle.excite.ws.copy_(&Tensor::randn([3, 3, 1, 1], (Kind::Float, Device::Cpu)));
        });
        let low = Tensor::randn([1, 2, 8, 8], (Kind::Float, Device::Cpu));
        let high = Tensor::randn([1, 3, 5, 5], (Kind::Float, Device::Cpu));
        let got = to_vec(&sle.forward(&low, &high));
        let (lo, hi) = (to_vec(&low), to_vec(&high));
        let (w1, w2) = (to_vec(&sle.squeeze.ws), to_vec(&sle.excite.ws));
        // Average 2×2 blocks of the 8×8 map, then the 4×4 convolution as a sum.
        let pooled = |c: usize, i: usize, j: usize| {
            (0..4).map(|k| lo[c * 64 + (2 * i + k / 2) * 8 + 2 * j + k % 2]).sum::<f64>() / 4.0
        };
        let squeezed: Vec<f64> = (0..3)
            .map(|o| {
                let s: f64 = (0..2)
                    .flat_map(|c| (0..16).map(move |ij| (c, ij / 4, ij % 4)))
                    .map(|(c, i, j)| w1[o * 32 + c * 16 + i * 4 + j] * pooled(c, i, j))
                    .sum();
                if s > 0.0 {
                    s
                } else {
                    0.1 * s
                }
            })
            .collect();
        let mut spread = (1.0f64, 0.0f64);
        for o in 0..3 {
            let gate =
                1.0 / (1.0 + (-(0..3).map(|k| w2[o * 3 + k] * squeezed[k]).sum::<f64>()).exp());
            spread = (spread.0.min(gate), spread.1.max(gate));
            for p in 0..25 {
                let want = hi[o * 25 + p] * gate;
                assert!((got[o * 25 + p] - want).abs() < 1e-5, "{} vs {want}", got[o * 25 + p]);
            }
        }
        assert!(spread.1 - spread.0 > 0.05, "the gates hardly differ: {spread:?}");
    }
}
