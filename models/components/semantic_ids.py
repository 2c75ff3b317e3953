"""Semantic-ID tables: collision digits, diagnostics, drift, external ID files, token layout.

Codes are per item, ``[N, L]`` for items 1..N in order (row ``i`` is item ``i + 1``) unless a
function says otherwise; :class:`SemanticIDTable` adds the padding row 0 of the harness ids.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PAD, EOS = 0, 1
N_SPECIAL = 2  # token ids of the special tokens pad and eos come before the code tokens

Codes = np.ndarray | torch.Tensor


def _as_numpy(codes: Codes) -> np.ndarray:
    if isinstance(codes, torch.Tensor):
        return codes.detach().cpu().numpy().astype(np.int64)
    return np.asarray(codes, dtype=np.int64)


def add_collision_digit(codes: Codes) -> Codes:
    """Append a column numbering items that share all codes 0, 1, 2, ... in ascending item order.

    TIGER Sec. 3.1 ("Handling collisions"): (12, 24, 52) twice -> (12, 24, 52, 0), (12, 24, 52, 1).
    Returns the input's type (NumPy int64 or a LongTensor), shape ``[N, L + 1]``.
    """
    array = _as_numpy(codes)
    _, group = np.unique(array, axis=0, return_inverse=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group)
    first = np.cumsum(counts) - counts
    digit = np.empty(len(array), dtype=np.int64)
    digit[order] = np.arange(len(array)) - first[group[order]]
    out = np.concatenate([array, digit[:, None]], axis=1)
    return torch.from_numpy(out) if isinstance(codes, torch.Tensor) else out


def sid_diagnostics(codes: Codes, codebook_sizes: int | Sequence[int]) -> dict:
    """Codebook health of codes ``[N, L]`` taken before the collision digit (METHODS.md Sec. 10).

    Per level: ``used`` codes, ``usage`` = used / K, ``dead`` codes, usage ``entropy_bits``
    (-sum q log2 q over the items' codes) and ``perplexity`` = 2^entropy. Overall:
    ``collision_rate`` = (N - distinct IDs) / N, ``max_items_per_prefix``, ``distinct_ids``.
    """
    array = _as_numpy(codes)
    n, levels = array.shape
    sizes = [codebook_sizes] * levels if isinstance(codebook_sizes, int) else list(codebook_sizes)
    if len(sizes) != levels:
        raise ValueError(f"{len(sizes)} codebook sizes for {levels} code levels")
    per_level = []
    for column, size in zip(array.T, sizes):
        counts = np.bincount(column, minlength=size)
        share = counts[counts > 0] / n
        entropy = float(-(share * np.log2(share)).sum())
        used = int((counts > 0).sum())
        per_level.append(
            {
                "used": used,
                "usage": used / size,
                "dead": size - used,
                "entropy_bits": entropy,
                "perplexity": float(2.0**entropy),
            }
        )
    _, per_id = np.unique(array, axis=0, return_counts=True)
    return {
        "n_items": int(n),
        "levels": per_level,
        "distinct_ids": len(per_id),
        "collision_rate": float((n - len(per_id)) / n),
        "max_items_per_prefix": int(per_id.max()),
    }


def sid_drift(old: Codes, new: Codes) -> dict:
    """Share of items whose ID changed between two code tables ``[N, L]``: overall and per level."""
    before, after = _as_numpy(old), _as_numpy(new)
    if before.shape != after.shape:
        raise ValueError(f"code tables differ in shape: {before.shape} vs {after.shape}")
    changed = before != after
    return {
        "changed": float(changed.any(1).mean()),
        "levels": [float(v) for v in changed.mean(0)],
    }


_TOKEN = re.compile(r"<([a-z])_(\d+)>")


def parse_code(token: object, column: int, key: str) -> int:
    """``"<b_70>"`` in column 1 -> 70 (LETTER's format); a plain integer is taken as is."""
    if isinstance(token, int) and token >= 0:
        return token
    match = _TOKEN.fullmatch(str(token))
    if match is None or ord(match.group(1)) - ord("a") != column:
        expected = f"<{chr(ord('a') + column)}_N>"
        raise ValueError(f"item {key!r}: token {token!r} at position {column} is not {expected}")
    return int(match.group(2))


def read_id_file(path: str | Path) -> dict[str, list[int]]:
    """``{item key: [code, ...]}`` from a JSON ID file (LETTER's format, see
    :func:`load_external_ids`), every token parsed and every ID of the same non-zero length.

    Raises ``ValueError`` naming the file and what is wrong with it; the one parser behind both
    the configuration-time check and the load, so the two cannot disagree on what is valid.
    """
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(entries, dict) or not all(isinstance(v, list) for v in entries.values()):
        raise ValueError(f'{path}: not an object {{"<item>": ["<a_12>", "<b_3>", ...]}}')
    try:
        ids = {
            key: [parse_code(token, column, key) for column, token in enumerate(tokens)]
            for key, tokens in entries.items()
        }
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    lengths = {len(codes) for codes in ids.values()}
    if len(lengths) > 1 or 0 in lengths:
        raise ValueError(
            f"{path}: every item needs an ID of the same non-zero length, found different "
            f"lengths {sorted(lengths)}"
        )
    return ids


def load_external_ids(
    path: str | Path,
    n_items: int,
    item_id_map: Mapping[str, int] | Sequence[str] | None = None,
) -> np.ndarray:
    """Codes ``[n_items, L]`` of items 1..n from a JSON ``{item key: [token, ...]}``.

    Tokens look like LETTER's ``"<a_183>"`` (letter = position) or are plain integers.
    ``item_id_map`` says which harness item id (1..n) each file key is:

    * ``None``: keys are 0-based item indices, key ``"k"`` is item ``k + 1``;
    * a mapping ``{file key: item id}``;
    * a sequence of raw item tokens indexed by item id (``SequenceData.item_tokens``, entry 0 is
      padding): the file's keys are raw item tokens, as for LETTER's Beauty files.

    Keys absent from a given map are ignored (a warning says how many: a file for another
    catalogue can cover this one's tokens by chance); every item 1..n must get an ID.
    """
    ids = read_id_file(path)
    if isinstance(item_id_map, Sequence) and not isinstance(item_id_map, str):
        item_id_map = {str(token): item for item, token in enumerate(item_id_map) if item > 0}
    rows: dict[int, list[int]] = {}
    for key, codes in ids.items():
        if item_id_map is None:
            if not key.isdigit():
                raise ValueError(
                    f"{path}: key {key!r} is not a 0-based item index; pass item_id_map"
                )
            item = int(key) + 1
        elif key in item_id_map:
            item = int(item_id_map[key])
        else:
            continue
        if not 1 <= item <= n_items:
            raise ValueError(f"{path}: key {key!r} maps to item {item}, outside 1..{n_items}")
        rows[item] = codes
    unused = len(ids) - len(rows)
    if unused:
        logging.getLogger("genrec_bench").warning(
            "%s: %d of its %d items are not in this dataset and were ignored; check that the "
            "file was written for this dataset",
            path,
            unused,
            len(ids),
        )
    missing = [item for item in range(1, n_items + 1) if item not in rows]
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} of {n_items} items have no ID, e.g. {missing[:5]}"
        )
    return np.asarray([rows[item] for item in range(1, n_items + 1)], dtype=np.int64)


@dataclass
class SemanticIDTable:
    """Every item's semantic ID and its token ids for the seq2seq recommender.

    ``codes`` ``[n_items + 1, L']`` (row 0 = padding item, all zeros, unused); ``level_sizes[c]``
    is the vocabulary of column ``c`` (including the collision-digit column). Token layout shared
    with ``models.components.seq2seq``: 0 = pad, 1 = eos, and code ``x`` of column ``c`` is token
    ``2 + sum(level_sizes[:c]) + x``.
    """

    codes: torch.Tensor
    level_sizes: list[int]

    @classmethod
    def from_codes(cls, codes: Codes, level_sizes: Sequence[int] | None = None) -> SemanticIDTable:
        """From codes ``[n_items, L']`` of items 1..n; ``level_sizes`` default: max code + 1.

        Joint methods whose codes change between epochs pass fixed sizes (e.g. K per level).
        """
        array = _as_numpy(codes)
        sizes = list(level_sizes) if level_sizes is not None else (array.max(0) + 1).tolist()
        if len(sizes) != array.shape[1] or (array >= np.asarray(sizes)).any() or (array < 0).any():
            raise ValueError(f"codes do not fit level sizes {sizes}")
        padded = np.concatenate([np.zeros((1, array.shape[1]), dtype=np.int64), array])
        return cls(torch.from_numpy(padded), [int(s) for s in sizes])

    @property
    def n_items(self) -> int:
        return len(self.codes) - 1

    @property
    def token_offsets(self) -> list[int]:
        """Token id of code 0 of each column."""
        return (N_SPECIAL + np.cumsum([0, *self.level_sizes[:-1]])).tolist()

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + sum(self.level_sizes)

    def tokens(self) -> torch.Tensor:
        """Token ids ``[n_items + 1, L']``; row 0 (padding item) is all ``PAD``."""
        tokens = self.codes + torch.tensor(self.token_offsets)
        tokens[0] = PAD
        return tokens
