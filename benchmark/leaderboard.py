"""Turn stored run records into a paper's results section.

Pipeline: :func:`load_records` -> :func:`runs_frame` (one tidy row per run) ->
:func:`build_leaderboard` (one :class:`Table` per dataset name, fingerprint, profile and protocol;
those are never mixed) -> :func:`summarize` (mean, std and seeds per model and metric; Wilcoxon
signed-rank against the column's best, Holm-corrected) -> Markdown, LaTeX and a tidy CSV.
:func:`write_leaderboard` runs it all.

A missing cell is shown as missing and explained under its table, never averaged around.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from benchmark.atomic import write_text_atomic
from benchmark.comparisons import compare_with_bases
from benchmark.errors import BenchmarkError
from benchmark.log import logger
from benchmark.metrics import METRIC_TABLE
from benchmark.records import ARTIFACT_BUILDS, BUDGET_EXCLUDES, RecordError, RunRecord
from benchmark.significance import holm, per_user_scores, ranked_seeds, wilcoxon_p
from models.training import capped_stages

ALPHA = 0.05
DIGITS = 4
ACCURACY = tuple(m.name for m in METRIC_TABLE.values() if m.in_tables)
DISPLAY = {m.name: m.display for m in METRIC_TABLE.values()}
KEY = ["dataset", "fingerprint", "profile", "budget", "training_data", "protocol"]
IN_PROGRESS = ("paused", "running")  # statuses of a run that is still training
ALL_PAIRS = "all pairs"
IDENTITY = [
    "run_id",
    "status",
    "error",
    "model",
    "seed",
    "config",
    "finished_at",
    "method_note",
    "skipped_stages",
    "capped_stages",
    "path",
    "git_commit",
    "machine",
    "inputs",
    *KEY,
]
ARRAYS = ["users", "ranks", "curve"]
COST = {
    "params_inference": "Params",
    "params_tokenizer": "Tokenizer params",
    "epochs_to_best": "Epochs to best",
    "epochs_run": "Epochs",
    "train_seconds": "Train (s)",
    "test_users_per_second": "Users/s",
}


# ---------------------------------------------------------------- load


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """Every readable run record under ``results_dir/runs`` (recursively), in path order. A
    record that cannot be read or lacks the fields a table needs is skipped with one warning
    line on stderr naming the file; the board is built from the others."""
    if Path(results_dir).is_file():
        raise BenchmarkError(f"--results-dir {results_dir} is a file; pass the results folder")
    paths = sorted(Path(results_dir).glob("runs/**/*.json"))
    if not paths:
        raise BenchmarkError(
            f"no run records under {results_dir}/runs; run `python -m benchmark run` first"
        )
    records = []
    for path in paths:
        try:
            record = RunRecord.load(path).to_dict()  # validated, older versions upgraded
            record["__path__"] = path.relative_to(results_dir).as_posix()  # for links
            records.append(record)
        except RecordError as exc:
            logger.warning(
                f"skipped {exc} (fix or delete the file; re-running its `run` command moves "
                "it aside and trains the run again)"
            )
    if not records:
        raise BenchmarkError(f"no readable run records under {results_dir}/runs")
    return records


def runs_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per record: identity columns, per-user arrays, one column per scalar value."""
    frame = pd.DataFrame([_run_row(record) for record in records])
    frame["finished_at"] = pd.to_datetime(frame["finished_at"], utc=True, format="ISO8601")
    return frame


def _run_row(record: dict[str, Any]) -> dict[str, Any]:
    spec = record.get("spec") or {}
    model = record.get("model") or {}
    diagnostics = record.get("diagnostics") or {}
    protocol = record.get("protocol")
    if protocol:  # records before the selection metric was part of the protocol used NDCG@10
        protocol = {**protocol, "selection": protocol.get("selection", "ndcg@10")}
        # budgets that leave cold-cache artifact builds out are another protocol than the
        # earlier ones that charged them: never one table. A finished run says which by its
        # diagnostics (a run resumed from an old-rule checkpoint keeps the old rule); a failed
        # or paused one by the tag the runner writes into every budgeted record.
        tagged = protocol.pop(BUDGET_EXCLUDES, None) is not None
        if record.get("status") == "ok":
            tagged = "artifact_seconds" in diagnostics
        if spec.get("budget_minutes") and tagged:
            protocol[BUDGET_EXCLUDES] = ARTIFACT_BUILDS
    config = model.get("config", spec.get("config")) or {}
    pairs = config.get("train_pairs_per_user") or 0
    return {
        "run_id": record.get("run_id"),
        "status": record.get("status"),
        "path": record.get("__path__"),
        "git_commit": (record.get("environment") or {}).get("git_commit"),
        # what the run read besides the interactions (item texts, ID file, encoder files)
        "inputs": _canonical(record["inputs"]) if record.get("inputs") else None,
        "machine": _machine(record.get("environment") or {}),
        "error": record.get("error"),
        "model": spec.get("label") or spec.get("model"),
        "seed": record.get("seed", spec.get("seed")),
        "config": _canonical(model.get("config", spec.get("config"))),
        "finished_at": record.get("finished_at"),
        "dataset": spec.get("dataset"),
        "fingerprint": (record.get("dataset") or {}).get("fingerprint"),
        "profile": spec.get("profile"),
        "budget": spec.get("budget_minutes"),  # minutes of training per run; None = unlimited
        # what the model trained on: a cut to each user's last N pairs is another protocol
        "training_data": f"last {pairs} pairs per user" if pairs else ALL_PAIRS,
        "skipped_stages": ", ".join(_skipped_stages(diagnostics)) or None,
        "capped_stages": ", ".join(_capped(diagnostics, config, record.get("curve"))) or None,
        "protocol": _canonical(protocol) if protocol else None,
        "users": record.get("test_users"),
        "ranks": record.get("test_ranks"),
        "curve": record.get("curve") or [],
        # one meaning for every method (RunRecord version 2); unknown for older records
        "params_inference": (model.get("parameters") or {}).get("inference"),
        "params_tokenizer": (model.get("parameters") or {}).get("tokenizer"),
        # epochs trained up to the kept one, and in all (every stage counted): convergence
        "epochs_to_best": _plus_one(diagnostics.get("best_epoch")),
        "epochs_run": _epochs_run(record.get("curve") or []),
        "train_seconds": _training_seconds(diagnostics),
        # cold-cache artifact builds inside the clock (0 where the record did not split them out)
        "artifact_seconds": diagnostics.get("artifact_seconds") or 0.0,
        "test_users_per_second": diagnostics.get("test_users_per_second"),
        "method_note": (diagnostics.get("soda") or {}).get("label"),
        **(record.get("test") or {}),
        **_sid_columns(diagnostics.get("sid")),
    }


def _training_seconds(diagnostics: dict[str, Any]) -> float | None:
    """Training wall-clock without building cached artifacts (text embeddings, teacher,
    tokenizer) on a cold cache: a warm cache gets those for free, so with them in the cost of
    a method would depend on which run came first. Records before ``artifact_seconds`` existed
    (December 2026) include them."""
    seconds = diagnostics.get("train_seconds")
    if seconds is None:
        return None
    return max(0.0, seconds - (diagnostics.get("artifact_seconds") or 0.0))


def _plus_one(epoch: int | None) -> int | None:
    return None if epoch is None else int(epoch) + 1


def _epochs_run(curve: list[dict[str, Any]]) -> int | None:
    epochs = [point["epoch"] for point in curve if "epoch" in point]
    return max(epochs) + 1 if epochs else None


def _machine(environment: dict[str, Any]) -> str | None:
    parts = [environment.get(k) for k in ("device", "cpu", "threads") if environment.get(k)]
    return " / ".join(str(p) for p in parts) or None


def _skipped_stages(diagnostics: dict[str, Any]) -> list[str]:
    """Training stages a run never reached (a budget spent before them). Records written before
    ``skipped_stages`` existed show it as a multi-stage run whose best epoch is still the first
    stage's (UniGRec's fine-tuning overwrote ``best_epoch`` whenever it ran)."""
    if "skipped_stages" in diagnostics:
        return list(diagnostics["skipped_stages"])
    joint = diagnostics.get("best_epoch_joint")
    if joint is not None and diagnostics.get("best_epoch") == joint:
        return ["finetune"]
    return []


def _sid_columns(sid: dict[str, Any] | None) -> dict[str, float]:
    if not sid:
        return {}
    columns = {
        "sid_collision_rate": sid.get("collision_rate"),
        "sid_invalid_rate": sid.get("invalid_rate"),
    }
    for level, stats in enumerate(sid.get("levels", []), start=1):
        columns[f"sid_l{level}_usage"] = stats.get("usage")
        columns[f"sid_l{level}_entropy_bits"] = stats.get("entropy_bits")
    return columns


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def value_columns(runs: pd.DataFrame) -> list[str]:
    """The scalar value columns of a runs frame (metrics, cost, SID diagnostics)."""
    return [c for c in runs.columns if c not in IDENTITY and c not in ARRAYS]


# ---------------------------------------------------------------- group


@dataclass
class Table:
    """The runs of one (dataset, fingerprint, profile, training budget, protocol): never mixed
    with another."""

    dataset: str
    fingerprint: str
    profile: str
    budget: float | None
    training_data: str
    protocol: str
    runs: pd.DataFrame
    failed: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    slug: str = ""

    @property
    def models(self) -> list[str]:
        return sorted(set(self.runs["model"]) | set(self.failed["model"]))

    @property
    def seeds(self) -> list[int]:
        return sorted(set(self.runs["seed"]) | set(self.failed["seed"]))

    @property
    def columns(self) -> list[str]:
        """Accuracy columns in paper order: Recall@5, NDCG@5, Recall@10, ..."""
        ks = json.loads(self.protocol).get("ks", [5, 10, 20])
        return [f"{metric}@{k}" for k in ks for metric in ACCURACY]

    @functools.cached_property
    def comparisons(self) -> pd.DataFrame:
        """Each method against what it builds on (:mod:`benchmark.comparisons`), on Recall and
        NDCG at the selection metric's K; tested once per table for every view."""
        k = self.selection.split("@")[1]
        return compare_with_bases(self.runs, [f"recall@{k}", f"ndcg@{k}"])

    @property
    def selection(self) -> str:
        """The protocol's selection metric (records before it was recorded used NDCG@10)."""
        return json.loads(self.protocol).get("selection", "ndcg@10")

    @property
    def title(self) -> str:
        protocol = ", ".join(f"{k}={v}" for k, v in json.loads(self.protocol).items())
        stop = (
            f"{self.budget:g} min training budget per run"
            if self.budget
            else "no time budget (early stopping or epoch cap)"
        )
        return (
            f"{self.slug}: {self.dataset}, {self.profile} profile, {stop}, trained on "
            f"{self.training_data}, fingerprint {self.fingerprint}, {protocol}"
        )


@dataclass
class Leaderboard:
    """All tables, failed runs that fit no table, and why a dataset has several tables."""

    tables: list[Table]
    orphans: pd.DataFrame
    split_notes: dict[str, str]
    n_records: int
    runs: pd.DataFrame  # every record, one row each (the tidy run-level table)


def build_leaderboard(records: list[dict[str, Any]]) -> Leaderboard:
    """Group records into tables; deduplicate; attach missing-seed and duplicate notes."""
    everything = runs_frame(records)
    training = everything["status"].isin(IN_PROGRESS)  # neither a result nor a failure yet
    frame, in_progress = everything[~training], everything[training]
    ok = frame[(frame["status"] == "ok") & frame["skipped_stages"].isna()]
    failed = frame[frame["status"] != "ok"]
    incomplete = frame[(frame["status"] == "ok") & frame["skipped_stages"].notna()]
    tables = []
    matched = {name: pd.Series(False, index=part.index)
               for name, part in (("failed", failed), ("incomplete", incomplete),
                                  ("in_progress", in_progress))}  # fmt: skip
    for values, runs in ok.groupby(KEY, sort=True, dropna=False):
        key = {k: None if pd.isna(v) else v for k, v in zip(KEY, values)}
        mask = _failed_in(failed, key)
        same_incomplete, training_here = _same_key(incomplete, key), _failed_in(in_progress, key)
        matched["failed"] |= mask
        matched["incomplete"] |= same_incomplete
        matched["in_progress"] |= training_here
        table = _table(key, pd.concat([runs, failed[mask]]))
        table.notes += _incomplete_notes(incomplete[same_incomplete])
        table.notes += _in_progress_notes(in_progress[training_here])
        tables.append(table)
    _assign_slugs(tables)
    # every record shows somewhere: those of a key without a table are listed, with why
    outside = pd.concat(
        [
            failed[~matched["failed"]],
            _why(incomplete[~matched["incomplete"]], _incomplete_text),
            _why(in_progress[~matched["in_progress"]], _in_progress_text),
        ]
    )
    return Leaderboard(tables, outside, _split_notes(tables), len(everything), everything)


def _why(runs: pd.DataFrame, text: Callable[[Any], str]) -> pd.DataFrame:
    """``runs`` with their ``error`` column saying why they are in no table."""
    return runs.assign(error=[text(row) for row in runs.itertuples()])


def _in_progress_text(row: Any) -> str:
    epochs = 0 if pd.isna(row.epochs_run) else int(row.epochs_run)
    return f"still training ({row.status} after {epochs} epoch(s)); re-run its command to continue"


def _incomplete_text(row: Any) -> str:
    return f"kept out of the tables, its budget ended before its {row.skipped_stages} stage"


def _in_progress_notes(runs: pd.DataFrame) -> list[str]:
    """Runs of this table's key that are still training (paused between invocations)."""
    return [
        f"{row.model} seed {row.seed}: {_in_progress_text(row)} (run {row.run_id})."
        for row in runs.sort_values(["model", "seed"]).itertuples()
    ]


def _incomplete_notes(incomplete: pd.DataFrame) -> list[str]:
    """Runs of this table's key kept out because they skipped a training stage."""
    return [
        f"{row.model} seed {row.seed}: {_incomplete_text(row)} (run {row.run_id})."
        for row in incomplete.sort_values(["model", "seed"]).itertuples()
    ]


def _same_key(runs: pd.DataFrame, key: dict[str, Any]) -> pd.Series:
    same = pd.Series(True, index=runs.index)
    for column, value in key.items():
        same &= runs[column].isna() if value is None else runs[column] == value
    return same


def _failed_in(failed: pd.DataFrame, key: dict[str, Any]) -> pd.Series:
    """Failed runs that may belong to ``key``: same dataset and profile; fingerprint and protocol
    equal where the failed record has them."""
    same = (failed["dataset"] == key["dataset"]) & (failed["profile"] == key["profile"])
    budget = failed["budget"]
    same &= budget.isna() if key["budget"] is None else (budget == key["budget"])
    for column in ("fingerprint", "protocol", "training_data"):
        same &= failed[column].isna() | (failed[column] == key[column])
    return same


def _table(key: dict[str, Any], runs: pd.DataFrame) -> Table:
    kept, notes = _deduplicate(runs)
    ok = kept[kept["status"] == "ok"]
    table = Table(**key, runs=ok, failed=kept[kept["status"] != "ok"])
    table.notes = _method_notes(ok) + _seed_notes(table) + notes + _rank_notes(ok)
    table.notes += _missing_metric_notes(table) + _input_notes(ok)
    if table.budget is None:
        table.notes += _cap_notes(ok)
    return table


def _input_notes(ok: pd.DataFrame) -> list[str]:
    """A table is one dataset fingerprint (the interactions); runs that read other item texts,
    ID files or encoder weights (``--force`` after an edit) can still share it: say so."""
    read = [json.loads(value) for value in ok["inputs"].dropna()]
    notes = []
    for name, what in (("item_text", "item texts"), ("sid_file", "ID files"),
                       ("encoder_files", "encoder folders")):  # fmt: skip
        versions = {inputs[name] for inputs in read if name in inputs}
        if len(versions) > 1:
            notes.append(
                f"its runs read {len(versions)} different {what} (records' `inputs.{name}`): "
                "rankings between them compare data as well as methods"
            )
    return notes


def _capped(diagnostics: dict[str, Any], config: dict[str, Any], curve: Any) -> list[str]:
    """The stages that ended at the epoch cap: as recorded (``stopped_by``), or, for a
    single-stage record from before ``stopped_by`` existed, read off its curve (as many epochs
    as its cap, and no budget stop). A legacy multi-stage record (UniGRec) cannot say."""
    if "stopped_by" in diagnostics or diagnostics.get("stopped_by_budget"):
        return capped_stages(diagnostics)
    cap, epochs_run = config.get("epochs"), len(curve or [])
    if config.get("finetune_epochs") or not isinstance(cap, int) or epochs_run < max(cap, 2):
        return []
    return ["recommender"]


def _cap_notes(ok: pd.DataFrame) -> list[str]:
    """Runs of a no-budget table with a stage that ended at the epoch cap rather than by early
    stopping: their curve may still have been rising."""
    if "capped_stages" not in ok:
        return []
    capped = ok.dropna(subset=["capped_stages"])
    return [
        f"{row.model} seed {row.seed}: stage(s) {row.capped_stages} ended at the epoch cap, "
        "not by early stopping (may be short of convergence)."
        for row in capped.itertuples()
    ]


def _method_notes(ok: pd.DataFrame) -> list[str]:
    """What a model's record says about itself, e.g. that a method is a reconstruction."""
    if "method_note" not in ok:
        return []
    labelled = ok.dropna(subset=["method_note"]).drop_duplicates(["model", "method_note"])
    return [f"{row.model}: {row.method_note}." for row in labelled.itertuples()]


def _deduplicate(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep one record per model and seed: the newest successful one (by finished_at), else the
    newest; say so when there were more, and when a model's seeds ran different configs."""
    runs = runs.assign(_ok=runs["status"] == "ok")
    runs = runs.sort_values(["_ok", "finished_at"], na_position="first", kind="stable")
    notes = []
    for (model, seed), dups in runs.groupby(["model", "seed"]):
        if len(dups) > 1:
            kept = dups.iloc[-1]
            configs = "different configs" if dups["config"].nunique() > 1 else "the same config"
            which = "newest successful" if kept["_ok"] else "newest"
            notes.append(
                f"{model} seed {seed}: {len(dups)} records with {configs}; kept the {which} "
                f"(run {kept['run_id']}, {kept['status']}, finished {kept['finished_at']})."
            )
    kept = runs.drop_duplicates(["model", "seed"], keep="last").drop(columns="_ok")
    for model, seeds in kept[kept["status"] == "ok"].groupby("model"):
        if seeds["config"].nunique() > 1:
            groups = seeds.groupby("config")["seed"].apply(sorted).tolist()
            notes.append(
                f"{model}: its seeds ran {len(groups)} different configs "
                f"({'; '.join(_seeds(g) for g in groups)}); its mean mixes them."
            )
    return kept, notes


def _seed_notes(table: Table) -> list[str]:
    notes = []
    for model in table.models:
        ok = set(table.runs.loc[table.runs["model"] == model, "seed"])
        failed = sorted(table.failed.loc[table.failed["model"] == model, "seed"])
        absent = [s for s in table.seeds if s not in ok and s not in failed]
        parts = [f"{_seeds(failed)} failed"] if failed else []
        parts += [f"no record for {_seeds(absent)}"] if absent else []
        if not ok:
            parts.append("no successful run, so its cells are shown as missing")
        elif parts:
            parts.append(f"its means use {len(ok)} of {len(table.seeds)} seeds")
        if parts:
            notes.append(f"{model}: " + "; ".join(parts) + ".")
    return notes


def _missing_metric_notes(table: Table) -> list[str]:
    """A metric a successful run lacks (NaN): the model's mean of it uses fewer seeds."""
    notes = []
    for model, runs in table.runs.groupby("model"):
        for metric in table.columns:
            if metric not in runs:
                continue
            missing = runs.loc[runs[metric].isna(), "seed"].tolist()
            if missing:
                notes.append(
                    f"{model}: no {metric} for {_seeds(missing)}; that cell's mean uses "
                    f"{len(runs) - len(missing)} of {len(runs)} seeds."
                )
    return notes


def _rank_notes(ok: pd.DataFrame) -> list[str]:
    notes = []
    for model, runs in ok.groupby("model"):
        missing = runs.loc[runs["ranks"].isna() | runs["users"].isna(), "seed"].tolist()
        if len(missing) == len(runs):
            notes.append(f"{model}: no per-user ranks, so it is not tested for significance.")
        elif missing:
            notes.append(
                f"{model}: no per-user ranks for {_seeds(missing)}; its tests use the other seeds."
            )
    # a test pairs users: one that covers fewer users than the table says so
    with_ranks = ok[ok["users"].notna()]
    everyone = set().union(*with_ranks["users"].map(set)) if len(with_ranks) else set()
    for model, runs in with_ranks.groupby("model"):
        covered = set().union(*runs["users"].map(set))
        if covered != everyone:
            notes.append(
                f"{model}: per-user ranks cover {len(covered & everyone)} of the table's "
                f"{len(everyone)} test users; its significance tests pair only those."
            )
    return notes


def _seeds(values: list[Any]) -> str:
    return ("seed " if len(values) == 1 else "seeds ") + ", ".join(str(v) for v in values)


def _assign_slugs(tables: list[Table]) -> None:
    """``dataset-profile``, plus a hash of fingerprint and protocol where that is ambiguous.
    A slug names files and page anchors, so characters other than letters, digits, '.', '_',
    '-' and '+' become '-' (and two datasets that differ only there get the hash)."""
    names = [
        re.sub(
            r"[^\w.+-]+",
            "-",
            f"{t.dataset}-{t.profile}"
            + (f"-{t.budget:g}min" if t.budget else "")
            + ("" if t.training_data == ALL_PAIRS else f"-last{t.training_data.split()[1]}"),
        )
        for t in tables
    ]
    for table, name in zip(tables, names):
        table.slug = name
        if names.count(name) > 1:
            digest = hashlib.sha1(f"{table.fingerprint}|{table.protocol}".encode()).hexdigest()
            table.slug += f"-{digest[:6]}"


def _split_notes(tables: list[Table]) -> dict[str, str]:
    """Why a dataset name has several tables: which of fingerprint, profile, protocol differ."""
    notes = {}
    for dataset in sorted({t.dataset for t in tables}):
        same = [t for t in tables if t.dataset == dataset]
        if len(same) < 2:
            continue
        reasons = [
            f"{label} differ ({', '.join(values)})"
            for label, attr in (
                ("dataset fingerprints", "fingerprint"),
                ("profiles", "profile"),
                ("training budgets (minutes)", "budget"),
                ("training data", "training_data"),
            )
            if len(values := sorted({str(getattr(t, attr)) for t in same})) > 1
        ]
        protocols = [json.loads(t.protocol) for t in same]
        for name in sorted({name for p in protocols for name in p}):
            values = sorted({_canonical(p.get(name)) for p in protocols})
            if len(values) > 1:
                reasons.append(f"protocol {name} differs ({' vs '.join(values)})")
        notes[dataset] = (
            f"{dataset} has {len(same)} separate tables, never mixed, because "
            + "; ".join(reasons)
            + "."
        )
    return notes


# ---------------------------------------------------------------- summarize


def summarize(table: Table, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per model and metric: mean, std and n_seeds over seeds; for accuracy columns also
    p_value (Wilcoxon vs. the column's best on the seeds both have), p_holm, significant
    (significantly worse than the best) and place (1 best, 2 second).
    A model with no successful run gets rows with n_seeds 0 and no mean."""
    long = table.runs.melt(["model", "seed"], value_columns(table.runs), var_name="metric")
    long = long.dropna(subset="value").astype({"value": float})
    stats = long.groupby(["model", "metric"])["value"].agg(["mean", "std", "count"])
    stats = stats.rename(columns={"count": "n_seeds"})
    grid = pd.MultiIndex.from_product([table.models, table.columns], names=["model", "metric"])
    stats = stats.reindex(stats.index.union(grid)).fillna({"n_seeds": 0}).reset_index()
    stats = stats.astype({"n_seeds": int})
    places = stats.groupby("metric")["mean"].transform(_places)
    stats["place"] = places.where(stats["metric"].isin(table.columns)).astype("Int64")
    stats = stats.merge(_significance(table, stats), on=["model", "metric"], how="left")
    stats["significant"] = stats["p_holm"].lt(alpha) & stats.pop("worse").eq(True)
    # the model † compares with, per column
    stats["reference"] = stats["reference"].eq(True)
    return stats


def _places(means: pd.Series) -> pd.Series:
    """1 for the best mean, 2 for the second, by competition ranking at the displayed precision:
    tied models share a place, and two tied for best leave no second."""
    rank = means.round(DIGITS).rank(method="min", ascending=False)
    return rank.where(rank <= 2)


def _significance(table: Table, stats: pd.DataFrame) -> pd.DataFrame:
    """Each model against the column's best on the seeds both have (a model with one seed is
    tested on that seed of the best, not against the best's mean over three), Holm-corrected
    per column. ``worse``: the model's mean over those users and seeds is below the best's (the
    † of the tables marks only that). Models tied with the best at the shown precision share
    its bold and are not tested."""
    seeds = ranked_seeds(table.runs)
    scores: dict[tuple[str, str, tuple[int, ...]], pd.Series] = {}

    def per_user(model: str, metric: str, on: tuple[int, ...]) -> pd.Series:
        if (model, metric, on) not in scores:
            scores[(model, metric, on)] = per_user_scores(table.runs, model, metric, on)
        return scores[(model, metric, on)]

    rows = []
    for metric in table.columns:
        means = stats[stats["metric"] == metric].set_index("model")["mean"].dropna()
        ordered = means.sort_values(ascending=False, kind="stable").index
        # the best model that can be tested (a record without per-user ranks cannot)
        best = next((m for m in ordered if m in seeds), None)
        if best is None:
            continue
        tied = means.round(DIGITS) == round(means[best], DIGITS)
        tested: dict[str, tuple[float, bool]] = {}
        for model in means.index[~tied]:
            shared = tuple(sorted(set(seeds.get(model, ())) & set(seeds[best])))
            reference, other = per_user(best, metric, shared), per_user(model, metric, shared)
            p = wilcoxon_p(reference, other) if shared else float("nan")
            if not np.isnan(p):
                paired = pd.concat([reference, other], axis=1, join="inner")
                tested[model] = (p, bool(paired[1].mean() < paired[0].mean()))
        holm_p = holm({model: p for model, (p, _) in tested.items()})
        rows += [
            {"model": m, "metric": metric, "p_value": p, "p_holm": holm_p[m], "worse": worse}
            for m, (p, worse) in tested.items()
        ]
        rows.append({"model": best, "metric": metric, "reference": True})  # what † compares with
    columns = ["model", "metric", "p_value", "p_holm", "worse", "reference"]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------- render


@dataclass(frozen=True)
class Style:
    """Markup of one output format."""

    bold: str
    underline: str
    pm: str
    dagger: str
    alpha: str
    missing: str
    escape: Callable[[str], str] = str


def _tex_escape(text: str) -> str:
    special = {c: "\\" + c for c in "&%$#_{}"}
    special |= {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\^{}"}
    return "".join(special.get(c, c) for c in str(text))


def _markdown_escape(text: str) -> str:
    """Text inside a Markdown table or note: no raw HTML, no cell break."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


MARKDOWN = Style("**{}**", "<ins>{}</ins>", " ± ", "†", "α", "—", _markdown_escape)
LATEX = Style(
    r"\textbf{{{}}}",
    r"\underline{{{}}}",
    r" $\pm$ ",
    r"$^\dagger$",
    r"$\alpha$",
    "---",
    _tex_escape,
)


def _cell(row: pd.Series, style: Style) -> str:
    if row["n_seeds"] == 0 or pd.isna(row["mean"]):
        return style.missing
    text = f"{row['mean']:.{DIGITS}f}"
    if not pd.isna(row["std"]):
        text += f"{style.pm}{row['std']:.{DIGITS}f}"
    text = {1: style.bold, 2: style.underline}.get(row["place"], "{}").format(text)
    return text + (style.dagger if row["significant"] else "")


def _cost(metric: str, value: float, style: Style) -> str:
    if pd.isna(value):
        return style.missing
    if metric.startswith("params_"):
        for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
            if value >= scale:
                return f"{value / scale:.3g}{suffix}"
        return f"{value:.0f}"
    return f"{value:.1f}"


def leaderboard_cells(table: Table, summary: pd.DataFrame, style: Style) -> pd.DataFrame:
    """The leaderboard of one table as strings: model, seeds, accuracy cells, cost columns."""
    by_cell = summary.set_index(["model", "metric"])
    rows = []
    for model in table.models:
        n_ok = int((table.runs["model"] == model).sum())
        seeds = str(n_ok) if n_ok == len(table.seeds) else f"{n_ok}/{len(table.seeds)}"
        row = {"Model": style.escape(model), "Seeds": seeds}
        for metric in table.columns:
            row[metric_label(metric)] = _cell(by_cell.loc[(model, metric)], style)
        for metric, header in COST.items():
            value = by_cell["mean"].get((model, metric), float("nan"))
            row[header] = _cost(metric, value, style)
        rows.append(row)
    return pd.DataFrame(rows)


def sid_cells(summary: pd.DataFrame, style: Style) -> pd.DataFrame:
    """Semantic-ID diagnostics (mean over seeds) for models that report them; empty otherwise."""
    sid = summary[summary["metric"].str.startswith("sid_")]
    wide = sid.pivot(index="model", columns="metric", values="mean")
    levels = sorted({int(m[5:].split("_")[0]) for m in wide.columns if m.startswith("sid_l")})
    columns = {f"sid_l{i}_usage": f"L{i} usage" for i in levels}
    columns |= {f"sid_l{i}_entropy_bits": f"L{i} entropy (bits)" for i in levels}
    columns |= {"sid_collision_rate": "Collision rate", "sid_invalid_rate": "Invalid-ID rate"}
    digits = {"usage": 3, "bits": 2, "rate": 4}
    rows = []
    for model, values in wide.iterrows():
        row = {"Model": style.escape(model)}
        for metric, header in columns.items():
            value = values.get(metric, float("nan"))
            places = digits[metric.rsplit("_", 1)[-1]]
            row[header] = style.missing if pd.isna(value) else f"{value:.{places}f}"
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_cells(comparisons: pd.DataFrame, style: Style, alpha: float) -> pd.DataFrame:
    rows = []
    order = {metric: i for i, metric in enumerate(dict.fromkeys(comparisons["metric"]))}
    comparisons = comparisons.sort_values(
        ["model", "metric"], key=lambda c: c.map(order) if c.name == "metric" else c
    )
    for row in comparisons.itertuples():
        relative = f" ({row.delta / row.base_mean:+.0%})" if row.base_mean else ""
        p = "—" if pd.isna(row.p_holm) else f"{row.p_holm:.2g}"
        p_seeds = "—" if pd.isna(row.p_seeds) else f"{row.p_seeds:.2g}"
        rows.append(
            {
                "Method": style.escape(row.model),
                "Builds on": style.escape(row.builds_on),
                "Metric": metric_label(row.metric),
                "Seeds": str(row.seeds),
                "Method mean": f"{row.mean:.4f}",
                "Base mean": f"{row.base_mean:.4f}",
                "Difference": f"{row.delta:+.4f}{relative}",
                "Seeds won": f"{row.wins}/{row.seeds}",
                "p (Holm)": style.bold.format(p) if row.p_holm < alpha else p,
                "p (seeds)": p_seeds,  # uncorrected, so never bold
            }
        )
    return pd.DataFrame(rows)


def headline_comparison_cells(
    comparisons: pd.DataFrame, style: Style, alpha: float
) -> pd.DataFrame:
    """The comparisons in one row per pair: each metric's difference, seeds won and p."""
    full = comparison_cells(comparisons, style, alpha)
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for cell in full.to_dict("records"):
        row = rows.setdefault(
            (cell["Method"], cell["Builds on"]),
            {"Method": cell["Method"], "Builds on": cell["Builds on"], "Seeds": cell["Seeds"]},
        )
        row[f"{cell['Metric']} difference"] = (
            f"{cell['Difference']}, {cell['Seeds won']}, p {cell['p (Holm)']} per user, "
            f"{cell['p (seeds)']} over seeds"
        )
    return pd.DataFrame(list(rows.values()))


def comparison_legend(style: Style, alpha: float, lead: str = "Each") -> str:
    return (
        f"{lead} method against the method it builds on, on the seeds both have: difference of "
        "the means, seeds on which the method scored higher, and a two-sided Wilcoxon "
        "signed-rank test on per-user scores averaged over those seeds, Holm-corrected across "
        f"the table's pairs (these trained models, over test users; bold: below {style.alpha} "
        f"= {alpha}), and a paired t-test on the per-seed means (the method, over seeds; "
        "uncorrected, little power with 3 seeds)."
    )


def untested_notes(table: Table, summary: pd.DataFrame) -> list[str]:
    """Models that could not be tested against a column's best (no seed with per-user ranks in
    common): their cells carry no mark either way, which must not read as "not worse"."""
    columns = summary[summary["metric"].isin(table.columns) & summary["mean"].notna()]
    reference, not_best = columns["reference"], columns["place"].ne(1).fillna(True)
    rows = columns[columns["p_value"].isna() & not_best & ~reference]

    def named(metrics: Any) -> str:
        return ", ".join(metric_label(m) for m in table.columns if m in set(metrics))

    notes = [
        f"{model}: not tested against the column's best in {named(group['metric'])} (no seed "
        "with per-user ranks in common), so no mark either way."
        for model, group in rows.groupby("model", sort=True)
    ]
    # the best mean kept no per-user ranks: † there compares with the best model that did
    stand_in = columns[reference & not_best]
    notes += [
        f"{model} stands in for the column's best in {named(group['metric'])} (the best kept no "
        "per-user ranks): † there means significantly worse than it."
        for model, group in stand_in.groupby("model", sort=True)
    ]
    return notes


def metric_label(metric: str) -> str:
    """``recall@10`` as tables and figures head it, ``Recall@10``."""
    name, _, k = metric.partition("@")
    return f"{DISPLAY.get(name, name)}@{k}"


def _footnotes(
    table: Table, style: Style, alpha: float, summary: pd.DataFrame | None = None
) -> list[str]:
    legend = (
        f"Test scores, mean{style.pm}std over seeds. Bold: best; underlined: second. "
        f"{style.dagger}: significantly worse than the column's best model (two-sided Wilcoxon "
        "signed-rank test on per-user scores averaged over seeds, paired by test user, "
        f"Holm-corrected across the models in the column, {style.alpha} = {alpha}). "
        f"{style.missing}: no successful run. Seeds n/m: n of the table's m seeds. "
        "Params: parameters used at inference; Tokenizer params: those of the model that "
        "made the item IDs (both recorded from record version 2 on); Epochs to best / Epochs: "
        "epochs trained up to the kept epoch / in all, every stage counted (means); Train (s): "
        "mean training time; Users/s: test users decoded per second."
    )
    notes = table.notes + (untested_notes(table, summary) if summary is not None else [])
    return [legend] + [style.escape(note) for note in notes]


def _failed_lines(failed: pd.DataFrame, escape: Callable[[str], str] = str) -> list[str]:
    """One line per failed run (its error flattened to one line, escaped for the format)."""
    return [
        f"- `{str(row.model).replace('`', '')}` on {escape(row.dataset)} seed {row.seed} (run "
        f"{escape(row.run_id)}): {escape(' '.join(str(row.error).split()))}"
        for row in failed.sort_values(["model", "seed"]).itertuples()
    ]


def _markdown(cells: pd.DataFrame) -> str:
    return tabulate(
        cells, headers="keys", tablefmt="github", showindex=False, disable_numparse=True
    )


def render_markdown(board: Leaderboard, summaries: list[pd.DataFrame], alpha: float = ALPHA) -> str:
    """``leaderboard.md``: every table with its footnotes, failed runs and SID diagnostics."""
    n_ok = sum(len(t.runs) for t in board.tables)
    lines = [
        "# Leaderboard",
        "",
        (
            f"Generated by `benchmark.leaderboard` from {board.n_records} run records "
            f"({n_ok} successful runs kept in tables). Do not edit by hand."
        ),
    ]
    for dataset in sorted({t.dataset for t in board.tables}):
        lines += ["", f"## {dataset}"]
        if dataset in board.split_notes:
            lines += ["", f"> {MARKDOWN.escape(board.split_notes[dataset])}"]
        for table, summary in zip(board.tables, summaries):
            if table.dataset == dataset:
                lines += _markdown_table(table, summary, alpha)
    if not board.orphans.empty:
        lines += ["", "## Runs outside every table", ""]
        lines += _failed_lines(board.orphans, MARKDOWN.escape)
    return "\n".join(lines) + "\n"


def _markdown_table(table: Table, summary: pd.DataFrame, alpha: float) -> list[str]:
    title = MARKDOWN.escape(table.title)  # record fields: no raw HTML into the README
    lines = ["", f"### {title}", "", _markdown(leaderboard_cells(table, summary, MARKDOWN))]
    lines += [""] + [f"- {note}" for note in _footnotes(table, MARKDOWN, alpha, summary)]
    if not table.failed.empty:
        lines += ["", "Failed runs:", "", *_failed_lines(table.failed, MARKDOWN.escape)]
    comparisons = table.comparisons
    if not comparisons.empty:
        lines += ["", f"#### Against what each method builds on ({table.slug})", ""]
        lines += [_markdown(comparison_cells(comparisons, MARKDOWN, alpha)), ""]
        lines.append(comparison_legend(MARKDOWN, alpha))
    sid = sid_cells(summary, MARKDOWN)
    if not sid.empty:
        lines += ["", f"#### Semantic-ID diagnostics ({table.slug}, mean over seeds)", ""]
        lines.append(_markdown(sid))
    return lines


def is_converged(table: Table) -> bool:
    """Runs trained to early stopping (no time budget) on every training pair: a ranking."""
    return table.budget is None and table.training_data == ALL_PAIRS


def headline_cells(table: Table, summary: pd.DataFrame, style: Style = MARKDOWN) -> pd.DataFrame:
    """The headline view of a table: Recall and NDCG at the selection metric's K (mean ± std,
    with the full table's marks), epochs to the kept epoch, epochs run and training minutes;
    best Recall first."""
    k = table.selection.split("@")[1]
    by_cell = summary.set_index(["model", "metric"])
    full = leaderboard_cells(table, summary, style).set_index("Model")

    def spread(model: str, metric: str, scale: float = 1.0, digits: int = 0) -> str:
        row = by_cell.loc[(model, metric)] if (model, metric) in by_cell.index else None
        if row is None or row["n_seeds"] == 0 or pd.isna(row["mean"]):
            return style.missing
        text = f"{row['mean'] / scale:.{digits}f}"
        return text if pd.isna(row["std"]) else f"{text}{style.pm}{row['std'] / scale:.{digits}f}"

    rows = []
    for model in table.models:
        name = style.escape(model)
        rows.append(
            {
                "Model": name,
                "Seeds": full.loc[name, "Seeds"],
                f"Recall@{k}": full.loc[name, f"{DISPLAY['recall']}@{k}"],
                f"NDCG@{k}": full.loc[name, f"{DISPLAY['ndcg']}@{k}"],
                "Epochs to best": spread(model, "epochs_to_best"),
                "Epochs": spread(model, "epochs_run"),
                "Train (min)": spread(model, "train_seconds", scale=60, digits=1),
                "_order": by_cell["mean"].get((model, f"recall@{k}"), float("nan")),
            }
        )
    cells = pd.DataFrame(rows).sort_values("_order", ascending=False, na_position="last")
    return cells.drop(columns="_order").reset_index(drop=True)


def render_headline(board: Leaderboard, summaries: list[pd.DataFrame], alpha: float = ALPHA) -> str:
    """``headline.md``: the converged tables (no budget, all pairs) in their short form, the
    README's headline."""
    lines = ["<!-- Generated by benchmark.leaderboard from the run records; do not edit. -->"]
    pairs = [(t, s) for t, s in zip(board.tables, summaries) if is_converged(t) and len(t.runs)]
    # the most complete table first
    for table, summary in sorted(pairs, key=lambda pair: (-len(pair[0].models), pair[0].slug)):
        lines += [
            "",
            f"**{MARKDOWN.escape(table.slug)}** ({MARKDOWN.escape(table.dataset)}, "
            f"{len(table.seeds)} seed(s): "
            f"{', '.join(map(str, table.seeds))})",
            "",
        ]
        lines.append(_markdown(headline_cells(table, summary, MARKDOWN)))
        comparisons = table.comparisons
        if not comparisons.empty:
            lines += ["", _markdown(headline_comparison_cells(comparisons, MARKDOWN, alpha))]
        lines += [
            "",
            (
                f"Test scores on all test users, mean{MARKDOWN.pm}std over seeds; bold: best, "
                f"underlined: second, {MARKDOWN.dagger}: significantly worse than the best "
                f"(Wilcoxon signed-rank on per-user scores, Holm-corrected, {MARKDOWN.alpha} = "
                f"{alpha}; on the seeds both have). Epochs count every stage; Train: training "
                "wall-clock of a run (building cached artifacts on a cold cache left out where "
                "the record splits it out). Full "
                f"table: `results/leaderboard.md`, {table.slug}."
            ),
        ]
        if not comparisons.empty:
            lines += [
                "",
                f"{comparison_legend(MARKDOWN, alpha, 'Builds on: each')} Cells: difference "
                "(relative), seeds won, Holm-corrected p per user, p over seeds.",
            ]
    return "\n".join(lines) + "\n"


def _tabular(cells: pd.DataFrame) -> list[str]:
    header = " & ".join(_tex_escape(c) for c in cells.columns)
    return [
        r"\resizebox{\linewidth}{!}{%",
        rf"\begin{{tabular}}{{l{'r' * (len(cells.columns) - 1)}}}",
        r"\toprule",
        header + r" \\",
        r"\midrule",
        *(" & ".join(row) + r" \\" for row in cells.itertuples(index=False)),
        r"\bottomrule",
        r"\end{tabular}}",
    ]


def _latex_float(caption: str, label: str, cells: pd.DataFrame, notes: list[str]) -> list[str]:
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex_escape(caption)}}}"]
    lines += [rf"\label{{{label}}}", *_tabular(cells)]
    if notes:
        lines += [r"\par\smallskip\footnotesize", *(note + r"\par" for note in notes)]
    return lines + [r"\end{table}", ""]


def render_latex(board: Leaderboard, summaries: list[pd.DataFrame], alpha: float = ALPHA) -> str:
    """``leaderboard.tex``: one booktabs table per group (plus SID diagnostics); failed runs as
    comments. Needs ``\\usepackage{booktabs,graphicx}``."""
    lines = ["% Generated by benchmark.leaderboard; do not edit. Needs booktabs and graphicx.", ""]
    for table, summary in zip(board.tables, summaries):
        if table.dataset in board.split_notes:
            lines.append(f"% {board.split_notes[table.dataset]}")
        notes = _footnotes(table, LATEX, alpha, summary)
        cells = leaderboard_cells(table, summary, LATEX)
        lines += _latex_float(table.title, f"tab:{table.slug}", cells, notes)
        lines += [f"% failed: {line[2:]}" for line in _failed_lines(table.failed)]
        sid = sid_cells(summary, LATEX)
        if not sid.empty:
            caption = f"Semantic-ID diagnostics, {table.title} (mean over seeds)"
            lines += _latex_float(caption, f"tab:{table.slug}-sid", sid, [])
    lines += [f"% outside every table: {line[2:]}" for line in _failed_lines(board.orphans)]
    return "\n".join(lines) + "\n"


def tidy_csv(board: Leaderboard, summaries: list[pd.DataFrame]) -> pd.DataFrame:
    """``leaderboard.csv``: one row per table, model and metric (accuracy, cost, SID)."""
    frames = [
        summary.assign(
            table=t.slug,
            dataset=t.dataset,
            fingerprint=t.fingerprint,
            profile=t.profile,
            budget=t.budget,
            training_data=t.training_data,
            protocol=t.protocol,
        )
        for t, summary in zip(board.tables, summaries)
    ]
    columns = ["table", "dataset", "fingerprint", "profile", "budget", "training_data"]
    columns += ["protocol", "model"]
    columns += ["metric"]
    columns += ["mean", "std", "n_seeds", "p_value", "p_holm", "significant", "place"]
    # rows, not pd.concat: a table whose budget (or a column) is all-NA must not change dtypes
    rows = [row for frame in frames for row in frame[columns].to_dict("records")]
    return pd.DataFrame(rows, columns=columns).astype({"n_seeds": int, "place": "Int64"})


def write_leaderboard(
    results_dir: Path,
    out_dir: Path | None = None,
    board: Leaderboard | None = None,
    summaries: list[pd.DataFrame] | None = None,
) -> list[Path]:
    """Write ``runs.csv`` (one tidy row per run record: identity, config, metrics, cost,
    diagnostics, provenance) and its views ``leaderboard.md``, ``.csv`` (one row per table, model
    and metric), ``.tex``, ``headline.md`` (the README's) and ``comparisons.csv`` (each method
    against what it builds on) into ``out_dir`` (default ``results_dir``); returns the paths.
    ``board`` / ``summaries``: already built from ``results_dir`` (records load and
    significance tests run once for every view)."""
    out_dir = Path(out_dir if out_dir is not None else results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    board = board or build_leaderboard(load_records(Path(results_dir)))
    summaries = summaries or [summarize(table) for table in board.tables]
    paths = [out_dir / f"leaderboard.{ext}" for ext in ("md", "csv", "tex")]
    write_text_atomic(paths[0], render_markdown(board, summaries))
    write_text_atomic(paths[1], tidy_csv(board, summaries).to_csv(index=False))
    write_text_atomic(paths[2], render_latex(board, summaries))
    runs = out_dir / "runs.csv"
    write_text_atomic(runs, board.runs.drop(columns=ARRAYS).to_csv(index=False))
    headline = out_dir / "headline.md"
    write_text_atomic(headline, render_headline(board, summaries))
    comparisons = out_dir / "comparisons.csv"
    frames = [t.comparisons.assign(table=t.slug) for t in board.tables if len(t.runs)]
    frame = pd.concat(frames) if frames else pd.DataFrame(columns=["table"])
    columns = ["table", *(c for c in frame.columns if c != "table")]
    write_text_atomic(comparisons, frame[columns].to_csv(index=False))
    return [*paths, runs, headline, comparisons]
