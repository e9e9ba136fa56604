#!/bin/bash
# Reduced Table-2 search of issue 12 on videogame (MF, the paper's tasks bpr + coview + cobuy), both
# Adam modes side by side on one Dask cluster (scheduler + 2 single-threaded workers, nice 19: the
# shared 2-core machine was also running four developers' builds and tests).
# Space: the paper's lr x wd grid for every method; PMTRec also alpha {1.0,1.04,...,1.2} x tau {1,1e-2,1e-4,1e-6}.
# TPE with TRIALS trials per method (default 4), median pruner, 100 epochs max, patience 10, seed 0.
set -e
cd "$(dirname "$0")/../.."
OUT=results/sweep-videogame
SPACE="--space paper --alpha 1.0,1.04,1.08,1.12,1.16,1.2 --tau 1,1e-2,1e-4,1e-6"
COMMON="--dataset videogame --methods all $SPACE --epochs 100 --pruner median --prune-startup 2 --prune-warmup 5"
nice -n 19 .venv/bin/dask scheduler --host 127.0.0.1 --port 18786 --no-dashboard > $OUT/scheduler.log 2>&1 &
SCHED=$!
sleep 5
NUMBA_NUM_THREADS=1 nice -n 19 .venv/bin/dask worker tcp://127.0.0.1:18786 --nworkers 2 --nthreads 1 --no-dashboard > $OUT/workers.log 2>&1 &
WORK=$!
trap 'kill $WORK; sleep 3; kill $SCHED' EXIT
sleep 10
nice -n 19 .venv/bin/pmtnumba sweep run $OUT/sparse $COMMON --adam sparse --trials ${TRIALS:-4} --scheduler tcp://127.0.0.1:18786 > $OUT/sparse.log 2>&1 &
S1=$!
nice -n 19 .venv/bin/pmtnumba sweep run $OUT/dense $COMMON --adam dense --trials ${TRIALS:-4} --scheduler tcp://127.0.0.1:18786 > $OUT/dense.log 2>&1 &
S2=$!
wait $S1 $S2
for mode in sparse dense; do
  nice -n 19 .venv/bin/pmtnumba sweep report $OUT/$mode --seeds ${SEEDS:-0,1,2} --scheduler tcp://127.0.0.1:18786 > $OUT/$mode-report.log 2>&1 &
done
wait
