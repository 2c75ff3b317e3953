"""Every case of ``scripts/bad_inputs.py`` (flags, config values, data files, records, tuning
storage) gets one clear ``error:`` line, exit status 2, and writes no record."""

import pytest

from scripts.bad_inputs import CASES, classify


@pytest.mark.parametrize(("name", "setup"), CASES, ids=[name for name, _ in CASES])
def test_bad_input_is_one_clear_line(tmp_path, name, setup):
    kind, code, line = classify(setup(tmp_path), tmp_path)
    assert (kind, code) == ("clear", 2), line
    assert "error:" in line
