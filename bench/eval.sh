#!/usr/bin/env bash
# Benchmark: `storyvis eval` of one checkpoint on N held-out stories × K seeds (drawing,
# SSIM/PSNR, the classifier on real and generated frames, Fréchet distance, IS; and, where the
# frames list their objects, the shipped detector on every row and the random-places floor's
# renders); wall time and peak memory.
#
#   bench/eval.sh CHECKPOINT [DATA] [STORIES] [SEEDS]     (defaults: data/clevr-sv-10k, 1000 stories, 1 seed)
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:?usage: bench/eval.sh CHECKPOINT [DATA] [STORIES]}
data=${2:-data/clevr-sv-10k}
stories=${3:-1000}
seeds=${4:-1}
bin=target/release/storyvis
[ -x $bin ] || { echo "build first: scripts/setup --no-run" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "command: $bin eval --checkpoint $ckpt --data $data --stories $stories --seeds $seeds"
/usr/bin/time -f "%e %M" -o "$out/time" $bin eval --checkpoint "$ckpt" --data "$data" --stories "$stories" --seeds "$seeds" --out "$out" >/dev/null 2>&1
read -r secs kb < "$out/time"
awk -v s="$secs" -v n="$stories" -v k="$seeds" -v kb="$kb" 'BEGIN { printf "wall: %.1f s for %d stories × %d seeds, peak RSS %.0f MiB\n", s, n, k, kb / 1024 }'
cat "$out/eval.md"
