"""The aggregator on hand-made run records: tables, significance, missing cells, figures."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmark.errors import BenchmarkError
from benchmark.figures import _dashes, _palette, write_figures
from benchmark.leaderboard import build_leaderboard, load_records, write_leaderboard
from benchmark.metrics import per_user_metric
from benchmark.records import RunRecord
from benchmark.significance import holm, paired_t_p

PROTOCOL = {
    "split": "leave-one-out",
    "order": "time",
    "ranking": "full",
    "max_history": 20,
    "ks": [5, 10, 20],
}
N_USERS = 60


def write_run(
    root: Path,
    model: str,
    seed: int,
    ranks: list[int] | None = None,
    *,
    users: list[int] | None = None,
    fingerprint: str = "fp1",
    protocol: dict[str, Any] = PROTOCOL,
    status: str = "ok",
    error: str | None = None,
    finished: str = "2025-01-01T00:00:00+00:00",
    config: dict[str, Any] | None = None,
    test: dict[str, float] | None = None,
    diagnostics: dict[str, Any] | None = None,
    curve: list[dict[str, float]] | None = None,
    budget: float | None = None,
) -> None:
    """One run record as the runner writes it; test metrics follow from ``ranks``."""
    ranks = [1] * N_USERS if ranks is None else ranks
    folder = root / "runs" / "toy" / model
    folder.mkdir(parents=True, exist_ok=True)
    run_id = re.sub(r"[^\w.+-]", "_", f"{model}-{seed}-{len(list(folder.iterdir()))}")
    record = RunRecord(
        run_id=run_id,
        status=status,
        error=error,
        spec={"model": model, "dataset": "toy", "profile": "smoke", "seed": seed}
        | {"budget_minutes": budget},
        model={
            "name": model,
            "config": config or {},
            "parameters": {"inference": 1_234_567, "tokenizer": 0},
        },
        dataset={"name": "toy", "fingerprint": fingerprint},
        protocol=protocol,
        seed=seed,
        environment={"git_commit": "0" * 40},
        finished_at=finished,
    )
    if status == "ok":
        scores = {
            f"{m}@{k}": float(per_user_metric(ranks, f"{m}@{k}").mean())
            for m in ("recall", "ndcg", "mrr")
            for k in protocol["ks"]
        }
        record.test = scores | (test or {})
        record.test_users = users or list(range(len(ranks)))
        record.test_ranks = ranks
        record.diagnostics = diagnostics or {"train_seconds": 10.0, "test_users_per_second": 50.0}
    record.curve = curve or []
    record.save(folder / f"{run_id}.json")


def drop_ranks(path: Path) -> None:
    """A record that kept no per-user ranks (as records before they were stored)."""
    record = json.loads(path.read_text())
    record["test_ranks"] = record["test_users"] = None
    path.write_text(json.dumps(record))


def build(root: Path) -> tuple[str, pd.DataFrame, str]:
    md, csv, tex, runs, *_ = write_leaderboard(root)
    assert len(pd.read_csv(runs)) >= 1  # the run-level table the others are views of
    return md.read_text(), pd.read_csv(csv), tex.read_text()


def cell(csv: pd.DataFrame, model: str, metric: str = "recall@10", **where: Any) -> pd.Series:
    rows = csv[(csv["model"] == model) & (csv["metric"] == metric)]
    for column, value in where.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def row_cells(md: str, model: str) -> list[str]:
    """The cells of the first Markdown table row of ``model``."""
    line = next(line for line in md.splitlines() if line.startswith(f"| {model} "))
    return [text.strip() for text in line.strip("|").split("|")]


def test_per_user_metric_follows_rank() -> None:
    ranks = [1, 3, 4, 11, 0]
    assert per_user_metric(ranks, "recall@10").tolist() == [1, 1, 1, 0, 0]
    assert per_user_metric(ranks, "ndcg@10") == pytest.approx([1, 0.5, 1 / np.log2(5), 0, 0])
    assert per_user_metric(ranks, "mrr@5") == pytest.approx([1, 1 / 3, 0.25, 0, 0])


def test_mean_and_std_over_seeds(tmp_path: Path) -> None:
    for seed, recall in enumerate([0.1, 0.2, 0.3]):
        write_run(tmp_path, "a", seed, test={"recall@10": recall})
    md, csv, _ = build(tmp_path)
    row = cell(csv, "a")
    assert (row["mean"], row["std"], row["n_seeds"]) == pytest.approx((0.2, 0.1, 3))
    assert row_cells(md, "a")[4] == "**0.2000 ± 0.1000**"  # Recall@10, the only model


def test_best_bold_second_underlined(tmp_path: Path) -> None:
    write_run(tmp_path, "best", 0, [1] * N_USERS)
    write_run(tmp_path, "second", 0, [1, 0] * (N_USERS // 2))
    write_run(tmp_path, "third", 0, [0] * N_USERS)
    md, csv, tex = build(tmp_path)
    assert "**1.0000**" in row_cells(md, "best")
    assert "<ins>0.5000</ins>†" in row_cells(md, "second")
    assert "0.0000†" in row_cells(md, "third")
    assert r"\textbf{1.0000}" in tex and r"\underline{0.5000}" in tex
    assert cell(csv, "best")["place"] == 1 and cell(csv, "second")["place"] == 2


def test_significance_marks_only_clearly_worse_models(tmp_path: Path) -> None:
    best = [1] * 30 + [2] * 30
    write_run(tmp_path, "best", 0, best)
    write_run(tmp_path, "worse", 0, [0] * N_USERS)
    write_run(tmp_path, "close", 0, [0, 0] + best[2:])
    # Same per-user ranks as "best", stored in reverse user order: pairing must go by user id.
    write_run(tmp_path, "reordered", 0, best[::-1], users=list(range(N_USERS))[::-1])
    for seed, ranks in enumerate([[1] * N_USERS, [0] * N_USERS]):  # seed average: recall 0.5
        write_run(tmp_path, "seeds", seed, ranks)
    write_run(tmp_path, "best", 1, best)
    write_run(tmp_path, "worse", 1, [0] * N_USERS)
    write_run(tmp_path, "close", 1, [0, 0] + best[2:])
    write_run(tmp_path, "reordered", 1, best[::-1], users=list(range(N_USERS))[::-1])
    md, csv, _ = build(tmp_path)
    assert cell(csv, "worse")["significant"] and cell(csv, "seeds")["significant"]
    assert cell(csv, "worse")["p_holm"] < 0.05
    for model in ("close", "reordered"):
        assert not cell(csv, model)["significant"], model
    assert pd.isna(cell(csv, "best")["p_value"])
    assert "0.0000 ± 0.0000†" in row_cells(md, "worse")
    assert not any("†" in text for text in row_cells(md, "close"))
    assert "Wilcoxon signed-rank" in md and "Holm-corrected" in md


def test_each_method_is_tested_against_what_it_builds_on(tmp_path: Path) -> None:
    better = [1] * 50 + [0] * 10  # letter: recall@10 5/6 on every seed, tiger: 1/2
    for seed in (0, 1, 2):
        write_run(tmp_path, "letter", seed, better)
        write_run(tmp_path, "letter+soda", seed, better[::-1])  # same scores, other users
    for seed in (0, 1):
        write_run(tmp_path, "tiger", seed, [1, 0] * (N_USERS // 2))
    write_run(tmp_path, "tiger (LETTER IDs)", 0, better)  # a label: no registered base
    write_run(tmp_path, "sasrec", 0, better)  # builds on nothing
    paths = write_leaderboard(tmp_path)
    frame = pd.read_csv(paths[-1]).set_index(["model", "metric"])
    assert sorted(set(frame.index.get_level_values("model"))) == ["letter", "letter+soda"]
    letter = frame.loc[("letter", "recall@10")]
    assert letter["builds_on"] == "tiger" and letter["seeds"] == 2  # the seeds both have
    assert letter["wins"] == 2 and letter["delta"] == pytest.approx(5 / 6 - 1 / 2)
    assert letter["p_holm"] < 0.05
    soda = frame.loc[("letter+soda", "recall@10")]
    assert soda["seeds"] == 3 and soda["wins"] == 0 and soda["delta"] == 0
    assert soda["p_value"] > 0.05  # per user it differs (by user), on average it does not
    assert np.isnan(letter["p_seeds"])  # the same gain on both seeds: no spread, no t-test
    assert np.isnan(soda["p_seeds"])
    md, headline = paths[0].read_text(), paths[4].read_text()
    assert "#### Against what each method builds on" in md
    line = next(t for t in headline.splitlines() if t.startswith("| letter ") and "tiger" in t)
    assert "+0.3333 (+67%), 2/2, p **" in line and "per user, — over seeds" in line


def test_the_seed_level_test_is_a_paired_t_test() -> None:
    assert paired_t_p([0.0714, 0.0742, 0.0691], [0.0581, 0.0724, 0.0557]) == pytest.approx(
        0.132, abs=0.002
    )  # office LETTER vs TIGER: 3 of 3 seeds won, yet not established over seeds
    assert np.isnan(paired_t_p([0.1], [0.2]))


def test_holm_adjustment() -> None:
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})


def test_missing_cells_and_failed_runs_are_shown(tmp_path: Path) -> None:
    for seed in range(3):
        write_run(tmp_path, "full", seed)
    for seed in range(2):
        write_run(tmp_path, "partial", seed)
    write_run(tmp_path, "broken", 0, status="failed", error="RuntimeError: out of memory")
    md, csv, tex = build(tmp_path)
    assert row_cells(md, "broken")[2:] == ["—"] * 12  # 6 metrics, 2 parameter counts, 4 costs
    assert row_cells(md, "partial")[1] == "2/3"
    assert "partial: no record for seed 2; its means use 2 of 3 seeds." in md
    assert "broken: seed 0 failed; no record for seeds 1, 2; no successful run" in md
    assert "- `broken` on toy seed 0 (run broken-0-0): RuntimeError: out of memory" in md
    assert "RuntimeError: out of memory" in tex
    broken = cell(csv, "broken")
    assert broken["n_seeds"] == 0 and pd.isna(broken["mean"])
    assert cell(csv, "partial")["n_seeds"] == 2


def test_failed_run_of_unknown_dataset_is_listed(tmp_path: Path) -> None:
    write_run(tmp_path, "a", 0)
    write_run(tmp_path, "a", 1, fingerprint="other", status="failed", error="DataError: no file")
    md, _, _ = build(tmp_path)
    assert "## Runs outside every table" in md
    assert "DataError: no file" in md.split("## Runs outside every table")[1]


def test_fingerprints_and_protocols_are_never_mixed(tmp_path: Path) -> None:
    write_run(tmp_path, "a", 0, [1] * N_USERS, fingerprint="fp1")
    write_run(tmp_path, "a", 0, [0] * N_USERS, fingerprint="fp2")
    write_run(
        tmp_path, "a", 0, [1, 0] * 30, fingerprint="fp1", protocol=PROTOCOL | {"max_history": 50}
    )
    md, csv, _ = build(tmp_path)
    rows = csv[(csv["model"] == "a") & (csv["metric"] == "recall@10")]
    assert sorted(rows["mean"]) == [0.0, 0.5, 1.0]
    assert set(rows["n_seeds"]) == {1} and rows["table"].nunique() == 3
    assert "toy has 3 separate tables, never mixed, because dataset fingerprints differ" in md
    assert "protocol max_history differs (20 vs 50)" in md
    assert md.count("\n### ") == 3


def test_training_budgets_are_never_mixed(tmp_path: Path) -> None:
    write_run(tmp_path, "a", 0, [1] * N_USERS)
    write_run(tmp_path, "a", 0, [0] * N_USERS, budget=2.5)
    write_run(tmp_path, "b", 0, [0] * N_USERS, status="failed", error="boom", budget=2.5)
    md, csv, _ = build(tmp_path)
    assert sorted(csv["table"].unique()) == ["toy-smoke", "toy-smoke-2.5min"]
    assert cell(csv, "a", table="toy-smoke")["mean"] == 1.0
    assert cell(csv, "a", table="toy-smoke-2.5min")["mean"] == 0.0
    assert "2.5 min training budget per run" in md and "training budgets (minutes) differ" in md
    budgeted = md.split("toy-smoke-2.5min:")[1]
    assert "boom" in budgeted and "boom" not in md.split("toy-smoke-2.5min:")[0]


def test_duplicate_configs_keep_the_newest(tmp_path: Path) -> None:
    write_run(tmp_path, "a", 0, [0] * N_USERS, config={"lr": 1}, finished="2025-01-02T00:00:00Z")
    write_run(tmp_path, "a", 0, [1] * N_USERS, config={"lr": 2}, finished="2025-01-03T00:00:00Z")
    write_run(tmp_path, "a", 0, [0] * N_USERS, config={"lr": 3}, finished="2025-01-01T00:00:00Z")
    md, csv, _ = build(tmp_path)
    assert (cell(csv, "a")["mean"], cell(csv, "a")["n_seeds"]) == (1.0, 1)
    assert "a seed 0: 3 records with different configs; kept the newest successful (run a-0-1" in md


def test_cost_and_semantic_id_tables(tmp_path: Path) -> None:
    sid = {
        "levels": [{"usage": 0.9, "entropy_bits": 7.5}, {"usage": 0.5, "entropy_bits": 6.25}],
        "collision_rate": 0.02,
        "invalid_rate": 0.001,
    }
    timing = {"train_seconds": 120.0, "test_users_per_second": 33.3}
    write_run(tmp_path, "sidmodel", 0, diagnostics=timing | {"sid": sid})
    write_run(tmp_path, "baseline", 0)
    md, csv, tex = build(tmp_path)
    assert row_cells(md, "sidmodel")[-6:] == ["1.23M", "0", "—", "—", "120.0", "33.3"]
    diagnostics = md.split("#### Semantic-ID diagnostics")[1]
    assert "L2 entropy (bits)" in diagnostics and "baseline" not in diagnostics
    assert row_cells(diagnostics, "sidmodel") == [
        "sidmodel",
        "0.900",
        "0.500",
        "7.50",
        "6.25",
        "0.0200",
        "0.0010",
    ]
    assert cell(csv, "sidmodel", "sid_l2_entropy_bits")["mean"] == 6.25
    assert r"\begin{tabular}" in tex and r"\toprule" in tex


def test_headline_sorts_converged_tables_by_recall_with_epochs_and_minutes(tmp_path: Path) -> None:
    """headline.md: only tables without a budget on all pairs; epochs to best counts the kept
    epoch (0-based in the record) and epochs run the curve's epochs; sorted by Recall@10."""
    curve = [{"epoch": e, "ndcg@10": 0.1} for e in range(8)]
    for seed, best in ((0, 2), (1, 4)):
        timing = {"train_seconds": 60.0 * (seed + 1), "best_epoch": best}
        write_run(tmp_path, "slow", seed, [3] * N_USERS, diagnostics=timing, curve=curve)
    write_run(tmp_path, "fast", 0, [1] * N_USERS, diagnostics={"train_seconds": 30.0})
    write_run(tmp_path, "budgeted", 0, [1] * N_USERS, budget=2.5)
    headline = write_leaderboard(tmp_path)[4]
    text = headline.read_text()
    assert "budgeted" not in text  # a budgeted table is not a ranking at convergence
    rows = [line for line in text.splitlines() if line.startswith("| ") and "Model" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["fast", "slow"]
    assert row_cells(text, "slow")[4:] == ["4 ± 1", "8 ± 0", "1.5 ± 0.7"]
    assert row_cells(text, "fast")[4:] == ["—", "—", "0.5"]


def test_a_stage_that_ended_at_the_epoch_cap_is_noted_in_a_converged_table(tmp_path: Path) -> None:
    capped = {
        "train_seconds": 1.0,
        "stopped_by": {"joint": "epoch cap", "finetune": "early stopping"},
    }
    converged = {"train_seconds": 1.0, "stopped_by": {"recommender": "early stopping"}}
    write_run(tmp_path, "twostage", 0, diagnostics=capped)
    write_run(tmp_path, "onestage", 0, diagnostics=converged)
    md, _, _ = build(tmp_path)
    assert "twostage seed 0: stage(s) joint ended at the epoch cap" in md
    assert "onestage seed 0: stage" not in md


def test_a_record_from_before_stopped_by_is_read_off_its_curve(tmp_path: Path) -> None:
    """Legacy single-stage records: a curve as long as the cap means the cap ended the run."""
    curve = [{"epoch": e, "ndcg@10": 0.1 * e} for e in range(3)]
    legacy = {"train_seconds": 1.0, "stopped_by_budget": False}
    write_run(tmp_path, "capped", 0, diagnostics=legacy, config={"epochs": 3}, curve=curve)
    write_run(tmp_path, "stopped", 0, diagnostics=legacy, config={"epochs": 9}, curve=curve)
    write_run(
        tmp_path, "twostage", 0, diagnostics=legacy, curve=curve,
        config={"epochs": 3, "finetune_epochs": 3},
    )  # fmt: skip
    md, _, _ = build(tmp_path)
    assert "capped seed 0: stage(s) recommender ended at the epoch cap" in md
    assert "stopped seed 0: stage" not in md and "twostage seed 0: stage" not in md


def test_a_records_method_label_becomes_a_table_note(tmp_path: Path) -> None:
    label = {"soda": {"label": "SODA-style (reconstructed)"}}
    for seed in (0, 1):
        write_run(tmp_path, "tiger+soda", seed, diagnostics={"train_seconds": 1.0} | label)
    write_run(tmp_path, "tiger", 0)
    md, _, _ = build(tmp_path)
    assert md.count("- tiger+soda: SODA-style (reconstructed).") == 1
    assert "- tiger: SODA" not in md


def test_no_records_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="no run records"):
        write_leaderboard(tmp_path)


def test_figures_are_written(tmp_path: Path) -> None:
    sid = {"levels": [{"usage": 0.9, "entropy_bits": 7.5}], "collision_rate": 0, "invalid_rate": 0}
    for model, hit in (("a", 1), ("b", 2)):
        for seed in range(2):
            curve = [{"epoch": e, "ndcg@10": 0.1 * e / hit} for e in range(3)]
            timing = {"train_seconds": 10.0 * hit, "test_users_per_second": 5.0, "sid": sid}
            write_run(tmp_path, model, seed, [hit] * N_USERS, diagnostics=timing, curve=curve)
    paths = write_figures(tmp_path, tmp_path / "figures")
    names = {path.name for path in paths}
    for figure in ("bars", "accuracy_vs_time", "sid_usage", "curves"):
        assert {f"toy-smoke_{figure}.png", f"toy-smoke_{figure}.pdf"} <= names
    assert all(path.exists() and path.stat().st_size > 1000 for path in paths)


def test_a_variant_is_drawn_in_a_tint_of_its_backbone_and_dashed(tmp_path: Path) -> None:
    """tiger+soda is a lighter tiger; unrelated models keep distinct hues; the curve figure
    draws with variants (also the label-only tiger (constant)) in them."""
    for model in ("tiger", "tiger+soda", "tiger (constant)", "sasrec"):
        curve = [{"epoch": e, "ndcg@10": 0.1 * e} for e in range(3)]
        write_run(tmp_path, model, 0, curve=curve)
    board = build_leaderboard(load_records(tmp_path))
    palette = _palette(board.tables)
    tiger, soda = np.array(palette["tiger"]), np.array(palette["tiger+soda"])
    assert (soda >= tiger).all() and (soda > tiger).any()  # lighter, same hue family
    channel = np.argmax(1 - tiger)
    tint = (soda - tiger)[channel] / (1 - tiger)[channel]
    assert 0 < tint < 1 and np.allclose(soda, tiger + (1 - tiger) * tint)  # mixed with white
    assert palette["sasrec"] != palette["tiger"]
    assert _dashes(list(palette)) == {
        "sasrec": "",
        "tiger": "",
        "tiger (constant)": (4, 1.5),
        "tiger+soda": (4, 1.5),
    }
    paths = write_figures(tmp_path, tmp_path / "figures", board)
    assert any(path.name == "toy-smoke_curves.png" for path in paths)


def test_regenerated_figures_are_byte_identical(tmp_path: Path, monkeypatch) -> None:
    """No creation date in the PDFs: regenerating an unchanged leaderboard changes no file."""
    import time

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    write_run(tmp_path, "a", 0)
    write_run(tmp_path, "b", 0, [2] * N_USERS)
    first = {p: p.read_bytes() for p in write_figures(tmp_path, tmp_path / "figures")}
    time.sleep(1.1)  # a creation date would differ now
    second = {p: p.read_bytes() for p in write_figures(tmp_path, tmp_path / "figures")}
    assert any(p.suffix == ".pdf" for p in first) and first == second


def test_no_codebook_figure_for_a_table_without_semantic_ids(tmp_path: Path) -> None:
    sid = {"levels": [{"usage": 0.9, "entropy_bits": 7.5}], "collision_rate": 0, "invalid_rate": 0}
    write_run(tmp_path, "sidmodel", 0, diagnostics={"train_seconds": 1.0, "sid": sid})
    write_run(tmp_path, "sasrec", 0, budget=2.5)  # another table, no semantic IDs
    names = {path.name for path in write_figures(tmp_path, tmp_path / "figures")}
    assert "toy-smoke_sid_usage.png" in names
    assert "toy-smoke-2.5min_bars.png" in names and "toy-smoke-2.5min_sid_usage.png" not in names


def test_training_data_cuts_and_skipped_stages_are_kept_apart(tmp_path: Path) -> None:
    write_run(tmp_path, "a", 0, [1] * N_USERS)
    write_run(tmp_path, "a", 0, [0] * N_USERS, config={"train_pairs_per_user": 25})
    write_run(tmp_path, "b", 0, [1] * N_USERS, diagnostics={"skipped_stages": ["finetune"]})
    # a record from before skipped_stages existed: best epoch still the first stage's
    write_run(tmp_path, "c", 0, [1] * N_USERS, diagnostics={"best_epoch": 2, "best_epoch_joint": 2})
    write_run(tmp_path, "d", 0, [1] * N_USERS, status="paused", error="paused after epoch 3")
    md, csv, _ = build(tmp_path)
    assert sorted(csv["table"].unique()) == ["toy-smoke", "toy-smoke-last25"]
    assert cell(csv, "a", table="toy-smoke")["mean"] == 1.0
    assert cell(csv, "a", table="toy-smoke-last25")["mean"] == 0.0
    assert set(csv["model"]) == {"a"}  # b and c skipped a stage, d is still training
    assert "trained on last 25 pairs per user" in md and "trained on all pairs" in md
    assert "b seed 0: kept out of the tables, its budget ended before its finetune stage" in md
    assert "c seed 0: kept out" in md
    assert md.count("d seed 0: still training (paused after 0 epoch(s)") == 1


def test_unreadable_records_are_skipped_with_a_warning(tmp_path: Path, capsys) -> None:
    write_run(tmp_path, "a", 0)
    folder = tmp_path / "runs" / "toy" / "a"
    (folder / "truncated.json").write_text('{"schema_version": 1, "run_')
    (folder / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (folder / "list.json").write_text("[1, 2]")
    (folder / "fieldless.json").write_text('{"schema_version": 1, "status": "ok"}')
    md, csv, _ = build(tmp_path)
    err = capsys.readouterr().err
    assert set(csv["model"]) == {"a"}
    for name in ("truncated", "binary", "list", "fieldless"):
        assert f"{name}.json" in err
    assert err.count("warning: skipped") == 4 and "Traceback" not in err


def test_every_committed_record_loads_as_a_run_record() -> None:
    """Records of older schema versions in results/runs/ still load (upgraded on reading)."""
    from tests.conftest import REPO

    paths = sorted((REPO / "results").glob("**/runs/**/*.json"))
    assert paths, "no committed records"
    records = [RunRecord.load(path) for path in paths]
    assert all(r.schema_version == 2 and r.protocol.get("selection") for r in records)
    assert {r.status for r in records} <= {"ok", "failed", "paused"}


def test_two_models_tied_for_best_leave_no_second(tmp_path: Path) -> None:
    """Competition ranking: 1, 1, 3; the third model is not underlined."""
    for model, hits in (("a", 30), ("b", 30), ("c", 20)):
        write_run(tmp_path, model, 0, [1] * hits + [0] * (N_USERS - hits))
    _, csv, _ = build(tmp_path)
    assert [cell(csv, m)["place"] for m in ("a", "b")] == [1, 1]
    assert pd.isna(cell(csv, "c")["place"])


def test_a_run_still_training_is_listed_not_failed_and_kept_in_runs_csv(tmp_path: Path) -> None:
    write_run(tmp_path, "a", 0)
    write_run(tmp_path, "a", 1, status="paused", error="paused", curve=[{"epoch": 0}])
    md, _, _ = build(tmp_path)
    assert "a seed 1: still training (paused after 1 epoch(s)" in md
    assert "Failed runs" not in md and row_cells(md, "a")[1] == "1"
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert sorted(runs["status"]) == ["ok", "paused"]


def test_a_newer_failed_retry_does_not_replace_a_successful_run(tmp_path: Path) -> None:
    write_run(tmp_path, "a", 0, finished="2025-01-01T00:00:00Z")
    write_run(tmp_path, "a", 0, status="failed", error="OOM", finished="2025-01-02T00:00:00Z")
    md, csv, _ = build(tmp_path)
    assert cell(csv, "a")["n_seeds"] == 1
    assert "kept the newest successful (run a-0-0, ok" in md


def test_seeds_that_ran_different_configs_are_noted(tmp_path: Path) -> None:
    write_run(tmp_path, "a", 0, config={"lr": 1})
    write_run(tmp_path, "a", 1, config={"lr": 2})
    md, _, _ = build(tmp_path)
    assert "a: its seeds ran 2 different configs (seed 0; seed 1); its mean mixes them." in md


def test_a_metric_missing_for_one_seed_is_noted(tmp_path: Path) -> None:
    write_run(tmp_path, "a", 0)
    write_run(tmp_path, "a", 1, test={"ndcg@10": float("nan")})
    md, csv, _ = build(tmp_path)
    assert cell(csv, "a", "ndcg@10")["n_seeds"] == 1
    assert "a: no ndcg@10 for seed 1; that cell's mean uses 1 of 2 seeds." in md


def test_the_best_model_without_per_user_ranks_does_not_shield_the_others(tmp_path: Path) -> None:
    """Significance is tested against the best model that has ranks."""
    write_run(tmp_path, "top", 0, [1] * N_USERS)
    write_run(tmp_path, "good", 0, [1] * N_USERS)
    write_run(tmp_path, "bad", 0, [0] * N_USERS)
    drop_ranks(next((tmp_path / "runs" / "toy" / "top").glob("*.json")))
    _, csv, _ = build(tmp_path)
    assert bool(cell(csv, "bad")["significant"])


def test_markup_in_a_label_or_error_cannot_break_a_table_or_the_tex(tmp_path: Path) -> None:
    write_run(tmp_path, "a|<b>&c", 0)
    write_run(tmp_path, "d", 0, status="failed", error="CUDA out of memory.\nTried 2 GiB")
    md, _, tex = build(tmp_path)
    (row,) = [line for line in md.splitlines() if line.startswith("| a")]
    assert row.startswith("| a\\|&lt;b>&amp;c ") and "<b>" not in md
    failed = [line for line in tex.splitlines() if "Tried 2 GiB" in line]
    assert failed and all(line.startswith("%") for line in failed)


def test_ranks_that_cover_fewer_users_are_noted(tmp_path: Path) -> None:
    write_run(tmp_path, "full", 0)
    write_run(tmp_path, "part", 0, [1] * 20)
    md, _, _ = build(tmp_path)
    assert f"part: per-user ranks cover 20 of the table's {N_USERS} test users" in md
    assert "full: per-user ranks cover" not in md


def test_a_model_with_fewer_seeds_is_tested_on_the_seeds_it_shares_with_the_best(
    tmp_path: Path,
) -> None:
    """The best has seeds 0-2, another only seed 0, where it beats the best's seed 0: against
    the best's mean over three seeds it would look significantly worse; on seed 0 it is not."""
    write_run(tmp_path, "best", 0, [1] * 40 + [0] * 20)
    for seed in (1, 2):
        write_run(tmp_path, "best", seed, [1] * 60)
    write_run(tmp_path, "one-seed", 0, [1] * 50 + [0] * 10)
    write_run(tmp_path, "worse", 0, [0] * 60)
    write_run(tmp_path, "tied", 0, [1] * 40 + [0] * 20)
    for seed in (1, 2):
        write_run(tmp_path, "tied", seed, [1] * 60)
    _, csv, _ = build(tmp_path)
    one = cell(csv, "one-seed")
    assert one["mean"] < cell(csv, "best")["mean"] and not one["significant"]
    assert one["p_value"] < 0.05  # it differs on seed 0, in its favour: no dagger
    assert cell(csv, "worse")["significant"]
    assert pd.isna(cell(csv, "tied")["p_value"])  # tied at the shown precision: shares the bold


def test_the_cost_columns_leave_out_cold_cache_artifact_builds(tmp_path: Path) -> None:
    """Seed 0 built the tokenizer (60 of its 100 s), seed 1 found it cached: both trained 40 s."""
    curve = [{"epoch": 0, "ndcg@10": 0.1, "seconds": 80.0}, {"epoch": 1, "ndcg@10": 0.2}]
    write_run(tmp_path, "m", 0, diagnostics={"train_seconds": 100.0, "artifact_seconds": 60.0},
              curve=curve)  # fmt: skip
    write_run(tmp_path, "m", 1, diagnostics={"train_seconds": 40.0})
    _, csv, _ = build(tmp_path)
    train = cell(csv, "m", "train_seconds")
    assert train["mean"] == 40.0 and train["std"] == 0.0


def test_budgeted_runs_under_the_old_and_new_budget_rule_are_never_one_table(
    tmp_path: Path,
) -> None:
    """Budgets that charged cold-cache artifact builds (records without artifact_seconds) and
    budgets that leave them out measure different things."""
    write_run(tmp_path, "m", 0, budget=2.5)
    write_run(
        tmp_path, "m", 1, budget=2.5, diagnostics={"train_seconds": 9.0, "artifact_seconds": 0.0}
    )
    tables = build_leaderboard(load_records(tmp_path)).tables
    assert len(tables) == 2
    assert sum("budget_excludes=artifact builds" in t.title for t in tables) == 1


def test_failed_and_paused_budgeted_runs_of_the_new_rule_stay_with_their_table(
    tmp_path: Path,
) -> None:
    """The runner tags every budgeted record with its rule: a failed or paused one (whose
    diagnostics say nothing about artifact builds) lands in its table, not outside."""
    tag = PROTOCOL | {"budget_excludes": "artifact builds"}
    diagnostics = {"train_seconds": 9.0, "artifact_seconds": 0.0}
    write_run(tmp_path, "m", 0, budget=2.5, protocol=tag, diagnostics=diagnostics)
    write_run(tmp_path, "m", 1, budget=2.5, protocol=tag, status="failed", error="OOM")
    write_run(tmp_path, "m", 2, budget=2.5, protocol=tag, status="paused", error="paused")
    board = build_leaderboard(load_records(tmp_path))
    (table,) = board.tables
    assert "budget_excludes=artifact builds" in table.title and len(table.failed) == 1
    assert any("m seed 2: still training" in note for note in table.notes)
    assert board.orphans.empty


def test_runs_of_a_key_without_a_table_are_listed_with_why(tmp_path: Path) -> None:
    write_run(tmp_path, "a", 0)
    write_run(tmp_path, "b", 0, budget=5.0, diagnostics={"skipped_stages": ["finetune"]})
    write_run(tmp_path, "c", 0, budget=7.0, status="paused", error="paused", curve=[{"epoch": 0}])
    md, _, _ = build(tmp_path)
    outside = md.split("## Runs outside every table")[1]
    assert "`b` on toy seed 0" in outside and "before its finetune stage" in outside
    assert "`c` on toy seed 0" in outside and "still training (paused after 1 epoch(s))" in outside


def test_a_model_sharing_no_ranked_seed_with_the_best_is_said_untested(tmp_path: Path) -> None:
    """sasrec ran seed 0 only, tiger seed 1 only: no pair to test, so no † and a note saying
    so (an unmarked cell must not read as "not worse")."""
    write_run(tmp_path, "sasrec", 0, [1] * N_USERS)
    write_run(tmp_path, "tiger", 1, [0] * N_USERS)
    md, _, _ = build(tmp_path)
    assert "tiger: not tested against the column's best in Recall@5, NDCG@5" in md
    assert "sasrec: not tested" not in md


def test_when_the_best_kept_no_ranks_the_stand_in_is_named_not_called_untested(
    tmp_path: Path,
) -> None:
    write_run(tmp_path, "x", 0, [1] * N_USERS)  # best, but its ranks are lost below
    write_run(tmp_path, "y", 0, [1] * 50 + [0] * (N_USERS - 50))
    write_run(tmp_path, "z", 0, [0] * N_USERS)
    drop_ranks(next((tmp_path / "runs" / "toy" / "x").glob("*.json")))
    md, _, _ = build(tmp_path)
    assert "y: not tested" not in md
    assert "y stands in for the column's best in Recall@5, NDCG@5" in md


def test_wilcoxon_ties_differences_that_differ_only_by_float_noise() -> None:
    """Seed-averaged scores: 1 - 2/3 and 1/3 - 0 are one difference, one tie in the ranks."""
    from scipy.stats import wilcoxon

    from benchmark.significance import wilcoxon_p

    mean = lambda *hits: float(np.mean(hits))  # noqa: E731 - as per_user_scores averages
    reference = pd.Series([1.0, mean(1, 0, 0), 1.0, mean(1, 0, 0), 0.0, 1.0, 1.0, 1.0])
    other = pd.Series([mean(1, 1, 0), 0.0, mean(1, 1, 0), 0.0, 1.0, 0.0, 1.0, 1.0])
    assert reference[0] - other[0] != reference[1] - other[1]  # the noise this is about
    exact = wilcoxon([1 / 3, 1 / 3, 1 / 3, 1 / 3, -1.0, 1.0]).pvalue
    assert wilcoxon_p(reference, other) == pytest.approx(exact)
    assert wilcoxon_p(reference, reference + 0.0) == 1.0


def test_a_comparison_tests_per_user_only_on_seeds_both_kept_ranks_for(tmp_path: Path) -> None:
    """tiger seed 2 lost its ranks: the Wilcoxon pairs letter and tiger on seeds 0 and 1 (not
    tiger's two seeds against letter's three)."""
    from benchmark.comparisons import compare_with_bases
    from benchmark.significance import per_user_scores, wilcoxon_p

    rng = np.random.default_rng(0)
    for seed in range(3):
        write_run(tmp_path, "tiger", seed, rng.integers(1, 40, N_USERS).tolist())
        write_run(tmp_path, "letter", seed, rng.integers(1, 30, N_USERS).tolist())
    drop_ranks(sorted((tmp_path / "runs" / "toy" / "tiger").glob("*.json"))[2])
    (table,) = build_leaderboard(load_records(tmp_path)).tables
    rows = compare_with_bases(table.runs, ["recall@10"], {"letter": "tiger"}.get)
    paired = [per_user_scores(table.runs, m, "recall@10", [0, 1]) for m in ("tiger", "letter")]
    assert rows.iloc[0]["seeds"] == 3
    assert rows.iloc[0]["p_value"] == pytest.approx(wilcoxon_p(*paired))


def test_a_table_whose_runs_read_different_item_texts_says_so(tmp_path: Path) -> None:
    for seed, text in ((0, "t1"), (1, "t2")):
        write_run(tmp_path, "m", seed)
        path = sorted((tmp_path / "runs" / "toy" / "m").glob("*.json"))[-1]
        record = json.loads(path.read_text())
        record["inputs"] = {"interactions": "fp1", "item_text": text}
        path.write_text(json.dumps(record))
    md, _, _ = build(tmp_path)
    assert "its runs read 2 different item texts" in md


def test_a_learning_curve_means_only_the_epochs_every_seed_reached(tmp_path: Path) -> None:
    """Seed 1 trains 6 epochs, seed 0 stops after 3: the mean line stops at epoch 2, and seed 1
    goes on as a thin tail from there (not as a one-seed 'mean')."""
    from benchmark.figures import validation_curves

    for seed, epochs in ((0, 3), (1, 6)):
        curve = [
            {"epoch": e, "ndcg@10": 0.1 * e + seed, "seconds": 10.0 * e} for e in range(epochs)
        ]
        write_run(tmp_path, "a", seed, curve=curve)
    board = build_leaderboard(load_records(tmp_path))
    figure = validation_curves(board.tables[0], _palette(board.tables))
    drawn = [line.get_xdata() for line in figure.axes[0].lines if len(line.get_xdata())]
    assert [0, 1, 2] in [list(x) for x in drawn]  # the mean, over both seeds
    assert [2, 3, 4, 5] in [list(x) for x in drawn]  # seed 1's tail
    assert max(max(x) for x in drawn if list(x) != [2, 3, 4, 5]) == 2
