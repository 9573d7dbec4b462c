#!/usr/bin/env python3
"""StoryGAN in plain PyTorch, written for storyvis' side-by-side benchmark.

The same architecture, widths, losses and passes as storyvis (crates/storyvis-models/src/
storygan/, nn.rs, text.rs, loss.rs and the iteration in train.rs), with the same parameter
names, so that a storyvis checkpoint's safetensors load into it. It is written the way a
PyTorch user writes a GAN: `loss.backward()` and `torch.optim.Adam` (PyTorch's default
multi-tensor implementation), cuDNN benchmark mode on, `--precision` and `--memory-format` as
storyvis', and no `.item()` inside an iteration.

    python3 bench/pytorch_storygan.py --preset presets/storygan-clevr.toml --device cuda \
        --warmup 10 --iterations 30 --draws 50 --json out.json

One iteration: the generator's forward pass on a story batch and an image batch; an image-
discriminator step (real, fake, wrong); a story-discriminator step; `g_steps` generator steps
(the first reuses the forward pass). Data are synthetic with CLEVR-SV's shapes (as `storyvis
bench`): 15 labels, 75-long attribute vectors, a 40-word vocabulary.
"""
import argparse
import contextlib
import json
import statistics
import time
import tomllib

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, VECTOR_LEN, LABELS, LABEL_LEN, WORDS, PAD = 40, 75, 15, 15, 12, 0


def load_config(path, sets):
    with open(path, "rb") as f:
        table = tomllib.load(f)
    # A preset's [run] and [model] sections as one flat dict (a flat file reads as it is).
    cfg = {k: v for k, v in table.items() if not isinstance(v, dict)}
    for section in ("run", "model"):
        cfg.update(table.get(section, {}))
    for s in sets:
        key, value = s.split("=", 1)
        cfg.update(tomllib.loads(f"{key.strip()} = {value}"))
    return cfg


# Initialisation as storyvis' nn.rs: N(0, 0.02) weights, zero biases, batch-norm scale
# N(1, 0.02); recurrent layers U(±1/√fan_in).
def linear(i, o, bias):
    m = nn.Linear(i, o, bias=bias)
    nn.init.normal_(m.weight, 0.0, 0.02)
    if bias:
        nn.init.zeros_(m.bias)
    return m


def recurrent_linear(i, o, bias):
    m = nn.Linear(i, o, bias=bias)
    k = 1.0 / i**0.5
    nn.init.uniform_(m.weight, -k, k)
    if bias:
        nn.init.uniform_(m.bias, -k, k)
    return m


def conv(i, o, k, stride, padding, bias=False):
    m = nn.Conv2d(i, o, k, stride, padding, bias=bias)
    nn.init.normal_(m.weight, 0.0, 0.02)
    if bias:
        nn.init.zeros_(m.bias)
    return m


def bn(c, dims):
    m = nn.BatchNorm2d(c) if dims == 2 else nn.BatchNorm1d(c)
    nn.init.normal_(m.weight, 1.0, 0.02)
    nn.init.zeros_(m.bias)
    return m


def leaky(x):
    return torch.maximum(x, 0.2 * x)


def pick(x, index):
    """One entry per row along dim 1: x [B, T, ...], index [B] -> [B, ...]."""
    return x[torch.arange(x.shape[0], device=x.device), index]


def dynamic_conv1d(signal, filters):
    """signal [B, D], filters [B, K, L] -> [B, K, D]: each sample convolved with its own filters."""
    b, d = signal.shape
    k, l = filters.shape[1:]
    return F.conv1d(signal.view(1, b, d), filters.reshape(b * k, 1, l), None, 1, l // 2, 1, b).view(b, k, d)


def dynamic_conv2d(maps, filters):
    """maps [B, 1, H, W], filters [B, 1, kh, kw] -> [B, 1, H, W]."""
    b, _, h, w = maps.shape
    kh, kw = filters.shape[2:]
    return F.conv2d(maps.view(1, b, h, w), filters.view(b, 1, kh, kw), None, 1, (kh // 2, kw // 2), 1, b).view(b, 1, h, w)


def full(t):
    """Losses are computed in fp32 whatever precision made their inputs (as storyvis' loss.rs)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def bce(logits, target):
    logits = full(logits)
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def multi_label(logits, labels):
    return F.binary_cross_entropy_with_logits(full(logits), labels)


def d_loss(real, fake, wrong):
    return bce(real, 1.0) + 0.5 * (bce(fake, 0.0) + bce(wrong, 0.0))


def kl_loss(mu, logvar):
    mu, logvar = full(mu), full(logvar)
    return (1.0 + logvar - mu.square() - logvar.exp()).mean() * -0.5


class GruCell(nn.Module):
    def __init__(self, i, h):
        super().__init__()
        self.input = recurrent_linear(i, 3 * h, True)
        self.hidden = recurrent_linear(h, 3 * h, True)
        self.hidden_dim = h

    def step(self, x, h):
        gi, gh = self.input(x).chunk(3, 1), self.hidden(h).chunk(3, 1)
        r = torch.sigmoid(gi[0] + gh[0])
        z = torch.sigmoid(gi[1] + gh[1])
        n = torch.tanh(gi[2] + r * gh[2])
        return (1 - z) * n + z * h

    def sequence(self, x, h0):
        params = [self.input.weight, self.hidden.weight, self.input.bias, self.hidden.bias]
        return torch.gru(x, h0.unsqueeze(0), params, True, 1, 0.0, True, False, True)[0]


class SentenceEncoder(nn.Module):
    def __init__(self, vocab, word_dim, dim):
        super().__init__()
        self.embed = nn.Embedding(vocab, word_dim)
        nn.init.normal_(self.embed.weight, 0.0, 1.0)
        # storyvis names the directions "forward" and "backward"; a Module's method is called
        # forward (add_module refuses the name), so both go into _modules directly.
        self._modules["forward"] = GruCell(word_dim, dim)
        self._modules["backward"] = GruCell(word_dim, dim)
        self.out = recurrent_linear(2 * dim, dim, True)

    def encode(self, ids):
        n, l = ids.shape
        words = self.embed(ids)
        lengths = (ids != PAD).sum(1)
        d = self._modules["forward"].hidden_dim
        h0 = torch.zeros(n, d, device=ids.device)
        pos = torch.arange(l, device=ids.device).unsqueeze(0)
        length = lengths.unsqueeze(1)
        reversed_ = torch.where(pos < length, length - 1 - pos, pos)
        words_rev = words.gather(1, reversed_.unsqueeze(-1).expand(n, l, words.shape[2]))

        def last(states):
            at = (lengths - 1).clamp_min(0).view(n, 1, 1).expand(n, 1, d)
            return states.gather(1, at).squeeze(1) * (lengths > 0).float().unsqueeze(1)

        hf = last(self._modules["forward"].sequence(words, h0))
        hb = last(self._modules["backward"].sequence(words_rev, h0))
        return torch.tanh(self.out(torch.cat([hf, hb], 1)))


class Text2Gist(nn.Module):
    def __init__(self, i, s):
        super().__init__()
        self.w_z, self.w_r, self.w_h = (recurrent_linear(i, s, True) for _ in range(3))
        self.u_z, self.u_r, self.u_h = (recurrent_linear(s, s, False) for _ in range(3))

    def step(self, i, h):
        z = torch.sigmoid(self.w_z(i) + self.u_z(h))
        r = torch.sigmoid(self.w_r(i) + self.u_r(h))
        candidate = torch.tanh(self.w_h(i) + self.u_h(r * h))
        return (1 - z) * h + z * candidate


class FilterNet(nn.Module):
    def __init__(self, i, k, l):
        super().__init__()
        self.fc, self.bn, self.k, self.l = linear(i, k * l, False), bn(k * l, 1), k, l

    def forward(self, x):
        return torch.tanh(self.bn(self.fc(x))).view(-1, self.k, self.l)


class ReferenceGist(nn.Module):
    MAP = 15

    def __init__(self, text_dim, story_dim, channels):
        super().__init__()
        n = self.MAP * self.MAP
        self.filter, self.filter_bn = linear(story_dim, n, False), bn(n, 1)
        self.map, self.map_bn = linear(text_dim, n, False), bn(n, 1)
        self.down1, self.down1_bn = conv(1, channels, 3, 2, 1), bn(channels, 2)
        self.down2, self.down2_bn = conv(channels, channels, 4, 2, 1), bn(channels, 2)

    def forward(self, s, h):
        m = self.MAP
        filt = self.filter_bn(self.filter(h)).view(-1, 1, m, m)
        sentence = self.map_bn(self.map(s)).view(-1, 1, m, m)
        x = leaky(self.down1_bn(self.down1(dynamic_conv2d(sentence, filt))))
        return leaky(self.down2_bn(self.down2(x)))


class UpBlock(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.conv, self.bn = conv(i, o, 3, 1, 1), bn(o, 2)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))))


class Generator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        assert cfg["variant"] == "storygan", "the benchmark implements the StoryGAN variant"
        self.sentences = cfg["text"] == "sentence"
        if self.sentences:
            self.sentence = SentenceEncoder(VOCAB, cfg["word_dim"], cfg["sentence_dim"])
            self.text_dim = cfg["sentence_dim"]
            if cfg["text_aux_weight"] > 0:
                self.text_labels = linear(self.text_dim, LABELS, True)
        else:
            self.text_dim = VECTOR_LEN
        t, nz, ci, cs = cfg["frames"], cfg["noise_dim"], cfg["context_dim"], cfg["story_dim"]
        k, l, ngf = cfg["gist_filters"], cfg["gist_filter_len"], cfg["ngf"]
        widths = [max(ngf >> i, cfg.get("ngf_min", 0)) for i in range(5)]
        self.noise_dim, self.context_dim, self.story_dim = nz, ci, cs
        self.encoder = linear(t * self.text_dim, 2 * cs, True)
        self.gru = GruCell(self.text_dim + nz, ci)
        self.text2gist = Text2Gist(ci, cs)
        self.reference = cfg["gist"] == "reference"
        map_channels = ngf // 2 if self.reference else 0
        if self.reference:
            self.reference_gist = ReferenceGist(self.text_dim, cs, map_channels)
            fc_in = ci + cs
        else:
            self.filter = FilterNet(ci, k, l)
            fc_in = k * cs + ci + cs
        self.fc_channels = ngf - map_channels
        self.fc, self.fc_bn = linear(fc_in, self.fc_channels * 16, False), bn(self.fc_channels * 16, 1)
        for i in range(4):
            self.add_module(f"up{i}", UpBlock(widths[i], widths[i + 1]))
        self.to_rgb = conv(widths[4], 3, 3, 1, 1)
        self.channels_last = False
        # Noise to replay (storyvis' Generator::feed_noise order) and a record of the draws.
        self.fed, self.drawn = [], None

    def randn(self, *size, device):
        t = self.fed.pop(0) if self.fed else torch.randn(*size, device=device)
        assert tuple(t.shape) == size, f"fed noise of shape {tuple(t.shape)}, wanted {size}"
        if self.drawn is not None:
            self.drawn.append(t.detach().clone())
        return t

    def encode_text(self, text):
        if self.sentences:
            b, t, l = text.shape
            return self.sentence.encode(text.view(b * t, l)).view(b, t, -1)
        return text

    def context(self, s):
        b, t = s.shape[:2]
        stats = self.encoder(s.reshape(b, -1)).chunk(2, -1)
        mu, logvar = stats
        h0 = mu + (logvar * 0.5).exp() * self.randn(*mu.shape, device=s.device)
        kl = kl_loss(mu, logvar)
        g = self.randn(b, self.context_dim, device=s.device)
        h = h0
        vecs, maps = [], []
        for step in range(t):
            s_t = s[:, step]
            eps = self.randn(b, self.noise_dim, device=s.device)
            g = self.gru.step(torch.cat([s_t, eps], 1), g)
            h = self.text2gist.step(g, h)
            if self.reference:
                maps.append(self.reference_gist(s_t, h))
                vecs.append(torch.cat([g, h0], 1))
            else:
                o_t = dynamic_conv1d(h, self.filter(g)).view(b, -1)
                vecs.append(torch.cat([o_t, g, h0], 1))
        cond = h0.unsqueeze(1).expand(b, t, self.story_dim)
        return torch.stack(vecs, 1), (torch.stack(maps, 1) if maps else None), cond, kl

    def decode(self, vec, map_):
        x = torch.relu(self.fc_bn(self.fc(vec))).view(-1, self.fc_channels, 4, 4)
        if map_ is not None:
            x = torch.cat([x, map_], 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for i in range(4):
            x = self._modules[f"up{i}"](x)
        return torch.tanh(self.to_rgb(x)).contiguous()

    def decode_story(self, vec, map_):
        b, t = vec.shape[:2]
        return self.decode(vec.flatten(0, 1), None if map_ is None else map_.flatten(0, 1)).view(b, t, 3, 64, 64)

    def decode_frames(self, vec, map_, frames):
        return self.decode(pick(vec, frames), None if map_ is None else pick(map_, frames))

    @torch.no_grad()
    def draw(self, text):
        vec, map_, _, _ = self.context(self.encode_text(text))
        return self.decode_story(vec, map_)


class ImageEncoder(nn.Module):
    def __init__(self, ndf):
        super().__init__()
        w = [3, ndf, 2 * ndf, 4 * ndf, 8 * ndf]
        for i in range(4):
            self.add_module(f"conv{i}", conv(w[i], w[i + 1], 4, 2, 1))
        for i in range(1, 4):
            self.add_module(f"bn{i}", bn(w[i + 1], 2))
        self.channels_last = False

    def forward(self, x):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        h = leaky(self.conv0(x))
        for i in range(1, 4):
            h = leaky(self._modules[f"bn{i}"](self._modules[f"conv{i}"](h)))
        return h.contiguous()


class ImageDiscriminator(nn.Module):
    def __init__(self, cfg, text_dim):
        super().__init__()
        c = 8 * cfg["ndf"]
        self.product = cfg["fuse"] == "product"
        self.encoder = ImageEncoder(cfg["ndf"])
        self.cond, self.cond_bn = linear(text_dim + cfg["story_dim"], c, False), bn(c, 1)
        self.joint, self.joint_bn = conv(c if self.product else 2 * c, c, 3, 1, 1), bn(c, 2)
        self.out = conv(c, 1, 4, 4, 0, bias=True)
        self.classifier = conv(c, LABELS, 4, 4, 0, bias=True)

    def forward(self, x, s, h):
        return self.judge(self.encoder(x), s, h)

    def judge(self, feat, s, h):
        n = feat.shape[0]
        labels = self.classifier(feat).view(n, -1)
        c = leaky(self.cond_bn(self.cond(torch.cat([s, h], 1))))
        tiled = c.view(n, -1, 1, 1).expand(n, c.shape[1], 4, 4)
        if self.product:
            joint = leaky(self.joint_bn(self.joint(feat))) * tiled
        else:
            joint = leaky(self.joint_bn(self.joint(torch.cat([feat, tiled], 1))))
        return self.out(joint).view(n), labels


class StoryDiscriminator(nn.Module):
    def __init__(self, cfg, text_dim):
        super().__init__()
        ndf, t, e = cfg["ndf"], cfg["frames"], cfg["story_embed_dim"]
        self.encoder = ImageEncoder(ndf)
        self.image_embed = linear(t * 8 * ndf * 16, e, True)
        self.text_embed = linear(t * text_dim, e, True)
        self.out = linear(e, 1, True)

    def forward(self, x, s):
        return self.judge(self.features(x), s)

    def features(self, x):
        return self.encoder(x.flatten(0, 1)).view(x.shape[0], -1)

    def judge(self, feats, s):
        b = feats.shape[0]
        return self.out(self.image_embed(feats) * self.text_embed(s.reshape(b, -1))).view(b)


class Batch:
    def __init__(self, data, index):
        self.images = data["images"][index].float() / 127.5 - 1.0
        self.text = data["text"][index]
        self.labels = data["labels"][index]
        self.added = data["added"][index]


class StoryGan:
    def __init__(self, cfg, device, precision="fp32", channels_last=False):
        self.cfg = cfg
        self.g = Generator(cfg).to(device)
        self.di = ImageDiscriminator(cfg, self.g.text_dim).to(device)
        self.ds = StoryDiscriminator(cfg, self.g.text_dim).to(device)
        self.device, self.bf16 = torch.device(device), precision == "bf16"
        for m in (self.g, self.di.encoder, self.ds.encoder):
            m.channels_last = channels_last
        betas = (cfg["beta1"], cfg["beta2"])
        text = [p for n, p in self.g.named_parameters() if n.startswith(("sentence.", "text_labels."))]
        rest = [p for n, p in self.g.named_parameters() if not n.startswith(("sentence.", "text_labels."))]
        self.opt_g = torch.optim.Adam(rest, lr=cfg["lr_g"], betas=betas, eps=1e-8)
        self.opt_text = torch.optim.Adam(text, lr=cfg["lr_text"], betas=betas, eps=1e-8) if text else None
        self.opt_di = torch.optim.Adam(self.di.parameters(), lr=cfg["lr_d"], betas=betas, eps=1e-8)
        self.opt_ds = torch.optim.Adam(self.ds.parameters(), lr=cfg["lr_d"], betas=betas, eps=1e-8)

    def amp(self):
        """The forward passes' precision: bf16 autocast (storyvis' --precision bf16) or none."""
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def generate(self, story, img, frames):
        k = self.cfg["text_gan_gradient"]

        def scaled(s):
            return s.detach() * (1 - k) + s * k

        s_story = self.g.encode_text(story.text)
        vec, map_, _, kl_story = self.g.context(scaled(s_story))
        fake_story = self.g.decode_story(vec, map_)
        s_img = self.g.encode_text(img.text)
        vec, map_, cond_img, kl_img = self.g.context(scaled(s_img))
        fake_img = self.g.decode_frames(vec, map_, frames)
        return dict(s_story=s_story, fake_story=fake_story, kl_story=kl_story, s_img=s_img, cond_img=cond_img, fake_img=fake_img, kl_img=kl_img)

    def iteration(self, story, img, frames):
        cfg = self.cfg
        alpha, beta = cfg["image_weight"], cfg["story_weight"]
        with self.amp():  # forward passes in the chosen precision, backward passes outside
            fwd = self.generate(story, img, frames)
            real_img, labels_t = pick(img.images, frames), pick(img.labels, frames)
            s_t, h_t = pick(fwd["s_img"], frames).detach(), pick(fwd["cond_img"], frames).detach()
            real_feat = self.di.encoder(real_img)  # real and wrong pairs share the real features
            real, real_cls = self.di.judge(real_feat, s_t, h_t)
            fake, _ = self.di(fwd["fake_img"].detach(), s_t, h_t)
            wrong, _ = self.di.judge(real_feat, s_t.roll(1, 0), h_t.roll(1, 0))
            loss_di = alpha * d_loss(real, fake, wrong) + cfg["aux_real_weight"] * multi_label(real_cls, labels_t)
        self.opt_di.zero_grad()
        loss_di.backward()
        self.opt_di.step()
        d_real, d_fake = torch.sigmoid(real).mean().detach(), torch.sigmoid(fake).mean().detach()
        aux_accuracy = ((real_cls > 0).float() == labels_t).float().mean()

        with self.amp():
            s = fwd["s_story"].detach()
            real_feat = self.ds.features(story.images)
            real = self.ds.judge(real_feat, s)
            fake = self.ds(fwd["fake_story"].detach(), s)
            wrong = self.ds.judge(real_feat, s.roll(1, 0))
            loss_ds = beta * d_loss(real, fake, wrong)
        self.opt_ds.zero_grad()
        loss_ds.backward()
        self.opt_ds.step()

        g_total = kl_total = text_total = torch.zeros(())
        for step in range(cfg["g_steps"]):
            with self.amp():
                f = fwd if step == 0 else self.generate(story, img, frames)
                s_t, h_t = pick(f["s_img"], frames).detach(), pick(f["cond_img"], frames).detach()
                fake, fake_cls = self.di(f["fake_img"], s_t, h_t)
                loss = alpha * bce(fake, 1.0) + cfg["aux_fake_weight"] * multi_label(fake_cls, labels_t)
                loss = loss + beta * bce(self.ds(f["fake_story"], f["s_story"].detach()), 1.0)
                kl = f["kl_story"] + f["kl_img"]
                loss = loss + cfg["kl_weight"] * kl
                if self.opt_text is not None:
                    text = multi_label(self.g.text_labels(f["s_story"]), story.added)
                    text_total = text_total + text.detach()
                    loss = loss + cfg["text_aux_weight"] * text
            self.opt_g.zero_grad()
            if self.opt_text is not None:
                self.opt_text.zero_grad()
            loss.backward()
            self.opt_g.step()
            if self.opt_text is not None:
                self.opt_text.step()
            g_total = g_total + loss.detach()
            kl_total = kl_total + kl.detach()
        n = cfg["g_steps"]
        # storyvis' REPORTED order (train.rs).
        return [loss_di.detach(), loss_ds.detach(), g_total / n, kl_total / n, text_total / n, d_real, d_fake, aux_accuracy]


def synthetic(cfg, n, device, seed):
    g = torch.Generator().manual_seed(seed)
    t = cfg["frames"]
    if cfg["text"] == "sentence":
        text = torch.randint(2, VOCAB, (n, t, WORDS), generator=g)
    else:
        text = torch.randint(0, 2, (n, t, VECTOR_LEN), generator=g).float()
    data = dict(
        images=torch.randint(0, 256, (n, t, 3, 64, 64), generator=g, dtype=torch.uint8),
        text=text,
        labels=torch.randint(0, 2, (n, t, LABELS), generator=g).float(),
        added=torch.randint(0, 2, (n, t, LABEL_LEN), generator=g).float(),
    )
    return {k: v.to(device) for k, v in data.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="presets/storygan-clevr.toml")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--draws", type=int, default=50)
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    ap.add_argument("--memory-format", choices=["auto", "standard", "channels-last"], default="auto",
                    help="as storyvis: auto is channels-last on the CPU, standard on CUDA")
    ap.add_argument("--json")
    a = ap.parse_args()
    cfg = load_config(a.preset, a.sets)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    if a.precision == "tf32" and not cuda:
        ap.error("--precision tf32 needs a CUDA device")
    # As storyvis: fp32 is IEEE fp32 for matrix products and convolutions alike (PyTorch's own
    # default lets cuDNN convolutions use TF32), tf32 allows TF32 for both.
    fp32_precision = "tf32" if a.precision == "tf32" else "ieee"
    torch.backends.cuda.matmul.fp32_precision = fp32_precision
    torch.backends.cudnn.conv.fp32_precision = fp32_precision
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg["seed"])
    channels_last = a.memory_format == "channels-last" or (a.memory_format == "auto" and not cuda)
    model = StoryGan(cfg, device, a.precision, channels_last)
    sb, ib = cfg["story_batch"], cfg["image_batch"]
    n = 4 * max(sb, ib)
    data = synthetic(cfg, n, device, cfg["seed"])

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    train_ms = []
    for step in range(a.warmup + a.iterations):
        sync()
        start = time.perf_counter()
        story = Batch(data, torch.randint(0, n, (sb,), device=device))
        img = Batch(data, torch.randint(0, n, (ib,), device=device))
        frames = torch.randint(0, cfg["frames"], (ib,), device=device)
        model.iteration(story, img, frames)
        sync()
        if step >= a.warmup:
            train_ms.append((time.perf_counter() - start) * 1e3)
    model.g.eval()
    one = data["text"][:1]
    sample_ms = []
    for i in range(a.warmup + a.draws):
        sync()
        start = time.perf_counter()
        with model.amp():
            model.g.draw(one)
        sync()
        if i >= a.warmup:
            sample_ms.append((time.perf_counter() - start) * 1e3)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in [("generator", model.g), ("image_d", model.di), ("story_d", model.ds)]}
    report = dict(
        implementation="pytorch",
        torch=torch.__version__,
        preset=a.preset,
        overrides=a.sets,
        device=str(device),
        precision=a.precision,
        channels_last=channels_last,
        story_batch=sb,
        image_batch=ib,
        g_steps=cfg["g_steps"],
        parameters=params,
        warmup=a.warmup,
        train_ms=train_ms,
        train_ms_median=statistics.median(train_ms),
        sample_ms=sample_ms,
        sample_ms_median=statistics.median(sample_ms),
        peak_cuda_mib=torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
    )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    p = ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in params.items())
    print(f"pytorch bench: {a.preset} on {device} ({p})")
    print(f"train iteration  {report['train_ms_median']:9.2f} ms (median of {len(train_ms)}, after {a.warmup} warm-up)")
    print(f"draw one story   {report['sample_ms_median']:9.2f} ms (median of {len(sample_ms)})")


if __name__ == "__main__":
    main()
