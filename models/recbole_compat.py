"""Everything needed to use RecBole 1.2.1 with today's numpy / torch, in one place.

Import RecBole only through this module (``from benchmark.recbole_compat import recbole_config``
etc.). The shims, each tested in ``tests/test_recbole_compat.py`` so that an upgrade that breaks
one fails loudly:

* numpy 2 removed ``np.float_``, ``np.complex_``, ``np.unicode_``, ``np.bool8`` (and numpy
  1.24 ``np.float``, ``np.int``, ...), which RecBole 1.2.1 still uses: define them before RecBole
  is imported.
* ``recbole.quick_start`` imports an old ``ray`` that needs ``pkg_resources``: never imported.
* RecBole's Trainer checkpoints do not load under torch >= 2.6 (``weights_only``): we use our own
  training loop around RecBole model classes and never its Trainer.
* ``recbole.config.Config`` parses ``sys.argv``: it is built with ``sys.argv`` isolated.
* ``recbole.model.sequential_recommender.sine`` calls ``torch.autograd.set_detect_anomaly(True)``
  at import time, for the whole process: every backward pass then checks for NaNs, which made
  SASRec training about 5x slower here. We switch it back off after importing RecBole.
* It logs to files under ``./log`` and ``./saved`` unless told not to: we point them at a
  temporary directory.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

_NUMPY_ALIASES = {
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "bool8": np.bool_,
    # RecBole's own Config.compatibility_settings() sets these on every Config; its metric and
    # Interaction code needs them even when no Config was built yet.
    "float": float,
    "int": int,
    "bool": bool,
    "complex": complex,
    "object": object,
    "str": str,
    "long": int,
    "unicode": str,
}
for _name, _value in _NUMPY_ALIASES.items():
    if _name not in np.__dict__:
        setattr(np, _name, _value)

# RecBole's fillna(inplace=True) on a column copy warns under pandas 2.x and is a silent no-op
# under pandas 3 (so pandas is pinned below 3; our readers reject missing values anyway).
warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")

import recbole.model.sequential_recommender  # noqa: E402,F401  (imports sine.py)
import torch  # noqa: E402

torch.autograd.set_detect_anomaly(False)
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset  # noqa: E402
from recbole.data.dataset import SequentialDataset  # noqa: E402
from recbole.data.interaction import Interaction  # noqa: E402
from recbole.utils import get_model  # noqa: E402

__all__ = [
    "Config",
    "SequentialDataset",
    "build_model",
    "create_dataset",
    "interaction",
    "isolated_argv",
    "recbole_config",
]

_SCRATCH = tempfile.mkdtemp(prefix="genrec-recbole-")  # RecBole wants a checkpoint folder
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)  # nothing is ever written there


@contextlib.contextmanager
def isolated_argv() -> Iterator[None]:
    """RecBole's Config reads command-line flags from sys.argv; hide ours from it."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else "genrec-bench"]
    try:
        yield
    finally:
        sys.argv = saved


def recbole_config(model: str, dataset: str, data_path: str, overrides: dict[str, Any]) -> Config:
    """A RecBole Config built without touching sys.argv, the working directory or the network."""
    params = {
        "data_path": data_path,
        "checkpoint_dir": _SCRATCH,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        "reproducibility": True,
        "state": "ERROR",
    }
    params.update(overrides)
    # RecBole's Config sets CUDA_VISIBLE_DEVICES from its gpu_id; the harness owns the device
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    with isolated_argv():
        try:
            config = Config(model=model, dataset=dataset, config_dict=params)
        finally:
            if visible is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = visible
    # RecBole attaches handlers to the root logger on every Config; keep our terminal clean.
    logging.getLogger().handlers = [
        h for h in logging.getLogger().handlers if not isinstance(h, logging.FileHandler)
    ]
    return config


def build_model(name: str, settings: dict[str, Any], dataset: Any) -> torch.nn.Module:
    """Instantiate RecBole model class ``name`` (e.g. "SASRec") from settings and a dataset-like
    object with ``num(field)``. The dataset name is irrelevant to model construction."""
    config = recbole_config(name, "genrec", _SCRATCH, settings)
    return get_model(name)(config, dataset)


def interaction(
    seqs: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor | None, device: torch.device
) -> Interaction:
    """A RecBole Interaction with the fields its sequential models read."""
    fields = {"item_id_list": seqs, "item_length": lengths}
    if targets is not None:
        fields["item_id"] = targets
    return Interaction(fields).to(device)
