"""TIGER end to end on the tiny fixture: real tokenizer, T5, constrained decoding, caching."""

import json

import numpy as np
import pytest

from benchmark.data import load_sequence_data
from benchmark.metrics import metrics_from_ranks, target_ranks
from benchmark.runner import run_batch
from tests.conftest import FIXTURE_DIR

SMOKE = dict(datasets=["ml-tiny"], profile="smoke", data_dir=FIXTURE_DIR, quiet=True)


def test_tiger_smoke_run_records_sid_diagnostics_and_reuses_the_tokenizer(tmp_path, tiny_data):
    first = run_batch(["tiger"], results_dir=tmp_path, **SMOKE)[0].record
    assert first["status"] == "ok", first.get("traceback")
    sid = first["diagnostics"]["sid"]
    assert len(sid["levels"]) == 3
    assert 0 < sid["levels"][0]["usage"] <= 1 and sid["levels"][0]["entropy_bits"] > 0
    assert 0 <= sid["collision_rate"] < 1 and sid["invalid_rate"] == 0
    assert not any("semantic-ids" in hit for hit in first["diagnostics"]["cache_hits"])
    # retraining the recommender (another config) reuses the cached tokenizer
    second = run_batch(["tiger"], results_dir=tmp_path, overrides=["lr=0.002"], **SMOKE)[0].record
    assert any("semantic-ids" in hit for hit in second["diagnostics"]["cache_hits"])
    assert second["diagnostics"]["sid"] == sid


def test_tiger_same_seed_same_numbers(tmp_path):
    a = run_batch(["tiger"], results_dir=tmp_path / "a", **SMOKE)[0].record
    b = run_batch(["tiger"], results_dir=tmp_path / "b", **SMOKE)[0].record
    untimed = [
        [{k: v for k, v in e.items() if "seconds" not in k} for e in r["curve"]] for r in (a, b)
    ]
    assert a["test_ranks"] == b["test_ranks"] and untimed[0] == untimed[1]


def test_tiger_on_externally_given_ids(tmp_path, tiny_data):
    """LETTER's published-ID format: {"<item index>": ["<a_1>", "<b_2>", ...]}."""
    rng = np.random.default_rng(0)
    ids = {
        token: [f"<{level}_{int(rng.integers(4))}>" for level in "abc"]
        for token in tiny_data.item_tokens[1:]
    }
    path = tmp_path / "ids.json"
    path.write_text(json.dumps(ids))
    record = run_batch(
        ["tiger"],
        results_dir=tmp_path,
        overrides=["tokenizer=external", f"sid_file={path}"],
        **SMOKE,
    )[0].record
    assert record["status"] == "ok", record.get("traceback")
    assert record["diagnostics"]["sid"]["collision_rate"] > 0  # 64 codes for ~700 items


def test_saved_model_decodes_like_the_run_that_saved_it(tmp_path):
    from models.components.beam_search import PrefixTrie, constrained_beam_search
    from scripts.bench_decode import load_decoder

    record = run_batch(["tiger"], results_dir=tmp_path, save_models=tmp_path / "models", **SMOKE)[
        0
    ].record
    path = tmp_path / "models" / "ml-tiny" / "tiger" / f"{record['run_id']}.pt"
    assert record["checkpoint"] == str(path)
    data = load_sequence_data("ml-tiny", FIXTURE_DIR, 20)
    model, table = load_decoder(path, data.n_items)
    ids, mask = model.encode_inputs(data.test_histories, table.tokens())
    trie = PrefixTrie.from_codes(table.codes, table.level_sizes)
    top = constrained_beam_search(model, ids, mask, trie, beam_size=20, topk=20)[0].numpy()
    ranks = target_ranks(top, data.test_targets)
    assert metrics_from_ranks(ranks, (5, 10, 20)) == pytest.approx(record["test"])
    with pytest.raises(SystemExit, match="the dataset has 3"):
        load_decoder(path, 3)
