"""Export a model's semantic IDs in LETTER's index format, for the authors' trainers.

    python -m scripts.export_sids --model tiger --dataset office --seed 0 --out office.index.json

Writes ``{"<item token>": ["<a_12>", "<b_3>", "<c_41>", "<d_0>"], ...}``: one token per column
of the ID table the model trains on (the levels, then the collision digit), keyed by the
dataset's raw item tokens (for the JSON datasets, the 0-based item index of the files), exactly
as LETTER's ``<Dataset>.index.json``. ``run --set tokenizer=external --set sid_file=PATH`` reads
it back as the same table (``tests/test_export_sids.py``). The tokenizer comes from the
artifact cache when a run of the same model, dataset, profile and seed trained it already.
"""

from __future__ import annotations

import argparse
import json
import string
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.atomic import write_text_atomic
from benchmark.cache import DiskCache
from benchmark.data import Protocol, cache_root, load_sequence_data
from benchmark.datasets import default_data_dir
from benchmark.runner import HarnessContext, build_config, resolve_model

if TYPE_CHECKING:
    from models.components.semantic_ids import SemanticIDTable


def semantic_id_table(model: str, dataset: str, profile: str, seed: int, data_dir, overrides):
    data = load_sequence_data(dataset, data_dir)
    cls = resolve_model(model)
    instance = cls(build_config(cls, profile, overrides))
    ctx = HarnessContext(
        instance, data, Protocol(), seed, DiskCache(cache_root() / "artifacts"), _cpu(), quiet=True
    )
    return data, instance.build_semantic_ids(data, ctx)


def _cpu():
    import torch

    return torch.device("cpu")


def letter_index(table, item_tokens: list[str]) -> dict[str, list[str]]:
    letters = string.ascii_lowercase
    codes = table.codes[1:].tolist()
    return {
        str(item_tokens[item]): [f"<{letters[level]}_{code}>" for level, code in enumerate(row)]
        for item, row in enumerate(codes, start=1)
    }


def export_letter_index(
    model: str,
    dataset: str,
    profile: str,
    seed: int,
    data_dir: str | Path | None,
    overrides: dict[str, str],
    out: Path,
) -> SemanticIDTable:
    """Write ``model``'s ID table for ``dataset`` to ``out`` in LETTER's index format."""
    data, table = semantic_id_table(
        model, dataset, profile, seed, data_dir or default_data_dir(), overrides
    )
    write_text_atomic(out, json.dumps(letter_index(table, data.item_tokens)))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiger", help="a model with a tokenizer (default tiger)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    overrides = dict(pair.split("=", 1) for pair in args.overrides)
    table = export_letter_index(
        args.model, args.dataset, args.profile, args.seed, args.data_dir, overrides, args.out
    )
    sizes = table.level_sizes
    print(f"{args.out}: {table.n_items} items, {len(sizes)} tokens each, sizes {sizes}")


if __name__ == "__main__":
    main()
