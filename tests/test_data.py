"""The protocol: our split is RecBole's, readers agree, the fingerprint is stable."""

import gzip
import json

import numpy as np

from benchmark.data import load_sequence_data
from tests.conftest import FIXTURE_DIR


def test_split_is_recboles_own_data_preparation(tiny_data):
    """Same train / valid / test items per user as RecBole's data_preparation on the same config."""
    from recbole.data import data_preparation

    from benchmark.data import build_recbole_splits, cache_root, recbole_dataset_config
    from benchmark.datasets import find_card, materialize_atomic
    from models.recbole_compat import create_dataset, recbole_config

    card = find_card("ml-tiny", FIXTURE_DIR)
    path = materialize_atomic(card, FIXTURE_DIR, cache_root())
    config = recbole_config("SASRec", "ml-tiny", str(path), recbole_dataset_config(card, path, 20))
    train_dl, valid_dl, test_dl = data_preparation(config, create_dataset(config))

    def rows(feat):
        lists, lengths = feat["item_id_list"].numpy(), feat["item_length"].numpy()
        return (
            feat["user_id"].numpy().tolist(),
            [r[:n].tolist() for r, n in zip(lists, lengths)],
            feat["item_id"].numpy().tolist(),
        )

    for loader, (users, hist, targets) in (
        (train_dl, (tiny_data.train_users, tiny_data.train_histories, tiny_data.train_targets)),
        (valid_dl, (tiny_data.valid_users, tiny_data.valid_histories, tiny_data.valid_targets)),
        (test_dl, (tiny_data.test_users, tiny_data.test_histories, tiny_data.test_targets)),
    ):
        theirs = sorted(zip(*rows(loader.dataset.inter_feat)), key=repr)
        ours = sorted(zip(users.tolist(), hist, targets.tolist()), key=repr)
        assert ours == theirs
    assert build_recbole_splits  # imported for the reader


def test_leave_one_out_shape(tiny_data):
    d = tiny_data
    assert len(d.test_users) == len(d.valid_users) == 60
    for hist_v, tgt_v, hist_t in zip(d.valid_histories, d.valid_targets, d.test_histories):
        # the test history is the validation history plus the validation item (capped)
        assert (hist_v + [int(tgt_v)])[-d.max_history :] == hist_t
    assert all(len(h) <= d.max_history for h in d.train_histories)
    assert d.item_text[1] and d.item_text[0] == ""


def test_fingerprint_is_stable_and_sensitive(tmp_path):
    a = load_sequence_data("ml-tiny", FIXTURE_DIR)
    b = load_sequence_data("ml-tiny", FIXTURE_DIR)
    assert a.fingerprint == b.fingerprint
    folder = tmp_path / "ml-tiny"
    folder.mkdir()
    lines = (FIXTURE_DIR / "ml-tiny" / "ml-tiny.inter").read_text().splitlines()
    (folder / "ml-tiny.inter").write_text("\n".join(lines[:-5]) + "\n")
    c = load_sequence_data("ml-tiny", tmp_path)
    assert c.fingerprint != a.fingerprint


def _write_sequences(tmp_path):
    rng = np.random.default_rng(0)
    seqs = {
        str(u): rng.choice(30, size=rng.integers(4, 9), replace=False).tolist() for u in range(25)
    }
    return seqs


def test_json_reader_and_amazon_reader_agree(tmp_path, monkeypatch):
    """The same sequences as X.inter.json and as raw Amazon 2014 gz files give the same split."""
    from benchmark import datasets as ds

    seqs = _write_sequences(tmp_path)
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "Toy.inter.json").write_text(json.dumps(seqs))
    meta = {str(i): {"title": f"item {i}", "brand": "b"} for i in range(30)}
    (tmp_path / "toy" / "Toy.item.json").write_text(json.dumps(meta))
    with gzip.open(tmp_path / "toy" / "reviews_Toy_5.json.gz", "wt") as f:
        for u, items in seqs.items():
            for t, i in enumerate(items):
                f.write(
                    json.dumps({"reviewerID": f"u{u}", "asin": f"A{i}", "unixReviewTime": 1000 + t})
                    + "\n"
                )
    with gzip.open(tmp_path / "toy" / "meta_Toy.json.gz", "wt") as f:
        for i in range(30):  # the 2014 metadata files hold Python dict literals
            f.write(repr({"asin": f"A{i}", "title": f"item {i}", "brand": "b"}) + "\n")
    cards = {
        "toy-json": ds.DatasetCard(
            "toy-json",
            "json",
            {"inter": "toy/Toy.inter.json", "item": "toy/Toy.item.json"},
            ["title", "brand"],
        ),
        "toy-raw": ds.DatasetCard(
            "toy-raw",
            "amazon2014",
            {"reviews": "toy/reviews_Toy_5.json.gz", "meta": "toy/meta_Toy.json.gz"},
            ["title", "brand"],
        ),
    }
    monkeypatch.setattr("benchmark.data.find_card", lambda name, data_dir: cards[name])
    a = load_sequence_data("toy-json", tmp_path)
    b = load_sequence_data("toy-raw", tmp_path)
    assert a.test_histories == b.test_histories and (a.test_targets == b.test_targets).all()
    assert a.item_text == b.item_text
    assert a.item_text[1] == "title: item " + a.item_tokens[1] + "; brand: b"


def test_recent_training_rows_keeps_each_users_latest_pairs(tiny_data):
    d = tiny_data
    rows = d.recent_training_rows(3)
    kept = {}
    for i in rows:
        kept.setdefault(int(d.train_users[i]), []).append(i)
    for user, idx in kept.items():
        all_rows = np.flatnonzero(d.train_users == user)
        assert idx == all_rows[-3:].tolist()  # the three most recent (longest) prefixes
    assert len(d.recent_training_rows(0)) == len(d.train_targets)


def test_a_truncated_conversion_is_detected_and_rebuilt(tmp_path):
    from benchmark.datasets import find_card, materialize_atomic

    card = find_card("ml-tiny", FIXTURE_DIR)
    root = materialize_atomic(card, FIXTURE_DIR, tmp_path)
    inter = root / "ml-tiny" / "ml-tiny.inter"
    whole = inter.read_bytes()
    inter.write_bytes(whole[: len(whole) // 2])  # a conversion cut in half
    assert materialize_atomic(card, FIXTURE_DIR, tmp_path) == root
    assert inter.read_bytes() == whole
    assert not list(root.parent.glob("*.partial"))


def test_a_local_encoder_folder_is_known_by_its_files_not_only_its_path(tmp_path):
    """Other weights in the same folder are another encoder: their embeddings (and the
    tokenizers trained on them) must not be served from the cache under the old ones' key."""
    import os

    from benchmark.embeddings import DEFAULT_ENCODER, encoder_stamp

    folder = tmp_path / "my-encoder"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"a" * 10)
    before = encoder_stamp(str(folder))
    weights.write_bytes(b"b" * 11)
    os.utime(weights, ns=(1, 1))
    assert before and encoder_stamp(str(folder)) not in (None, before)
    assert encoder_stamp(DEFAULT_ENCODER) is None  # pinned by its package version
