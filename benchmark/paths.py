"""Names that become file names, and the check that every path the harness writes stays under
its root (results, cache, saved models, tuning): a dataset called ``../x`` must not write
outside them."""

from __future__ import annotations

import os
import re
from pathlib import Path

from benchmark.errors import BenchmarkError

# letters, digits and . _ - + ( ) space; no separators, no leading dot (so no '..')
_NAME = re.compile(r"^[A-Za-z0-9_+()\-][A-Za-z0-9_.+()\- ]{0,99}$")


def check_name(name: str, what: str) -> str:
    """``name`` if it is safe as one path component, else a :class:`BenchmarkError` that says
    why and what is allowed."""
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith((" ", ".")):
        raise BenchmarkError(
            f"invalid {what} name {name!r}: use 1-100 letters, digits, '_', '-', '+', '.', "
            f"'(', ')' or spaces, not starting with '.' and without path separators"
        )
    return name


def under(root: Path, path: Path, what: str = "output") -> Path:
    """``path``, after checking that it resolves inside ``root``."""
    resolved_root, resolved = Path(root).resolve(), Path(path).resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise BenchmarkError(f"refusing to write {what} {path}: it is outside {root}")
    return path


def check_writable_folder(folder: Path, what: str, flag: str) -> None:
    """Fail before any work when ``folder`` cannot hold results: it is a file, or it (or the
    nearest existing parent) is not writable."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BenchmarkError(f"{what} {folder} is a file, not a folder; pass another {flag}")
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise BenchmarkError(f"{what} {folder} is not writable ({probe}); pass another {flag}")
