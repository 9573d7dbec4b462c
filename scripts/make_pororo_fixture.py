#!/usr/bin/env python3
"""Writes a small Pororo-SV fixture in exactly the layout of the published archive, as the
StoryGAN-family loaders read it, for storyvis' importer tests (the real archive is never needed).

Under crates/storyvis-data/tests/fixtures/pororo-sv/:
    Pororo_ENGLISH1_1/Pororo_ENGLISH1_1_ep1/<n>.png   frames 0..7: vertical strips of 3 squares
    Pororo_ENGLISH2_1/Pororo_ENGLISH2_1_ep3/<n>.png   (16 x 48 RGB), square j of frame f filled
                                                      with colour(f, j)
    img_cache4.npy             |S bytes [8]: each story's first frame (episode 3's with the
                               archive's folder prefix ./pororo_png/, as some copies have it)
    following_cache4.npy       <U str [8, 4]: the next four frames
    descriptions.npy           {frame path without .png: [descriptions]}, pickled as Python 2
                               wrote it (protocol 2, byte strings as SHORT_BINSTRING, the
                               module numpy.core.multiarray)
    labels.npy                 {frame path without .png: 9 float labels}, as Python 2 pickled it
                               (protocol 2: each array's data a byte string)
    train_seen_unseen_ids.npy  object array of three int64 index arrays (np.save, protocol 4)
    expected.json              what the importer must produce, per story
Under crates/storyvis-data/tests/fixtures/pororo-sv-variants/ (each replaces one file):
    labels_missing_one.npy     labels.npy without frame Pororo_ENGLISH1_1/Pororo_ENGLISH1_1_ep1/5
                               (pickle protocol 3, as Python 3 writes it)
    labels_protocol3.npy       labels.npy in pickle protocol 3, labels as lists of bools
    ids_plain_pickle.npy       the splits as a plain pickle (no .npy header) of a tuple of arrays,
                               which np.load(allow_pickle=True) also reads
    ids_2d.npy                 splits of equal length as one int64 array [3, 2]
    following_wrong_shape.npy  following_cache4.npy of shape [8, 3]
    img_cache_float.npy        img_cache4.npy as float32
    ids_out_of_range.npy       the test split names story 99

Needs numpy and pillow (`pip install numpy pillow`); the tests only read what it wrote.
Run from the repository root: python3 scripts/make_pororo_fixture.py
"""
import io
import json
import os
import pickle
import random

import numpy as np
from PIL import Image

ROOT = "crates/storyvis-data/tests/fixtures"
SIDE, SQUARES = 16, 3
EPISODES = ["Pororo_ENGLISH1_1/Pororo_ENGLISH1_1_ep1", "Pororo_ENGLISH2_1/Pororo_ENGLISH2_1_ep3"]
FRAMES_PER_EPISODE = 8
CHARACTERS = ["Pororo", "Loopy", "Crong", "Eddy", "Poby", "Petty", "Tongtong", "Rody", "Harry"]


def colour(f, j):
    """The fill of square j of global frame f: distinct for every (frame, square)."""
    return (20 + 13 * f, 40 + 90 * j, 200 - 11 * f)


class Py2Pickler(pickle._Pickler):
    """Python 3's pure-Python pickler, writing bytes (and ASCII str) the way Python 2 wrote its
    str."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + len(obj).to_bytes(4, "little") + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_str(self, obj):
        # Python 2's literals ('O8', '|', dict keys written as str) were byte strings.
        if obj.isascii():
            self.save_py2_str(obj.encode())
        else:
            pickle._Pickler.save_str(self, obj)

    dispatch[str] = save_str


def write_npy(path, arr, pickler=None, protocol=4):
    """An object array's .npy with its pickle written by `pickler` at `protocol`."""
    buf = io.BytesIO()
    (pickler or pickle._Pickler)(buf, protocol=protocol).dump(arr)
    payload = buf.getvalue()
    if protocol == 2:
        payload = payload.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(arr))
        f.write(payload)


def boxed(obj):
    """A 0-d object array around obj, as np.save wraps a dict."""
    arr = np.empty((), dtype=object)
    arr[()] = obj
    return arr


def main():
    rng = random.Random(2019)
    fix = os.path.join(ROOT, "pororo-sv")
    variants = os.path.join(ROOT, "pororo-sv-variants")
    os.makedirs(variants, exist_ok=True)
    frames, descriptions, labels = [], {}, {}
    for e, ep in enumerate(EPISODES):
        os.makedirs(os.path.join(fix, ep), exist_ok=True)
        for n in range(FRAMES_PER_EPISODE):
            f = e * FRAMES_PER_EPISODE + n
            strip = Image.new("RGB", (SIDE, SIDE * SQUARES))
            for j in range(SQUARES):
                strip.paste(colour(f, j), (0, j * SIDE, SIDE, (j + 1) * SIDE))
            strip.save(os.path.join(fix, ep, "%d.png" % n))
            key = "%s/%d" % (ep, n)
            frames.append(key)
            present = [rng.random() < 0.4 for _ in CHARACTERS]
            present[f % len(CHARACTERS)] = True
            labels[key] = np.array([1.0 if p else 0.0 for p in present])
            names = [c for c, p in zip(CHARACTERS, present) if p]
            first = "%s is in the snow with %s ." % (names[0], " and ".join(names[1:]) or "nobody")
            descs = [first] if f % 3 else [first, "%s smiles in frame %d ." % (names[0], n)]
            descriptions[key.encode()] = [d.encode() for d in descs]
    # Stories: five consecutive frames of an episode, four per episode.
    stories = [[e * FRAMES_PER_EPISODE + s + t for t in range(5)] for e in range(2) for s in range(4)]
    path = lambda f: frames[f] + ".png"
    first = [("./pororo_png/" if f >= FRAMES_PER_EPISODE else "") + path(f) for f in (s[0] for s in stories)]
    img_cache = np.array([p.encode() for p in first])
    following = np.array([[path(f) for f in s[1:]] for s in stories])
    np.save(os.path.join(fix, "img_cache4.npy"), img_cache)
    np.save(os.path.join(fix, "following_cache4.npy"), following)
    write_npy(os.path.join(fix, "descriptions.npy"), boxed(descriptions), Py2Pickler, protocol=2)
    write_npy(os.path.join(fix, "labels.npy"), boxed(labels), Py2Pickler, protocol=2)
    splits = [np.array([0, 1, 4, 5], dtype=np.int64), np.array([2], dtype=np.int64), np.array([3, 6, 7], dtype=np.int64)]
    ids = np.empty(3, dtype=object)
    for k, s in enumerate(splits):
        ids[k] = s
    np.save(os.path.join(fix, "train_seen_unseen_ids.npy"), ids, allow_pickle=True)

    expected = {}
    for name, idx in zip(["train", "val", "test"], splits):
        for i in idx:
            s = stories[int(i)]
            expected["%05d" % i] = {
                "split": name,
                "labels": [[int(x) for x in labels[frames[f]]] for f in s],
                "descriptions": [[d.decode() for d in descriptions[frames[f].encode()]] for f in s],
                "colours": [[list(colour(f, j)) for j in range(SQUARES)] for f in s],
            }
    with open(os.path.join(fix, "expected.json"), "w") as fp:
        json.dump(expected, fp, indent=1, sort_keys=True)

    missing = dict(labels)
    del missing[EPISODES[0] + "/5"]
    write_npy(os.path.join(variants, "labels_missing_one.npy"), boxed(missing), protocol=3)
    as_bools = {k: [bool(x) for x in v] for k, v in labels.items()}
    write_npy(os.path.join(variants, "labels_protocol3.npy"), boxed(as_bools), protocol=3)
    with open(os.path.join(variants, "ids_plain_pickle.npy"), "wb") as fp:
        pickle.dump(tuple(splits), fp, protocol=2)
    # Three splits of two stories each: train 0 1, val 2 3, test 4 5 (6 and 7 in none).
    np.save(os.path.join(variants, "ids_2d.npy"), np.array([[0, 1], [2, 3], [4, 5]], dtype=np.int64))
    np.save(os.path.join(variants, "following_wrong_shape.npy"), following[:, :3])
    np.save(os.path.join(variants, "img_cache_float.npy"), np.zeros(8, dtype=np.float32))
    bad = np.empty(3, dtype=object)
    for k, s in enumerate(splits):
        bad[k] = s
    bad[2] = np.array([3, 99], dtype=np.int64)
    np.save(os.path.join(variants, "ids_out_of_range.npy"), bad, allow_pickle=True)
    print("wrote fixtures under", ROOT)


if __name__ == "__main__":
    main()
