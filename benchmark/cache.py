"""Content-addressed cache for expensive artifacts (text embeddings, teacher embeddings, trained
tokenizers): the key is a hash of everything the artifact depends on, so a second model on the
same dataset reuses it and any change of input or config makes a new entry.

Artifacts are tensors, numpy arrays and plain data, stored with ``torch.save`` and read back
with ``torch.load(weights_only=True)`` plus numpy's array types (:func:`load_safely`), which
refuses anything that would run code: a pickle planted in the cache folder, or a truncated file,
is reported and the artifact rebuilt, never executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.training import isolated_rng

# numpy arrays unpickle through these; none of them can run code, unlike a general pickle
NUMPY_SAFE_GLOBALS = [
    np._core.multiarray._reconstruct,
    np.ndarray,
    np.dtype,
    *{type(np.dtype(t)) for t in ("bool", "int8", "int16", "int32", "int64", "uint8")},
    *{type(np.dtype(t)) for t in ("uint16", "uint32", "uint64", "float16", "float32", "float64")},
]


def key_hash(key: dict[str, Any]) -> str:
    canonical = json.dumps(key, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(canonical.encode()).hexdigest()[:16]


def load_safely(path: Path) -> Any:
    """``torch.load`` that executes nothing: tensors, numpy arrays and plain data only. Raises
    ``ValueError`` with the reason for anything else (a planted pickle, a truncated file)."""
    try:
        with torch.serialization.safe_globals(NUMPY_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable or unsafe file is refused
        reason = str(exc).splitlines()[0][:200]
        raise ValueError(f"{type(exc).__name__}: {reason}") from None


def save_atomic(value: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: readers never see a
    partial file, and a kill leaves at most a ``*.partial`` behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(value, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class DiskCache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.hits: list[str] = []

    def path(self, kind: str, key: dict[str, Any]) -> Path:
        return self.root / kind / f"{key_hash(key)}.pt"

    def get_or_create(self, kind: str, key: dict[str, Any], create: Callable[[], Any]) -> Any:
        """Load the artifact for ``key`` or build it with ``create()`` and store it atomically."""
        path = self.path(kind, key)
        if path.exists():
            try:
                value = load_safely(path)
            except ValueError as exc:
                warnings.warn(
                    f"cache artifact {path} cannot be loaded safely ({exc}); rebuilding it",
                    stacklevel=2,
                )
            else:
                self.hits.append(f"{kind}/{path.stem}")
                return value
        # Under its own seeded generators: building the artifact must not move the run's random
        # stream, or a cold cache and a warm one would give the same run id different numbers.
        with isolated_rng(int(key_hash(key)[:8], 16)):
            value = create()
        save_atomic(value, path)
        key_file = path.with_suffix(".json")
        save_text_atomic(json.dumps(key, sort_keys=True, default=str, indent=1), key_file)
        return value


def save_text_atomic(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
