#!/bin/bash
# Epinion's sparse-Adam ablation (Figure 4) again with a longer patience: PMTRec and its two
# ablations at PMTRec's chosen sparse configuration (lr 0.01, wd 1e-4, alpha 1.1, tau 1e-2), seed 0,
# the sweep's run settings except patience 10 validations (30 epochs) instead of 4. The sweep's
# ablation rows stopped at epoch 36 in sparse Adam's slow start (README). Three processes at once.
set -e
cd "$(dirname "$0")/../../.."
OUT=results/sweep-epinion/sparse-ablation-p10
# (each variant takes only the parameter it does not fix)
for spec in "pmtrec --alpha 1.1 --tau 1e-2" "pmtrec-nofocus --tau 1e-2" "pmtrec-nobalance --alpha 1.1"; do
  set -- $spec
  m=$1; shift
  nice -n 5 .venv/bin/pmtnumba compare --dataset epinion --methods $m "$@" --seeds 0 --adam sparse --lr 0.01 --wd 1e-4 \
    --epochs 150 --patience 10 --eval-every 3 --threads 1 --no-run-dirs --device cpu \
    --out $OUT/$m > $OUT/$m.log 2>&1 &
done
wait
