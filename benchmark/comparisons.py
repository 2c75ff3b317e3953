"""Each method against the method it builds on: LETTER, DIGER and UniGRec against TIGER, every
``X+soda`` against ``X`` (``Model.BUILDS_ON``), wherever both ran in the same table.

The question a paper asks of its method ("does LETTER improve TIGER?", "does SODA help this
backbone?") answered from the stored runs, on the seeds both have: the difference of the means,
how many of those seeds the method won, and two tests:

* a two-sided Wilcoxon signed-rank test on per-user scores averaged over those seeds (paired by
  test user), Holm-corrected across the table's pairs: is the difference more than which users
  happen to be in the test set? It treats the trained models as fixed;
* a paired t-test on the per-seed means (``p_seeds``): is it more than which seed trained the
  model? With three seeds it has little power (3 of 3 seeds won is p 0.25 for a sign test), so
  a small per-user p next to a large seed p says: established for these models, not yet for
  the method.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.significance import holm, paired_t_p, per_user_scores, ranked_seeds, wilcoxon_p

COLUMNS = ["model", "builds_on", "metric", "seeds", "mean", "base_mean", "delta", "wins",
           "p_value", "p_holm", "p_seeds"]  # fmt: skip


@functools.cache
def registered_base(name: str) -> str | None:
    """``BUILDS_ON`` of the registered model ``name``; None for an unknown name (a label)."""
    from benchmark.runner import model_registry

    try:
        return model_registry().get(name).BUILDS_ON
    except BenchmarkError:
        return None


def compare_with_bases(
    runs: pd.DataFrame,
    metrics: list[str],
    builds_on: Callable[[str], str | None] = registered_base,
) -> pd.DataFrame:
    """One row per (method, metric) whose base also has runs in ``runs`` (one table's
    successful runs: ``model``, ``seed``, metric columns, ``users`` / ``ranks``)."""
    models = sorted(set(runs["model"]))
    pairs = [(m, builds_on(m)) for m in models if builds_on(m) in models and builds_on(m) != m]
    ranked = ranked_seeds(runs)
    rows = []
    for metric in metrics:
        if metric not in runs:
            continue
        for model, base in pairs:
            mine = runs[runs["model"] == model].groupby("seed")[metric].mean().dropna()
            theirs = runs[runs["model"] == base].groupby("seed")[metric].mean().dropna()
            seeds = sorted(set(mine.index) & set(theirs.index))
            if not seeds:
                continue
            mine, theirs = mine.loc[seeds], theirs.loc[seeds]
            # per user on the seeds both kept ranks for (the table notes a model without them)
            tested = [s for s in seeds if s in ranked.get(model, ()) and s in ranked.get(base, ())]
            p = wilcoxon_p(
                per_user_scores(runs, base, metric, tested),
                per_user_scores(runs, model, metric, tested),
            )
            rows.append(
                {
                    "model": model,
                    "builds_on": base,
                    "metric": metric,
                    "seeds": len(seeds),
                    "mean": mine.mean(),
                    "base_mean": theirs.mean(),
                    "delta": mine.mean() - theirs.mean(),
                    "wins": int((mine > theirs).sum()),
                    "p_value": p,
                    "p_seeds": paired_t_p(mine.to_numpy(), theirs.to_numpy()),
                }
            )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for _metric, group in frame.groupby("metric"):
        tested = {i: p for i, p in group["p_value"].items() if not np.isnan(p)}
        frame.loc[list(tested), "p_holm"] = pd.Series(holm(tested))
    return frame
