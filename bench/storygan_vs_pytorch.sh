#!/usr/bin/env bash
# storyvis against a PyTorch implementation of the same StoryGAN (bench/pytorch_storygan.py),
# one after the other on the same device:
#   bench/storygan_vs_pytorch.sh [--device cuda] [--precision fp32|tf32|bf16]
#                                [--memory-format auto|standard|channels-last]
#                                [--presets "storygan-clevr storygan-small"] [--out out/bench]
# Per preset: median train-iteration time (30 iterations after 10 warm-up), median latency of
# drawing one story (50 draws), and PyTorch's peak allocated CUDA memory (tch exposes no
# allocator statistics for storyvis'). JSON per run in --out; the table last.
# Needs: a release build (target/release/storyvis) and a python3 with torch.
set -euo pipefail
cd "$(dirname "$0")/.."
device=cpu precision=fp32 format=auto presets="storygan-clevr storygan-small" out=out/bench
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --precision) precision=$2; shift 2 ;;
    --memory-format) format=$2; shift 2 ;;
    --presets) presets=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=${STORYVIS_BIN:-target/release/storyvis}
mkdir -p "$out"
args=(--device "$device" --precision "$precision" --memory-format "$format" --warmup 10 --iterations 30 --draws 50)
for p in $presets; do
  "$bin" bench --preset "$p" "${args[@]}" --json "$out/storyvis-$p.json"
  python3 bench/pytorch_storygan.py --preset "presets/$p.toml" "${args[@]}" --json "$out/pytorch-$p.json"
done
python3 - "$out" $presets <<'PY'
import json, os, sys
out, presets = sys.argv[1], sys.argv[2:]
print("| preset | implementation | train iteration (ms) | draw one story (ms) | peak CUDA memory |")
print("|---|---|---:|---:|---:|")
for p in presets:
    rows = {}
    for impl in ("storyvis", "pytorch"):
        r = json.load(open(os.path.join(out, f"{impl}-{p}.json")))
        rows[impl] = r
        print(f"| {p} | {impl} | {r['train_ms_median']:.2f} | {r['sample_ms_median']:.2f} | {'%.0f MiB' % r['peak_cuda_mib'] if r.get('peak_cuda_mib') else '—'} |")
    s, t = rows["storyvis"], rows["pytorch"]
    print(f"| {p} | **ratio storyvis / PyTorch** | **{s['train_ms_median'] / t['train_ms_median']:.2f}** | **{s['sample_ms_median'] / t['sample_ms_median']:.2f}** | |")
PY
