"""scripts/readme_leaderboard.py: each fidelity table lands between its own markers."""

from __future__ import annotations

import pytest

from scripts import readme_leaderboard as rl


def test_each_fidelity_table_goes_between_its_own_markers_the_rest_between_the_plain_ones(
    tmp_path, monkeypatch
):
    folder = tmp_path / "results" / "reference"
    folder.mkdir(parents=True)
    (folder / "office-tiger-quick.md").write_text("| tiger |\n")
    (folder / "office-unigrec-quick.md").write_text("| unigrec |\n")
    monkeypatch.setattr(rl, "ROOT", tmp_path)
    start, end = rl.fidelity_markers("office-unigrec-quick")
    readme = f"A\n{start}\nold\n{end}\nB\n{rl.FIDELITY[0]}\n{rl.FIDELITY[1]}\n"
    out = rl.with_fidelity_tables(readme)
    unigrec = out.split(start)[1].split(end)[0]
    assert "| unigrec |" in unigrec and "old" not in unigrec and "tiger" not in unigrec
    plain = out.split(rl.FIDELITY[0])[1].split(rl.FIDELITY[1])[0]
    assert "| tiger |" in plain and "unigrec" not in plain
    assert out.startswith("A\n") and "\nB\n" in out


def test_the_headline_replaces_what_was_between_its_markers(tmp_path, monkeypatch):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "headline.md").write_text("| model | new |\n")
    (tmp_path / "results" / "leaderboard.md").write_text("### t\n| a |\n")
    readme = f"top\n{rl.HEADLINE[0]}\n| model | old |\n{rl.HEADLINE[1]}\nbottom\n"
    (tmp_path / "README.md").write_text(readme)
    monkeypatch.setattr(rl, "ROOT", tmp_path)
    rl.main()
    out = (tmp_path / "README.md").read_text()
    assert out == f"top\n{rl.HEADLINE[0]}\n| model | new |\n{rl.HEADLINE[1]}\nbottom\n"


def test_a_lost_end_marker_is_a_clear_error():
    with pytest.raises(SystemExit, match="no <!-- B --> after it"):
        rl.replace_between("x <!-- A --> table", ("<!-- A -->", "<!-- B -->"), "new")
