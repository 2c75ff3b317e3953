"""Run the LETTER authors' TIGER trainer (``LETTER-TIGER/finetune.py``) with a validation curve.

Runs inside the reference environment that ``scripts/compare_reference.py`` builds (the
authors' pinned transformers 4.41.2), with the working directory set to the CPU-patched copy of
their ``LETTER-TIGER`` folder. It imports nothing from this project.

Their ``train(args)`` runs unchanged; the only addition is a ``TrainerCallback`` that observes:

* the seconds of each epoch's training steps (``on_epoch_begin`` .. ``on_epoch_end``), and
* validation Recall@10 / NDCG@10 after every ``--valid_every``-th epoch and the last, decoded
  with their own test path (``Trie`` + ``prefix_allowed_tokens_fn`` + ``generate(num_beams=20)``
  + ``get_topk_results`` / ``get_metrics_results``) on their validation rows
  (``SeqRecDataset(mode="valid")``: every user's second-last item after their last 20 items),
  and its seconds.

The callback reads no random numbers (no shuffling, beam search is deterministic), so the
training trajectory is theirs. Their own checkpoint selection (``load_best_model_at_end`` on the
validation *loss*, ``EarlyStoppingCallback(20)``) is kept as it is.

    python letter_tiger_train.py --curve_file curve.json <finetune.py arguments>
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.getcwd())  # the patched LETTER-TIGER copy

import finetune  # noqa: E402  (their module; its __main__ block does not run on import)
import transformers  # noqa: E402
from collator import TestCollator  # noqa: E402
from data import SeqRecDataset  # noqa: E402
from evaluate import get_metrics_results, get_topk_results  # noqa: E402
from generation_trie import Trie  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from utils import (  # noqa: E402
    parse_dataset_args,
    parse_global_args,
    parse_train_args,
    prefix_allowed_tokens_fn,
)

METRICS = ["hit@10", "ndcg@10"]


class ValidationCurve(transformers.TrainerCallback):
    """Per-epoch training seconds and beam-20 validation metrics, written after every epoch."""

    def __init__(
        self, args: argparse.Namespace, path: str, beams: int, batch_size: int, every: int
    ):
        self.args, self.path, self.beams, self.batch_size = args, path, beams, batch_size
        self.every = every
        self.entries: list[dict] = []
        self.valid = SeqRecDataset(args, "valid")
        self.started = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        # resumed from a checkpoint: keep the entries of the epochs it had finished
        if os.path.exists(self.path) and state.global_step > 0:
            with open(self.path) as f:
                self.entries = [e for e in json.load(f) if e["epoch"] < round(state.epoch)]

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_epoch_end(self, args, state, control, model=None, tokenizer=None, **kwargs):
        train_seconds = time.perf_counter() - self.started
        epoch = round(state.epoch) - 1
        entry = {"epoch": epoch, "train_seconds": round(train_seconds, 2)}
        if (epoch + 1) % self.every == 0 or epoch + 1 == round(args.num_train_epochs):
            started = time.perf_counter()
            metrics = self.evaluate(model, tokenizer)
            entry["valid_seconds"] = round(time.perf_counter() - started, 2)
            entry["recall@10"] = metrics["hit@10"]
            entry["ndcg@10"] = metrics["ndcg@10"]
        self.entries.append(entry)
        print("validation curve:", json.dumps(entry), flush=True)
        self.write()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.entries and metrics and "eval_loss" in metrics:
            self.entries[-1]["eval_loss"] = metrics["eval_loss"]
            self.write()

    def write(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.entries, f, indent=1)
        os.replace(tmp, self.path)

    @torch.no_grad()
    def evaluate(self, model, tokenizer) -> dict[str, float]:
        """test.py's loop, on the validation rows, in order.

        test.py decodes with a ``T5ForConditionalGeneration`` loaded from the saved weights:
        their ``LETTER.forward`` fails without labels (``ranking_loss`` returns an unbound
        ``loss``). The model is viewed as that class while decoding (same modules and weights;
        LETTER only adds the training loss's temperature)."""
        was_training = model.training
        model.eval()
        letter_class = model.__class__
        model.__class__ = transformers.T5ForConditionalGeneration
        try:
            return self._evaluate(model, tokenizer)
        finally:
            model.__class__ = letter_class
            model.train(was_training)

    def _evaluate(self, model, tokenizer) -> dict[str, float]:
        items = self.valid.get_all_items()
        trie = Trie([[0] + tokenizer.encode(candidate) for candidate in items])
        allowed = prefix_allowed_tokens_fn(trie)
        loader = DataLoader(
            self.valid, batch_size=self.batch_size, collate_fn=TestCollator(self.args, tokenizer)
        )
        totals = dict.fromkeys(METRICS, 0.0)
        n = 0
        for inputs, targets in loader:
            output = model.generate(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                max_new_tokens=10,
                prefix_allowed_tokens_fn=allowed,
                num_beams=self.beams,
                num_return_sequences=self.beams,
                output_scores=True,
                return_dict_in_generate=True,
                early_stopping=True,
                use_cache=True,
            )
            decoded = tokenizer.batch_decode(output["sequences"], skip_special_tokens=True)
            topk = get_topk_results(
                decoded, output["sequences_scores"], targets, self.beams, all_items=items
            )
            for name, value in get_metrics_results(topk, METRICS).items():
                totals[name] += value
            n += len(targets)
        return {name: value / n for name, value in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="LETTER-TIGER finetune.py with a curve")
    parser = parse_global_args(parser)
    parser = parse_train_args(parser)
    parser = parse_dataset_args(parser)
    parser.add_argument("--curve_file", required=True)
    parser.add_argument("--valid_beams", type=int, default=20)
    parser.add_argument("--valid_batch_size", type=int, default=32)
    parser.add_argument("--valid_every", type=int, default=1, help="epochs between curves")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    # transformers 4.41 reloads its own RNG checkpoint with torch.load's default, which torch
    # >= 2.6 made weights_only: allow the numpy array types of the saved numpy RNG state
    torch.serialization.add_safe_globals(
        [np.core.multiarray._reconstruct, np.ndarray, np.dtype, np.dtypes.UInt32DType]
    )

    curve = ValidationCurve(
        args, args.curve_file, args.valid_beams, args.valid_batch_size, args.valid_every
    )

    class Trainer(transformers.Trainer):
        def __init__(self, *a, callbacks=None, **kw):
            super().__init__(*a, callbacks=[*(callbacks or []), curve], **kw)

    finetune.transformers = _Namespace(transformers, Trainer=Trainer)
    finetune.train(args)


class _Namespace:
    """``transformers`` as ``finetune.py`` sees it, with ``Trainer`` swapped for ours."""

    def __init__(self, module, **overrides):
        self._module, self._overrides = module, overrides

    def __getattr__(self, name):
        return self._overrides.get(name) or getattr(self._module, name)


if __name__ == "__main__":
    main()
