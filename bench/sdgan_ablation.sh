#!/usr/bin/env bash
# SDGAN's ablation (Yin et al., CVPR 2019, Table 2: baseline, +siamese, +SCBN, both) at one
# budget: the same preset, data, seed and iterations, the switches `siamese` and `scbn` set per
# variant. Trains them two at a time (one thread each), scores them with `storyvis eval` on the
# same held-out images and seeds, and copies the last sample sheets and loss curves under
# docs/sdgan/.
#
#   bench/sdgan_ablation.sh [--steps N] [--preset P] [--data DIR] [--items N] [--seeds K]
#
# Defaults: sdgan-small, 1000 iterations, data/clevr-captions-128 (made if missing), 1000
# held-out images, 1 seed. Needs the text encoder the preset names (see its header) and the
# attribute classifier at models/clevr-classifier. Runs go to runs/sdgan/<variant>/.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=1000 preset=sdgan-small data=data/clevr-captions-128 items=1000 seeds=1
. bench/variants.sh
variant_options "$@"
bin=${STORYVIS_BIN:-target/release/storyvis}
[ -x "$bin" ] || { echo "build first: scripts/setup --no-run" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} OMP_NUM_THREADS=1
[ -d "$data" ] || $bin prepare clevr-captions --out "$data" --images 10000 --size 128 --seed 0
mkdir -p runs/sdgan docs/sdgan
train() { # variant siamese scbn
    local root=runs/sdgan/$1 t0
    t0=$(date +%s)
    $bin train --preset "$preset" --data "$data" --runs "$root" --set siamese="$2" --set scbn="$3" \
        --set max_steps="$steps" --set sample_every="$steps" --set checkpoint_every="$steps" --set log_every=10 > "runs/sdgan/$1.log" 2>&1
    echo "$1: $(( $(date +%s) - t0 )) s" >> runs/sdgan/times.txt
}
started=$(date +%s)
variants=(baseline siamese scbn both)
train baseline false none & train siamese true none & wait
train scbn false both & train both true both & wait
runs=()
for v in "${variants[@]}"; do runs+=("runs/sdgan/$v/00000-$preset"); done
OMP_NUM_THREADS=2 $bin eval --checkpoint "${runs[0]}" --compare "${runs[@]:1}" --data "$data" --stories "$items" --seeds "$seeds" \
    --out runs/sdgan/eval
for v in "${variants[@]}"; do
    run=runs/sdgan/$v/00000-$preset
    cp "$run/loss.png" docs/sdgan/$v-loss.png
    cp "$(ls "$run"/samples/step-*.png | tail -1)" docs/sdgan/$v-samples.png
done
cp runs/sdgan/eval/eval.md docs/sdgan/eval.md
machine=$(machine_description)
{
    echo
    echo "Made by \`bench/sdgan_ablation.sh --steps $steps --preset $preset --data $data --items $items --seeds $seeds\`"
    echo "on $machine in $(( $(date +%s) - started )) s (training times: $(tr '\n' ' ' < runs/sdgan/times.txt))."
} >> docs/sdgan/eval.md
echo "wrote docs/sdgan/"
