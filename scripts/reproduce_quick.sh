#!/usr/bin/env bash
# The committed quick-profile leaderboard: every registered model on ml-100k and office, seeds
# 0,1,2, plus DIGER's second decay strategy as the variant "diger (sdud)", each run capped at the
# same training budget (BUDGET minutes of wall-clock, checked after every epoch), then tables and
# figures. The datasets run side by side, one thread each (on a loaded 2-core machine, 2 threads
# per process are slower than 1). Completed runs are skipped, so a killed run resumes.
#
# Usage: GENREC_DATA_DIR=../shared/data bash scripts/reproduce_quick.sh [extra `run` flags]
# Environment: MODELS (default: every registered name), DATASETS, SEEDS, THREADS, and BUDGET
# (minutes; BUDGET= runs every quick profile to its own end instead).
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${MODELS:-$(python -m benchmark ls --names)}
DATASETS=${DATASETS:-ml-100k office}
SEEDS=${SEEDS:-0,1,2}
BUDGET=${BUDGET-2.5}  # set but empty: no budget
THREADS=${THREADS:-1}
mkdir -p results/logs

run_dataset() {
    local flags=(--dataset "$1" --profile quick --seeds "$SEEDS" --threads "$THREADS" --quiet)
    if [[ -n "$BUDGET" ]]; then flags+=(--time-budget "$BUDGET"); fi
    flags+=("${@:2}")
    local status=0
    python -m benchmark run --models "$MODELS" "${flags[@]}" || status=$?
    if [[ ",$MODELS," == *",diger,"* ]]; then
        python -m benchmark run --models diger --set decay=sdud --label "diger (sdud)" \
            "${flags[@]}" || status=$?
    fi
    return $status
}

start=$(date +%s)
pids=()
for dataset in $DATASETS; do
    run_dataset "$dataset" "$@" >> "results/logs/reproduce_quick.$dataset.log" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
python -m benchmark leaderboard
echo "reproduce_quick: $(( $(date +%s) - start )) s, run exit status $status"
exit $status
