#!/usr/bin/env python3
"""Makes the fixture that checks storyvis-metrics' SSIM and PSNR against scikit-image.

Writes into crates/storyvis-metrics/tests/fixtures/ssim/: random 8-bit PNG images (numpy seed 0)
beside copies of four CLEVR-SV frames rendered by `storyvis prepare clevr-sv`, and ssim.json with
scikit-image's values for pairs of them, each image read as uint8 / 255 in float64:

    structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                          data_range=1, channel_axis=-1)
    peak_signal_noise_ratio(a, b, data_range=1)

Needs numpy, pillow and scikit-image (`pip install numpy pillow scikit-image` in a scratch venv):

    python3 scripts/make_ssim_fixture.py data/clevr-sv-demo   # a set made by the main job
"""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import skimage
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

OUT = Path(__file__).resolve().parent.parent / "crates/storyvis-metrics/tests/fixtures/ssim"


def save(name, array):
    Image.fromarray(array).save(OUT / name)
    return name


def load(name):
    a = np.asarray(Image.open(OUT / name), dtype=np.float64) / 255.0
    return a if a.ndim == 3 else a[:, :, None]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    dataset = Path(sys.argv[1])
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    noisy = np.clip(a.astype(np.int32) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    names += [save("random_a.png", a), save("random_a_noisy.png", noisy)]
    names.append(save("random_b.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    smooth = np.linspace(0, 255, 48 * 37).reshape(37, 48)
    gray = np.clip(smooth + rng.normal(0, 30, smooth.shape), 0, 255).astype(np.uint8)
    names += [save("gray_smooth.png", smooth.astype(np.uint8)), save("gray_noisy.png", gray)]
    for t in range(1, 5):
        src = dataset / "images" / f"000000_{t}.png"
        shutil.copyfile(src, OUT / f"clevr_{t}.png")
    frame = np.asarray(Image.open(OUT / "clevr_3.png").convert("RGB"))
    jitter = np.clip(frame.astype(np.int32) + rng.integers(-12, 13, frame.shape), 0, 255)
    save("clevr_3_noisy.png", jitter.astype(np.uint8))

    pairs = [
        ("random_a.png", "random_a_noisy.png"),
        ("random_a.png", "random_b.png"),
        ("gray_smooth.png", "gray_noisy.png"),
        ("clevr_1.png", "clevr_2.png"),
        ("clevr_1.png", "clevr_4.png"),
        ("clevr_3.png", "clevr_3_noisy.png"),
        ("clevr_4.png", "random_b.png"),
    ]
    cases = []
    for x, y in pairs:
        a, b = load(x), load(y)
        ssim = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=1.0, channel_axis=-1)
        psnr = peak_signal_noise_ratio(a, b, data_range=1.0)
        cases.append({"a": x, "b": y, "ssim": float(ssim), "psnr": float(psnr)})
    meta = {"scikit_image": skimage.__version__, "numpy": np.__version__, "cases": cases}
    (OUT / "ssim.json").write_text(json.dumps(meta, indent=1) + "\n")
    for c in cases:
        print(f"{c['a']:>18} {c['b']:>18}  ssim {c['ssim']:.6f}  psnr {c['psnr']:.3f}")


if __name__ == "__main__":
    main()
