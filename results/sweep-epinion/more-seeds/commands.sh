#!/bin/bash
# Seeds 1 and 2 for the leading methods of epinion's Table 2 (issue 12), outside the sweep report
# (which would re-run all ten methods): `pmtnumba compare` at each method's configuration chosen by
# the sweep (dense/report/best.csv, sparse/report/best.csv) and the sweep's run settings (150
# epochs, validation every 3, patience 4, 1 thread). Seed 0 of each is the study's trial.
# Dense: PMTRec and EW (BPR only's seeds 1 and 2 are in dense/report/seeds/). Sparse: EW, BPR only
# and PMTRec, all three at wd 1e-4. The three commands ran at once, at nice 19.
set -e
cd "$(dirname "$0")/../../.."
OUT=results/sweep-epinion/more-seeds
RUN="nice -n 19 .venv/bin/pmtnumba compare --dataset epinion --lr 0.01 --alpha 1.1 --tau 1e-2 --epochs 150
     --patience 4 --eval-every 3 --threads 1 --no-run-dirs --device cpu"
$RUN --methods pmtrec,ew --seeds 1,2 --adam dense --wd 1e-6 --out $OUT/dense-seeds12 > $OUT/dense-seeds12.log 2>&1 &
for s in 1 2; do
  $RUN --methods ew,bpr-only,pmtrec --seeds $s --adam sparse --wd 1e-4 --out $OUT/sparse-seed$s > $OUT/sparse-seed$s.log 2>&1 &
done
wait
