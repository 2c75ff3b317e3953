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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.atomic import torch_save_atomic, write_text_atomic
from benchmark.claims import exclusive
from benchmark.log import logger
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


class DiskCache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.hits: list[str] = []
        # Seconds spent obtaining artifacts that were not cached (building them, or waiting for
        # another worker's build), nested builds counted once: a run's time budget leaves them
        # out, so a cold cache and a warm one give a budgeted run the same training time.
        self.build_seconds = 0.0
        self._building = 0

    def path(self, kind: str, key: dict[str, Any]) -> Path:
        return self.root / kind / f"{key_hash(key)}.pt"

    def get_or_create(self, kind: str, key: dict[str, Any], create: Callable[[], Any]) -> Any:
        """Load the artifact for ``key`` or build it with ``create()`` and store it atomically.
        Workers sharing the cache build each artifact once: a second one waits for the first."""
        path = self.path(kind, key)
        value = self._load(path, kind)
        if value is not None:
            return value
        started, self._building = time.monotonic(), self._building + 1
        try:
            with exclusive(path.with_suffix(".lock")):
                value = self._load(path, kind)  # built by another worker while this one waited
                if value is not None:
                    return value
                # Under its own seeded generators: building the artifact must not move the run's
                # random stream, or a cold and a warm cache would give one run id different
                # numbers.
                with isolated_rng(int(key_hash(key)[:8], 16)):
                    value = create()
                try:
                    torch_save_atomic(path, value)
                    key_text = json.dumps(key, sort_keys=True, default=str, indent=1)
                    write_text_atomic(path.with_suffix(".json"), key_text)
                except OSError as exc:  # a full disk: this run has the artifact, use it
                    logger.warning(f"could not cache {path} ({exc.strerror or exc}); not cached")
            return value
        finally:
            self._building -= 1
            if not self._building:
                self.build_seconds += time.monotonic() - started

    def _load(self, path: Path, kind: str) -> Any:
        if not path.exists():
            return None
        try:
            value = load_safely(path)
        except ValueError as exc:
            logger.warning(f"cache artifact {path} cannot be loaded safely ({exc}); rebuilding it")
            return None
        self.hits.append(f"{kind}/{path.stem}")
        return value
