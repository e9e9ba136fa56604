#!/bin/bash
# Issue 12 on office, as results/sweep-videogame-grid/commands.sh on videogame: the exhaustive grid
# lr {0.01, 0.005, 0.001} x wd {1e-3, 1e-4, 1e-5, 1e-6} (12 configurations per method; office's wd
# grid is one decade stronger than videogame's, because wd 1e-4 was office's best so far and the
# edge of results/table3's grid) for every method of Table 2 (METHODS, default all ten), MF, the
# paper's tasks bpr + align_uniform + rating, Adam in MODE (dense: the paper's setting; sparse),
# PMTRec at alpha 1.1 with tau {1e-2, 1e-6} (24 configurations), median pruner with 4 start-up
# trials and 25 warm-up epochs, 100 epochs max, patience 10, seed 0; then `sweep report` re-runs
# each method's best configuration on SEEDS (default 0-4) with the ablation (REPORT replaces the
# report's flags, default --no-sensitivity). Resumable: the same command continues both steps.
# One Dask cluster (scheduler + 2 single-threaded workers) at nice 19 on the shared 2-core machine.
set -e
cd "$(dirname "$0")/../.."
OUT=results/sweep-office-grid
MODE=${MODE:-dense}
PORT=${PORT:-18791}
METHODS=${METHODS:-bpr-only,ew,pmtrec,rlw,graddrop,pcgrad,gradvac,cagrad,aligned-mtl,nash-mtl}
ADDR=tcp://127.0.0.1:$PORT
nice -n 19 .venv/bin/dask scheduler --host 127.0.0.1 --port $PORT --no-dashboard >> $OUT/scheduler-$MODE.log 2>&1 &
SCHED=$!
sleep 5
NUMBA_NUM_THREADS=1 nice -n 19 .venv/bin/dask worker $ADDR --nworkers 2 --nthreads 1 --no-dashboard >> $OUT/workers-$MODE.log 2>&1 &
WORK=$!
trap 'kill $WORK; sleep 3; kill $SCHED' EXIT
sleep 10
nice -n 19 .venv/bin/pmtnumba sweep run $OUT/$MODE --dataset office --methods $METHODS --lr 0.01,0.005,0.001 \
  --wd 1e-3,1e-4,1e-5,1e-6 --alpha 1.1 --tau 1e-2,1e-6 --epochs 100 --pruner median --prune-startup 4 \
  --prune-warmup 25 --adam $MODE --scheduler $ADDR >> $OUT/$MODE.log 2>&1
nice -n 19 .venv/bin/pmtnumba sweep report $OUT/$MODE --seeds ${SEEDS:-0,1,2,3,4} ${REPORT:---no-sensitivity} \
  --scheduler $ADDR >> $OUT/$MODE-report.log 2>&1
