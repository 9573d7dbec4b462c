#!/usr/bin/env bash
# Benchmark: render a CLEVR-SV set with `storyvis prepare clevr-sv` and report wall time,
# stories per second and peak memory. Results go to BENCHMARKS.md by hand, with the machine.
#
#   bench/clevr_render.sh [STORIES] [SIZE]      (defaults: 10000 stories, 64×64)
set -euo pipefail
cd "$(dirname "$0")/.."
stories=${1:-10000}
size=${2:-64}
bin=target/release/storyvis
[ -x $bin ] || { echo "build first: scripts/setup --no-run" >&2; exit 1; }
out=$(mktemp -d)/clevr-sv
trap 'rm -rf "$(dirname "$out")"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "command: $bin prepare clevr-sv --out DIR --stories $stories --seed 0 --size $size"
/usr/bin/time -f "%e %M" -o "$out.time" $bin prepare clevr-sv --out "$out" --stories "$stories" --seed 0 --size "$size" >/dev/null 2>&1
read -r secs kb < "$out.time"
echo "stories: $stories at ${size}×${size}, $(du -sh "$out" | cut -f1) on disk"
awk -v s="$secs" -v n="$stories" -v kb="$kb" 'BEGIN { printf "wall: %.1f s (%.0f stories/s), peak RSS %.0f MiB\n", s, n / s, kb / 1024 }'
