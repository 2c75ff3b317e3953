"""The contract between the harness and every model.

A model is a class with

* ``name``: its registry name;
* ``Config``: a dataclass subclassing :class:`ModelConfig`; ``PROFILES`` maps a profile name
  (``smoke`` for tests, ``quick`` for CPU minutes, ``paper`` for the published hyperparameters)
  to overrides of the dataclass defaults;
* ``fit(data, ctx)``: trains, calling ``ctx.validate(epoch)`` after each epoch for early stopping
  (and Optuna pruning, which raises from inside ``validate``);
* ``recommend(histories, k)``: top-k item ids per user. The harness scores them; models never
  compute metrics.

Item ids follow RecBole: ``1..n_items`` are items, ``0`` is padding. Histories are Python lists of
item ids, oldest first, already capped at the protocol's maximum length.

Models import only from ``models`` (and libraries); they never import the runner, CLI or aggregator.
Everything the harness lends them (text embeddings, the SASRec teacher, the artifact cache,
progress bars, the device) comes through :class:`FitContext`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from models.errors import ConfigError
from models.training import jsonable


@dataclass
class ModelConfig:
    """Base class of every model's config. Subclasses add typed fields with defaults.

    Values are checked on creation (:meth:`__post_init__`): a field listed in ``CHOICES`` takes
    one of its values; every int field is at least 1 unless listed in ``ZERO_ALLOWED`` (where
    0 means "off" or "all"); learning rates (fields named ``lr`` or ``*_lr``) and temperatures
    (``*tau*``, ``*temperature*``: they divide) are positive; loss weights (``*_weight``),
    ``weight_decay``, ``rq_beta`` and ``sigma_*`` are non-negative; ``dropout`` and
    ``*_momentum`` lie in [0, 1); every float is finite."""

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}
    ZERO_ALLOWED: ClassVar[frozenset[str]] = frozenset()
    # Fields added after runs were recorded: left out of :meth:`to_dict` (and so of run ids)
    # while at their default, so the recorded runs keep their ids and are not trained again.
    ADDED_LATER: ClassVar[frozenset[str]] = frozenset()
    # Fields inherited from this base that the model never reads (popularity trains nothing):
    # setting one is an error, not a new run id for the same numbers.
    INERT: ClassVar[frozenset[str]] = frozenset()

    batch_size: int = 256
    lr: float = 1e-3
    epochs: int = 10  # the cap: training stops earlier when validation stops improving
    patience: int = 3  # early-stopping patience in epochs on the validation selection metric

    def __post_init__(self) -> None:
        check_values(self)

    @classmethod
    def build(cls, profile: str, profiles: dict[str, dict[str, Any]], overrides: dict[str, Any]):
        """Defaults, then the profile's values, then user overrides; unknown keys are errors."""
        if profile not in profiles:
            raise ConfigError(
                f"unknown profile {profile!r}; choose one of {', '.join(sorted(profiles))}"
            )
        values: dict[str, Any] = {}
        for source, entries in (("profile " + profile, profiles[profile]), ("--set", overrides)):
            for key, value in entries.items():
                if key in cls.INERT:
                    raise ConfigError(
                        f"{key!r} in {source} has no effect on {cls.__qualname__} (it reads "
                        f"none of {', '.join(sorted(cls.INERT))}); drop it"
                    )
                values[key] = coerce_field(cls, key, value, source)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.name in self.ADDED_LATER and values[f.name] == f.default:
                del values[f.name]
        return values


def check_values(config: ModelConfig) -> None:
    """Raise :class:`ConfigError` for a value outside its field's declared range or choices."""
    name = type(config).__name__
    for f in dataclasses.fields(config):
        key, value = f.name, getattr(config, f.name)
        choices = config.CHOICES.get(key)
        if choices is not None and value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{name}: {key}={value!r} is not one of {', '.join(choices)}{hint}")
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, tuple) and any(v <= 0 for v in value):
            raise ConfigError(f"{name}: every entry of {key}={value} must be positive")
        if isinstance(value, int):
            low = 0 if key in config.ZERO_ALLOWED else 1
            if value < low:
                raise ConfigError(f"{name}: {key}={value} must be an integer >= {low}")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ConfigError(f"{name}: {key}={value} must be a finite number")
            if (key == "lr" or key.endswith("_lr")) and value <= 0:
                raise ConfigError(f"{name}: learning rate {key}={value} must be positive")
            if ("tau" in key or "temperature" in key) and value <= 0:
                raise ConfigError(f"{name}: {key}={value} must be positive (it divides)")
            if _non_negative(key) and value < 0:
                raise ConfigError(f"{name}: {key}={value} must be >= 0")
            if (key == "dropout" or key.endswith("_momentum")) and not 0 <= value < 1:
                raise ConfigError(f"{name}: {key}={value} must lie in [0, 1)")


def _non_negative(key: str) -> bool:
    """Loss weights, decay and noise scales: a negative one flips what the term does."""
    return (
        key.endswith("_weight")
        or key in ("weight_decay", "rq_beta", "hot_ratio")
        or key.startswith("sigma_")
    )


def _checked_value(key: str, value: Any, target: str, optional: bool, source: str) -> Any:
    """A value that is already typed (a profile's, or a tuned YAML's) after checking that it
    has the field's type; an integral float for an int field becomes an int."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if value is None and optional:
        return None
    if target == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if target == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # a YAML `1` for a float field: checked as a float, not an int
    if target.startswith(("tuple", "list")) and isinstance(value, (list, tuple)):
        kind = int if "int" in target else (int, float)
        if all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
            return tuple(value)
    elif {
        "bool": isinstance(value, bool),
        "int": number and isinstance(value, int),
        "float": number,
        "str": isinstance(value, str),
    }.get(target, True):
        return value
    raise ConfigError(f"config key {key!r}: {value!r} is not a valid {target} (from {source})")


def coerce_field(cls: type, key: str, value: Any, source: str = "--set") -> Any:
    """Check that ``key`` is a field of dataclass ``cls`` and convert ``value`` to its type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        close = difflib.get_close_matches(key, fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown config key {key!r} in {source} for {cls.__qualname__}{hint}; "
            f"known keys: {', '.join(sorted(fields))}"
        )
    target = fields[key].type
    target = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    optional = target.endswith(" | None")  # e.g. "int | None": "none" or "" leaves it unset
    if optional:
        target = target[: -len(" | None")]
    if not isinstance(value, str):
        return _checked_value(key, value, target, optional, source)
    if optional and value.strip().lower() in ("", "none"):
        return None
    try:
        if target == "bool":
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if target == "int":
            return int(value)
        if target == "float":
            return float(value)
        if target.startswith("tuple") or target.startswith("list"):
            items = [v for v in value.strip("()[]").split(",") if v.strip()]
            if "int" in target:  # layer widths: 1e3 or 2.5 is no width
                return tuple(int(v) for v in items)
            return tuple(float(v) if "." in v or "e" in v else int(v) for v in items)
    except ValueError:
        raise ConfigError(
            f"config key {key!r}: cannot read {value!r} as {target} (from {source})"
        ) from None
    return value


def folder_stamp(path: str) -> str | None:
    """A hash of a folder's file names, sizes and modification times (None if ``path`` is not
    a folder): what tells a local model folder's contents apart, without reading its weights."""
    folder = Path(path)
    if not folder.is_dir():
        return None
    digest = hashlib.sha1()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@dataclass
class SequenceData:
    """One dataset under the leave-one-out, time-ordered protocol, as models see it.

    ``train_users[i]`` / ``train_histories[i]`` / ``train_targets[i]``: every prefix -> next pair
    inside each user's training items (RecBole's sequential augmentation), histories capped at
    ``max_history``. ``valid_*`` / ``test_*``: one row per user (the second-last / last item).
    """

    name: str
    n_items: int
    n_users: int
    max_history: int
    train_users: np.ndarray
    train_histories: list[list[int]]
    train_targets: np.ndarray
    valid_users: np.ndarray
    valid_histories: list[list[int]]
    valid_targets: np.ndarray
    test_users: np.ndarray
    test_histories: list[list[int]]
    test_targets: np.ndarray
    item_text: list[str] = field(default_factory=list)  # index = item id; "" for padding 0
    fingerprint: str = ""
    item_tokens: list[str] = field(default_factory=list)  # raw item token per id ("[PAD]" at 0)
    n_interactions: int = 0

    @functools.cached_property
    def text_fingerprint(self) -> str:
        """Hash of the item texts, which ``fingerprint`` (the interactions) does not cover: what
        keys artifacts built from text (embeddings, tokenizers) and guards runs that read it."""
        return hashlib.sha1(json.dumps(self.item_text).encode()).hexdigest()[:16]

    def recent_training_rows(self, per_user: int) -> np.ndarray:
        """Indices of each user's ``per_user`` most recent training pairs (all when 0).

        A CPU budget knob for the ``quick`` profiles of expensive models; the rows of one user
        are contiguous and time-ordered (RecBole's augmentation order)."""
        n = len(self.train_targets)
        if per_user <= 0:
            return np.arange(n)
        users = self.train_users
        starts = np.r_[True, users[1:] != users[:-1]]
        ends = np.r_[users[1:] != users[:-1], True]
        group = np.cumsum(starts) - 1
        from_end = np.flatnonzero(ends)[group] - np.arange(n)
        return np.flatnonzero(from_end < per_user)

    def item_popularity(self) -> np.ndarray:
        """Training-interaction count per item id (length n_items + 1)."""
        counts = np.bincount(self.train_targets, minlength=self.n_items + 1)
        # A user's first item is never a target: it is the one-item history of the first training
        # row, or, for a user with a single training item, the one-item validation history.
        firsts = [h[0] for h in self.train_histories if len(h) == 1]
        firsts += [h[0] for h in self.valid_histories if len(h) == 1]
        counts += np.bincount(np.asarray(firsts, dtype=np.int64), minlength=self.n_items + 1)
        return counts


class ArtifactCache(Protocol):
    def get_or_create(self, kind: str, key: dict[str, Any], create: Callable[[], Any]) -> Any: ...


class Progress(Protocol):
    def __call__(self, iterable: Any = None, *, desc: str, total: int | None = None) -> Any: ...


class FitContext(Protocol):
    """What the harness lends a model during ``fit``."""

    seed: int
    device: torch.device
    cache: ArtifactCache
    progress: Progress

    def validate(self, epoch: int, extra: dict[str, Any] | None = None) -> float:
        """Score the model on the validation users; return the protocol's selection metric
        (default NDCG@10; higher is better).

        ``extra`` is logged with the epoch (e.g. loss, SID drift). May raise to prune a trial.
        """

    def item_embeddings(self) -> np.ndarray:
        """Sentence embeddings of item text, shape (n_items + 1, d); row 0 is padding."""

    def teacher_embeddings(self) -> np.ndarray:
        """Item embeddings of the dataset's trained SASRec teacher, (n_items + 1, d)."""

    def log(self, message: str) -> None: ...

    def out_of_budget(self) -> bool:
        """True once the run's wall-clock training budget is spent: stop after this epoch."""

    def resume(self, stage: str) -> dict[str, Any] | None:
        """The last checkpoint of training stage ``stage`` of this run, or None (start fresh).

        Written by :meth:`checkpoint`; restores the validation curve and training clock too."""

    def checkpoint(self, stage: str, state: dict[str, Any], final: bool = False) -> None:
        """Save ``state`` (tensors and plain data) atomically as stage ``stage``'s checkpoint.

        Unless ``final``, may raise to pause the run (``run --stop-after``) once it is saved."""


class Model(ABC):
    """Base class of all models. See the module docstring for the contract."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {}, "quick": {}, "paper": {}}
    # What `tune` searches: config key -> ("float"|"int", low, high[, "log"]) or
    # ("categorical", [choice, ...]). Empty: the model cannot be tuned.
    SEARCH_SPACE: ClassVar[dict[str, tuple]] = {}
    needs_text: ClassVar[bool] = False
    needs_teacher: ClassVar[bool] = False
    # The registered method this one changes (LETTER: TIGER's IDs; X+soda: X). The leaderboard
    # tests each method against it wherever both ran under the same protocol.
    BUILDS_ON: ClassVar[str | None] = None

    def __init__(self, config: ModelConfig):
        self.config = config
        self.diagnostics: dict[str, Any] = {}  # copied into the result record

    @classmethod
    def input_fingerprints(cls, config: ModelConfig, data: SequenceData) -> dict[str, str]:
        """Fingerprints of the files a run reads besides its spec (the run id hashes the spec,
        not the data): the interactions, the item texts where the model reads them; models
        that read more extend it. A finished record or an epoch checkpoint made from other
        inputs is not this run's (the runner refuses to reuse it)."""
        out = {"interactions": data.fingerprint}
        if cls.needs_text:
            out["item_text"] = data.text_fingerprint
        return out

    @abstractmethod
    def fit(self, data: SequenceData, ctx: FitContext) -> None: ...

    @abstractmethod
    def recommend(self, histories: Sequence[Sequence[int]], k: int) -> torch.Tensor:
        """Top-k item ids per history, shape (len(histories), k), best first; 0 where fewer."""

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain data that restore the best checkpoint (used by early stopping)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def num_parameters(self) -> int:
        return 0

    def parameter_counts(self) -> dict[str, int]:
        """Parameter counts with one meaning for every method: ``inference``, every parameter
        used to score or decode a user (for UniGRec its tokenizer too, which builds the soft
        inputs); ``tokenizer``, the parameters of the model that made the item IDs (0 without
        one). The leaderboard shows both."""
        return {"inference": int(self.num_parameters()), "tokenizer": 0}

    def resume_extras(self) -> dict[str, Any]:
        """Training state outside :meth:`state_dict` that an epoch-level resume needs (tensors
        and plain data); models with such state (DIGER's noise scale, UniGRec's stage) extend
        it. The diagnostics gathered so far are part of it."""
        return {"diagnostics": jsonable(self.diagnostics)}

    def load_resume_extras(self, extras: dict[str, Any]) -> None:
        self.diagnostics = extras["diagnostics"]


class ModelPlugin(Protocol):
    """A method part that composes with backbone models, registered as ``<backbone>+<name>``
    (``models.catalog.PLUGINS``), e.g. the SODA loss as ``tiger+soda``."""

    name: str

    def incompatibility(self, backbone: type[Model]) -> str | None:
        """Why ``backbone`` cannot take this plug-in, or ``None`` when it can."""

    def compose(self, backbone: type[Model]) -> type[Model]:
        """``backbone`` with the plug-in, as a model class (the same class on every call)."""


class NetModel(Model):
    """A model whose trainable state is one ``torch.nn.Module`` in ``self.net``."""

    net: torch.nn.Module

    def state_dict(self) -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())
