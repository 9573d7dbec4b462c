#!/usr/bin/env bash
# The learned word encoder against the pretrained all-MiniLM-L6-v2 on words a story model never
# trained on. Trains the story model with `text=minilm` by the shipped model's own procedure
# (scripts/train-default-model --set text=minilm: storygan-quality on data/clevr-sv-10k-v3, the
# same time budget, the checkpoint with the best classifier F1), then scores it beside the
# shipped model (models/storygan-default, the word encoder) on the same 1,000 unseen stories
# worded two ways: the standard templates, and `prepare clevr-sv --phrasing paraphrase` (the same
# scenes and images, other words).
#
#   bench/minilm_paraphrase.sh [--seconds 7200] [--pool mean|attention] [--skip-train]
#
# --pool attention trains the variant that attends over MiniLM's token states (`--set
# text_pool=attention`) into models/storygan-minilm-attn (runs/minilm-attn) instead of the
# pooled-embedding model models/storygan-minilm (runs/minilm-model). --skip-train trains
# nothing. Every MiniLM model present is scored beside the word model. Writes
# runs/minilm-paraphrase/ and docs/minilm/eval.md (both tables, the command and the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=7200 train=1 pool=mean
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --pool) pool=$2; shift 2 ;;
        --skip-train) train=0; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
bin=${STORYVIS_BIN:-target/release/storyvis}
[ -x "$bin" ] || { echo "build first: scripts/setup --no-run" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} STORYVIS_BIN=$bin
. bench/variants.sh
started=$(date +%s)
heldout() { if [ "$1" = paraphrase ]; then echo data/clevr-sv-heldout-s7-paraphrase; else echo data/clevr-sv-heldout-s7; fi; }
# Unseen stories: another seed than the training set's (0), every story held out.
for v in standard paraphrase; do
    d=$(heldout $v)
    [ -f "$d/manifest.jsonl" ] || $bin prepare clevr-sv --out "$d" --stories 1000 --seed 7 --split 0 --phrasing $v
done
if [ $train = 1 ]; then
    case $pool in
        mean) scripts/train-default-model --seconds "$seconds" --set text=minilm --out models/storygan-minilm --runs runs/minilm-model ;;
        attention) scripts/train-default-model --seconds "$seconds" --set text=minilm --set text_pool=attention --out models/storygan-minilm-attn --runs runs/minilm-attn ;;
        *) echo "--pool is mean or attention" >&2; exit 2 ;;
    esac
fi
compare=()
for m in models/storygan-minilm models/storygan-minilm-attn; do
    [ -d "$m" ] && compare+=(--compare "$m")
done
mkdir -p docs/minilm
report=docs/minilm/eval.md
: > "$report"
for v in standard paraphrase; do
    out=runs/minilm-paraphrase/$v
    $bin eval --checkpoint models/storygan-default "${compare[@]}" --data "$(heldout $v)" --stories 1000 --out "$out"
    { echo "## $v wording ($(heldout $v))"; echo; cat "$out/eval.md"; echo; } >> "$report"
done
{
    echo "Made by \`bench/minilm_paraphrase.sh --seconds $seconds --pool $pool$([ $train = 1 ] || echo ' --skip-train')\`"
    echo "on $(machine_description) in $(( $(date +%s) - started )) s."
} >> "$report"
echo "wrote $report"
