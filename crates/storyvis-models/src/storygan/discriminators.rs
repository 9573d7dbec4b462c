//! StoryGAN's discriminators (Li et al., CVPR 2019, §3.3): the image discriminator D_I on {s_t, h0, x_t} with its
//! auxiliary multi-label classifier, and the story discriminator
//! D_S = σ(wᵀ(E_img(X) ⊙ E_txt(S)) + b).

use super::config::Fuse;
use storyvis_core::nn::{bn1d, bn2d, conv, leaky, linear, DownStack};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

#[derive(Debug)]
pub struct ImageDiscriminator {
    encoder: DownStack,
    fuse: Fuse,
    cond: nn::Linear,
    cond_bn: storyvis_core::nn::BatchNorm,
    joint: nn::Conv2D,
    joint_bn: storyvis_core::nn::BatchNorm,
    out: nn::Conv2D,
    classifier: nn::Conv2D,
    /// `aux_added_weight > 0`: names the object a frame adds to the one before it.
    added: Option<nn::Conv2D>,
}

impl ImageDiscriminator {
    /// `size`: the images' side (64, 128 or 256); the encoder halves it down to 4×4. `input`:
    /// the channels it reads (3; 6 for a frame and the one before it). `added`: with a head that
    /// names the added object.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        p: nn::Path,
        size: i64,
        input: i64,
        ndf: i64,
        text_dim: i64,
        story_dim: i64,
        labels: i64,
        fuse: Fuse,
        added: bool,
    ) -> ImageDiscriminator {
        let encoder = DownStack::with_input(&p / "encoder", size, ndf, input);
        let c = encoder.out_channels;
        let joint_in = match fuse {
            Fuse::Product => c,
            Fuse::Concat => 2 * c,
        };
        ImageDiscriminator {
            encoder,
            fuse,
            cond: linear(&p / "cond", text_dim + story_dim, c, false),
            cond_bn: bn1d(&p / "cond_bn", c),
            joint: conv(&p / "joint", joint_in, c, 3, 1, 1),
            joint_bn: bn2d(&p / "joint_bn", c),
            out: nn::conv2d(
                &p / "out",
                c,
                1,
                4,
                nn::ConvConfig {
                    stride: 4,
                    ws_init: storyvis_core::nn::INIT,
                    ..Default::default()
                },
            ),
            classifier: nn::conv2d(
                &p / "classifier",
                c,
                labels,
                4,
                nn::ConvConfig {
                    stride: 4,
                    ws_init: storyvis_core::nn::INIT,
                    ..Default::default()
                },
            ),
            added: added.then(|| {
                nn::conv2d(
                    &p / "added",
                    c,
                    labels,
                    4,
                    nn::ConvConfig {
                        stride: 4,
                        ws_init: storyvis_core::nn::INIT,
                        ..Default::default()
                    },
                )
            }),
        }
    }

    /// The added object's label logits [N, labels] from the features of frame pairs (None
    /// without the head).
    pub fn added(&self, feat: &Tensor) -> Option<Tensor> {
        self.added.as_ref().map(|h| h.forward(feat).view([feat.size()[0], -1]))
    }

    /// Images [N, input, S, S], sentence s_t [N, text_dim], story condition h [N, story_dim]
    /// → (logit [N], label logits [N, labels]).
    pub fn forward_t(&self, x: &Tensor, s: &Tensor, h: &Tensor, train: bool) -> (Tensor, Tensor) {
        self.judge(&self.features(x, train), s, h, train)
    }

    /// Run the image encoder's convolutions channels-last.
    pub fn set_channels_last(&mut self, on: bool) {
        self.encoder.channels_last = on;
    }

    /// The image features [N, C, 4, 4] (C = 8ndf at 64×64) that `judge` reads: computed once for images judged
    /// against several conditions (real and mismatched pairs), as the reference code does.
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        self.encoder.forward_t(x, train)
    }

    /// Image features, sentence s_t and story condition h → (logit [N], label logits [N, labels]).
    pub fn judge(&self, feat: &Tensor, s: &Tensor, h: &Tensor, train: bool) -> (Tensor, Tensor) {
        let n = feat.size()[0];
        let labels = self.classifier.forward(feat).view([n, -1]);
        // The condition [s_t ; h0], projected and tiled to 4×4.
        let c = leaky(&self.cond_bn.forward_t(&self.cond.forward(&Tensor::cat(&[s, h], 1)), train));
        let tiled = c.view([n, -1, 1, 1]).expand([n, c.size()[1], 4, 4], false);
        let joint = match self.fuse {
            Fuse::Product => {
                leaky(&self.joint_bn.forward_t(&self.joint.forward(feat), train)) * tiled
            }
            Fuse::Concat => leaky(
                &self
                    .joint_bn
                    .forward_t(&self.joint.forward(&Tensor::cat(&[feat, &tiled], 1)), train),
            ),
        };
        (self.out.forward(&joint).view([n]), labels)
    }
}

#[derive(Debug)]
pub struct StoryDiscriminator {
    encoder: DownStack,
    image_embed: nn::Linear,
    text_embed: nn::Linear,
    out: nn::Linear,
}

impl StoryDiscriminator {
    pub fn new(
        p: nn::Path,
        size: i64,
        ndf: i64,
        frames: i64,
        text_dim: i64,
        embed: i64,
    ) -> StoryDiscriminator {
        let encoder = DownStack::new(&p / "encoder", size, ndf);
        let features = frames * encoder.out_channels * 16;
        StoryDiscriminator {
            encoder,
            image_embed: linear(&p / "image_embed", features, embed, true),
            text_embed: linear(&p / "text_embed", frames * text_dim, embed, true),
            out: linear(&p / "out", embed, 1, true),
        }
    }

    /// Stories [B, T, 3, S, S] and their sentences [B, T, text_dim] → logit [B]
    /// (D_S is its sigmoid).
    pub fn forward_t(&self, x: &Tensor, s: &Tensor, train: bool) -> Tensor {
        self.judge(&self.features(x, train), s)
    }

    /// Run the image encoder's convolutions channels-last.
    pub fn set_channels_last(&mut self, on: bool) {
        self.encoder.channels_last = on;
    }

    /// Each story's frame features, concatenated [B, T·C·16]: computed once for stories
    /// judged against their own and mismatched sentences.
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        let b = x.size()[0];
        self.encoder.forward_t(&x.flatten(0, 1), train).view([b, -1])
    }

    /// Story features and sentences → logit [B].
    pub fn judge(&self, feats: &Tensor, s: &Tensor) -> Tensor {
        let b = feats.size()[0];
        let e_img = self.image_embed.forward(feats);
        let e_txt = self.text_embed.forward(&s.reshape([b, -1]));
        self.out.forward(&(e_img * e_txt)).view([b])
    }
}

/// The side of the object discriminator's crop, as a share of the frame's: 24 pixels at 64.
pub const OBJECT_CROP: f64 = 0.375;

/// The window of side `OBJECT_CROP` of the frame centred at each place [N, 2] (in [−1, 1],
/// x to the right, y downwards), resampled bilinearly to `side` × `side` pixels (zeros beyond
/// the frame's edge): [N, C, side, side]. Differentiable in the frames.
pub fn crop(frames: &Tensor, places: &Tensor, side: i64) -> Tensor {
    let n = frames.size()[0];
    let s = Tensor::full([n, 1], OBJECT_CROP, (tch::Kind::Float, frames.device()));
    let zero = Tensor::zeros([n, 1], (tch::Kind::Float, frames.device()));
    let (x, y) = (places.narrow(1, 0, 1), places.narrow(1, 1, 1));
    // Output (u, v) ∈ [−1, 1]² samples the frame at (s·u + x, s·v + y).
    let theta = Tensor::cat(&[&s, &zero, &x, &zero, &s, &y], 1).view([n, 2, 3]);
    let c = frames.size()[1];
    let grid = Tensor::affine_grid_generator(&theta, [n, c, side, side], false);
    frames.grid_sampler(&grid, 0, 0, false)
}

/// The object discriminator (`object_d_weight`; not in the paper): a small convolutional
/// network on the window around the new object's place that judges whether the object drawn
/// there is real and what it is. It reads the object's 15 labels as a projection
/// discriminator does (Miyato & Koyama, ICLR 2018: the logit is ψ(h) + ⟨embed(y), h⟩) and has
/// an auxiliary head that names them (AC-GAN), as the object discriminators of Layout2Im (Zhao
/// et al., CVPR 2019, §3.3) and LostGAN (Sun & Wu, ICCV 2019) judge each object's crop.
#[derive(Debug)]
pub struct ObjectDiscriminator {
    convs: Vec<nn::Conv2D>,
    hidden: nn::Linear,
    out: nn::Linear,
    embed: nn::Linear,
    classifier: nn::Linear,
    /// The crop's side in pixels.
    pub side: i64,
}

impl ObjectDiscriminator {
    /// `size`: the frames' side; `ndf`: the first convolution's channels; `labels`: the
    /// object's label count.
    pub fn new(p: nn::Path, size: i64, ndf: i64, labels: i64) -> ObjectDiscriminator {
        let side = (size as f64 * OBJECT_CROP).round() as i64;
        // side → side/2 → side/4 → side/8 (24 → 12 → 6 → 3 at 64×64).
        let convs = vec![
            conv(&p / "conv0", 3, ndf, 4, 2, 1),
            conv(&p / "conv1", ndf, 2 * ndf, 4, 2, 1),
            conv(&p / "conv2", 2 * ndf, 4 * ndf, 4, 2, 1),
        ];
        let flat = 4 * ndf * (side / 8) * (side / 8);
        ObjectDiscriminator {
            convs,
            hidden: linear(&p / "hidden", flat, 8 * ndf, true),
            out: linear(&p / "out", 8 * ndf, 1, true),
            embed: linear(&p / "embed", labels, 8 * ndf, false),
            classifier: linear(&p / "classifier", 8 * ndf, labels, true),
            side,
        }
    }

    /// Crops [N, 3, side, side] and the objects' labels [N, labels] → (logits [N], label
    /// logits [N, labels]).
    pub fn forward(&self, crops: &Tensor, labels: &Tensor) -> (Tensor, Tensor) {
        let mut x = crops.shallow_clone();
        for c in &self.convs {
            x = leaky(&c.forward(&x));
        }
        let h = leaky(&self.hidden.forward(&x.flatten(1, -1)));
        let projection =
            (self.embed.forward(labels) * &h).sum_dim_intlist(&[1i64][..], false, tch::Kind::Float);
        (self.out.forward(&h).squeeze_dim(1) + projection, self.classifier.forward(&h))
    }
}
