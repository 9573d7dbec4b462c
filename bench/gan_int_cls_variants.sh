#!/usr/bin/env bash
# The four variants of Reed et al. 2016 (GAN, GAN-CLS, GAN-INT, GAN-INT-CLS) side by side at one
# budget: same preset, data, seed and iterations, the switches `cls` and `int` set per variant.
# Trains them two at a time (one thread each), scores them with `storyvis eval` on the same
# held-out images and seeds, and copies the last sample sheets, loss curves and an
# interpolation figure of each under docs/gan-int-cls/.
#
#   bench/gan_int_cls_variants.sh [--steps N] [--preset P] [--data DIR] [--items N] [--seeds K]
#
# Defaults: gan-int-cls-small, 3000 iterations, data/clevr-captions-10k (made if missing),
# 1000 held-out images, 1 seed. Needs the text encoder the preset names (see its header) and
# the attribute classifier at models/clevr-classifier. Runs go to runs/gan-int-cls/<variant>/.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=3000 preset=gan-int-cls-small data=data/clevr-captions-10k items=1000 seeds=1
. bench/variants.sh
variant_options "$@"
bin=target/release/storyvis
[ -x $bin ] || { echo "build first: scripts/setup --no-run" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} OMP_NUM_THREADS=1
[ -d "$data" ] || $bin prepare clevr-captions --out "$data" --images 10000 --seed 0
mkdir -p runs/gan-int-cls docs/gan-int-cls
train() { # variant cls int
    local root=runs/gan-int-cls/$1 t0
    t0=$(date +%s)
    $bin train --preset "$preset" --data "$data" --runs "$root" --set cls="$2" --set int="$3" \
        --set max_steps="$steps" --set sample_every="$steps" --set checkpoint_every="$steps" --set log_every=10 > "runs/gan-int-cls/$1.log" 2>&1
    echo "$1: $(( $(date +%s) - t0 )) s" >> runs/gan-int-cls/times.txt
}
started=$(date +%s)
train gan false false & train gan-cls true false & wait
train gan-int false true & train gan-int-cls true true & wait
runs=()
for v in gan gan-cls gan-int gan-int-cls; do runs+=("runs/gan-int-cls/$v/00000-$preset"); done
OMP_NUM_THREADS=2 $bin eval --checkpoint "${runs[0]}" --compare "${runs[@]:1}" --data "$data" --stories "$items" --seeds "$seeds" \
    --out runs/gan-int-cls/eval
for v in gan gan-cls gan-int gan-int-cls; do
    run=runs/gan-int-cls/$v/00000-$preset
    cp "$run/loss.png" docs/gan-int-cls/$v-loss.png
    cp "$(ls "$run"/samples/step-*.png | tail -1)" docs/gan-int-cls/$v-samples.png
    OMP_NUM_THREADS=2 $bin interpolate --checkpoint "$run" --from "a large red metal cube." --to "a small blue rubber sphere." \
        --steps 8 --seeds 0-1 --out "runs/gan-int-cls/$v-interpolate" > /dev/null
    cp "runs/gan-int-cls/$v-interpolate/interpolate-seed0000.png" docs/gan-int-cls/$v-interpolate.png
done
cp runs/gan-int-cls/eval/eval.md docs/gan-int-cls/eval.md
machine=$(machine_description)
{
    echo
    echo "Made by \`bench/gan_int_cls_variants.sh --steps $steps --preset $preset --data $data --items $items --seeds $seeds\`"
    echo "on $machine in $(( $(date +%s) - started )) s (training times: $(tr '\n' ' ' < runs/gan-int-cls/times.txt))."
} >> docs/gan-int-cls/eval.md
echo "wrote docs/gan-int-cls/"
