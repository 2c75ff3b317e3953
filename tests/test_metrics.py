import math

import numpy as np
import pytest
import torch

from benchmark.errors import BenchmarkError
from benchmark.metrics import metrics_from_ranks, per_user_metrics, target_ranks


def test_ranks_and_metrics_by_hand():
    top = torch.tensor([[5, 3, 9], [1, 2, 3], [7, 8, 4]])
    ranks = target_ranks(top, np.array([3, 4, 4]))
    assert ranks.tolist() == [2, 0, 3]
    m = metrics_from_ranks(ranks, [1, 3])
    assert m["recall@1"] == 0
    assert m["recall@3"] == pytest.approx(2 / 3)
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 3)
    assert m["mrr@3"] == pytest.approx((1 / 2 + 1 / 3) / 3)


def test_k_must_be_positive():
    with pytest.raises(BenchmarkError, match="positive"):
        per_user_metrics(np.array([1]), [0])


def test_matches_recbole_metric_code():
    """RecBole's Recall/NDCG/MRR on the same top-K hits (one positive per user)."""
    from recbole.evaluator.metrics import MRR, NDCG, Recall

    import models.recbole_compat  # noqa: F401

    rng = np.random.default_rng(0)
    ranks = rng.integers(0, 21, size=200)
    pos_index = np.zeros((200, 20), dtype=bool)
    for u, r in enumerate(ranks):
        if r:
            pos_index[u, r - 1] = True
    pos_len = np.ones(200, dtype=int)
    config = {"topk": [5, 10, 20], "metric_decimal_place": 6}
    ours = metrics_from_ranks(ranks, [5, 10, 20])
    for cls, name in ((Recall, "recall"), (NDCG, "ndcg"), (MRR, "mrr")):
        metric = cls(config)
        args = (pos_index,) if cls is MRR else (pos_index, pos_len)
        values = metric.metric_info(*args).mean(axis=0)
        for k in (5, 10, 20):
            assert ours[f"{name}@{k}"] == pytest.approx(values[k - 1], abs=1e-9), (name, k)
