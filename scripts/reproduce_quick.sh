#!/usr/bin/env bash
# The 2.5-minute leaderboard tables: every registered model on ml-100k and office, seeds 0,1,2,
# plus DIGER's second decay strategy as the variant "diger (sdud)", each run capped at the same
# training budget (BUDGET minutes of wall-clock, checked after every epoch), then tables and
# figures. The datasets run side by side, one thread each (on a loaded 2-core machine, 2 threads
# per process are slower than 1). Completed runs are skipped, so a killed run resumes.
#
# Those tables were recorded under the quick profile of their time, which the converged grid has
# since replaced (scripts/reproduce_converged.sh). Its settings are spelled out here, so this
# script still runs that protocol: the RecBole baselines capped at 15 epochs, patience 2; the
# semantic-ID models capped at 3 epochs, patience 2, on each user's 25 most recent pairs, with
# the cosine schedule over the cap; UniGRec fine-tuning for up to 3 epochs (patience 2) after
# distillation from epoch 1. Records older than the lr_schedule setting have other run ids (the
# schedule was implicit then), so a re-run adds records next to them and the tables keep the
# newest per model and seed.
#
# Usage: GENREC_DATA_DIR=../shared/data bash scripts/reproduce_quick.sh [extra `run` flags]
# (the flags may not --set epochs, patience, train_pairs_per_user, lr_schedule or UniGRec's
# fine-tuning keys: the script sets them, and a key given twice is an error)
# Environment: MODELS (default: every registered name), DATASETS, SEEDS, THREADS, and BUDGET
# (minutes; BUDGET= runs every model to its cap instead).
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${MODELS:-$(python -m benchmark ls --names)}
DATASETS=${DATASETS:-ml-100k office}
SEEDS=${SEEDS:-0,1,2}
BUDGET=${BUDGET-2.5}  # set but empty: no budget
THREADS=${THREADS:-1}
BASELINE_SET=(--set epochs=15 --set patience=2)
SID_SET=(--set epochs=3 --set patience=2 --set train_pairs_per_user=25 --set lr_schedule=cosine)
mkdir -p results/logs

# The settings of those tables come in four groups ("pop" trains no epochs); a model of MODELS
# in none of them (a method registered since) has no recorded protocol here.
PROTOCOL_GROUPS=(pop sasrec,gru4rec,narm tiger,tiger+soda,letter,letter+soda,diger,diger+soda
        unigrec,unigrec+soda)
MODELS=${MODELS// /}
KNOWN=$(IFS=,; echo "${PROTOCOL_GROUPS[*]}")
IFS=, read -ra WANTED <<< "$MODELS"
for name in "${WANTED[@]}"; do
    if [[ ",$KNOWN," != *",$name,"* ]]; then
        echo "reproduce_quick: '$name' has no recorded 2.5-minute protocol (known:" \
            "$KNOWN); run it with scripts/reproduce_converged.sh" >&2
        exit 2
    fi
done

# the models of MODELS in one group, comma-separated (empty: none)
pick() {
    local want=$1 out=() name
    for name in "${WANTED[@]}"; do
        if [[ ",$want," == *",$name,"* ]]; then out+=("$name"); fi
    done
    (IFS=,; echo "${out[*]}")
}

run_dataset() {
    local flags=(--dataset "$1" --profile quick --seeds "$SEEDS" --threads "$THREADS" --quiet)
    if [[ -n "$BUDGET" ]]; then flags+=(--time-budget "$BUDGET"); fi
    flags+=("${@:2}")
    local status=0 group
    group=$(pick pop)
    if [[ -n "$group" ]]; then python -m benchmark run --models "$group" "${flags[@]}" || status=$?; fi
    group=$(pick sasrec,gru4rec,narm)
    if [[ -n "$group" ]]; then
        python -m benchmark run --models "$group" "${BASELINE_SET[@]}" "${flags[@]}" || status=$?
    fi
    group=$(pick tiger,tiger+soda,letter,letter+soda,diger,diger+soda)
    if [[ -n "$group" ]]; then
        python -m benchmark run --models "$group" "${SID_SET[@]}" "${flags[@]}" || status=$?
    fi
    group=$(pick unigrec,unigrec+soda)
    if [[ -n "$group" ]]; then
        python -m benchmark run --models "$group" "${SID_SET[@]}" --set finetune_epochs=3 \
            --set finetune_patience=2 --set distill_start_epoch=1 "${flags[@]}" || status=$?
    fi
    if [[ ",$MODELS," == *",diger,"* ]]; then
        python -m benchmark run --models diger --set decay=sdud --label "diger (sdud)" \
            "${SID_SET[@]}" "${flags[@]}" || status=$?
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
