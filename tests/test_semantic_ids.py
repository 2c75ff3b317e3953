import json

import numpy as np
import pytest
import torch

from models.components.semantic_ids import (
    SemanticIDTable,
    add_collision_digit,
    load_external_ids,
    sid_diagnostics,
    sid_drift,
)
from tests.conftest import SHARED_DATA


def test_collision_digit_numbers_items_in_ascending_order():
    codes = np.array([[1, 2], [0, 0], [1, 2], [3, 1], [1, 2], [0, 0]])
    out = add_collision_digit(codes)
    assert out[:, 2].tolist() == [0, 0, 1, 0, 2, 1]
    assert np.array_equal(out[:, :2], codes)
    tensor = add_collision_digit(torch.from_numpy(codes))
    assert isinstance(tensor, torch.Tensor) and torch.equal(tensor, torch.from_numpy(out))


def test_collision_digit_makes_every_id_unique_at_scale():
    codes = np.random.default_rng(0).integers(0, 8, size=(50_000, 3))  # 512 prefixes
    out = add_collision_digit(codes)
    assert len(np.unique(out, axis=0)) == len(out)
    same = np.all(codes == codes[0], axis=1)
    assert out[same, 3].tolist() == list(range(same.sum()))


def test_diagnostics_on_a_hand_made_case():
    codes = np.array([[0, 1], [0, 1], [1, 2], [2, 3]])
    d = sid_diagnostics(codes, 4)
    assert d["levels"][0] == {
        "used": 3,
        "usage": 0.75,
        "dead": 1,
        "entropy_bits": 1.5,
        "perplexity": 2**1.5,
    }
    assert d["levels"][1]["used"] == 3
    assert d["collision_rate"] == 0.25 and d["max_items_per_prefix"] == 2
    assert d["distinct_ids"] == 3
    json.dumps(d)  # plain Python types
    with pytest.raises(ValueError):
        sid_diagnostics(codes, [4, 4, 4])


def test_drift():
    old = np.array([[0, 1], [2, 3], [4, 5], [6, 7]])
    new = np.array([[0, 1], [2, 0], [9, 5], [6, 7]])
    assert sid_drift(old, new) == {"changed": 0.5, "levels": [0.25, 0.25]}
    with pytest.raises(ValueError):
        sid_drift(old, new[:2])


def write(tmp_path, entries) -> str:
    path = tmp_path / "ids.json"
    path.write_text(json.dumps(entries))
    return str(path)


def test_load_external_ids_with_every_kind_of_map(tmp_path):
    path = write(tmp_path, {"0": ["<a_3>", "<b_1>"], "1": ["<a_0>", "<b_7>"], "9": [1, 2]})
    with pytest.raises(ValueError, match="outside"):
        load_external_ids(path, 2)
    path = write(tmp_path, {"0": ["<a_3>", "<b_1>"], "1": ["<a_0>", "<b_7>"]})
    assert load_external_ids(path, 2).tolist() == [[3, 1], [0, 7]]
    assert load_external_ids(path, 2, {"0": 2, "1": 1}).tolist() == [[0, 7], [3, 1]]
    assert load_external_ids(path, 2, ["[PAD]", "1", "0"]).tolist() == [[0, 7], [3, 1]]


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"0": ["<a_3>", "<b_1>"]}, "no ID"),
        ({"0": ["<a_3>", "<c_1>"], "1": ["<a_0>", "<b_7>"]}, "not <b_N>"),
        ({"0": ["<a_3>", "b1"], "1": ["<a_0>", "<b_7>"]}, "not <b_N>"),
        ({"0": ["<a_3>"], "1": ["<a_0>", "<b_7>"]}, "different lengths"),
        ({"x": ["<a_3>"], "1": ["<a_0>"]}, "0-based"),
    ],
)
def test_load_external_ids_errors(tmp_path, entries, message):
    with pytest.raises(ValueError, match=message):
        load_external_ids(write(tmp_path, entries), 2)


def test_load_letter_beauty_ids():
    path = SHARED_DATA / "beauty" / "Beauty.letter-index.json"
    if not path.exists():
        pytest.skip("shared Beauty data not available")
    codes = load_external_ids(path, 12101)
    d = sid_diagnostics(codes, 256)
    assert codes.shape == (12101, 4)
    assert d["levels"][0]["used"] == 197 and d["distinct_ids"] == 12088  # METHODS.md Sec. 5


def test_semantic_id_table_token_layout():
    table = SemanticIDTable.from_codes(add_collision_digit(np.array([[1, 0], [1, 0], [0, 2]])))
    assert table.codes[0].tolist() == [0, 0, 0] and table.n_items == 3
    assert table.level_sizes == [2, 3, 2]
    assert table.token_offsets == [2, 4, 7] and table.vocab_size == 9
    assert table.tokens().tolist() == [[0, 0, 0], [3, 4, 7], [3, 4, 8], [2, 6, 7]]
    fixed = SemanticIDTable.from_codes(np.array([[1, 0]]), level_sizes=[4, 4])
    assert fixed.vocab_size == 10
    with pytest.raises(ValueError):
        SemanticIDTable.from_codes(np.array([[5, 0]]), level_sizes=[4, 4])
