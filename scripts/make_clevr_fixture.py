#!/usr/bin/env python3
"""Writes the CLEVR-SV import fixtures in exactly the layout the StoryGAN code reads.

Under crates/storyvis-data/tests/fixtures/:
    clevr-sv-original/images/CLEVR_new_%06d_%d.png   320x240 RGBA, frames 1..4
    clevr-sv-original/CLEVR_dict.npy                np.save of {file name: float array of 75}
    clevr-sv-dicts/protocol2.npy                    the same dict pickled with protocol 2
                                                    (as Python 2 / old NumPy wrote it)
    clevr-sv-dicts/bad_length.npy                   one vector of 74 numbers
    clevr-sv-dicts/expected.json                    the dict's values, for the tests to compare

Needs numpy and pillow (`pip install numpy pillow`); the tests only read what it wrote.
Run from the repository root: python3 scripts/make_clevr_fixture.py
"""
import json
import os
import pickle
import random

import numpy as np
from PIL import Image, ImageDraw

ROOT = "crates/storyvis-data/tests/fixtures"
SHAPES = ["cube", "sphere", "cylinder"]
COLORS = {"gray": (87, 87, 87), "red": (173, 35, 35), "blue": (42, 75, 215), "green": (29, 105, 20),
          "brown": (129, 74, 25), "purple": (129, 38, 192), "cyan": (41, 208, 208), "yellow": (255, 238, 51)}
STORIES = [100, 101, 102]


def story_objects(rng):
    objs = []
    while len(objs) < 4:
        o = dict(shape=rng.randrange(3), color=rng.randrange(8), material=rng.randrange(2),
                 size=rng.randrange(2), x=rng.uniform(-2.5, 2.5), y=rng.uniform(-2.5, 2.5))
        if all(abs(o["x"] - p["x"]) > 0.8 and abs(o["y"] - p["y"]) > 0.8 for p in objs):
            objs.append(o)
    return objs


def vector(objs, camera):
    v = np.zeros(75)
    for slot, o in enumerate(objs):
        b = slot * 18
        v[b + o["shape"]] = 1
        v[b + 3 + o["color"]] = 1
        v[b + 11 + o["material"]] = 1
        v[b + 13 + o["size"]] = 1
        r = 0.7 if o["size"] == 0 else 0.35
        v[b + 15:b + 18] = [o["x"], o["y"], r]
    v[72:75] = camera
    return v


def draw(objs):
    img = Image.new("RGBA", (320, 240), (128, 128, 128, 255))
    d = ImageDraw.Draw(img)
    for o in objs:
        cx, cy = 160 + 45 * o["x"], 130 - 30 * o["y"]
        r = 22 if o["size"] == 0 else 11
        col = list(COLORS.values())[o["color"]] + (255,)
        box = [cx - r, cy - r, cx + r, cy + r]
        if SHAPES[o["shape"]] == "sphere":
            d.ellipse(box, fill=col)
        else:
            d.rectangle(box, fill=col)
    return img


def main():
    rng = random.Random(2019)
    orig = os.path.join(ROOT, "clevr-sv-original")
    dicts = os.path.join(ROOT, "clevr-sv-dicts")
    os.makedirs(os.path.join(orig, "images"), exist_ok=True)
    os.makedirs(dicts, exist_ok=True)
    table = {}
    for n in STORIES:
        objs = story_objects(rng)
        camera = [rng.uniform(-0.5, 0.5) for _ in range(3)]
        for t in range(4):
            name = "CLEVR_new_%06d_%d.png" % (n, t + 1)
            draw(objs[:t + 1]).save(os.path.join(orig, "images", name))
            v = vector(objs[:t + 1], camera)
            # The last story is stored as float32, the others as float64.
            table[name] = v.astype(np.float32) if n == STORIES[-1] else v
    np.save(os.path.join(orig, "CLEVR_dict.npy"), table)
    # np.save always pickles with protocol 4 today; Python 2 era files used protocol 2, in which
    # byte strings travel through _codecs.encode and NumPy's module was numpy.core.
    arr = np.asanyarray(table)
    payload = pickle.dumps(arr, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    with open(os.path.join(dicts, "protocol2.npy"), "wb") as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(arr))
        f.write(payload)
    bad = dict(table)
    key = "CLEVR_new_%06d_2.png" % STORIES[0]
    bad[key] = bad[key][:74]
    np.save(os.path.join(dicts, "bad_length.npy"), bad)
    with open(os.path.join(dicts, "expected.json"), "w") as f:
        json.dump({k: [float(x) for x in v] for k, v in sorted(table.items())}, f, indent=0)
    print("wrote fixtures under", ROOT)


if __name__ == "__main__":
    main()
