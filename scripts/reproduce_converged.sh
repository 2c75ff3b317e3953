#!/usr/bin/env bash
# The converged leaderboard: every model trained to early stopping (quick profile: patience 5,
# epoch cap 60; UniGRec's fine-tuning stage included) on all training pairs, in the order the
# "converged and fair" issue asks for: seed 0 of every model on office, then seeds 1 and 2,
# then ml-100k. Two workers run side by side, one thread each; a worker runs its models in
# order, most informative first. Completed runs are skipped and an interrupted run continues
# from its last finished epoch, so the same command resumes the grid after a kill or a pause
# (STOP_AFTER minutes for the whole script, e.g. STOP_AFTER=170 to fit a 3-hour session: each
# run pauses after the epoch that passes it, and no run starts after it).
#
# Usage: GENREC_DATA_DIR=../shared/data bash scripts/reproduce_converged.sh
# Environment: DATASETS (default "office ml-100k"), SEEDS (default "0 1 2"), STOP_AFTER,
# WORKER_A / WORKER_B (comma-separated model lists; WORKER_B="" runs a single worker).
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=${DATASETS:-office ml-100k}
SEEDS=${SEEDS:-0 1 2}
# sasrec first on worker A: its seed-0 run is the teacher LETTER and UniGRec read from the cache
# (the cheap baselines early, so every table soon has its reference rows)
WORKER_A=${WORKER_A-sasrec,letter,gru4rec,letter+soda,unigrec,unigrec+soda}
WORKER_B=${WORKER_B-pop,tiger,narm,tiger+soda,diger,diger+soda}
mkdir -p results/logs

if [[ -n "${STOP_AFTER:-}" && ! "$STOP_AFTER" =~ ^[1-9][0-9]*$ ]]; then
    echo "STOP_AFTER=$STOP_AFTER: give whole minutes, e.g. STOP_AFTER=170" >&2
    exit 2
fi
start=$(date +%s)
# the minutes left of STOP_AFTER, counted from the script's start (not each invocation's)
minutes_left() { echo $(( STOP_AFTER - ($(date +%s) - start) / 60 )); }

worker() {
    local models=$1 name=$2 status=0
    for dataset in $DATASETS; do
        for seed in $SEEDS; do
            local flags=(--profile quick --threads 1 --quiet)
            if [[ -n "${STOP_AFTER:-}" ]]; then
                local left
                left=$(minutes_left)
                if (( left <= 0 )); then return $status; fi
                flags+=(--stop-after "$left")
            fi
            python -m benchmark run --models "$models" --dataset "$dataset" --seeds "$seed" \
                "${flags[@]}" >> "results/logs/converged.$name.log" 2>&1 || status=$?
        done
    done
    return $status
}

# an empty WORKER_B runs one worker (leaves the other core to another job)
status=0
worker "$WORKER_A" a & a=$!
if [[ -n "$WORKER_B" ]]; then worker "$WORKER_B" b & b=$!; wait $b || status=$?; fi
wait $a || status=$?
python -m benchmark leaderboard
echo "reproduce_converged: $(( $(date +%s) - start )) s, run exit status $status"
exit $status
