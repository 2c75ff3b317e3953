"""The pure parts of ``scripts/compare_reference.py``: the inputs it writes for the authors'
trainer, the CPU patches it applies to their code, and the verdict it reports."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from scripts import compare_reference as cr


def test_user_sequences_rebuilds_each_users_items_from_the_split():
    # user 1: items 5 6 7 | valid 8 | test 9; user 2: 3 4 | valid 2 | test 1
    data = SimpleNamespace(
        train_users=np.array([1, 1, 2]),
        train_histories=[[5], [5, 6], [3]],
        train_targets=np.array([6, 7, 4]),
        valid_users=np.array([1, 2]),
        valid_targets=np.array([8, 2]),
        test_users=np.array([1, 2]),
        test_targets=np.array([9, 1]),
    )
    assert cr.user_sequences(data) == {1: [5, 6, 7, 8, 9], 2: [3, 4, 2, 1]}


def test_warmup_steps_follow_transformers_ceil_of_ratio_times_total():
    settings = {"epochs": 20, "batch_size": 256, "warmup_ratio": 0.01}
    # 38,543 pairs -> 151 steps per epoch -> 3,020 steps -> ceil(30.2) = 31
    assert cr.warmup_steps(38_543, settings) == 31


def test_train_seconds_per_epoch_leaves_out_validation_and_setup():
    curve = [
        {"seconds": 100.0, "valid_seconds": 5.0},  # 40 s of setup before epoch 0
        {"seconds": 165.0, "valid_seconds": 5.0},
        {"seconds": 230.0, "valid_seconds": 5.0},
    ]
    assert cr.train_seconds_per_epoch(curve) == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("ours", "ref", "passed"),
    [
        ([0.050, 0.054], [0.052, 0.053], True),  # within the larger spread
        ([0.050, 0.051], [0.054, 0.055], True),  # outside the spread, within 10%
        ([0.040, 0.041], [0.054, 0.055], False),  # 26% lower, spreads 0.001
    ],
)
def test_verdict_is_the_larger_spread_or_ten_percent(ours, ref, passed):
    verdict = cr.verdict_for(ours, ref)
    assert verdict["passed"] is passed
    assert verdict["difference"] == pytest.approx(np.mean(ours) - np.mean(ref))


def _fake_checkout(root, finetune: str, test: str):
    folder = root / "LETTER-TIGER"
    (folder / "ckpt" / "TIGER").mkdir(parents=True)
    (folder / "finetune.py").write_text(finetune)
    (folder / "test.py").write_text(test)
    (folder / "ckpt" / "TIGER" / "config.json").write_text(json.dumps({"d_model": 128}))
    (folder / "ckpt" / "TIGER" / "spiece.model").write_text("tokenizer")
    return root


TEST_PY = (
    'device = torch.device("cuda",args.gpu_id)\n'
    'config = T5Config.from_pretrained("t5-small")\n'
    'tok = T5Tokenizer.from_pretrained(\n        "t5-small",\n        model_max_length=512)\n'
    "model = load(\n        low_cpu_mem_usage=True,\n        device_map=device_map,\n    )\n"
    "DataLoader(x, num_workers=4, pin_memory=True)\n"
)
FINETUNE_PY = 'device = torch.device("cuda", local_rank)\n'


def test_patches_move_their_code_to_the_cpu_and_off_the_hub(tmp_path):
    ref = _fake_checkout(tmp_path / "ref", FINETUNE_PY, TEST_PY)
    code = cr.patched_copy(ref, tmp_path / "work" / "LETTER-TIGER")
    assert (code / "finetune.py").read_text() == 'device = torch.device("cpu")\n'
    test = (code / "test.py").read_text()
    assert "cuda" not in test and "t5-small" not in test and "device_map" not in test
    assert test.count("args.base_model") == 2 and "num_workers=0" in test
    assert "cuda" in (ref / "LETTER-TIGER" / "test.py").read_text()  # their copy untouched


def test_a_changed_checkout_is_refused_with_the_patch_that_no_longer_applies(tmp_path):
    ref = _fake_checkout(tmp_path / "ref", "device = torch.device('cuda')\n", TEST_PY)
    with pytest.raises(SystemExit, match="finetune.py.*expected one"):
        cr.patched_copy(ref, tmp_path / "work" / "LETTER-TIGER")


def test_base_model_has_their_tokenizer_and_the_compared_size(tmp_path):
    ref = _fake_checkout(tmp_path / "ref", FINETUNE_PY, TEST_PY)
    base = cr.base_model(ref, tmp_path / "base", "quick")
    config = json.loads((base / "config.json").read_text())
    assert (base / "spiece.model").read_text() == "tokenizer"
    size = cr.SIZES["quick"]
    assert config["d_model"] == size["d_model"] and config["num_decoder_layers"] == 2
    assert config["dropout_rate"] == 0.1


def test_markdown_table_has_every_seed_the_means_and_the_verdict():
    ours = {"recall@10": [0.050, 0.054], "ndcg@10": [0.025, 0.027]}
    ref = {"recall@10": [0.052, 0.053], "ndcg@10": [0.026, 0.026]}
    for side in (ours, ref):
        side.update(
            seconds_per_epoch=[60.0, 62.0],
            valid_seconds_per_epoch=[5.0],
            test_seconds=[7.0],
            best_epoch=[9, 8],
        )
    report = {
        "seeds": [0, 1],
        "ours": ours,
        "reference": ref,
        "verdict": {m: cr.verdict_for(ours[m], ref[m]) for m in ("recall@10", "ndcg@10")},
        "curves": {
            "ours": {
                s: [{"epoch": e, "recall@10": 0.01 * e, "ndcg@10": 0.005 * e} for e in range(4)]
                for s in (0, 1)
            },
            # the reference decodes every other epoch; JSON keys are strings once reloaded
            "reference": {
                str(s): [{"epoch": 1, "recall@10": 0.02, "ndcg@10": 0.01}, {"epoch": 2}]
                for s in (0, 1)
            },
        },
    }
    table = cr.markdown_table(report)
    assert "| 0 | 0.0500 | 0.0520 | 0.0250 | 0.0260 |" in table
    assert "| mean | 0.0520 | 0.0525 | 0.0260 | 0.0260 |" in table
    assert "recall@10 -1.0%" in table and "FAIL" not in table
    assert "| ours | 61 | 5 | 7 | 9, 8 |" in table
    assert "| 2 | 0.0100 / 0.0050 | 0.0100 / 0.0050 | 0.0200 / 0.0100 | 0.0200 / 0.0100 |" in table
    assert "| 3 |" not in table  # epoch index 2: no reference decode there


def test_a_work_folder_refuses_a_comparison_under_other_settings(tmp_path):
    """Its cached inputs and reference runs were made under the saved settings: new flags
    would be reported over old results."""
    import json

    import pytest

    from scripts.compare_reference import check_same_settings

    check_same_settings(tmp_path, {"lr": 0.002})  # a new folder: anything goes
    (tmp_path / "settings.json").write_text(json.dumps({"lr": 0.002, "id_seed": 0}))
    check_same_settings(tmp_path, {"lr": 0.002, "id_seed": 0})
    with pytest.raises(SystemExit, match="other settings .id_seed differ"):
        check_same_settings(tmp_path, {"lr": 0.002, "id_seed": 1})
