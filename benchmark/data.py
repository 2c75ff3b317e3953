"""The protocol: RecBole filters and splits; we hand models a :class:`SequenceData`.

Leave-one-out, time-ordered, full ranking (RecBole ``eval_args``: split ``LS valid_and_test``,
order ``TO``, mode ``full``). Training samples are every prefix -> next pair inside a user's
training items (RecBole's sequential augmentation), histories capped at ``max_history``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.datasets import DatasetCard, default_data_dir, find_card, materialize_atomic
from benchmark.errors import DataError
from benchmark.metrics import METRICS
from models.base import SequenceData

DEFAULT_MAX_HISTORY = 20
DEFAULT_SELECTION = "ndcg@10"


def cache_root() -> Path:
    return Path(os.environ.get("GENREC_CACHE_DIR", Path.home() / ".cache" / "genrec-bench"))


@dataclass(frozen=True)
class Protocol:
    split: str = "leave-one-out"
    order: str = "time"
    ranking: str = "full"
    max_history: int = DEFAULT_MAX_HISTORY
    ks: tuple[int, ...] = (5, 10, 20)
    # validation metric for early stopping, tuning and the summary line; must be computable
    selection: str = DEFAULT_SELECTION

    def __post_init__(self) -> None:
        if not self.ks or any(k <= 0 for k in self.ks):
            raise DataError(f"every K must be a positive integer, got {list(self.ks)}")
        if len(set(self.ks)) != len(self.ks):
            raise DataError(f"K values must be distinct, got {list(self.ks)}")
        if self.max_history <= 0:
            raise DataError(f"max_history must be positive, got {self.max_history}")
        metric, _, k = self.selection.partition("@")
        if metric not in METRICS or not k.isdigit():
            raise DataError(
                f"selection metric {self.selection!r} is not <metric>@<K> with metric one of "
                f"{', '.join(METRICS)}; for example --select ndcg@10"
            )
        if int(k) not in self.ks:
            raise DataError(
                f"selection metric {self.selection} needs K={k} in --ks (got "
                f"{','.join(map(str, self.ks))}); add {k} to --ks or choose --select "
                f"{metric}@{self.ks[0]}"
            )

    def check_against(self, data: SequenceData) -> None:
        """A K at or above the catalogue size ranks every item: Recall@K is 1 by construction."""
        too_large = [k for k in self.ks if k >= data.n_items]
        if too_large:
            raise DataError(
                f"--ks {','.join(map(str, too_large))}: dataset {data.name!r} has only "
                f"{data.n_items} items, so every model would score 1; use K < {data.n_items}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "order": self.order,
            "ranking": self.ranking,
            "max_history": self.max_history,
            "ks": list(self.ks),
            "selection": self.selection,
        }


def recbole_dataset_config(card: DatasetCard, data_path: Path, max_history: int) -> dict[str, Any]:
    """The RecBole settings that define our protocol for one dataset."""
    config: dict[str, Any] = {
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "MAX_ITEM_LIST_LENGTH": max_history,
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "mode": "full",
            "group_by": "user",
        },
        "train_neg_sample_args": None,
    }
    core = card.filters
    if core.get("user_core"):
        config["user_inter_num_interval"] = f"[{core['user_core']},inf)"
    if core.get("item_core"):
        config["item_inter_num_interval"] = f"[{core['item_core']},inf)"
    return config


def build_recbole_splits(card: DatasetCard, data_dir: Path | None, max_history: int):
    """RecBole's own dataset and its (train, valid, test) sequential splits."""
    from models.recbole_compat import create_dataset, recbole_config

    data_path = materialize_atomic(card, data_dir, cache_root())
    settings = recbole_dataset_config(card, data_path, max_history)
    config = recbole_config("SASRec", card.name, str(data_path), settings)
    try:
        dataset = create_dataset(config)
    except ValueError as exc:  # RecBole raises this when filtering leaves nothing
        if "empty" in str(exc):
            raise DataError(
                f"dataset {card.name!r} is empty after filtering {card.filters}; "
                f"relax the card's filters or check the files"
            ) from None
        raise DataError(f"dataset {card.name!r}: RecBole could not load it ({exc})") from None
    if dataset.inter_num == 0 or dataset.user_num <= 1:
        raise DataError(
            f"dataset {card.name!r} is empty after filtering {card.filters}; "
            f"relax the card's filters or check the files"
        )
    stats = {"n_interactions": int(dataset.inter_num), "fingerprint": fingerprint(dataset)}
    train, valid, test = dataset.build()  # augmentation replaces inter_feat: measure before
    if len(test) == 0:
        raise DataError(
            f"dataset {card.name!r}: no user has the 3 interactions leave-one-out needs"
        )
    return dataset, stats, (train, valid, test)


def _rows(split) -> tuple[np.ndarray, list[list[int]], np.ndarray]:
    feat = split.inter_feat
    users = feat["user_id"].numpy()
    lists = feat["item_id_list"].numpy()
    lengths = feat["item_length"].numpy()
    histories = [row[:n].tolist() for row, n in zip(lists, lengths, strict=True)]
    return users, histories, feat["item_id"].numpy()


def fingerprint(dataset) -> str:
    """Hash of the processed interactions: (user, item) in time order after RecBole's filtering
    and remapping, taken before the split."""
    feat = dataset.inter_feat.sort_values(["user_id", "timestamp"], kind="stable")
    digest = hashlib.sha1()
    for name in ("user_id", "item_id"):
        digest.update(np.ascontiguousarray(feat[name].to_numpy(), dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def load_sequence_data(
    name: str, data_dir: str | Path | None = None, max_history: int = DEFAULT_MAX_HISTORY
) -> SequenceData:
    """Load a dataset by card name (or user folder) under the benchmark protocol."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    card = find_card(name, data_dir)
    dataset, stats, (train, valid, test) = build_recbole_splits(card, data_dir, max_history)
    train_users, train_hist, train_targets = _rows(train)
    valid_users, valid_hist, valid_targets = _rows(valid)
    test_users, test_hist, test_targets = _rows(test)
    n_items = dataset.item_num - 1  # RecBole id 0 is padding

    text_path = materialize_atomic(card, data_dir, cache_root()) / card.name / "item_text.json"
    raw_text = json.loads(text_path.read_text()) if text_path.exists() else {}
    tokens = dataset.field2id_token["item_id"]
    item_text = [""] + [raw_text.get(str(tok), "") for tok in tokens[1:]]

    return SequenceData(
        name=card.name,
        n_items=n_items,
        n_users=dataset.user_num - 1,
        max_history=max_history,
        train_users=train_users,
        train_histories=train_hist,
        train_targets=train_targets,
        valid_users=valid_users,
        valid_histories=valid_hist,
        valid_targets=valid_targets,
        test_users=test_users,
        test_histories=test_hist,
        test_targets=test_targets,
        item_text=item_text,
        fingerprint=stats["fingerprint"],
        item_tokens=[str(t) for t in tokens],
        n_interactions=stats["n_interactions"],
    )


def dataset_stats(data: SequenceData) -> dict[str, Any]:
    n_inter = data.n_interactions
    return {
        "name": data.name,
        "fingerprint": data.fingerprint,
        "n_users": int(len(data.test_users)),
        "n_items": int(data.n_items),
        "n_interactions": n_inter,
        "avg_history": round(n_inter / max(len(data.test_users), 1), 2),
        "train_samples": int(len(data.train_targets)),
    }
