"""scripts/patience_check: a longer patience repeats the grid run's epochs, then says more."""

from __future__ import annotations

from benchmark.runner import run_batch
from scripts.patience_check import main
from tests.conftest import FIXTURE_DIR

SMOKE = dict(datasets=["ml-tiny"], profile="smoke", data_dir=FIXTURE_DIR, quiet=True)


def test_a_longer_patience_repeats_the_grid_runs_epochs(tmp_path, capsys):
    grid = run_batch(["gru4rec"], results_dir=tmp_path / "grid", overrides=["epochs=4",
                     "patience=1"], **SMOKE)[0]  # fmt: skip
    check = run_batch(["gru4rec"], results_dir=tmp_path / "check", overrides=["epochs=4",
                      "patience=4"], **SMOKE)[0]  # fmt: skip
    assert grid.status == check.status == "ok"
    assert len(check.record["curve"]) >= len(grid.record["curve"])
    capsys.readouterr()  # the runs' own lines
    main(["--check", str(tmp_path / "check"), "--grid", str(tmp_path / "grid"),
          "--markdown", str(tmp_path / "check.md")])  # fmt: skip
    out = capsys.readouterr()
    row = out.out.splitlines()[2]
    assert "gru4rec" in row and "patience 4, cap 4" in row
    assert row.split("|")[6].strip() == "True"  # the shared epochs are the grid run's
    assert not out.err  # the check run found its twin
    assert (tmp_path / "check.md").read_text().count("gru4rec") == 1
