"""The one way the harness writes a file: into a temporary file beside the target, flushed to
disk, then renamed over it. A reader (or a run killed mid-write) sees the old file or the new
one, never a truncated one; at worst a hidden ``.<name>.*.partial`` is left behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(handle)`` on a binary temporary file, then publish it as ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; publish as a normal file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json_atomic(path: Path, payload: Any, indent: int | None = 1) -> Path:
    text = json.dumps(payload, indent=indent, sort_keys=False) + "\n"
    return write_text_atomic(path, text)


def torch_save_atomic(path: Path, value: Any) -> Path:
    import torch

    return write_atomic(path, lambda handle: torch.save(value, handle))
