#!/bin/bash
# Issue 12, Figure 5 on videogame: PMTRec's validation / test Recall@20 against alpha and against tau.
# An exhaustive grid alpha {1.0, 1.05, 1.1, 1.15, 1.2} x tau {1, 1e-2, 1e-4, 1e-6} (20 trials) at the
# lr / wd that this directory's grid chose for PMTRec in MODE (dense: lr 0.005, wd 1e-6; sparse:
# lr 0.005, wd 1e-5), the same pruner and budget as commands.sh; then `sweep report --seeds 0
# --no-ablation`, whose sensitivity.csv / sensitivity.png vary alpha, then tau, around the grid's best
# point (points the grid pruned are trained to the end on seed 0).
# One Dask cluster (scheduler + 2 single-threaded workers) at nice 19. Optional: EPOCHS, PORT, OUT.
set -e
cd "$(dirname "$0")/../.."
MODE=${MODE:-dense}
case $MODE in
  dense) LR=0.005 WD=1e-6 ;;
  sparse) LR=0.005 WD=1e-5 ;;
  *) echo "MODE must be dense or sparse" >&2; exit 2 ;;
esac
OUT=${OUT:-results/sweep-videogame-grid/fig5-$MODE}
PORT=${PORT:-18788}
mkdir -p "$OUT"
ADDR=tcp://127.0.0.1:$PORT
nice -n 19 .venv/bin/dask scheduler --host 127.0.0.1 --port "$PORT" --no-dashboard > "$OUT/scheduler.log" 2>&1 &
SCHED=$!
sleep 5
NUMBA_NUM_THREADS=1 nice -n 19 .venv/bin/dask worker "$ADDR" --nworkers 2 --nthreads 1 --no-dashboard > "$OUT/workers.log" 2>&1 &
WORK=$!
trap 'kill $WORK; sleep 3; kill $SCHED' EXIT
sleep 10
nice -n 19 .venv/bin/pmtnumba sweep run "$OUT" --dataset videogame --methods pmtrec --lr $LR --wd $WD \
  --alpha 1.0,1.05,1.1,1.15,1.2 --tau 1,1e-2,1e-4,1e-6 --epochs "${EPOCHS:-100}" --pruner median --prune-startup 4 \
  --prune-warmup 25 --adam "$MODE" --scheduler "$ADDR" > "$OUT/sweep.log" 2>&1
nice -n 19 .venv/bin/pmtnumba sweep report "$OUT" --seeds 0 --no-ablation --scheduler "$ADDR" > "$OUT/report.log" 2>&1
