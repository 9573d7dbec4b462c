#!/usr/bin/env bash
# Seconds per training iteration of any preset on a prepared dataset, the way a user trains:
# `storyvis train` for N iterations (logging every one), then the median and range of the
# logged `seconds_per_iteration` without the first two (warm-up), and the time spent outside
# the iterations (loading data, for text-to-image runs embedding every caption,
# the final checkpoint).
#
#   bench/train_speed.sh --preset P --data DIR [--steps N] [--threads T] [--nproc N] [--device D] [--set k=v]…
#
# --nproc N trains as N processes (`storyvis train --nproc N`, data parallel, the same global
# batch) with T threads each (default: the cores shared out).
#
# Prints one markdown row for BENCHMARKS.md. Runs go to a temporary directory, removed after.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="" data="" steps=10 threads="" nproc=1 device=cpu sets=()
while [ $# -gt 0 ]; do
    case $1 in
        --preset) preset=$2 ;; --data) data=$2 ;; --steps) steps=$2 ;;
        --threads) threads=$2 ;; --nproc) nproc=$2 ;; --device) device=$2 ;; --set) sets+=(--set "$2") ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
[ -n "$preset" ] && [ -n "$data" ] || { echo "usage: $0 --preset P --data DIR [--steps N] [--threads T] [--device D] [--set k=v]…" >&2; exit 2; }
[ "$steps" -ge 3 ] || { echo "--steps must be at least 3 (the first two are warm-up)" >&2; exit 2; }
bin=target/release/storyvis
[ -x $bin ] || { echo "build first: scripts/setup --no-run" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
[ -z "$threads" ] || export OMP_NUM_THREADS=$threads
procs=()
[ "$nproc" = 1 ] || procs=(--nproc "$nproc")
[ -z "$threads" ] || procs+=(--threads "$threads")
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
t0=$(date +%s.%N)
$bin train --preset "$preset" --data "$data" --runs "$runs" --device "$device" "${procs[@]}" ${sets[@]+"${sets[@]}"} \
    --set max_steps="$steps" --set log_every=1 --set sample_every=1000000 --set checkpoint_every=1000000 > "$runs/log" 2>&1 ||
    { cat "$runs/log" >&2; exit 1; }
total=$(echo "$(date +%s.%N) - $t0" | bc)
python3 - "$runs"/*/stats.jsonl "$preset" "$steps" "$total" "${OMP_NUM_THREADS:-all}" "$device" "$nproc" <<'EOF'
import json, statistics, sys
path, preset, steps, total, threads, device, nproc = sys.argv[1:]
if nproc != "1":
    threads = f"{nproc} processes × {threads}"
s = [json.loads(l)["seconds_per_iteration"] for l in open(path)]
rest = s[2:]
first = float(total) - sum(s)
print(f"| {preset} | {device}, {threads} thread(s) | {len(rest)} of {steps} | {statistics.median(rest):.2f} s/it "
      f"(range {min(rest):.2f}–{max(rest):.2f}) | {first:.0f} s outside the iterations (loading, caption embeddings, final checkpoint) |")
EOF
