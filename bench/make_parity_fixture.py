#!/usr/bin/env python3
"""Writes the fixture of storyvis' parity test (crates/storyvis-models/tests/parity.rs): one training
iteration of bench/pytorch_storygan.py on the CPU in fp32, from weights, batches and noise it
saves beside the values it reports and the weights after the updates. The Rust test loads the
same weights, batches and noise into storyvis and must report the same values.

    python3 bench/make_parity_fixture.py [--out crates/storyvis-models/tests/fixtures/parity]

Needs torch and safetensors. Two cases, narrow versions of two presets, so that the fixture
stays small: the reference configuration's path (attribute vectors, the reference code's gist,
two generator steps) and storygan-small's (sentences through the learned encoder, the paper's
Text2Gist filter, one generator step).
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_storygan as ps  # noqa: E402

NARROW = ["ngf=32", "ndf=4", "story_batch=3", "image_batch=3", "story_embed_dim=16"]
CASES = {
    "reference-vectors": ("storygan-clevr", NARROW),
    "paper-sentences": ("storygan-small", NARROW),
}


def state(module):
    """A state dict as storyvis names it (no num_batches_tracked), contiguous copies."""
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/storyvis-models/tests/fixtures/parity")
    a = ap.parse_args()
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    for name, (preset, sets) in CASES.items():
        cfg = ps.load_config(f"presets/{preset}.toml", sets)
        torch.manual_seed(0)
        model = ps.StoryGan(cfg, cpu)
        out = os.path.join(a.out, name)
        os.makedirs(os.path.join(out, "after"), exist_ok=True)
        nets = [("generator", model.g), ("image_d", model.di), ("story_d", model.ds)]
        for net, m in nets:
            save_file(state(m), os.path.join(out, f"{net}.safetensors"))
        data = ps.synthetic(cfg, 8, cpu, 1)
        story = ps.Batch(data, torch.tensor([5, 0, 3]))
        img = ps.Batch(data, torch.tensor([2, 7, 2]))
        frames = torch.tensor([1, 3, 0])
        inputs = {}
        for prefix, b in [("story", story), ("image", img)]:
            for field in ["images", "text", "labels", "added"]:
                inputs[f"{prefix}.{field}"] = getattr(b, field).contiguous()
        inputs["frames"] = frames
        save_file(inputs, os.path.join(out, "inputs.safetensors"))
        model.g.drawn = []
        reported = [float(x) for x in model.iteration(story, img, frames)]
        save_file({f"{i:03}": t for i, t in enumerate(model.g.drawn)}, os.path.join(out, "noise.safetensors"))
        for net, m in nets:
            save_file(state(m), os.path.join(out, "after", f"{net}.safetensors"))
        meta = dict(
            preset=preset,
            sets=sets,
            shape=dict(vocab=ps.VOCAB, vector_len=ps.VECTOR_LEN, labels=ps.LABELS),
            reported=reported,
            torch=torch.__version__,
            made_by="bench/make_parity_fixture.py",
        )
        with open(os.path.join(out, "expected.json"), "w") as f:
            json.dump(meta, f, indent=2)
        print(name, reported)


if __name__ == "__main__":
    main()
