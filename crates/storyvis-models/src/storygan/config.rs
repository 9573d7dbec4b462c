//! StoryGAN's [model] section: the networks of the paper's Table 1 variants, the objective and
//! the batches and rates of its training (Li et al., CVPR 2019, §3 and §4).

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use storyvis_core::config::{check_adam, range};

/// Which model of the StoryGAN paper's Table 1 (Li et al., CVPR 2019, §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// The full model: story encoder, GRU + Text2Gist context encoder, D_I and D_S.
    Storygan,
    /// Text2Gist replaced by concatenating s_t and h0.
    Svc,
    /// The concatenation of SVC replaced by the filter network: Filter(s_t) * h0.
    Svfn,
    /// Each frame on its own from [s_t ; CA(s_t) ; noise]; no story or context encoder, no D_S.
    Imagegan,
}

/// How o_t is formed from i_t and h_t.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gist {
    /// The paper: K one-dimensional filters from i_t convolved with h_t.
    Paper,
    /// The reference code: a 15×15 filter from h_t convolved with a 15×15 map of s_t, then
    /// downsampled to a 4×4 feature map.
    Reference,
}

/// How the image discriminator joins image features and the condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fuse {
    Concat,
    Product,
}

/// What each frame is drawn from besides its text (a departure from the paper for quality:
/// GeNeVA-GAN, El-Nouby et al., "Tell, Draw, and Repeat", ICCV 2019, §3, conditions each
/// step on the previous image).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Previous {
    /// The paper: the frame from its text and the story context alone.
    #[default]
    None,
    /// Frame t also sees frame t − 1 (a blank canvas before the first), through an encoder with
    /// a skip connection at every resolution, and the image discriminator judges the pair. The
    /// single frames of the image batch see the real previous frame (teacher forcing); the
    /// stories of the story batch, and every story drawn for a user, the previously *generated*
    /// frame, so that what was drawn stays.
    Generated,
    /// As `Generated`, and the frame is composed: the generator's last layer also draws a mask m
    /// in (0, 1), and frame t = m ⊙ drawing + (1 − m) ⊙ frame t − 1, the two-stream
    /// foreground/background composition of VGAN (Vondrick et al., "Generating Videos with Scene
    /// Dynamics", NeurIPS 2016, §3.1), here with the previous frame as the background: where the
    /// mask is near 0 what was drawn is copied.
    Masked,
}

impl Previous {
    /// Whether frame t sees frame t − 1.
    pub fn seen(self) -> bool {
        self != Previous::None
    }
}

/// What the place head (`layout`) predicts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaceMode {
    /// The mean place, learnt by squared distance.
    #[default]
    Mean,
    /// A distribution over the cells of a grid, learnt by cross-entropy; places are drawn
    /// from it.
    Grid,
}

/// The adversarial objective.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GanLoss {
    /// The paper's: binary cross-entropy on D's logits, non-saturating for G.
    #[default]
    Bce,
    /// The hinge loss (Lim & Ye 2017; Miyato et al., ICLR 2018, eq. 16–17): D minimises
    /// relu(1 − real) + ½ (relu(1 + fake) + relu(1 + wrong)), G maximises D(fake).
    Hinge,
}

/// What a frame's text s_t is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextInput {
    /// English sentences through the vocabulary and the learned sentence encoder.
    Sentence,
    /// The paper's 75-number attribute vectors.
    Vector,
    /// English sentences through the pretrained all-MiniLM-L6-v2 (`minilm`), frozen: each
    /// sentence a unit vector of 384.
    Minilm,
}

/// How a `text = "minilm"` model reads a sentence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextPool {
    /// The sentence embedding: mean pooling over the tokens' last states, L2-normalised, as
    /// sentence-transformers defines it.
    #[default]
    Mean,
    /// Learned attention pooling over the frozen tokens' last states (`text_heads` queries, each
    /// a softmax over the sentence's tokens), projected to `sentence_dim` and trained with the
    /// generator and the text label head at `lr_text`: a departure from reading the pooled
    /// embedding, measured in RESULTS.md ("Words a story model never trained on").
    Attention,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    // Model.
    pub variant: Variant,
    pub gist: Gist,
    pub text: TextInput,
    /// `text = "minilm"`: train MiniLM with the generator (at `lr_text`) instead of keeping it
    /// frozen.
    #[serde(default)]
    pub text_finetune: bool,
    /// `text = "minilm"`: the pooled sentence embedding (`mean`), or attention over the frozen
    /// tokens' states (`attention`).
    #[serde(default)]
    pub text_pool: TextPool,
    /// `text_pool = "attention"`: the number of attention queries.
    #[serde(default = "default_text_heads")]
    pub text_heads: i64,
    /// Frames (and sentences) per story, T.
    pub frames: usize,
    pub image_size: i64,
    /// Word embedding width of the sentence encoder.
    pub word_dim: i64,
    /// Sentence encoding width (s_t) in sentence mode; vector mode uses the vector length.
    pub sentence_dim: i64,
    pub noise_dim: i64,
    /// Width of i_t (the GRU state).
    pub context_dim: i64,
    /// Width of h0 and h_t.
    pub story_dim: i64,
    /// Paper gist: number K and length L of the 1-d filters.
    pub gist_filters: i64,
    pub gist_filter_len: i64,
    /// Generator channels at 4×4 (halved by each of the four up-blocks).
    pub ngf: i64,
    /// Fewest channels an up-block of the generator has (0: no floor, ngf/16 at 64×64). A
    /// floor widens only the late, high-resolution layers, where shapes are drawn.
    #[serde(default)]
    pub ngf_min: i64,
    /// Discriminator base channels (64×64 → 4×4 with ndf, 2ndf, 4ndf, 8ndf; one more doubling
    /// per extra halving at 128 and 256).
    pub ndf: i64,
    pub fuse: Fuse,
    /// What a frame sees of the frame before it (not in the paper).
    #[serde(default)]
    pub previous: Previous,
    /// Width of E_img(X) and E_txt(S) in the story discriminator.
    pub story_embed_dim: i64,
    /// Coordinate channels (CoordConv, Liu et al., NeurIPS 2018): every up-block of the
    /// generator also reads the x and y of each of its pixels, in [−1, 1], so that a
    /// convolution can tell where it draws (not in the paper).
    #[serde(default)]
    pub coords: bool,
    /// Placed objects (not in the paper; the inferred layout of Hong et al., "Inferring
    /// Semantic Layout for Hierarchical Text-to-Image Synthesis", CVPR 2018, per story frame):
    /// a place head predicts where the object a sentence adds stands in the frame, from the
    /// sentence and the places of the objects before it (attention over the earlier sentences
    /// picks the one the relation names), and the generator draws the frame from a map that
    /// marks that place with the sentence's object code. Trained on the places the dataset's
    /// frames list (teacher forcing: the true places of the earlier objects, and the true place
    /// on the map); a user's story is drawn at the places the head predicts, one after the other.
    #[serde(default)]
    pub layout: bool,
    /// `layout`: what the place head predicts: the mean place (`mean`) or a distribution over
    /// a grid's cells that places are drawn from (`grid`).
    #[serde(default)]
    pub layout_place: PlaceMode,
    /// `layout_place = "grid"`: the grid's side in cells.
    #[serde(default = "default_layout_grid")]
    pub layout_grid: i64,
    /// `layout_place = "grid"`: the temperature places are drawn at (0: the most likely cell).
    #[serde(default = "default_layout_temperature")]
    pub layout_temperature: f64,
    /// `layout`: weight of the place head's loss (squared distance in units of the frame's
    /// half width, or the grid's cross-entropy).
    #[serde(default = "default_layout_weight")]
    pub layout_weight: f64,
    /// `layout`: channels of the object code on the place map.
    #[serde(default = "default_layout_channels")]
    pub layout_channels: i64,
    /// `layout`: the spread of the mark on the place map (a Gaussian's σ, in units of the
    /// frame's half width).
    #[serde(default = "default_layout_sigma")]
    pub layout_sigma: f64,
    /// The image discriminator also reads the place map (a layout-conditioned D, as
    /// Layout2Im's and LostGAN's): a frame whose new object is not at its mark is not real.
    #[serde(default)]
    pub layout_d: bool,

    // Objective.
    #[serde(default)]
    pub gan_loss: GanLoss,
    /// α: weight of the image GAN loss.
    pub image_weight: f64,
    /// β: weight of the story GAN loss.
    pub story_weight: f64,
    pub kl_weight: f64,
    /// Auxiliary multi-label classifier: weight on real images in the D loss.
    pub aux_real_weight: f64,
    /// ... and on generated images in the G loss.
    pub aux_fake_weight: f64,
    /// With the previous frame: weight of a second auxiliary head of D_I that names, from a
    /// frame and the one before it, the object the frame adds (its shape, colour, material and
    /// size), learnt on real pairs in the D loss and asked of generated pairs in the G loss (an
    /// AC-GAN term, Odena et al. 2017, aimed at the new object). 0: no such head.
    #[serde(default)]
    pub aux_added_weight: f64,
    /// Weight of an L1 loss between the image batch's frames, each drawn from the real frame
    /// before it, and the real frames (pix2pix's L1 term, Isola et al., CVPR 2017, eq. 3):
    /// with the earlier frame and the new object's place given, a frame is nearly determined.
    /// 0: none (the paper).
    #[serde(default)]
    pub recon_weight: f64,
    /// With `layout` and `recon_weight`: the L1 term weighs each pixel 1 + w · m, m a Gaussian
    /// mark of the new object's extent at its true place (normalised by the mean weight), so
    /// that the few pixels of the object, which carry its shape, count against the floor's
    /// many. 0: every pixel alike.
    #[serde(default)]
    pub recon_object: f64,
    /// With `layout`: weight of an object discriminator on the window around the new
    /// object's place (real and generated frames of the image batch, each at its true place),
    /// which reads the object's labels by projection and names them (Layout2Im's and LostGAN's
    /// object discriminators). 0: none.
    #[serde(default)]
    pub object_d_weight: f64,
    /// Sentence mode: weight of a loss that asks the sentence encoding to predict the
    /// frame's labels (a supervised signal for the encoder besides the GAN).
    pub text_aux_weight: f64,
    /// Sentence mode: the share of the GAN's gradient that reaches the sentence encoder
    /// (1 = all of it, 0 = the encoder learns from its label head alone).
    pub text_gan_gradient: f64,

    // Training.
    pub story_batch: i64,
    pub image_batch: i64,
    /// Generator updates per discriminator update.
    pub g_steps: usize,
    pub lr_g: f64,
    pub lr_d: f64,
    /// Sentence mode: learning rate of the sentence encoder and its label head (a recurrent
    /// encoder learns too slowly at the GAN's rate).
    pub lr_text: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// The learning rate halves every this many epochs.
    pub lr_halve_epochs: usize,
}

impl Config {
    /// The [model] section of a resolved config.
    pub fn of(cfg: &storyvis_core::config::Config) -> Result<Config> {
        let c: Config = cfg.model()?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<()> {
        range("frames", self.frames, 1, 16)?;
        ensure!(
            matches!(self.image_size, 64 | 128 | 256),
            "config: image_size = {} is not supported (64, 128 or 256)",
            self.image_size
        );
        range("word_dim", self.word_dim, 1, 4096)?;
        range("sentence_dim", self.sentence_dim, 1, 4096)?;
        range("noise_dim", self.noise_dim, 1, 4096)?;
        range("context_dim", self.context_dim, 1, 4096)?;
        range("story_dim", self.story_dim, 1, 4096)?;
        range("gist_filters", self.gist_filters, 1, 256)?;
        range("gist_filter_len", self.gist_filter_len, 1, 63)?;
        ensure!(
            self.gist_filter_len % 2 == 1,
            "config: gist_filter_len must be odd (got {})",
            self.gist_filter_len
        );
        range("ngf", self.ngf, 16, 8192)?;
        let halvings = 1 << self.up_blocks();
        ensure!(
            self.ngf % halvings == 0,
            "config: ngf must be a multiple of {halvings} at {0}×{0} (got {1})",
            self.image_size,
            self.ngf
        );
        range("ngf_min", self.ngf_min, 0, 8192)?;
        range("ndf", self.ndf, 1, 1024)?;
        range("story_embed_dim", self.story_embed_dim, 1, 8192)?;
        for (n, v) in [
            ("image_weight", self.image_weight),
            ("story_weight", self.story_weight),
            ("kl_weight", self.kl_weight),
            ("aux_real_weight", self.aux_real_weight),
            ("aux_fake_weight", self.aux_fake_weight),
            ("aux_added_weight", self.aux_added_weight),
            ("text_aux_weight", self.text_aux_weight),
            ("layout_weight", self.layout_weight),
            ("recon_weight", self.recon_weight),
            ("recon_object", self.recon_object),
            ("object_d_weight", self.object_d_weight),
        ] {
            range(n, v, 0.0, 100.0)?;
        }
        range("story_batch", self.story_batch, 2, 4096)?;
        range("image_batch", self.image_batch, 2, 4096)?;
        range("g_steps", self.g_steps, 1, 16)?;
        check_adam(
            &[("lr_g", self.lr_g), ("lr_d", self.lr_d), ("lr_text", self.lr_text)],
            self.beta1,
            self.beta2,
        )?;
        range("text_gan_gradient", self.text_gan_gradient, 0.0, 1.0)?;
        ensure!(
            !self.text_finetune || self.text == TextInput::Minilm,
            "config: text_finetune = true needs text = \"minilm\" (the word encoder always trains; attribute vectors have no encoder)"
        );
        ensure!(
            !self.text_finetune || self.lr_text <= 1e-3,
            "config: lr_text = {} would wreck MiniLM's pretrained weights; fine-tuning it wants about 2e-5 (--set lr_text=2e-5; at most 1e-3)",
            self.lr_text
        );
        ensure!(
            self.text_pool == TextPool::Mean || (self.text == TextInput::Minilm && !self.text_finetune),
            "config: text_pool = \"attention\" reads frozen MiniLM's token states: it needs text = \"minilm\" and text_finetune = false"
        );
        range("text_heads", self.text_heads, 1, 64)?;
        range("lr_halve_epochs", self.lr_halve_epochs, 1, 1_000_000)?;
        range("layout_channels", self.layout_channels, 1, 256)?;
        range("layout_sigma", self.layout_sigma, 0.01, 1.0)?;
        range("layout_grid", self.layout_grid, 2, 64)?;
        ensure!(
            self.object_d_weight == 0.0 || self.layout,
            "config: object_d_weight = {} needs layout = true (the object is judged at its place)",
            self.object_d_weight
        );
        ensure!(
            self.recon_object == 0.0 || (self.layout && self.recon_weight > 0.0),
            "config: recon_object = {} needs layout = true and recon_weight > 0 (it weights the L1 term at the new object's place)",
            self.recon_object
        );
        range("layout_temperature", self.layout_temperature, 0.0, 10.0)?;
        ensure!(
            !self.layout || self.previous.seen(),
            "config: layout = true needs previous = \"generated\" or \"masked\" (each object is drawn into the frame before)"
        );
        ensure!(
            !self.layout_d || self.layout,
            "config: layout_d = true needs layout = true (the image discriminator reads the place map)"
        );
        ensure!(
            self.recon_weight == 0.0 || self.previous.seen(),
            "config: recon_weight = {} needs previous = \"generated\" or \"masked\" (a frame is compared with the real one when drawn from the real frame before)",
            self.recon_weight
        );
        ensure!(
            self.aux_added_weight == 0.0 || self.previous.seen(),
            "config: aux_added_weight = {} needs previous = \"generated\" or \"masked\" (the added object is told apart from the frame before)",
            self.aux_added_weight
        );
        Ok(())
    }

    /// Whether a text encoder trains with the generator: the word encoder, MiniLM with
    /// `text_finetune`, or the attention pooling over frozen MiniLM.
    pub fn trains_text(&self) -> bool {
        self.text == TextInput::Sentence || self.minilm_tokens()
    }

    /// Whether the text reaches the generator as MiniLM's token ids (it runs MiniLM itself)
    /// rather than as precomputed sentence embeddings.
    pub fn minilm_tokens(&self) -> bool {
        self.text == TextInput::Minilm
            && (self.text_finetune || self.text_pool == TextPool::Attention)
    }

    /// Whether this model has a story discriminator.
    pub fn has_story_d(&self) -> bool {
        self.variant != Variant::Imagegan
    }

    /// The generator's up-blocks: 4×4 doubled to the image size (4 at 64×64, as in the paper).
    pub fn up_blocks(&self) -> usize {
        storyvis_core::nn::doublings(self.image_size)
    }

    /// The generator's channels at 4×4, 8×8, …, S×S: ngf halved by each up-block, never
    /// below `ngf_min`.
    pub fn generator_widths(&self) -> Vec<i64> {
        (0..=self.up_blocks()).map(|i| (self.ngf >> i).max(self.ngf_min)).collect()
    }
}

fn default_text_heads() -> i64 {
    4
}

fn default_layout_weight() -> f64 {
    1.0
}

fn default_layout_grid() -> i64 {
    16
}

fn default_layout_temperature() -> f64 {
    0.5
}

fn default_layout_channels() -> i64 {
    16
}

fn default_layout_sigma() -> f64 {
    0.08
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(sets: &[&str]) -> Result<Config> {
        let s: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Config::of(&storyvis_core::config::Config::resolve("storygan-tiny", None, &s)?)
    }

    #[test]
    fn overrides_and_errors() {
        crate::install();
        let c = resolve(&["variant=svc", "lr_g = 0.001"]).unwrap();
        assert_eq!((c.variant, c.lr_g), (Variant::Svc, 0.001));
        let err = |sets: &[&str]| format!("{:#}", resolve(sets).unwrap_err());
        assert!(err(&["lr_g=5"]).contains("lr_g = 5 is out of range"));
        assert!(err(&["variant=dalle"]).contains("takes one of"));
        assert!(err(&["ngf=100"]).contains("multiple of 16"));
        assert!(err(&["story_batch"]).contains("expected key=value"));
        assert!(err(&["aux_added_weight=1"])
            .contains("aux_added_weight = 1 needs previous = \"generated\" or \"masked\""));
        assert!(err(&["previous=last"]).contains("takes one of"));
        assert!(err(&["gan_loss=wasserstein"]).contains("gan_loss takes `bce` or `hinge`"));
        assert!(err(&["layout=true"]).contains("layout = true needs previous"));
        assert!(err(&["previous=masked", "layout_d=true"]).contains("layout_d = true needs layout"));
        assert!(err(&["recon_weight=1"]).contains("recon_weight = 1 needs previous"));
        assert!(err(&["previous=masked", "layout=true", "layout_sigma=0"])
            .contains("layout_sigma = 0 is out of range"));
        let c = resolve(&["previous=masked", "layout=true", "coords=true"]).unwrap();
        assert!(c.layout && c.coords && !c.layout_d);
    }
}
