#!/usr/bin/env bash
# The quality levers of StoryGAN measured by ablation at one budget: each row trains the same
# preset, data, seed and iterations with one more lever (--set), keeps a moving average of the
# generator (ema_half_life, which changes nothing in training), and is scored by `storyvis eval`
# on the same held-out stories and seeds twice: with the trained weights and with the average.
#
#   bench/ablate_storygan.sh [--steps N] [--preset P] [--data DIR] [--stories N] [--seeds K]
#                            [--ema H] [--standing N] [--device D] [ROW ...]
#
# A ROW is a name and its settings, "name:key=value,key=value" ("baseline:" for none). Default
# rows: baseline, previous (previous=generated), previous+added (and aux_added_weight=1).
# Defaults: storygan-small, 1000 iterations, data/clevr-sv-10k-v3 (made if missing), 1000
# held-out stories, 2 seeds, half-life 100, the average's batch-norm statistics copied from the
# trained generator (--standing N: re-estimated over N batches, ema_standing), CPU. Runs go to
# runs/ablate/<name>/ (an interrupted bench resumes them); the tables to
# runs/ablate/eval-{trained,average}/eval.md.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=1000 preset=storygan-small data=data/clevr-sv-10k-v3 stories=1000 seeds=2 ema=100 standing=0 device=cpu
rows=()
while [ $# -gt 0 ]; do
    case $1 in
        --steps) steps=$2; shift ;; --preset) preset=$2; shift ;; --data) data=$2; shift ;;
        --stories) stories=$2; shift ;; --seeds) seeds=$2; shift ;; --ema) ema=$2; shift ;;
        --standing) standing=$2; shift ;;
        --device) device=$2; shift ;;
        --*) echo "unknown option $1" >&2; exit 2 ;;
        *) rows+=("$1") ;;
    esac
    shift
done
[ ${#rows[@]} -gt 0 ] || rows=("baseline:" "previous:previous=generated" "previous+added:previous=generated,aux_added_weight=1")
bin=target/release/storyvis
[ -x $bin ] || { echo "build first: scripts/setup --no-run" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
[ -d "$data" ] || $bin prepare clevr-sv --out "$data" --stories 10000 --seed 0
runs=()
for row in "${rows[@]}"; do
    name=${row%%:*} settings=${row#*:}
    root=runs/ablate/$name
    run=$root/00000-$preset
    sets=(--set max_steps="$steps" --set ema_half_life="$ema" --set ema_standing="$standing")
    IFS=, read -ra kv <<< "$settings"
    for s in "${kv[@]}"; do [ -n "$s" ] && sets+=(--set "$s"); done
    t0=$(date +%s)
    if [ -f "$run/checkpoints/latest" ]; then
        $bin train --preset "$preset" --data "$data" --runs "$root" --resume "$run" --set max_steps="$steps" --set ema_standing="$standing" --device "$device"
    else
        $bin train --preset "$preset" --data "$data" --runs "$root" "${sets[@]}" --device "$device"
    fi
    echo "$name: $(( $(date +%s) - t0 )) s" >> runs/ablate/times.txt
    runs+=("$run")
done
for weights in trained average; do
    $bin eval --checkpoint "${runs[0]}" --compare "${runs[@]:1}" --data "$data" --stories "$stories" --seeds "$seeds" \
        --weights $weights --device "$device" --out runs/ablate/eval-$weights
done
echo "wrote runs/ablate/eval-trained/eval.md and runs/ablate/eval-average/eval.md"
