"""Content-addressed cache for expensive artifacts (text embeddings, teacher embeddings, trained
tokenizers): the key is a hash of everything the artifact depends on, so a second model on the
same dataset reuses it and any change of input or config makes a new entry."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from models.training import isolated_rng


def key_hash(key: dict[str, Any]) -> str:
    canonical = json.dumps(key, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(canonical.encode()).hexdigest()[:16]


class DiskCache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.hits: list[str] = []

    def path(self, kind: str, key: dict[str, Any]) -> Path:
        return self.root / kind / f"{key_hash(key)}.pt"

    def get_or_create(self, kind: str, key: dict[str, Any], create: Callable[[], Any]) -> Any:
        """Load the artifact for ``key`` or build it with ``create()`` and store it atomically.

        Artifacts are tensors, numpy arrays and plain data (our own files: loaded with
        ``weights_only=False``)."""
        path = self.path(kind, key)
        if path.exists():
            self.hits.append(f"{kind}/{path.stem}")
            return torch.load(path, weights_only=False)
        # Under its own seeded generators: building the artifact must not move the run's random
        # stream, or a cold cache and a warm one would give the same run id different numbers.
        with isolated_rng(int(key_hash(key)[:8], 16)):
            value = create()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".partial")
        os.close(fd)
        torch.save(value, tmp)
        os.replace(tmp, path)
        path.with_suffix(".json").write_text(json.dumps(key, sort_keys=True, default=str, indent=1))
        return value
