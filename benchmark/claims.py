"""Exclusive claims, so workers sharing a grid (or a cache) never do the same work twice.

A claim is an advisory ``flock`` on a lock file: the kernel releases it when its process exits,
however it exits (kill -9 included), so a dead worker's claim expires by itself and the next
worker takes it over; no heartbeat or clean-up is needed. The file records the owner's host, pid
and start time for humans (``launch --status``, ``ls``). ``flock`` works across processes on one
machine and on network file systems that support it (NFSv4, Lustre with ``flock`` mounted).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Claim:
    """A held claim; :meth:`release` (or garbage collection of the process) lets it go."""

    def __init__(self, path: Path, handle, owner: dict[str, Any]) -> None:
        self.path, self._handle, self._owner = path, handle, owner

    def note(self, **details: Any) -> None:
        """Add ``details`` (what is being done, how far it got) to the file, for readers such
        as ``python -m benchmark status``; the lock itself is untouched."""
        if self._handle is None:
            return
        self._owner.update(details)
        _write_owner(self._handle, self._owner)

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def try_claim(path: Path) -> Claim | None:
    """Claim ``path`` (a lock file, created if missing) or return None when a live process
    holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - kept open for the claim's lifetime
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            pass
        try:  # readers' probes (claim_owner) share the lock for microseconds; a holder does not
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    _write_owner(handle, owner)
    return Claim(path, handle, owner)


def _write_owner(handle, owner: dict[str, Any]) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(owner) + "\n")
    handle.flush()


def claim_owner(path: Path) -> dict | None:
    """Who holds the claim at ``path`` and what they noted (None when nobody holds it; ``{}``
    when the holder is caught rewriting the file)."""
    try:
        handle = open(path)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    with handle:
        try:  # a probe, not a claim: it must not rewrite the last holder's notes
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return claim_notes(path)
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


# The notes' fields (try_claim's owner, the runner's run and progress_of's progress) and their
# types: readers format them (``f"{best:.4f}"``) and compare them, so a damaged or hand-edited
# file's field of another type is dropped, not a crash of ``status``.
NOTE_TYPES: dict[str, type | tuple[type, ...]] = {
    "host": str,
    "pid": int,
    "since": (int, float),
    "dataset": str,
    "model": str,
    "seed": int,
    "run_id": str,
    "stage": str,
    "epochs": int,
    "train_minutes": (int, float),
    "last": (int, float),
    "best": (int, float),
    "best_at": int,
    "updated": str,
    "outcome": str,  # the worker was done with the run (ok, skipped, paused, failed, ...)
    "reports_outcome": bool,  # the worker will note its outcome (a claim without one: killed)
}


def claim_notes(path: Path) -> dict[str, Any]:
    """What the last holder of ``path`` noted, held or not (``{}`` when unreadable): a killed
    worker's file still says which run it trained and how far it got. Known fields of the
    wrong type (:data:`NOTE_TYPES`) are left out."""
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):  # JSONDecodeError, or bytes that are not UTF-8
        return {}
    return _typed_notes(owner) if isinstance(owner, dict) else {}


def _typed_notes(notes: dict[str, Any]) -> dict[str, Any]:
    """``notes`` without the known fields whose value has another type."""
    return {k: v for k, v in notes.items() if k not in NOTE_TYPES or _fits(v, NOTE_TYPES[k])}


def _fits(value: Any, kind: type | tuple[type, ...]) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, kind):  # a bool is no number
        return False
    return not isinstance(value, int) or abs(value) < 2**63  # formats as a float


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Block until this process holds ``path``'s lock (for short critical sections, such as
    building one cache artifact that another worker may be building too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
