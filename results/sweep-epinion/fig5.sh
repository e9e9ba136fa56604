#!/bin/bash
# Figure 5 on epinion: PMTRec's best configuration of the MODE sweep varied one parameter at a time
# (alpha over ALPHA, tau over TAU) on the study's seed 0, through the running cluster at SCHEDULER;
# Table 2 and the ablation rows are taken from the earlier `sweep report --seeds 0` runs. Resumable.
set -e
cd "$(dirname "$0")/../.."
OUT=results/sweep-epinion
MODE=${MODE:-sparse}
nice -n 19 .venv/bin/pmtnumba sweep report $OUT/$MODE --seeds 0 --alpha ${ALPHA:-1.0,1.05,1.1,1.15,1.2} \
  --tau ${TAU:-1,1e-2,1e-4,1e-6} --scheduler ${SCHEDULER:-tcp://127.0.0.1:18794} >> $OUT/$MODE-report-fig5.log 2>&1
