#!/usr/bin/env bash
# The committed quick-profile leaderboard: every registered model on ml-100k and office,
# seeds 0,1,2, then tables and figures. Completed runs are skipped, so a killed run resumes.
# Usage: GENREC_DATA_DIR=../shared/data bash scripts/reproduce_quick.sh [extra `run` flags]
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${MODELS:-$(python -m benchmark ls --names)}
start=$(date +%s)
status=0
python -m benchmark run --models "$MODELS" --dataset ml-100k,office --profile quick \
    --seeds 0,1,2 "$@" || status=$?
python -m benchmark leaderboard
echo "reproduce_quick: $(( $(date +%s) - start )) s, run exit status $status"
exit $status
