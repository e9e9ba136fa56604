#!/bin/sh
# Reduced Table 3 / Figure 3: office, seed 0, LightGCN (K = 3), d 32, batch 2048, early stopping
# (patience 10 on validation recall@20). lr / wd are the MF-tuned office values (config.py
# RECOMMENDED; results/tuned-office), PMTRec alpha 1.1, tau 1e-6 as tuned for MF: NOT re-tuned for
# LightGCN. T1 = align_uniform, T2 = rating (the paper's office tasks).
set -e
cd "$(dirname "$0")/../.."
OUT=results/table3-lightgcn-office
PM="nice -n 10 .venv/bin/pmtnumba fit --dataset office --encoder lightgcn --layers 3 --seed 0 --threads 1 --quiet"
$PM --tasks bpr --lr 0.01 --wd 1e-4 --out $OUT/bpr > $OUT/bpr.txt 2>&1
$PM --tasks bpr,align_uniform --method ew --lr 0.005 --wd 1e-4 --out $OUT/bpr+t1 > $OUT/bpr+t1.txt 2>&1
$PM --tasks bpr,rating --method ew --lr 0.005 --wd 1e-4 --out $OUT/bpr+t2 > $OUT/bpr+t2.txt 2>&1
$PM --tasks bpr,align_uniform,rating --method ew --lr 0.005 --wd 1e-4 --out $OUT/ew > $OUT/ew.txt 2>&1
$PM --tasks bpr,align_uniform,rating --method pmtrec --alpha 1.1 --tau 1e-6 --lr 0.005 --wd 3e-5 --out $OUT/pmtrec > $OUT/pmtrec.txt 2>&1
