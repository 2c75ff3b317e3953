"""Seaborn figures for the results section, one set per leaderboard table (PNG and PDF).

Per table: Recall@10 / NDCG@10 bars with 95% t-intervals over seeds; NDCG@10 against training
time (log x); per-level codebook usage and entropy for semantic-ID models; learning curves (the
validation selection metric per epoch and against training wall-clock). Figures are drawn
on :class:`matplotlib.figure.Figure` objects (no pyplot state), which render PNG through the
Agg backend whatever backend the process has.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats

from benchmark.atomic import write_atomic
from benchmark.leaderboard import (
    Leaderboard,
    Table,
    build_leaderboard,
    load_records,
    metric_label,
)
from benchmark.metrics import headline_metrics

Palette = dict[str, tuple[float, float, float]]
WIDTH = 7.0


def _t_interval(values: pd.Series) -> tuple[float, float]:
    """95% Student-t confidence interval of the mean; a point for a single seed."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean
    half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
    return mean - half, mean + half


def _figure(height: float = 3.6, ncols: int = 1) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(WIDTH, height), layout="constrained")
    return fig, np.atleast_1d(fig.subplots(1, ncols))


def _legend_outside(ax: Axes) -> None:
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), title=None, frameon=False)


def metric_bars(table: Table, palette: Palette) -> Figure | None:
    """The headline metrics (e.g. NDCG@10, Recall@10) per model: mean over seeds with 95%
    t-intervals."""
    metrics = {m: metric_label(m) for m in headline_metrics(table.selection)}
    present = [m for m in metrics if m in table.runs]
    if not present:
        return None
    data = table.runs.melt(id_vars="model", value_vars=present, var_name="metric").dropna()
    data["metric"] = data["metric"].map(metrics)
    fig, (ax,) = _figure()
    sns.barplot(
        data=data,
        x="metric",
        y="value",
        hue="model",
        palette=palette,
        hue_order=[m for m in palette if m in set(data["model"])],
        errorbar=_t_interval,
        capsize=0.15,
        err_kws={"linewidth": 1},
        ax=ax,
    )
    missing = sorted(set(table.models) - set(data["model"]))
    note = f"no result: {', '.join(missing)}" if missing else ""
    ax.set(xlabel=note, ylabel="test score (mean, 95% CI over seeds)", title=table.slug)
    _legend_outside(ax)
    return fig


def accuracy_vs_time(table: Table, palette: Palette) -> Figure | None:
    """Mean selection metric (e.g. NDCG@10) against mean training time (log x), with std bars
    over seeds."""
    metric = table.selection
    columns = [metric, "train_seconds"]
    if not set(columns) <= set(table.runs):
        return None
    runs = table.runs.dropna(subset=columns)
    runs = runs[runs["train_seconds"] > 0].astype({c: float for c in columns})
    if runs.empty:
        return None
    means = runs.groupby("model")[columns].agg(["mean", "std"]).fillna(0.0)
    fig, (ax,) = _figure()
    for model, row in means.iterrows():
        x, y = row[("train_seconds", "mean")], row[(metric, "mean")]
        ax.errorbar(
            x,
            y,
            xerr=row[("train_seconds", "std")],
            yerr=row[(metric, "std")],
            fmt="none",
            ecolor=palette[model],
            alpha=0.6,
        )
    points = means.xs("mean", axis=1, level=1).reset_index()
    sns.scatterplot(
        data=points, x="train_seconds", y=metric, hue="model", palette=palette, s=70, ax=ax
    )
    ax.set_xscale("log")
    ax.set(
        xlabel="training time (s, log scale)",
        ylabel=f"test {metric_label(metric)} (mean ± std over seeds)",
        title=table.slug,
    )
    _legend_outside(ax)
    return fig


def sid_usage(table: Table, palette: Palette) -> Figure | None:
    """Per-level codebook usage and usage entropy (bits) for models with SID diagnostics; bars
    are means over seeds with one std."""
    columns = [c for c in table.runs if c.startswith("sid_l")]
    if not columns:
        return None
    data = table.runs.melt(id_vars="model", value_vars=columns).dropna()
    if data.empty:  # columns from other tables' records; none of this table's models has IDs
        return None
    parts = data["variable"].str.extract(r"sid_l(?P<level>\d+)_(?P<stat>usage|entropy_bits)")
    data = pd.concat([data, parts], axis=1)
    data["level"] = "L" + data["level"]
    fig, axes = _figure(ncols=2)
    order = [m for m in palette if m in set(data["model"])]
    panels = {"usage": "fraction of codes used", "entropy_bits": "code usage entropy (bits)"}
    for ax, (stat, label) in zip(axes, panels.items()):
        sns.barplot(
            data=data[data["stat"] == stat],
            x="level",
            y="value",
            hue="model",
            hue_order=order,
            palette=palette,
            errorbar="sd",
            capsize=0.15,
            ax=ax,
        )
        ax.set(xlabel="code level", ylabel=label)
    axes[0].set_ylim(0, 1.05)
    if axes[0].get_legend() is not None:
        axes[0].get_legend().remove()
    fig.suptitle(f"{table.slug}: semantic-ID codebooks (mean ± std over seeds)")
    _legend_outside(axes[1])
    return fig


def validation_curves(table: Table, palette: Palette) -> Figure | None:
    """Learning curves: the validation selection metric per epoch (mean over seeds while every
    seed is still training, then each longer run's tail) and against training wall-clock time
    (records that logged it; one line per run: seeds reach an epoch at different times)."""
    metric = table.selection
    rows = [
        {
            "model": model,
            "run": run,
            "epoch": point["epoch"],
            # cold-cache artifact builds left out (where recorded), as in the tables
            "seconds": None if point.get("seconds") is None else max(0.0, point["seconds"] - built),
            "y": point[metric],
        }
        for run, (model, curve, built) in enumerate(
            zip(table.runs["model"], table.runs["curve"], table.runs["artifact_seconds"])
        )
        for point in curve
        if "epoch" in point and point.get(metric) is not None
    ]
    if not rows:
        return None
    data = pd.DataFrame(rows)
    timed = data.dropna(subset=["seconds"])
    fig, axes = _figure(height=3.8, ncols=2 if len(timed) else 1)
    order = [m for m in palette if m in set(data["model"])]
    style = dict(hue="model", palette=palette, hue_order=order, marker="o", markersize=3)
    style |= dict(style="model", style_order=order, dashes=_dashes(order))
    # one line per method: the mean over seeds (band: one std) only up to the last epoch every
    # seed reached; each longer run's tail thin on its own, never a one-seed "mean"
    cut = data["model"].map(data.groupby(["model", "run"])["epoch"].max().groupby("model").min())
    sns.lineplot(data=data[data["epoch"] <= cut], x="epoch", y="y", errorbar="sd", ax=axes[0],
                 **style)  # fmt: skip
    tails = data[data["epoch"] >= cut]  # from the cut on: each tail starts where the mean ends
    tails = tails[tails.groupby("run")["epoch"].transform("size") > 1]
    if len(tails):
        thin = {**style, "marker": None, "linewidth": 0.8, "alpha": 0.6, "legend": False}
        sns.lineplot(data=tails, x="epoch", y="y", units="run", estimator=None, ax=axes[0], **thin)
    axes[0].set(
        xlabel="epoch", ylabel=f"validation {metric_label(metric)} (mean ± std; thin: tails)"
    )
    if len(timed):
        sns.lineplot(
            data=timed.assign(minutes=timed["seconds"] / 60),
            x="minutes",
            y="y",
            units="run",
            estimator=None,
            ax=axes[1],
            **style,
        )
        axes[1].set(xlabel="training wall-clock (minutes)", ylabel="")
        if axes[0].get_legend() is not None:
            axes[0].get_legend().remove()
        _legend_outside(axes[1])
    else:
        _legend_outside(axes[0])
    fig.suptitle(f"{table.slug}: learning curves")
    return fig


FIGURES: dict[str, Callable[[Table, Palette], Figure | None]] = {
    "bars": metric_bars,
    "accuracy_vs_time": accuracy_vs_time,
    "sid_usage": sid_usage,
    "curves": validation_curves,
}


def _backbone(model: str) -> str:
    """``tiger+soda`` and ``tiger (constant)`` are variants of ``tiger``."""
    return model.split(" (")[0].split("+")[0]


def _palette(tables: list[Table]) -> Palette:
    """One colour per model, the same in every figure: one hue per backbone, and its variants
    (``+soda``, labelled settings) in lighter tints of it, so a plug-in's effect reads as a
    pair of shades."""
    models = sorted({m for t in tables for m in t.models})
    backbones = sorted({_backbone(m) for m in models})
    hues = sns.color_palette("tab10" if len(backbones) <= 10 else "husl", len(backbones))
    palette: Palette = {}
    for backbone, hue in zip(backbones, hues):
        family = sorted(
            (m for m in models if _backbone(m) == backbone), key=lambda m: m != backbone
        )
        for shade, model in enumerate(family):
            tint = 0.45 * shade / max(len(family) - 1, 1) if shade else 0.0
            palette[model] = tuple(float(c + (1 - c) * tint) for c in hue)
    return dict(sorted(palette.items()))


def _dashes(models: list[str]) -> dict[str, tuple[float, float] | str]:
    """Solid lines for backbones, dashed for their variants."""
    return {m: "" if m == _backbone(m) else (4, 1.5) for m in models}


def write_figures(results_dir: Path, out_dir: Path, board: Leaderboard | None = None) -> list[Path]:
    """Draw every figure that has data for each leaderboard table of ``results_dir/runs``; write
    ``<table>_<figure>.png`` and ``.pdf`` under ``out_dir``; return the written paths."""
    board = board or build_leaderboard(load_records(Path(results_dir)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    palette = _palette(board.tables)
    paths = []
    for table in board.tables:
        for name, draw in FIGURES.items():
            fig = draw(table, palette)
            if fig is None:
                continue
            for ext in ("png", "pdf"):
                path = out_dir / f"{table.slug}_{name}.{ext}"
                # no creation date in a PDF: regenerating an unchanged figure changes no byte
                meta = {"CreationDate": None} if ext == "pdf" else {}
                save = functools.partial(fig.savefig, format=ext, dpi=150, metadata=meta)
                write_atomic(path, save)
                paths.append(path)
    return paths
