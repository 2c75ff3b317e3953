"""Export a model's semantic IDs in LETTER's index format, for the authors' trainers.

    python -m scripts.export_sids --model tiger --dataset office --seed 0 --out office.index.json

Writes ``{"<item token>": ["<a_12>", "<b_3>", "<c_41>", "<d_0>"], ...}``: one token per column
of the ID table the model trains on (the levels, then the collision digit), keyed by the
dataset's raw item tokens (for the JSON datasets, the 0-based item index of the files), exactly
as LETTER's ``<Dataset>.index.json``. ``run --set tokenizer=external --set sid_file=PATH`` reads
it back as the same table (``tests/test_export_sids.py``). The tokenizer comes from the
artifact cache when a run of the same model, dataset, profile and seed trained it already.

Only models whose IDs are fixed before the recommender trains are exported (TIGER, LETTER and
their SODA variants). DIGER and UniGRec train the tokenizer with the recommender and re-derive
the IDs every epoch: their table here would be the one from before joint training, not the one
the trained model decodes, so they are refused (a model saved with ``run --save-models`` keeps
its final table as ``state["codes"]``). Bad input (an unknown model, ``--set`` without ``=``) is
one ``error:`` line and exit status 2, as in ``python -m benchmark``.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.atomic import write_text_atomic
from benchmark.cache import DiskCache
from benchmark.data import Protocol, cache_root, load_sequence_data
from benchmark.datasets import default_data_dir
from benchmark.errors import BenchmarkError, ConfigError
from benchmark.paths import check_writable_folder
from benchmark.runner import (
    HarnessContext,
    build_config,
    model_registry,
    resolve_model,
    split_overrides,
)
from models.generative import GenerativeRecommender, JointTokenizerMixin

if TYPE_CHECKING:
    from models.base import Model
    from models.components.semantic_ids import SemanticIDTable


def exportable(cls: type[Model]) -> bool:
    """Whether ``cls`` trains on the IDs ``build_semantic_ids`` returns: a semantic-ID model
    whose tokenizer is frozen before the recommender trains (joint methods re-derive them)."""
    return issubclass(cls, GenerativeRecommender) and not issubclass(cls, JointTokenizerMixin)


def exportable_model(name: str) -> type[Model]:
    """The class of ``name``, or a :class:`BenchmarkError` naming the models this exports."""
    cls = resolve_model(name)  # an unknown name: the registry's message with the known ones
    if exportable(cls):
        return cls
    registry = model_registry()
    known = ", ".join(n for n in registry.names() if exportable(registry.get(n)))
    if issubclass(cls, JointTokenizerMixin):
        why = (
            "trains its tokenizer with the recommender and re-derives the IDs every epoch, so "
            "the IDs built before training are not the table the trained model decodes (a model "
            "saved with `run --save-models` keeps that table as state['codes'])"
        )
    else:
        why = "has no semantic IDs"
    raise BenchmarkError(f"--model {name} {why}; this script exports {known}")


def semantic_id_table(model: str, dataset: str, profile: str, seed: int, data_dir, overrides):
    cls = exportable_model(model)  # before the data loads: a wrong name costs nothing
    data = load_sequence_data(dataset, data_dir)
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


def main(argv: list[str] | None = None) -> int:
    """Exit status 0, or 2 with one ``error:`` line for input the user can fix."""
    args = build_parser().parse_args(argv)
    try:
        overrides = split_overrides(args.overrides, args.model)
        check_out(args.out)
        table = export_letter_index(
            args.model, args.dataset, args.profile, args.seed, args.data_dir, overrides, args.out
        )
    except (BenchmarkError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sizes = table.level_sizes
    print(f"{args.out}: {table.n_items} items, {len(sizes)} tokens each, sizes {sizes}")
    return 0


def check_out(out: Path) -> None:
    """Fail before the tokenizer trains when ``--out`` cannot be written."""
    if out.is_dir():
        raise BenchmarkError(f"--out {out} is a folder; give a file such as {out / 'x.index.json'}")
    check_writable_folder(out.parent, "--out's folder", "--out")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiger", help="a model with a tokenizer (default tiger)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, required=True)
    return parser


if __name__ == "__main__":
    sys.exit(main())
