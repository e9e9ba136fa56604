#!/bin/bash
# Issue 12 on epinion, cut to fit one session on the shared 2-core machine (the README says what
# was cut and why): BPR only, EW and PMTRec (METHODS), MF, the paper's tasks bpr + social +
# category, Adam in MODE (default dense: the paper's setting). The exhaustive grid lr 0.01 x
# wd {1e-4, 1e-6} (PMTRec at alpha 1.1 with tau {1e-2, 1e-6}); validation every 3 epochs
# (epinion's full-ranking evaluation, 22k users x 296k items, costs ~10 single-threaded seconds
# against ~2 s per training epoch), patience 4 validations (12 epochs), at most 150 epochs,
# median pruner with 2 start-up trials and 15 warm-up epochs, seed 0; then `sweep report`
# re-runs each method's best configuration on SEEDS (default 0,1,2) with the ablation (REPORT
# replaces the report's flags, default --no-sensitivity). Resumable: the same command continues.
# One Dask cluster (scheduler + 2 single-threaded workers) at nice 19, or the running one at
# SCHEDULER (tcp://HOST:PORT) when set. TAU replaces PMTRec's tau values (default 1e-2,1e-6);
# SPACE names a JSON search-space file (per-method values, docs: `pmtnumba sweep run --help`).
set -e
cd "$(dirname "$0")/../.."
OUT=results/sweep-epinion
MODE=${MODE:-dense}
PORT=${PORT:-18792}
METHODS=${METHODS:-bpr-only,ew,pmtrec}
ADDR=${SCHEDULER:-tcp://127.0.0.1:$PORT}
if [ -z "$SCHEDULER" ]; then
  nice -n 19 .venv/bin/dask scheduler --host 127.0.0.1 --port $PORT --no-dashboard >> $OUT/scheduler-$MODE.log 2>&1 &
  SCHED=$!
  sleep 5
  NUMBA_NUM_THREADS=1 nice -n 19 .venv/bin/dask worker $ADDR --nworkers 2 --nthreads 1 --no-dashboard >> $OUT/workers-$MODE.log 2>&1 &
  WORK=$!
  trap 'kill $WORK; sleep 3; kill $SCHED' EXIT
  sleep 10
fi
nice -n 19 .venv/bin/pmtnumba sweep run $OUT/$MODE --dataset epinion --methods $METHODS --lr 0.01 --wd 1e-4,1e-6 \
  --alpha 1.1 --tau ${TAU:-1e-2,1e-6} ${SPACE:+--space $SPACE} --epochs 150 --eval-every 3 --patience 4 --pruner median --prune-startup 2 \
  --prune-warmup 15 --adam $MODE --scheduler $ADDR >> $OUT/$MODE.log 2>&1
nice -n 19 .venv/bin/pmtnumba sweep report $OUT/$MODE --seeds ${SEEDS:-0,1,2} ${REPORT:---no-sensitivity} \
  --scheduler $ADDR >> $OUT/$MODE-report.log 2>&1
