"""Every bad input gets one clear line on stderr (exit 2) and nothing already written is lost."""

import pytest

from benchmark.cli import main
from tests.conftest import FIXTURE_DIR


def run_cli(tmp_path, *args):
    return main(["run", "--results-dir", str(tmp_path / "results"), "--quiet", *args])


@pytest.fixture
def results_with_a_record(tmp_path):
    assert (
        run_cli(tmp_path, "--models", "pop", "--dataset", "ml-tiny", "--data-dir", str(FIXTURE_DIR))
        == 0
    )
    return sorted((tmp_path / "results").rglob("*.json"))


def check(capsys, code, *needles):
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_unknown_model(tmp_path, capsys, results_with_a_record):
    check(capsys, run_cli(tmp_path, "--models", "pop,tigre"), "unknown model 'tigre'", "Known:")
    assert sorted((tmp_path / "results").rglob("*.json")) == results_with_a_record


def test_unknown_dataset(tmp_path, capsys):
    check(capsys, run_cli(tmp_path, "--models", "pop", "--dataset", "bauty"), "'beauty'")


def test_missing_files(tmp_path, capsys):
    check(
        capsys,
        run_cli(tmp_path, "--models", "pop", "--dataset", "office", "--data-dir", str(tmp_path)),
        "not found",
        "--data-dir",
    )


def _atomic(tmp_path, header, rows):
    folder = tmp_path / "data" / "bad"
    folder.mkdir(parents=True)
    (folder / "bad.inter").write_text(header + "\n" + "\n".join(rows) + "\n")
    return tmp_path / "data"


def test_malformed_header(tmp_path, capsys):
    data = _atomic(tmp_path, "user_id\titem_id\ttimestamp", ["1\t2\t3"])
    check(
        capsys,
        run_cli(tmp_path, "--models", "pop", "--dataset", "bad", "--data-dir", str(data)),
        "header",
        "name:type",
    )


def test_non_numeric_timestamp(tmp_path, capsys):
    rows = ["1\t2\t100", "1\t3\tyesterday", "1\t4\t300"]
    data = _atomic(tmp_path, "user_id:token\titem_id:token\ttimestamp:float", rows)
    check(
        capsys,
        run_cli(tmp_path, "--models", "pop", "--dataset", "bad", "--data-dir", str(data)),
        "line 3",
        "'yesterday'",
    )


def test_empty_after_filtering(tmp_path, capsys, monkeypatch):
    from benchmark import datasets as ds

    rows = [f"{u}\t{i}\t{i}" for u in range(3) for i in range(2)]
    data = _atomic(tmp_path, "user_id:token\titem_id:token\ttimestamp:float", rows)
    card = ds.DatasetCard("bad", "atomic", {"inter": "bad/bad.inter"}, filters={"user_core": 10})
    monkeypatch.setattr("benchmark.data.find_card", lambda name, data_dir: card)
    check(
        capsys,
        run_cli(tmp_path, "--models", "pop", "--dataset", "bad", "--data-dir", str(data)),
        "empty after filtering",
    )


def test_unknown_config_key(tmp_path, capsys):
    check(
        capsys,
        run_cli(
            tmp_path,
            "--models",
            "sasrec",
            "--set",
            "hiden_size=8",
            "--dataset",
            "ml-tiny",
            "--data-dir",
            str(FIXTURE_DIR),
        ),
        "unknown config key 'hiden_size'",
        "did you mean 'hidden_size'",
    )


def test_k_not_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli(tmp_path, "--models", "pop", "--ks", "0,10")
    assert info.value.code == 2
    assert "positive" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "", "x\\y"])
def test_dataset_names_that_would_escape_their_folder_are_refused(tmp_path, capsys, name):
    data = tmp_path / "data"
    (data / "evil").mkdir(parents=True)
    (data / "evil" / "evil.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n")
    code = run_cli(tmp_path, "--models", "pop", "--dataset", name, "--data-dir", str(data / "x"))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "results").exists()
    assert not any(p.name.startswith("evil") for p in tmp_path.parent.iterdir())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--models", "tiger", "--set", "tokenizer=rkmean"], "did you mean 'rkmeans'"),
        (["--models", "tiger", "--set", "lr=0"], "must be positive"),
        (["--models", "tiger", "--set", "lr=inf"], "finite"),
        (["--models", "sasrec", "--set", "epochs=0"], "epochs=0 must be an integer >= 1"),
        (["--models", "tiger", "--set", "dropout=1"], "dropout=1.0 must lie in [0, 1)"),
        (["--models", "tiger", "--set", "temperature=0"], "temperature=0.0 must be positive"),
        (["--models", "letter", "--set", "cf_weight=-3"], "cf_weight=-3.0 must be >= 0"),
        (["--models", "tiger", "--set", "weight_decay=-1"], "weight_decay=-1.0 must be >= 0"),
        (["--models", "tiger", "--set", "rq_hidden=1e3"], "as tuple[int, ...]"),
        (["--models", "diger", "--set", "usage_momentum=1"], "must lie in [0, 1)"),
        (["--models", "tiger", "--set", "tokenizer=external"], "sid_file"),
        (["--models", "diger", "--set", "decay=frqd"], "did you mean 'frqud'"),
        (["--models", "pop,pop"], "more than once"),
        (["--models", " , "], "--models is empty"),
        (["--models", "pop", "--ks", "5,5"], "distinct"),
        (["--models", "pop", "--ks", "5", "--select", "ndcg@10"], "needs K=10"),
    ],
)
def test_bad_values_are_one_clear_line_and_nothing_is_written(tmp_path, capsys, args, needle):
    code = run_cli(tmp_path, *args, "--dataset", "ml-tiny", "--data-dir", str(FIXTURE_DIR))
    check(capsys, code, needle)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "args",
    [["--seeds", "-1"], ["--seeds", str(2**32)], ["--seeds", "0,0"], ["--threads", "0"]],
)
def test_bad_flag_values_are_usage_errors(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(tmp_path, "--models", "pop", *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_a_results_folder_that_cannot_be_written_fails_before_training(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    base = ["run", "--models", "pop", "--dataset", "ml-tiny", "--data-dir", str(FIXTURE_DIR)]
    check(capsys, main([*base, "--results-dir", str(afile)]), "is a file, not a folder")
    check(capsys, main([*base, "--results-dir", str(afile / "sub")]), "not writable")
    search = ["tune", "--model", "sasrec", "--dataset", "ml-tiny", "--data-dir", str(FIXTURE_DIR)]
    check(capsys, main([*search, "--results-dir", str(afile)]), "is a file, not a folder")
    assert afile.read_text() == "x"


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    """Files saved by Excel or Notepad start with a UTF-8 BOM; the header must still parse."""
    folder = tmp_path / "data" / "bom"
    folder.mkdir(parents=True)
    raw = (FIXTURE_DIR / "ml-tiny" / "ml-tiny.inter").read_bytes()
    (folder / "bom.inter").write_bytes(b"\xef\xbb\xbf" + raw)
    args = ("--models", "pop", "--dataset", "bom", "--data-dir", str(tmp_path / "data"))
    assert run_cli(tmp_path, *args) == 0


def test_a_cache_folder_that_is_a_file_fails_before_training(tmp_path, capsys, monkeypatch):
    (tmp_path / "cache").write_text("")
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    args = ("--models", "pop", "--dataset", "ml-tiny", "--data-dir", str(FIXTURE_DIR))
    check(capsys, run_cli(tmp_path, *args), "cache folder", "GENREC_CACHE_DIR")
    assert not (tmp_path / "results" / "runs").exists()


def test_an_unscoped_key_of_another_model_says_how_to_scope_it(tmp_path, capsys):
    args = ("--models", "pop,tiger", "--dataset", "ml-tiny", "--set", "beam_size=5")
    check(capsys, run_cli(tmp_path, *args), "--set tiger.beam_size=")


def test_a_training_key_for_popularity_is_refused_not_a_new_run_id(tmp_path, capsys):
    # pop reads no training setting: `--set pop.lr=0.1` would give a new run id, same numbers
    args = ("--models", "pop", "--dataset", "ml-tiny", "--data-dir", str(FIXTURE_DIR))
    check(capsys, run_cli(tmp_path, *args, "--set", "pop.lr=0.1"), "no effect on PopConfig")
    check(capsys, run_cli(tmp_path, *args, "--set", "patience=2"), "drop it")
    both = ("--models", "pop,sasrec", "--dataset", "ml-tiny", "--set", "lr=0.01")
    check(capsys, run_cli(tmp_path, *both), "--set sasrec.lr=")
    assert not (tmp_path / "results" / "runs").exists()


def test_a_model_that_needs_item_text_says_so_when_there_is_none(tmp_path, capsys):
    folder = tmp_path / "data" / "notext"
    folder.mkdir(parents=True)
    (folder / "notext.inter").write_bytes((FIXTURE_DIR / "ml-tiny" / "ml-tiny.inter").read_bytes())
    args = ("--models", "tiger", "--profile", "smoke", "--dataset", "notext")
    assert run_cli(tmp_path, *args, "--data-dir", str(tmp_path / "data")) == 1
    (record,) = (tmp_path / "results" / "runs").rglob("*.json")
    assert "has no item text" in record.read_text()


def test_ids_of_another_catalogue_are_reported(tmp_path, caplog):
    import json

    from models.components.semantic_ids import load_external_ids

    path = tmp_path / "ids.json"
    path.write_text(json.dumps({str(k): ["<a_1>", f"<b_{k}>"] for k in range(1, 6)}))
    codes = load_external_ids(path, 3, ["[PAD]", "1", "2", "3"])
    assert codes.tolist() == [[1, 1], [1, 2], [1, 3]]
    assert "2 of its 5 items are not in this dataset" in caplog.text


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`python -m benchmark ls | head -1`: the pipe closes before the listing ends."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a pipe buffers
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmark", "ls"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # before anything is read: every write meets a closed pipe
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"Exception ignored" not in err, err.decode()
    assert proc.returncode in (0, 1)


INTERACTIONS = "user_id:token\titem_id:token\ttimestamp:float"


def _with_items(tmp_path, item):
    rows = [f"{u}\t{i}\t{i}" for u in range(1, 7) for i in range(u, u + 5)]
    data = _atomic(tmp_path, INTERACTIONS, rows)
    (data / "bad" / "bad.item").write_text(item)
    return data


@pytest.mark.parametrize(
    ("item", "needles"),
    [
        ("item_id:token\ttitle:token\n1\tx\n2\ty\n1\tz\n", ["item_id '1' has 2 rows", "bad.item"]),
        ("id:token\ttitle:token\n1\tx\n", ["no 'item_id' column", "item_id:token"]),
    ],
)
def test_a_malformed_item_file_is_named(tmp_path, capsys, item, needles):
    data = _with_items(tmp_path, item)
    code = run_cli(tmp_path, "--models", "pop", "--dataset", "bad", "--data-dir", str(data))
    check(capsys, code, *needles)


@pytest.mark.parametrize(
    ("review", "needle"),
    [
        (b'{"reviewerID": "u", "asin": "a", "unixReviewTime": null}', "unixReviewTime null"),
        (b'{"reviewerID": "u", "asin": "a", "unixReviewTime": "May"}', 'unixReviewTime "May"'),
        (b'{"reviewerID": ["u"], "asin": "a", "unixReviewTime": 1}', 'reviewerID ["u"]'),
        (b'{"reviewerID": "u", "unixReviewTime": 1}', "no 'asin' field"),
    ],
)
def test_a_damaged_amazon_review_is_named_with_its_line(tmp_path, capsys, review, needle):
    import gzip

    folder = tmp_path / "data" / "amazon2014"
    folder.mkdir(parents=True)
    good = b'{"reviewerID": "u", "asin": "a", "unixReviewTime": 1}'
    (folder / "reviews_Toys_and_Games_5.json.gz").write_bytes(gzip.compress(good + b"\n" + review))
    (folder / "meta_Toys_and_Games.json.gz").write_bytes(gzip.compress(b'{"asin": "a"}\n'))
    args = ("--models", "pop", "--dataset", "amazon-toys", "--data-dir", str(tmp_path / "data"))
    check(capsys, run_cli(tmp_path, *args), needle, "reviews_Toys_and_Games_5.json.gz:2")


def test_a_malformed_second_dataset_fails_before_the_first_trains(tmp_path, capsys):
    import shutil

    data = _with_items(tmp_path, "item_id:token\ttitle:token\n1\tx\n1\ty\n")
    shutil.copytree(FIXTURE_DIR / "ml-tiny", data / "ml-tiny")
    args = ("--models", "pop", "--dataset", "ml-tiny,bad", "--data-dir", str(data))
    check(capsys, run_cli(tmp_path, *args), "item_id '1' has 2 rows")
    assert not (tmp_path / "results" / "runs").exists()


def test_a_full_disk_at_the_record_is_one_clear_line(tmp_path, capsys, monkeypatch):
    from benchmark.records import RunRecord

    def no_space(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RunRecord, "save", no_space)
    code = run_cli(tmp_path, "--models", "pop", "--dataset", "ml-tiny", "--data-dir",
                   str(FIXTURE_DIR))  # fmt: skip
    check(capsys, code, "could not write the run record")


def test_an_artifact_that_cannot_be_cached_is_used_and_warned_about(tmp_path, capsys, monkeypatch):
    from benchmark import cache as cache_module

    def no_space(path, value):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module, "torch_save_atomic", no_space)
    disk = cache_module.DiskCache(tmp_path / "cache")
    assert disk.get_or_create("kind", {"k": 1}, lambda: [1, 2]) == [1, 2]
    assert "No space left on device); not cached" in capsys.readouterr().err
