"""Our IDs exported in LETTER's format read back as the same table."""

import json

import torch

from benchmark.runner import run_batch
from scripts.export_sids import letter_index, semantic_id_table
from tests.conftest import FIXTURE_DIR


def test_exported_ids_read_back_identically(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))  # keep the session cache
    data, table = semantic_id_table("tiger", "ml-tiny", "smoke", 0, FIXTURE_DIR, {})
    index = letter_index(table, data.item_tokens)
    first = next(iter(index.values()))
    assert len(index) == data.n_items and first[0].startswith("<a_") and first[-1].startswith("<d_")
    path = tmp_path / "ml-tiny.index.json"
    path.write_text(json.dumps(index))

    _, again = semantic_id_table(
        "tiger",
        "ml-tiny",
        "smoke",
        0,
        FIXTURE_DIR,
        {"tokenizer": "external", "sid_file": str(path)},
    )
    assert torch.equal(again.codes, table.codes)
    record = run_batch(
        ["tiger"],
        ["ml-tiny"],
        profile="smoke",
        data_dir=FIXTURE_DIR,
        results_dir=tmp_path,
        overrides=["tokenizer=external", f"sid_file={path}"],
        quiet=True,
    )[0].record
    assert record["status"] == "ok", record.get("traceback")
    assert set(record["inputs"]) == {"interactions", "item_text", "sid_file"}

    # the same IDs written another way are the same input; other IDs at the same path are not
    path.write_text(json.dumps(index, indent=2))
    rerun = dict(
        profile="smoke",
        data_dir=FIXTURE_DIR,
        results_dir=tmp_path,
        overrides=["tokenizer=external", f"sid_file={path}"],
        quiet=True,
    )
    assert run_batch(["tiger"], ["ml-tiny"], **rerun)[0].status == "skipped"
    keys = list(index)
    index[keys[0]], index[keys[1]] = index[keys[1]], index[keys[0]]
    path.write_text(json.dumps(index))
    other = run_batch(["tiger"], ["ml-tiny"], **rerun)[0]
    assert other.status == "other data" and "sid_file" in other.note


BAD_EXPORTS = [
    (["--set", "foo"], ["--set expects key=value, got 'foo'"]),
    (["--model", "tigre"], ["unknown model 'tigre'", "did you mean 'tiger'"]),
    (["--model", "sasrec"], ["has no semantic IDs", "tiger"]),
    (["--model", "diger"], ["re-derives the IDs every epoch", "exports letter"]),
    (["--model", "unigrec+soda"], ["re-derives the IDs every epoch", "tiger+soda"]),
    (["--set", "lr=fast"], ["'fast'"]),
]


def test_bad_input_is_one_error_line_and_exit_status_2(tmp_path, capsys):
    from scripts.export_sids import main

    out = tmp_path / "ids.json"
    base = ["--dataset", "ml-tiny", "--data-dir", str(FIXTURE_DIR), "--profile", "smoke"]
    for args, needles in BAD_EXPORTS:
        assert main([*base, "--out", str(out), *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        for needle in needles:
            assert needle.lower() in err.lower(), err
    assert main([*base, "--out", str(tmp_path)]) == 2  # a folder: refused before any work
    assert "is a folder" in capsys.readouterr().err
    assert not out.exists()


def test_only_models_that_train_on_the_ids_they_build_are_exported():
    from benchmark.runner import model_registry
    from models.generative import JointTokenizerMixin
    from scripts.export_sids import exportable

    registry = model_registry()
    exported = {name for name in registry.names() if exportable(registry.get(name))}
    assert exported == {"tiger", "letter", "tiger+soda", "letter+soda"}
    # every joint-tokenizer method (IDs re-derived while it trains) is refused, none by accident
    joint = {n for n in registry.names() if issubclass(registry.get(n), JointTokenizerMixin)}
    assert joint == {"diger", "unigrec", "diger+soda", "unigrec+soda"}
