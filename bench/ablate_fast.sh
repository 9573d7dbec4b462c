#!/usr/bin/env bash
# The fast presets' ablation at one wall-clock budget (the ablation RESULTS.md reports for both
# families: the same wall-clock budget, the same evaluation): the faithful preset, the fast preset, the
# fast preset with the frozen EfficientNet-Lite0 discriminator, and the fast preset without
# DiffAugment, without the attribute head, without mode seeking. Every row trains for the same
# seconds (`--set max_seconds=S`, the training loop's own clock; one run at a time, so each has
# the machine's cores alone) and is scored by the same `storyvis eval` on data rendered fresh
# with another seed.
#
#   bench/ablate_fast.sh tganc|gan-int-cls [SECONDS] [ROWS…]
#
# SECONDS defaults to 3600 (an hour a row: about 6 hours a family); ROWS to all of
# faithful fast backbone no-diffaugment no-attributes no-mode-seeking. Needs, for tganc,
# data/bouncing-mnist1 and data/bm-777 (`storyvis prepare bouncing-mnist --digits 1 --clips
# 10000 --out data/bouncing-mnist1`; `… --clips 2000 --seed 777 --out data/bm-777`) and
# models/bouncing-classifier1; for gan-int-cls, data/clevr-captions-10k and data/cc-777
# (`storyvis prepare clevr-captions --images 10000 --seed 0`; `… --images 2000 --seed 777`),
# models/text-encoder-clevr-minilm and models/text-encoder-clevr (the presets' headers say
# how each is made) and models/clevr-classifier. Runs go to runs/ablate-FAMILY/ROW/, scores to
# runs/ablate-FAMILY/ROW-eval/eval.md, a summary to runs/ablate-FAMILY/summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
family=${1:?"usage: bench/ablate_fast.sh tganc|gan-int-cls [SECONDS] [ROWS…]"}
seconds=${2:-3600}
shift $(( $# < 2 ? $# : 2 ))
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(faithful fast backbone no-diffaugment no-attributes no-mode-seeking)
bin=target/release/storyvis
[ -x $bin ] || { echo "build first: scripts/setup --no-run" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
case $family in
  tganc)
    fast=tganc-fast faithful=tganc-mnist1 data=data/bouncing-mnist1 test=data/bm-777
    score=(--classifier models/bouncing-classifier1) extra=() ;;
  gan-int-cls)
    fast=gan-int-cls-fast faithful=gan-int-cls-clevr data=data/clevr-captions-10k test=data/cc-777
    score=(--seeds 2 --stories 200) extra=() ;;
  *) echo "ablate_fast: unknown family '$family' (tganc or gan-int-cls)" >&2; exit 2 ;;
esac
out=runs/ablate-$family
mkdir -p "$out"
for row in "${rows[@]}"; do
  preset=$fast sets=()
  case $row in
    faithful) preset=$faithful ;;
    fast) ;;
    backbone) sets=(--set d_backbone=efficientnet-lite0) ;;
    no-diffaugment) sets=(--set 'diffaugment=') ;;
    no-attributes) sets=(--set aux_attributes=0) ;;
    no-mode-seeking) sets=(--set mode_seeking=0 --set mode_seeking_cap=0) ;;
    *) echo "ablate_fast: unknown row '$row'" >&2; exit 2 ;;
  esac
  rm -rf "${out:?}/$row" "$out/$row-eval"
  $bin train --preset "$preset" --data "$data" --runs "$out/$row" --set max_seconds="$seconds" --set max_steps=1000000 \
      --set checkpoint_every=1000000 "${sets[@]}" "${extra[@]}" > "$out/$row.log" 2>&1
  ckpt=$(ls -d "$out/$row"/*/checkpoints/step-* | tail -1)
  $bin eval --checkpoint "$ckpt" --data "$test" "${score[@]}" --out "$out/$row-eval" > "$out/$row-eval.log" 2>&1
  echo "$row: $(basename "$ckpt") ($preset ${sets[*]})" | tee -a "$out/summary.txt"
done
