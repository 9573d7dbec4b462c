#!/usr/bin/env bash
# StoryGAN's Table 1 reproduced: trains ImageGAN, SVC, SVFN and StoryGAN with one budget (same
# preset, iterations, seed and data), scores them with `storyvis eval` on the same held-out
# stories and seeds, and writes RESULTS.md (our table beside the paper's SSIM, loss curves and a
# sample grid per model under docs/table1/).
#
#   bench/table1.sh [--steps N] [--preset P] [--data DIR] [--stories N] [--seeds K] [--device D]
#
# Defaults: storygan-small, 2000 iterations, data/clevr-sv-10k (made if missing), 1000 held-out
# stories, 1 seed, CPU. Runs go to runs/table1/<variant>/; an interrupted bench resumes them.
# Needs the classifier at models/clevr-classifier (`storyvis train-classifier`).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=2000 preset=storygan-small data=data/clevr-sv-10k stories=1000 seeds=1 device=cpu
while [ $# -gt 0 ]; do
    case $1 in
        --steps) steps=$2 ;; --preset) preset=$2 ;; --data) data=$2 ;;
        --stories) stories=$2 ;; --seeds) seeds=$2 ;; --device) device=$2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
bin=target/release/storyvis
[ -x $bin ] || { echo "build first: scripts/setup --no-run" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
[ -d "$data" ] || $bin prepare clevr-sv --out "$data" --stories 10000 --seed 0
started=$(date +%s)
runs=()
for variant in imagegan svc svfn storygan; do
    root=runs/table1/$variant
    run=$root/00000-$preset
    t0=$(date +%s)
    if [ -f "$run/checkpoints/latest" ]; then
        $bin train --preset "$preset" --data "$data" --runs "$root" --resume "$run" --set max_steps="$steps" --device "$device"
    else
        $bin train --preset "$preset" --data "$data" --runs "$root" --set variant=$variant --set max_steps="$steps" --device "$device"
    fi
    echo "$variant: $(( $(date +%s) - t0 )) s" >> runs/table1/times.txt
    runs+=("$run")
done
$bin eval --checkpoint "${runs[0]}" --compare "${runs[@]:1}" --data "$data" --stories "$stories" --seeds "$seeds" \
    --device "$device" --out runs/table1/eval
mkdir -p docs/table1
for variant in imagegan svc svfn storygan; do
    run=runs/table1/$variant/00000-$preset
    cp "$run/loss.png" docs/table1/$variant-loss.png
    cp "$(ls "$run"/samples/step-*.png | tail -1)" docs/table1/$variant-samples.png
done
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
python3 bench/table1_report.py runs/table1/eval/eval.json \
    --command "bench/table1.sh --steps $steps --preset $preset --data $data --stories $stories --seeds $seeds --device $device" \
    --machine "$machine" --device "$device" --seconds $(( $(date +%s) - started )) --into RESULTS.md
echo "wrote RESULTS.md"
