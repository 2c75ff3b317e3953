#!/usr/bin/env bash
# The long Beauty run: the TIGER-size T5 (4+4 layers, d_model 128, the `paper` profile) on the
# semantic IDs the LETTER authors published for this split (Beauty.letter-index.json, 4 x 256
# codes), all 131,413 training pairs, with LETTER-TIGER's own training arguments:
#   AdamW, lr 5e-4, weight decay 0.01, effective batch 1024 (their 256 per device x 2 GPUs x 2
#   accumulation steps), warmup 1% of the steps (ceil(0.01 x 200 x 129) = 258), cosine decay over
#   their 200 epochs, early stopping with patience 20 (theirs on the validation loss, ours on
#   validation NDCG@10).
# One epoch takes 17 minutes at one thread alone on this project's 2-core CPU machine and 32-55
# minutes of wall time beside other one-thread jobs (the record's `seconds`), so the run spans
# many invocations: each one pauses after the epoch that passes STOP_AFTER minutes (default 170)
# and writes a `paused` record holding the curve so far; the same command continues from the
# last finished epoch (STOP_AFTER=1 does one epoch per invocation).
#
# Usage: GENREC_DATA_DIR=../shared/data bash scripts/beauty_long_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${GENREC_DATA_DIR:-../shared/data}
STOP_AFTER=${STOP_AFTER:-170}
mkdir -p results/logs
python -m benchmark run --models tiger --dataset beauty --profile paper --seeds 0 \
    --threads "${THREADS:-1}" --stop-after "$STOP_AFTER" \
    --label "tiger (LETTER IDs, LETTER-TIGER args)" \
    --set tokenizer=external --set "sid_file=$DATA_DIR/beauty/Beauty.letter-index.json" \
    --set lr=5e-4 --set weight_decay=0.01 --set batch_size=1024 --set warmup_steps=258 \
    --set lr_schedule=cosine --set epochs=200 --set patience=20 \
    --data-dir "$DATA_DIR" >> results/logs/beauty-long.log 2>&1
