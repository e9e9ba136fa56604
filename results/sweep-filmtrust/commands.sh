#!/bin/bash
# A complete small Table-2 pipeline (search, seed re-runs, ablation, sensitivity) in both Adam modes on
# filmtrust (1,508 users, 2,071 items, 35,494 interactions; tasks bpr + social), the largest that fit
# this session's compute; see results/sweep-filmtrust/README.md. One Dask cluster (scheduler + 2
# single-threaded workers, nice 10) on the shared 2-core machine; both modes run side by side on it.
set -e
cd "$(dirname "$0")/../.."
OUT=results/sweep-filmtrust
SPACE="--space paper --alpha 1.0,1.04,1.08,1.12,1.16,1.2 --tau 1,1e-2,1e-4,1e-6"
COMMON="--dataset filmtrust --methods bpr-only,ew,pmtrec $SPACE --trials 8 --epochs 100 --pruner median --prune-startup 3 --prune-warmup 5"
rm -f $OUT/scheduler.json
nice -n 10 dask scheduler --host 127.0.0.1 --port 0 --no-dashboard --scheduler-file $OUT/scheduler.json > $OUT/scheduler.log 2>&1 &
SCHED=$!
while [ ! -s $OUT/scheduler.json ]; do sleep 1; done
ADDR=$(python -c "import json; print(json.load(open('$OUT/scheduler.json'))['address'])")
NUMBA_NUM_THREADS=1 nice -n 10 dask worker $ADDR --nworkers 2 --nthreads 1 --no-dashboard > $OUT/workers.log 2>&1 &
WORK=$!
trap 'kill $WORK; sleep 3; kill $SCHED' EXIT
sleep 10
P=()
for mode in sparse dense; do  # re-running a finished sweep only says "nothing to do"
  nice -n 10 pmtnumba sweep run $OUT/$mode $COMMON --adam $mode --scheduler $ADDR >> $OUT/$mode.log 2>&1 &
  P+=($!)
done
wait "${P[@]}"
P=()
for mode in sparse dense; do
  nice -n 10 pmtnumba sweep report $OUT/$mode --seeds 0,1,2 --scheduler $ADDR >> $OUT/$mode-report.log 2>&1 &
  P+=($!)
done
wait "${P[@]}"
