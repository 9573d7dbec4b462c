//! StoryGAN's generator (Li et al., CVPR 2019, §3.1–3.2): story encoder, context encoder (GRU + Text2Gist), image
//! generator; and the paper's baselines as variants of the same code.

use super::config::{Config, Gist, PlaceMode, Previous, TextInput, TextPool, Variant};
use storyvis_core::nn::{
    bn1d, bn2d, conv, dynamic_conv1d, dynamic_conv2d, leaky, linear, pick_frames, recurrent_linear,
    CondAug, DownStack, GruCell, UpBlock,
};
use storyvis_core::text::SentenceEncoder;
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

/// Side of the reference gist's filter and sentence map.
const REF_MAP: i64 = 15;

/// A text encoder inside the generator: the word encoder, MiniLM when it trains
/// (`text_finetune`; its variables under `minilm.`), or attention over frozen MiniLM's
/// tokens (`text_pool = "attention"`; its variables under `text_pool.`).
#[derive(Debug)]
pub enum TextNet {
    Words(SentenceEncoder),
    Minilm(storyvis_core::minilm::Bert),
    Attention(TokenAttention),
}

/// Attention pooling over a sentence's token states: K learned queries q_k, each a softmax
/// over the real tokens, a_k = softmax_t(q_k · h_t / √d), pooled p_k = Σ_t a_kt h_t; the K
/// pooled vectors, concatenated, are projected to the sentence encoding. Like the word
/// attention of AttnGAN (Xu et al., CVPR 2018, §3.1) with learned queries: the sentence
/// encoding reads the words that carry what the generator needs (the new object's words) rather
/// than the mean of all of them, which mixes the new object with the one it is placed beside.
#[derive(Debug)]
pub struct TokenAttention {
    pub queries: Tensor,
    proj: nn::Linear,
}

impl TokenAttention {
    pub fn new(p: nn::Path, heads: i64, width: i64, out: i64) -> TokenAttention {
        let queries = p.var("queries", &[heads, width], nn::Init::Randn { mean: 0.0, stdev: 0.02 });
        TokenAttention { queries, proj: linear(&p / "proj", heads * width, out, true) }
    }

    /// Token states [N, L, d] and the mask of real tokens [N, L] (bool) → attention weights
    /// [N, K, L], each row summing to 1 over the real tokens.
    pub fn weights(&self, states: &Tensor, mask: &Tensor) -> Tensor {
        let d = states.size()[2] as f64;
        let scores = states.matmul(&self.queries.tr()).transpose(1, 2) / d.sqrt(); // [N, K, L]
        scores
            .masked_fill(&mask.logical_not().unsqueeze(1), f64::NEG_INFINITY)
            .softmax(-1, Kind::Float)
    }

    /// Token states [N, L, d] and mask [N, L] → sentence encodings [N, out].
    pub fn forward(&self, states: &Tensor, mask: &Tensor) -> Tensor {
        let pooled = self.weights(states, mask).matmul(states); // [N, K, d]
        self.proj.forward(&pooled.flatten(1, -1))
    }
}

/// What a story's text is, batched.
pub enum TextBatch {
    /// Word ids [B, T, L] (sentence mode), or MiniLM's token ids (when the generator runs it).
    Ids(Tensor),
    /// Attribute vectors [B, T, V] (vector mode).
    Vectors(Tensor),
}

impl TextBatch {
    /// The same tensors (shallow clones).
    pub fn shallow(&self) -> TextBatch {
        match self {
            TextBatch::Ids(t) => TextBatch::Ids(t.shallow_clone()),
            TextBatch::Vectors(t) => TextBatch::Vectors(t.shallow_clone()),
        }
    }
}

/// Text2Gist (Li et al., CVPR 2019, §3.2):
///   z_t = σ(W_z i_t + U_z h_{t−1} + b_z)
///   r_t = σ(W_r i_t + U_r h_{t−1} + b_r)
///   h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ tanh(W_h i_t + U_h (r_t ⊙ h_{t−1}) + b_h)
#[derive(Debug)]
pub struct Text2Gist {
    pub w_z: nn::Linear,
    pub w_r: nn::Linear,
    pub w_h: nn::Linear,
    pub u_z: nn::Linear,
    pub u_r: nn::Linear,
    pub u_h: nn::Linear,
}

impl Text2Gist {
    pub fn new(p: nn::Path, input: i64, state: i64) -> Text2Gist {
        Text2Gist {
            w_z: recurrent_linear(&p / "w_z", input, state, true),
            w_r: recurrent_linear(&p / "w_r", input, state, true),
            w_h: recurrent_linear(&p / "w_h", input, state, true),
            u_z: recurrent_linear(&p / "u_z", state, state, false),
            u_r: recurrent_linear(&p / "u_r", state, state, false),
            u_h: recurrent_linear(&p / "u_h", state, state, false),
        }
    }

    /// i [B, input], h [B, state] → h_t [B, state].
    pub fn step(&self, i: &Tensor, h: &Tensor) -> Tensor {
        let z = (self.w_z.forward(i) + self.u_z.forward(h)).sigmoid();
        let r = (self.w_r.forward(i) + self.u_r.forward(h)).sigmoid();
        let candidate = (self.w_h.forward(i) + self.u_h.forward(&(&r * h))).tanh();
        (1.0 - &z) * h + z * candidate
    }
}

/// Filter(x): linear, batch-norm, tanh, reshaped to K one-dimensional filters of length L.
#[derive(Debug)]
struct FilterNet {
    fc: nn::Linear,
    bn: storyvis_core::nn::BatchNorm,
    k: i64,
    l: i64,
}

impl FilterNet {
    fn new(p: nn::Path, input: i64, k: i64, l: i64) -> FilterNet {
        FilterNet { fc: linear(&p / "fc", input, k * l, false), bn: bn1d(&p / "bn", k * l), k, l }
    }
    /// [B, input] → [B, K, L]
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.fc.forward(x), train).tanh().view([-1, self.k, self.l])
    }
}

/// The reference code's gist: a 15×15 filter from h_t over a 15×15 map of s_t, downsampled
/// to a [C, 4, 4] feature map.
#[derive(Debug)]
struct ReferenceGist {
    filter: nn::Linear,
    filter_bn: storyvis_core::nn::BatchNorm,
    map: nn::Linear,
    map_bn: storyvis_core::nn::BatchNorm,
    down1: nn::Conv2D,
    down1_bn: storyvis_core::nn::BatchNorm,
    down2: nn::Conv2D,
    down2_bn: storyvis_core::nn::BatchNorm,
}

impl ReferenceGist {
    fn new(p: nn::Path, text_dim: i64, story_dim: i64, channels: i64) -> ReferenceGist {
        let n = REF_MAP * REF_MAP;
        ReferenceGist {
            filter: linear(&p / "filter", story_dim, n, false),
            filter_bn: bn1d(&p / "filter_bn", n),
            map: linear(&p / "map", text_dim, n, false),
            map_bn: bn1d(&p / "map_bn", n),
            down1: conv(&p / "down1", 1, channels, 3, 2, 1), // 15 → 8
            down1_bn: bn2d(&p / "down1_bn", channels),
            down2: conv(&p / "down2", channels, channels, 4, 2, 1), // 8 → 4
            down2_bn: bn2d(&p / "down2_bn", channels),
        }
    }
    /// s [B, text_dim], h [B, story_dim] → [B, C, 4, 4]
    fn forward_t(&self, s: &Tensor, h: &Tensor, train: bool) -> Tensor {
        let filt = self
            .filter_bn
            .forward_t(&self.filter.forward(h), train)
            .view([-1, 1, REF_MAP, REF_MAP]);
        let map =
            self.map_bn.forward_t(&self.map.forward(s), train).view([-1, 1, REF_MAP, REF_MAP]);
        let x = dynamic_conv2d(&map, &filt);
        let x = self.down1_bn.forward_t(&self.down1.forward(&x), train);
        let x = leaky(&x);
        leaky(&self.down2_bn.forward_t(&self.down2.forward(&x), train))
    }
}

/// The encoder of the previous frame (`previous = "generated"`): a `DownStack` from S×S down to
/// 4×4 whose map at each resolution is as wide as the generator there and joins its up-path at
/// that resolution, as a U-Net's skip connections do (Ronneberger et al. 2015; pix2pix, Isola
/// et al. 2017), so that what is already drawn can pass through unchanged. `widths`: the
/// generator's channels at 4×4, 8×8, …, S×S. No batch norm: the first frame of every story is
/// drawn from the same blank canvas.
fn previous_encoder(p: nn::Path, widths: &[i64]) -> DownStack {
    // Halving k ends at S / 2^(k+1), where the generator has widths[blocks − 1 − k].
    let outs: Vec<i64> = widths[..widths.len() - 1].iter().rev().copied().collect();
    DownStack::unnormalised(p, 3, &outs)
}

/// Width of the place head's attention keys.
const PLACE_KEY: i64 = 32;
/// Width of the place head's hidden layers.
const PLACE_HIDDEN: i64 = 64;
/// The spread of an earlier object's mark on the grid head's occupancy feature (half widths).
const OCCUPIED_SIGMA: f64 = 0.1;

/// The place head (`layout`): where the object a frame's sentence adds stands, in the frame's
/// coordinates ([−1, 1]², x to the right, y downwards), from the sentence and the places of
/// the objects before it. Attention over the earlier sentences (and a learned slot for the
/// scene itself, which a first frame's "in the middle of the scene" names) picks the object the
/// relation is stated to:
///   α_t = softmax_j(q(s_t) · k(s_j) / √d), j ∈ {scene} ∪ {j < t},   a_t = Σ_j α_tj p_j
/// (an inferred layout, Hong et al., CVPR 2018, §3.1, here one object per frame). Then
/// (`layout_place`):
/// - `mean`: the place itself, p̂_t = a_t + f([s_t ; a_t]), learnt by squared distance: the
///   mean of where such an object stands, so every "left of" the same object lands on one spot;
/// - `grid`: a distribution over the cells of a `layout_grid`² grid, each cell's logit a
///   network of the sentence and of the cell's place, its place relative to a_t and how near
///   it is to the earlier objects (a sum of their Gaussian marks), learnt by cross-entropy on
///   the true place's cell; a place is drawn from it (at `layout_temperature`), so objects
///   spread over where the sentence allows and keep off the ones already there.
#[derive(Debug)]
pub struct Placer {
    query: nn::Linear,
    key: nn::Linear,
    scene_key: Tensor,
    scene_place: Tensor,
    head: PlaceHead,
}

#[derive(Debug)]
enum PlaceHead {
    Mean {
        hidden: nn::Linear,
        offset: nn::Linear,
    },
    Grid {
        side: i64,
        temperature: f64,
        text: nn::Linear,
        cell: nn::Linear,
        hidden: nn::Linear,
        logit: nn::Linear,
    },
}

impl Placer {
    fn new(p: nn::Path, text_dim: i64, cfg: &Config) -> Placer {
        let head = match cfg.layout_place {
            PlaceMode::Mean => PlaceHead::Mean {
                hidden: linear(&p / "hidden", text_dim + 2, 128, true),
                offset: linear(&p / "offset", 128, 2, true),
            },
            PlaceMode::Grid => PlaceHead::Grid {
                side: cfg.layout_grid,
                temperature: cfg.layout_temperature,
                text: linear(&p / "text", text_dim, PLACE_HIDDEN, true),
                cell: linear(&p / "cell", 5, PLACE_HIDDEN, false),
                hidden: linear(&p / "hidden", PLACE_HIDDEN, PLACE_HIDDEN, true),
                logit: linear(&p / "logit", PLACE_HIDDEN, 1, true),
            },
        };
        Placer {
            query: linear(&p / "query", text_dim, PLACE_KEY, true),
            key: linear(&p / "key", text_dim, PLACE_KEY, true),
            scene_key: p.var("scene_key", &[PLACE_KEY], nn::Init::Randn { mean: 0.0, stdev: 0.1 }),
            scene_place: p.var("scene_place", &[2], nn::Init::Const(0.0)),
            head,
        }
    }

    /// Sentences s [B, T, D] and places [B, T, 2] → the place each frame's object is related
    /// to, a_t [B, T, 2], from the places of frames before t only.
    fn anchors(&self, s: &Tensor, places: &Tensor) -> Tensor {
        let (b, t) = (s.size()[0], s.size()[1]);
        let q = self.query.forward(s); // [B, T, K]
        let k = self.key.forward(s);
        let scale = (PLACE_KEY as f64).sqrt();
        let earlier = q.matmul(&k.transpose(1, 2)) / scale; // [B, T, T]
        let scene = q.matmul(&self.scene_key.view([PLACE_KEY, 1])) / scale; // [B, T, 1]
                                                                            // Frame t sees frames j < t: the upper triangle and the diagonal are masked.
        let later = Tensor::ones([t, t], (Kind::Bool, s.device())).triu(0);
        let scores = Tensor::cat(&[scene, earlier.masked_fill(&later, f64::NEG_INFINITY)], 2);
        let alpha = scores.softmax(-1, Kind::Float); // [B, T, 1 + T]
        let scene_place = self.scene_place.view([1, 1, 2]).expand([b, 1, 2], false);
        alpha.matmul(&Tensor::cat(&[scene_place, places.shallow_clone()], 1))
    }

    /// The grid's cell centres [G², 2] (row-major, x to the right, y downwards).
    fn cells(side: i64, device: tch::Device) -> Tensor {
        coordinate_grid(side, device).flatten(1, 2).transpose(0, 1)
    }

    /// `grid`: each frame's logits over the cells [B, T, G²], frame t's from the places of
    /// frames before t only.
    fn grid_logits(&self, s: &Tensor, places: &Tensor) -> Tensor {
        let PlaceHead::Grid { side, text, cell, hidden, logit, .. } = &self.head else {
            panic!("grid logits of a mean place head")
        };
        let t = s.size()[1];
        let cells = Self::cells(*side, s.device()); // [C, 2]
        let anchor = self.anchors(s, places); // [B, T, 2]
        let relative = cells.view([1, 1, -1, 2]) - anchor.unsqueeze(2); // [B, T, C, 2]
                                                                        // How near each cell is to the objects of frames before t.
        let d2 = (cells.view([1, 1, -1, 2]) - places.unsqueeze(2)).square().sum_dim_intlist(
            &[-1i64][..],
            false,
            Kind::Float,
        ); // [B, T(j), C]
        let marks = (d2 / (-2.0 * OCCUPIED_SIGMA * OCCUPIED_SIGMA)).exp();
        let before = Tensor::ones([t, t], (Kind::Float, s.device())).tril(-1); // [t, j]: j < t
        let occupied = before.matmul(&marks); // [B, T, C]
        let features = Tensor::cat(
            &[cells.view([1, 1, -1, 2]).expand_as(&relative), relative, occupied.unsqueeze(-1)],
            -1,
        );
        let h = (cell.forward(&features) + text.forward(s).unsqueeze(2)).relu();
        logit.forward(&hidden.forward(&h).relu()).squeeze_dim(-1)
    }

    /// The place head's loss on the true places [B, T, 2] (teacher forcing): the mean squared
    /// distance (`mean`), or the cross-entropy of each true place's cell (`grid`).
    pub fn loss(&self, s: &Tensor, places: &Tensor) -> Tensor {
        match &self.head {
            PlaceHead::Mean { .. } => (self.mean_places(s, places) - places)
                .square()
                .sum_dim_intlist(&[-1i64][..], false, Kind::Float)
                .mean(Kind::Float),
            PlaceHead::Grid { side, .. } => {
                let logits = self.grid_logits(s, places);
                let target = cell_of(places, *side);
                logits.flatten(0, 1).cross_entropy_for_logits(&target.flatten(0, 1))
            }
        }
    }

    /// What the head says of each frame given the places [B, T, 2]: the mean places [B, T, 2]
    /// or the grid's logits [B, T, G²]; frame t's from the places of frames before t only.
    pub fn outputs(&self, s: &Tensor, places: &Tensor) -> Tensor {
        match &self.head {
            PlaceHead::Mean { .. } => self.mean_places(s, places),
            PlaceHead::Grid { .. } => self.grid_logits(s, places),
        }
    }

    /// `mean`: p̂_t [B, T, 2].
    fn mean_places(&self, s: &Tensor, places: &Tensor) -> Tensor {
        let PlaceHead::Mean { hidden, offset } = &self.head else {
            panic!("mean places of a grid place head")
        };
        let anchor = self.anchors(s, places);
        let h = hidden.forward(&Tensor::cat(&[s, &anchor], 2)).relu();
        anchor + offset.forward(&h)
    }

    /// Frame k's place, given the places of the frames before it in `places` [B, T, 2]: the
    /// mean, or a cell drawn from the grid's distribution (libtorch's generator; the most
    /// likely cell at temperature 0).
    pub fn place(&self, s: &Tensor, places: &Tensor, k: i64) -> Tensor {
        match &self.head {
            PlaceHead::Mean { .. } => self.mean_places(s, places).select(1, k).clamp(-1.0, 1.0),
            PlaceHead::Grid { side, temperature, .. } => {
                let logits = self.grid_logits(s, places).select(1, k); // [B, C]
                let cell = if *temperature == 0.0 {
                    logits.argmax(-1, false)
                } else {
                    (logits / *temperature)
                        .softmax(-1, Kind::Float)
                        .multinomial(1, false)
                        .squeeze_dim(-1)
                };
                Self::cells(*side, s.device()).index_select(0, &cell)
            }
        }
    }

    /// Places predicted one frame after the other from the places predicted before them (how a
    /// user's story is drawn): [B, T, 2].
    pub fn predict(&self, s: &Tensor) -> Tensor {
        let t = s.size()[1];
        let mut places = Tensor::zeros([s.size()[0], t, 2], (Kind::Float, s.device()));
        for k in 0..t {
            let p = self.place(s, &places, k);
            let at = Tensor::from_slice(&[k]).to_device(s.device());
            places = places.index_copy(1, &at, &p.unsqueeze(1));
        }
        places
    }
}

/// The index of the cell of a side × side grid over [−1, 1]² that holds each place [..., 2]
/// (row-major; places outside are taken to the nearest cell): [...] i64.
pub fn cell_of(places: &Tensor, side: i64) -> Tensor {
    let ij = ((places + 1.0) * (side as f64 / 2.0))
        .floor()
        .clamp(0.0, (side - 1) as f64)
        .to_kind(Kind::Int64);
    ij.select(-1, 1) * side + ij.select(-1, 0)
}

/// The x and y of the centres of an r × r grid's cells, in [−1, 1]: [2, r, r].
pub fn coordinate_grid(r: i64, device: tch::Device) -> Tensor {
    let g = (Tensor::arange(r, (Kind::Float, device)) + 0.5) * (2.0 / r as f64) - 1.0;
    let x = g.view([1, r]).expand([r, r], false);
    let y = g.view([r, 1]).expand([r, r], false);
    Tensor::stack(&[x, y], 0)
}

/// A Gaussian mark of spread `sigma` at each place [N, 2] on an r × r grid: [N, 1, r, r].
pub fn place_mark(places: &Tensor, r: i64, sigma: f64) -> Tensor {
    let grid = coordinate_grid(r, places.device()).unsqueeze(0); // [1, 2, r, r]
    let d2 = (grid - places.view([-1, 2, 1, 1])).square().sum_dim_intlist(
        &[1i64][..],
        true,
        Kind::Float,
    );
    (d2 / (-2.0 * sigma * sigma)).exp()
}

/// The place map: the mark, and the mark times each channel of the object's code
/// [N, C]: [N, C + 1, r, r].
pub fn place_map(places: &Tensor, code: &Tensor, r: i64, sigma: f64) -> Tensor {
    let mark = place_mark(places, r, sigma);
    Tensor::cat(&[&mark * code.view([code.size()[0], -1, 1, 1]), mark], 1)
}

/// The per-frame inputs of the image generator, and what the discriminators and losses need.
pub struct Context {
    /// Decoder vector input per frame [B, T, F].
    pub vec: Tensor,
    /// Reference gist feature maps [B, T, C, 4, 4].
    pub map: Option<Tensor>,
    /// The story condition the image discriminator sees per frame (h0, or CA(s_t) for
    /// ImageGAN) [B, T, story_dim].
    pub cond: Tensor,
    /// The KL term of the conditioning augmentation.
    pub kl: Tensor,
    /// `layout`: each frame's object code [B, T, C] and the place it is drawn at [B, T, 2]
    /// (the caller's: the true places in training, `Placer::predict`'s for a user).
    pub code: Option<Tensor>,
    pub places: Option<Tensor>,
}

#[derive(Debug)]
pub struct Generator {
    variant: Variant,
    noise_dim: i64,
    context_dim: i64,
    story_dim: i64,
    pub text_dim: i64,
    /// The text encoder that trains with the generator (none for vectors and MiniLM's frozen
    /// sentence embeddings).
    sentence: Option<TextNet>,
    /// `text_pool = "attention"`: frozen MiniLM, whose token states the attention reads. Its
    /// weights stay in the cache (`minilm::default_dir`), not in checkpoints: `attach_minilm`
    /// loads them.
    frozen_minilm: Option<Box<storyvis_core::minilm::MiniLm>>,
    /// Sentence mode: predicts a frame's labels from its sentence encoding.
    pub text_labels: Option<nn::Linear>,
    /// Story encoder: [s_1 … s_T] → (μ, log σ²); ImageGAN: s_t → (μ_t, log σ_t²).
    encoder: CondAug,
    gru: Option<GruCell>,
    text2gist: Option<Text2Gist>,
    filter: Option<FilterNet>,
    reference: Option<ReferenceGist>,
    fc: nn::Linear,
    fc_bn: storyvis_core::nn::BatchNorm,
    fc_channels: i64,
    ups: Vec<UpBlock>,
    /// `previous = "generated"` or `"masked"`: the previous frame's encoder.
    previous: Option<DownStack>,
    /// `previous = "masked"`: the frame is a mask's blend of the drawing and the previous frame.
    masked: bool,
    /// The images' side: 4 doubled once per up-block.
    pub size: i64,
    to_rgb: nn::Conv2D,
    /// `coords`: every up-block also reads its pixels' coordinates.
    coords: bool,
    /// `layout`: the place head, the sentence's object code and the mark's spread.
    pub placer: Option<Placer>,
    code: Option<nn::Linear>,
    sigma: f64,
    /// Run the up-blocks in the channels-last memory format (`StoryGan::set_channels_last`).
    pub channels_last: bool,
    /// Draws to use instead of fresh Gaussian noise, in the order the forward pass makes them
    /// (`feed_noise`): how a test replays another implementation's noise.
    #[cfg(feature = "testing")]
    fed_noise: std::cell::RefCell<std::collections::VecDeque<Tensor>>,
}

impl Generator {
    /// `vocab`: vocabulary size (sentence mode); `vector_len`: attribute vector length
    /// (vector mode); `labels`: label count for the text head.
    pub fn new(p: nn::Path, cfg: &Config, vocab: i64, vector_len: i64, labels: i64) -> Generator {
        let (sentence, text_dim) = match cfg.text {
            TextInput::Sentence => (
                Some(TextNet::Words(SentenceEncoder::new(
                    &p / "sentence",
                    vocab,
                    cfg.word_dim,
                    cfg.sentence_dim,
                ))),
                cfg.sentence_dim,
            ),
            TextInput::Vector => (None, vector_len),
            TextInput::Minilm if cfg.text_finetune => (
                Some(TextNet::Minilm(storyvis_core::minilm::Bert::new(
                    &p / "minilm",
                    &storyvis_core::minilm::BertConfig::all_minilm_l6_v2(),
                ))),
                storyvis_core::minilm::DIM,
            ),
            TextInput::Minilm if cfg.text_pool == TextPool::Attention => (
                Some(TextNet::Attention(TokenAttention::new(
                    &p / "text_pool",
                    cfg.text_heads,
                    storyvis_core::minilm::DIM,
                    cfg.sentence_dim,
                ))),
                cfg.sentence_dim,
            ),
            TextInput::Minilm => (None, storyvis_core::minilm::DIM),
        };
        let text_labels = (cfg.trains_text() && cfg.text_aux_weight > 0.0)
            .then(|| linear(&p / "text_labels", text_dim, labels, true));
        let (t, nz, ci, cs) = (cfg.frames as i64, cfg.noise_dim, cfg.context_dim, cfg.story_dim);
        let (k, l) = (cfg.gist_filters, cfg.gist_filter_len);
        let v = cfg.variant;
        let encoder = match v {
            Variant::Imagegan => CondAug::new(&p / "encoder", text_dim, cs),
            _ => CondAug::new(&p / "encoder", t * text_dim, cs),
        };
        let gru = (v != Variant::Imagegan).then(|| GruCell::new(&p / "gru", text_dim + nz, ci));
        let text2gist = (v == Variant::Storygan).then(|| Text2Gist::new(&p / "text2gist", ci, cs));
        let reference_gist = v == Variant::Storygan && cfg.gist == Gist::Reference;
        let map_channels = if reference_gist { cfg.ngf / 2 } else { 0 };
        let filter = match v {
            Variant::Storygan if !reference_gist => Some(FilterNet::new(&p / "filter", ci, k, l)),
            Variant::Svfn => Some(FilterNet::new(&p / "filter", text_dim, k, l)),
            _ => None,
        };
        let reference = reference_gist
            .then(|| ReferenceGist::new(&p / "reference_gist", text_dim, cs, map_channels));
        let fc_in = match v {
            Variant::Storygan if reference_gist => ci + cs,
            Variant::Storygan | Variant::Svfn => k * cs + ci + cs,
            Variant::Svc => ci + text_dim + cs,
            Variant::Imagegan => text_dim + cs + nz,
        };
        let fc_channels = cfg.ngf - map_channels;
        let widths = cfg.generator_widths();
        let with_previous = cfg.previous.seen();
        let masked = cfg.previous == Previous::Masked;
        // With the previous frame, each up-block also reads its encoder's map at its input's
        // resolution (as wide as the block's input), and the last convolution the frame itself.
        let skip = |w: i64| if with_previous { w } else { 0 };
        // `coords` and `layout` add their maps to every up-block's input.
        let extra = 2 * cfg.coords as i64 + if cfg.layout { cfg.layout_channels + 1 } else { 0 };
        let ups = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| UpBlock::new(&p / format!("up{i}"), w[0] + skip(w[0]) + extra, w[1]))
            .collect();
        let previous = with_previous.then(|| previous_encoder(&p / "previous", &widths));
        let rgb_in = widths[widths.len() - 1] + if with_previous { 3 } else { 0 };
        Generator {
            variant: v,
            noise_dim: nz,
            context_dim: ci,
            story_dim: cs,
            text_dim,
            sentence,
            frozen_minilm: None,
            text_labels,
            encoder,
            gru,
            text2gist,
            filter,
            reference,
            fc: linear(&p / "fc", fc_in, fc_channels * 16, false),
            fc_bn: bn1d(&p / "fc_bn", fc_channels * 16),
            fc_channels,
            ups,
            previous,
            masked,
            // With `masked`, a 4th output channel: the mask's logit.
            to_rgb: conv(&p / "to_rgb", rgb_in, 3 + masked as i64, 3, 1, 1),
            coords: cfg.coords,
            placer: cfg.layout.then(|| Placer::new(&p / "placer", text_dim, cfg)),
            code: cfg.layout.then(|| linear(&p / "code", text_dim, cfg.layout_channels, true)),
            sigma: cfg.layout_sigma,
            size: cfg.image_size,
            channels_last: false,
            #[cfg(feature = "testing")]
            fed_noise: Default::default(),
        }
    }

    /// Loads frozen MiniLM from the cache when this generator attends over its tokens
    /// (`text_pool = "attention"`); nothing otherwise. A missing or damaged file is an error
    /// naming it.
    pub fn attach_minilm(&mut self) -> anyhow::Result<()> {
        if matches!(self.sentence, Some(TextNet::Attention(_))) && self.frozen_minilm.is_none() {
            let device = self.fc.ws.device();
            self.frozen_minilm =
                Some(Box::new(storyvis_core::minilm::MiniLm::load_default(device)?));
        }
        Ok(())
    }

    /// The story's text as s_t vectors [B, T, text_dim].
    pub fn encode_text(&self, text: &TextBatch) -> Tensor {
        match (text, &self.sentence) {
            (TextBatch::Ids(ids), Some(net)) => {
                let s = ids.size();
                let flat = ids.view([s[0] * s[1], s[2]]);
                let e = match net {
                    TextNet::Words(enc) => enc.forward(&flat),
                    TextNet::Minilm(bert) => bert.encode(&flat),
                    TextNet::Attention(pool) => {
                        let lm = self
                            .frozen_minilm
                            .as_ref()
                            .expect("frozen MiniLM not loaded (Generator::attach_minilm)");
                        let (states, mask) = tch::no_grad(|| lm.states(&flat));
                        pool.forward(&states, &mask)
                    }
                };
                e.view([s[0], s[1], -1])
            }
            (TextBatch::Vectors(v), None) => v.shallow_clone(),
            _ => panic!("text input does not match the model's text mode"),
        }
    }

    /// Queues tensors to stand in for the next Gaussian draws, in order: per context pass the
    /// conditioning-augmentation ε [B, story_dim], then g_0 [B, context_dim], then ε_t
    /// [B, noise_dim] for each frame (ImageGAN: ε [B, T, story_dim], then z [B, T, noise_dim]).
    #[cfg(feature = "testing")]
    pub fn feed_noise(&self, noise: impl IntoIterator<Item = Tensor>) {
        self.fed_noise.borrow_mut().extend(noise);
    }

    /// N(0, I) of `size`: the next fed tensor if any (its shape must match), else a fresh draw.
    fn randn(&self, size: &[i64], device: tch::Device) -> Tensor {
        #[cfg(feature = "testing")]
        if let Some(t) = self.fed_noise.borrow_mut().pop_front() {
            assert_eq!(t.size(), size, "fed noise in the wrong order or shape");
            return t.to_device(device);
        }
        Tensor::randn(size, (Kind::Float, device))
    }

    /// Conditioning augmentation: (μ, log σ²) from x, a sample μ + σ ⊙ ε, and KL.
    fn augment(&self, x: &Tensor) -> (Tensor, Tensor) {
        self.encoder.sample(x, |size| self.randn(size, x.device()))
    }

    /// The context encoder over a story's sentence vectors s [B, T, text_dim].
    pub fn context(&self, s: &Tensor, train: bool) -> Context {
        let (b, t) = (s.size()[0], s.size()[1]);
        if self.variant == Variant::Imagegan {
            let (c, kl) = self.augment(s); // [B, T, story_dim]
            let z = self.randn(&[b, t, self.noise_dim], s.device());
            let vec = Tensor::cat(&[s.shallow_clone(), c.shallow_clone(), z], -1);
            let code = self.code.as_ref().map(|l| l.forward(s));
            return Context { vec, map: None, cond: c, kl, code, places: None };
        }
        let (h0, kl) = self.augment(&s.reshape([b, -1]));
        let gru = self.gru.as_ref().expect("gru");
        let mut g = self.randn(&[b, self.context_dim], s.device()); // g_0 ~ N(0, I)
        let mut h = h0.shallow_clone();
        let (mut vecs, mut maps) = (Vec::new(), Vec::new());
        for step in 0..t {
            let s_t = s.select(1, step);
            let eps = self.randn(&[b, self.noise_dim], s.device()); // fresh ε_t every step
            g = gru.step(&Tensor::cat(&[&s_t, &eps], 1), &g);
            let i_t = &g;
            let v = match self.variant {
                Variant::Storygan => {
                    h = self.text2gist.as_ref().expect("text2gist").step(i_t, &h);
                    match (&self.filter, &self.reference) {
                        (Some(f), _) => {
                            let o_t = dynamic_conv1d(&h, &f.forward_t(i_t, train)).view([b, -1]); // Filter(i_t) * h_t
                            Tensor::cat(&[&o_t, i_t, &h0], 1)
                        }
                        (None, Some(r)) => {
                            maps.push(r.forward_t(&s_t, &h, train));
                            Tensor::cat(&[i_t, &h0], 1)
                        }
                        _ => unreachable!("a StoryGAN has one gist"),
                    }
                }
                Variant::Svc => Tensor::cat(&[i_t, &s_t, &h0], 1),
                Variant::Svfn => {
                    let f = self.filter.as_ref().expect("filter");
                    let o_t = dynamic_conv1d(&h0, &f.forward_t(&s_t, train)).view([b, -1]); // Filter(s_t) * h0
                    Tensor::cat(&[&o_t, i_t, &h0], 1)
                }
                Variant::Imagegan => unreachable!(),
            };
            vecs.push(v);
        }
        let cond = h0.unsqueeze(1).expand([b, t, self.story_dim], false);
        let map = (!maps.is_empty()).then(|| Tensor::stack(&maps, 1));
        let code = self.code.as_ref().map(|l| l.forward(s));
        Context { vec: Tensor::stack(&vecs, 1), map, cond, kl, code, places: None }
    }

    /// Whether frames are drawn from the frame before them (`previous = "generated"` or
    /// `"masked"`).
    pub fn sees_previous(&self) -> bool {
        self.previous.is_some()
    }

    /// The image generator: vec [N, F] (+ map [N, C, 4, 4]) (+ the previous frames
    /// [N, 3, S, S] when it `sees_previous`) (+ with `layout`, the object's place and code
    /// [N, 2 + C]) → images [N, 3, S, S] in [−1, 1].
    pub fn decode(
        &self,
        vec: &Tensor,
        map: Option<&Tensor>,
        prev: Option<&Tensor>,
        place: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        assert_eq!(
            place.is_some(),
            self.placer.is_some(),
            "a place is given exactly when the generator has a place head"
        );
        let x = self.fc_bn.forward_t(&self.fc.forward(vec), train).relu().view([
            -1,
            self.fc_channels,
            4,
            4,
        ]);
        let mut x = match map {
            Some(m) => Tensor::cat(&[&x, m], 1),
            None => x,
        };
        let layout = |t: Tensor| {
            if self.channels_last {
                storyvis_core::precision::channels_last(&t)
            } else {
                t
            }
        };
        x = layout(x);
        let skips = match (&self.previous, prev) {
            (Some(enc), Some(p)) => {
                let p = layout(p.shallow_clone());
                Some((enc.maps(&p, train), p))
            }
            (None, None) => None,
            _ => panic!("the previous frame is given exactly when the generator sees it"),
        };
        let blocks = self.ups.len();
        for (i, up) in self.ups.iter().enumerate() {
            if let Some((maps, _)) = &skips {
                x = Tensor::cat(&[&x, &maps[blocks - 1 - i]], 1);
            }
            let r = x.size()[2];
            if let Some(pc) = place {
                let (at, code) = (pc.narrow(1, 0, 2), pc.narrow(1, 2, pc.size()[1] - 2));
                x = Tensor::cat(&[&x, &layout(place_map(&at, &code, r, self.sigma))], 1);
            }
            if self.coords {
                let n = x.size()[0];
                let grid = coordinate_grid(r, x.device()).unsqueeze(0).expand([n, 2, r, r], false);
                x = Tensor::cat(&[&x, &layout(grid.contiguous())], 1);
            }
            x = up.forward_t(&x, train);
        }
        if let Some((_, p)) = &skips {
            x = Tensor::cat(&[&x, p], 1);
        }
        let out = self.to_rgb.forward(&x);
        let image = match &skips {
            // VGAN's composition (Vondrick et al. 2016, eq. 2): m ⊙ f + (1 − m) ⊙ b, b the
            // previous frame.
            Some((_, p)) if self.masked => {
                let m = out.narrow(1, 3, 1).sigmoid();
                &m * out.narrow(1, 0, 3).tanh() + (1.0 - &m) * p
            }
            _ => out.tanh(),
        };
        // Images leave in the standard layout, whatever the blocks ran in.
        image.contiguous()
    }

    /// The canvas before a story's first frame: blank (zeros, mid-grey in [−1, 1]) [N, 3, S, S].
    pub fn blank(&self, n: i64, device: tch::Device) -> Tensor {
        Tensor::zeros([n, 3, self.size, self.size], (Kind::Float, device))
    }

    /// All T frames of each story: [B, T, 3, S, S]. A generator that sees the previous frame
    /// draws them in order, each from the one it drew before (gradients flow along the chain).
    pub fn decode_story(&self, ctx: &Context, train: bool) -> Tensor {
        let (b, t) = (ctx.vec.size()[0], ctx.vec.size()[1]);
        if self.sees_previous() {
            let mut prev = self.blank(b, ctx.vec.device());
            let mut frames = Vec::with_capacity(t as usize);
            let place = self.places_of(ctx);
            for k in 0..t {
                let map = ctx.map.as_ref().map(|m| m.select(1, k));
                let pk = place.as_ref().map(|p| p.select(1, k));
                prev = self.decode(
                    &ctx.vec.select(1, k),
                    map.as_ref(),
                    Some(&prev),
                    pk.as_ref(),
                    train,
                );
                frames.push(prev.shallow_clone());
            }
            return Tensor::stack(&frames, 1);
        }
        let map = ctx.map.as_ref().map(|m| m.flatten(0, 1));
        let place = self.places_of(ctx).map(|p| p.flatten(0, 1));
        self.decode(&ctx.vec.flatten(0, 1), map.as_ref(), None, place.as_ref(), train)
            .view([b, t, 3, self.size, self.size])
    }

    /// One chosen frame per story: frames [B] (i64) → [B, 3, S, S]; `prev` [B, 3, S, S]: the
    /// frames before them, given exactly when the generator `sees_previous`.
    pub fn decode_frames(
        &self,
        ctx: &Context,
        frames: &Tensor,
        prev: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let map = ctx.map.as_ref().map(|m| pick_frames(m, frames));
        let place = self.places_of(ctx).map(|p| pick_frames(&p, frames));
        self.decode(&pick_frames(&ctx.vec, frames), map.as_ref(), prev, place.as_ref(), train)
    }

    /// The context a user's story is drawn from: with `layout`, at the places the place head
    /// predicts, one frame after the other.
    pub fn drawing_context(&self, s: &Tensor, train: bool) -> Context {
        let mut ctx = self.context(s, train);
        ctx.places = self.placer.as_ref().map(|p| p.predict(s));
        ctx
    }

    /// With `layout`: each frame's place and object code, [B, T, 2 + C].
    fn places_of(&self, ctx: &Context) -> Option<Tensor> {
        self.placer.as_ref()?;
        let places = ctx.places.as_ref().expect("a layout model draws at given places");
        let code = ctx.code.as_ref().expect("a layout model's context has object codes");
        Some(Tensor::cat(&[places, code], 2))
    }

    /// The spread of the place map's mark (`layout_sigma`).
    pub fn mark_sigma(&self) -> f64 {
        self.sigma
    }

    /// Draws whole stories as a user sees them: eval mode (batch-norm running statistics), no
    /// gradients. [B, T, 3, S, S]
    pub fn draw(&self, text: &TextBatch) -> Tensor {
        tch::no_grad(|| {
            let ctx = self.drawing_context(&self.encode_text(text), false);
            self.decode_story(&ctx, false)
        })
    }

    #[cfg(test)]
    pub fn text2gist(&self) -> &Text2Gist {
        self.text2gist.as_ref().expect("StoryGAN variant")
    }
}
