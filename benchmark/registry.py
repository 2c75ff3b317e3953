"""A small generic registry: lazy ``module:attr`` entries, duplicate names and unknown names are
errors, the latter with the known names and a close match."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from benchmark.errors import BenchmarkError

T = TypeVar("T")


class UnknownNameError(BenchmarkError):
    pass


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, str | Callable[[], T] | T] = {}
        self._loaded: dict[str, T] = {}

    def register(self, name: str, entry: str | Callable[[], T] | T) -> None:
        """``entry`` is an object, a zero-argument factory, or a lazy ``"module:attr"`` string."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        if name not in self._loaded:
            entry = self._entries[name]
            if isinstance(entry, str) and ":" in entry:
                module, attr = entry.split(":", 1)
                entry = getattr(importlib.import_module(module), attr)
            self._loaded[name] = entry  # type: ignore[assignment]
        return self._loaded[name]

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._entries), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self.names())}."

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def split_names(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; empty parts are dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def get_any(registry: Registry[Any], names: list[str]) -> list[Any]:
    """Resolve every name first, so one typo fails before any work starts."""
    return [registry.get(name) for name in names]
