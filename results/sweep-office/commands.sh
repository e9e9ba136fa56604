#!/bin/bash
# The reduced office search of issue 12, as run (first started with TRIALS=8, stopped after 9 trials per
# mode and continued with TRIALS=4: the study keeps what was done) (see results/sweep-office/README.md for what was cut).
# One Dask cluster (scheduler + 2 single-threaded workers) on the shared 2-core machine; the sparse-
# and dense-Adam sweeps run side by side against it through --scheduler.
set -e
cd "$(dirname "$0")/../.."
OUT=results/sweep-office
SPACE="--space paper --alpha 1.0,1.04,1.08,1.12,1.16,1.2 --tau 1,1e-2,1e-4,1e-6"
COMMON="--dataset office --methods bpr-only,ew,pmtrec $SPACE --epochs 100 --pruner median --prune-startup 3 --prune-warmup 5"
nice -n 10 dask scheduler --host 127.0.0.1 --port 8786 --no-dashboard > $OUT/scheduler.log 2>&1 &
SCHED=$!
sleep 5
NUMBA_NUM_THREADS=1 nice -n 10 dask worker tcp://127.0.0.1:8786 --nworkers 2 --nthreads 1 --no-dashboard > $OUT/workers.log 2>&1 &
WORK=$!
trap 'kill $WORK; sleep 3; kill $SCHED' EXIT
sleep 10
nice -n 10 pmtnumba sweep run $OUT/sparse $COMMON --adam sparse --trials ${TRIALS:-4} --scheduler tcp://127.0.0.1:8786 > $OUT/sparse.log 2>&1 &
S1=$!
nice -n 10 pmtnumba sweep run $OUT/dense $COMMON --adam dense --trials ${TRIALS:-4} --scheduler tcp://127.0.0.1:8786 > $OUT/dense.log 2>&1 &
S2=$!
wait $S1 $S2
for mode in sparse dense; do  # both reports at once on the same cluster
  nice -n 10 pmtnumba sweep report $OUT/$mode --seeds ${SEEDS:-1,2} ${SENS:---no-sensitivity} ${ABL:---no-ablation} --scheduler tcp://127.0.0.1:8786 > $OUT/$mode-report.log 2>&1 &
done
wait
