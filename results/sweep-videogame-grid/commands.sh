#!/bin/bash
# Issue 12, the next step named by results/sweep-videogame/README.md: the exhaustive grid
# lr {0.01, 0.005, 0.001} x wd {1e-4, 1e-5, 1e-6, 1e-8} (12 configurations per method) on videogame
# (MF, the paper's tasks bpr + coview + cobuy), dense Adam (the paper's setting), BPR only / EW /
# PMTRec (alpha 1.1, tau 1e-2 fixed: the values of results/tuned-videogame), median pruner with 4
# start-up trials and 25 warm-up epochs, 100 epochs max, patience 10, seed 0; then `sweep report`
# re-runs each method's best configuration on SEEDS (default 0-4); REPORT replaces its flags
# (default --no-sensitivity --no-ablation). METHODS: the methods to search (default bpr-only,ew,pmtrec;
# a later call with other methods adds them to the same studies' directory).
# One Dask cluster (scheduler + 2 single-threaded workers) at nice 19 on the shared 2-core machine.
set -e
cd "$(dirname "$0")/../.."
OUT=results/sweep-videogame-grid
MODE=${MODE:-dense}
PORT=${PORT:-18786}
COMMON="--dataset videogame --methods ${METHODS:-bpr-only,ew,pmtrec} --lr 0.01,0.005,0.001 --wd 1e-4,1e-5,1e-6,1e-8 --alpha 1.1 --tau 1e-2 --epochs 100 --pruner median --prune-startup 4 --prune-warmup 25"
nice -n 19 .venv/bin/dask scheduler --host 127.0.0.1 --port $PORT --no-dashboard > $OUT/scheduler-$MODE.log 2>&1 &
SCHED=$!
sleep 5
NUMBA_NUM_THREADS=1 nice -n 19 .venv/bin/dask worker tcp://127.0.0.1:$PORT --nworkers 2 --nthreads 1 --no-dashboard > $OUT/workers-$MODE.log 2>&1 &
WORK=$!
trap 'kill $WORK; sleep 3; kill $SCHED' EXIT
sleep 10
nice -n 19 .venv/bin/pmtnumba sweep run $OUT/$MODE $COMMON --adam $MODE --scheduler tcp://127.0.0.1:$PORT > $OUT/$MODE.log 2>&1
nice -n 19 .venv/bin/pmtnumba sweep report $OUT/$MODE --seeds ${SEEDS:-0,1,2,3,4} ${REPORT:---no-sensitivity --no-ablation} --scheduler tcp://127.0.0.1:$PORT > $OUT/$MODE-report.log 2>&1
