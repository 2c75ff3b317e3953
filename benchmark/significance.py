"""Paired tests on per-user test scores, shared by the leaderboard's marks (each model against
the column's best) and its comparisons (each method against what it builds on)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.stats import ttest_rel, wilcoxon

from benchmark.metrics import per_user_metric


def per_user_scores(
    runs: pd.DataFrame, model: str, metric: str, seeds: Iterable[int] | None = None
) -> pd.Series:
    """The per-user ``metric`` of ``model`` averaged over its seeds (or over ``seeds`` only),
    indexed by test user id; empty when no run kept its per-user ranks."""
    runs = runs[(runs["model"] == model) & runs["ranks"].notna() & runs["users"].notna()]
    if seeds is not None:
        runs = runs[runs["seed"].isin(list(seeds))]
    per_seed = [
        pd.Series(per_user_metric(ranks, metric), index=users)
        for users, ranks in zip(runs["users"], runs["ranks"])
    ]
    return pd.concat(per_seed).groupby(level=0).mean() if per_seed else pd.Series(dtype=float)


# Per-user scores averaged over seeds carry float noise (1/3 + 1/3 vs 2/3 differ in the last
# bit): differences are rounded to this many decimals, so equal ones tie in the signed ranks
# and zero ones drop out, as in exact arithmetic.
DECIMALS = 12


def ranked_seeds(runs: pd.DataFrame) -> dict[str, tuple[int, ...]]:
    """Each model's seeds that kept per-user ranks (sorted): the only ones a per-user test can
    pair, since a seed without them would silently drop out of one side."""
    ranked = runs[runs["ranks"].notna() & runs["users"].notna()]
    return ranked.groupby("model")["seed"].agg(lambda s: tuple(sorted(set(s)))).to_dict()


def wilcoxon_p(reference: pd.Series, other: pd.Series) -> float:
    """Two-sided Wilcoxon signed-rank p-value, paired by user; NaN when nothing pairs, 1 when
    every user scores the same under both."""
    paired = pd.concat([reference, other], axis=1, join="inner")
    if paired.empty:
        return float("nan")
    differences = np.round(paired.iloc[:, 0].to_numpy() - paired.iloc[:, 1].to_numpy(), DECIMALS)
    if not differences.any():
        return 1.0
    return float(wilcoxon(differences).pvalue)


def paired_t_p(method: np.ndarray, base: np.ndarray) -> float:
    """Two-sided paired t-test p-value over seeds (one mean per seed each); NaN for fewer than
    two seeds, and for differences without spread (identical on every seed), where the test is
    undefined."""
    method, base = np.asarray(method, dtype=float), np.asarray(base, dtype=float)
    differences = np.round(method - base, DECIMALS)
    if len(differences) < 2 or np.all(differences == differences[0]):
        return float("nan")
    return float(ttest_rel(method, base).pvalue)


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm step-down adjusted p-values."""
    adjusted, running = {}, 0.0
    for i, name in enumerate(sorted(pvalues, key=pvalues.get)):
        running = max(running, min(1.0, (len(pvalues) - i) * pvalues[name]))
        adjusted[name] = running
    return adjusted
