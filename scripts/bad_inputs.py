"""Survey: how the command line answers bad input. Each case builds its files in a scratch folder,
runs one command in this process and is classified:

* ``clear``: exit status 2 and one ``error: ...`` line on stderr, no traceback, nothing written
  to the results folder;
* ``traceback``: a Python traceback escaped;
* ``silent``: exit status 0 where the input is wrong;
* ``late``: an error, but only after work was written.

    python -m scripts.bad_inputs [--markdown]      # a table, then counts per class

Cases that need training use the ``smoke`` profile on the bundled ml-tiny fixture (seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmark.cli import main

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "datasets" / "fixture"
HEADER = "user_id:token\titem_id:token\ttimestamp:float"
ROWS = "\n".join(f"{u}\t{i}\t{t}" for u in range(1, 7) for t, i in enumerate(range(u, u + 5)))

Case = tuple[str, Callable[[Path], list[str]]]


def atomic(body: str | bytes, name: str = "mine", item: str | bytes | None = None):
    """A user dataset folder ``<scratch>/data/<name>/<name>.inter`` holding ``body``."""

    def setup(root: Path) -> list[str]:
        folder = root / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        inter = folder / f"{name}.inter"
        inter.write_bytes(body if isinstance(body, bytes) else body.encode())
        if item is not None:
            (folder / f"{name}.item").write_bytes(
                item if isinstance(item, bytes) else item.encode()
            )
        return ["run", "--models", "pop", "--dataset", name, "--data-dir", str(root / "data")]

    return setup


def office(inter: str | bytes | None, item: str | bytes | None = '{"1": {"title": "x"}}'):
    """An ``office`` card's files replaced by the given contents (None: a folder instead)."""

    def setup(root: Path) -> list[str]:
        folder = root / "data" / "office"
        folder.mkdir(parents=True)
        for name, content in (("Office.inter.json", inter), ("Office.item.json", item)):
            if content is None:
                (folder / name).mkdir()
            else:
                (folder / name).write_bytes(
                    content if isinstance(content, bytes) else content.encode()
                )
        return ["run", "--models", "pop", "--dataset", "office", "--data-dir", str(root / "data")]

    return setup


def amazon(reviews: bytes, meta: bytes | None = None):
    def setup(root: Path) -> list[str]:
        folder = root / "data" / "amazon2014"
        folder.mkdir(parents=True)
        (folder / "reviews_Toys_and_Games_5.json.gz").write_bytes(reviews)
        (folder / "meta_Toys_and_Games.json.gz").write_bytes(
            meta if meta is not None else gzip.compress(b'{"asin": "a", "title": "t"}\n')
        )
        return [
            "run",
            "--models",
            "pop",
            "--dataset",
            "amazon-toys",
            "--data-dir",
            str(root / "data"),
        ]

    return setup


def run(*flags: str):
    def setup(root: Path) -> list[str]:
        return [
            "run",
            "--profile",
            "smoke",
            "--dataset",
            "ml-tiny",
            "--data-dir",
            str(TINY),
            *flags,
        ]

    return setup


def with_file(content: str, then: Callable[[Path], list[str]]):
    """Also write ``content`` to ``<scratch>/file`` (for flags that take a path)."""

    def setup(root: Path) -> list[str]:
        (root / "file").write_text(content)
        return then(root)

    return setup


def records(*contents: bytes):
    def setup(root: Path) -> list[str]:
        folder = root / "results" / "runs" / "toy" / "m"
        folder.mkdir(parents=True)
        for n, content in enumerate(contents):
            (folder / f"r{n}.json").write_bytes(content)
        return ["leaderboard", "--results-dir", str(root / "results"), "--no-figures"]

    return setup


def tune(*flags: str):
    def setup(root: Path) -> list[str]:
        return [
            "tune",
            "--profile",
            "smoke",
            "--dataset",
            "ml-tiny",
            "--data-dir",
            str(TINY),
            *flags,
        ]

    return setup


def tuned_yaml(content: str, protocol: dict | None = None):
    """``run --tuned`` reading ``content`` as sasrec's tuned configuration (searched under
    ``protocol``, when given)."""

    def setup(root: Path) -> list[str]:
        folder = root / "results" / "tuned" / "ml-tiny" / "smoke"
        folder.mkdir(parents=True)
        (folder / "sasrec.yaml").write_text(content)
        if protocol is not None:
            (folder / "sasrec.json").write_text(json.dumps({"protocol": protocol}))
        return run("--models", "sasrec", "--tuned")(root)

    return setup


def sid_file(content: str, *flags: str):
    """tiger trained on the ID file ``content`` (LETTER's format)."""

    def setup(root: Path) -> list[str]:
        (root / "ids.json").write_text(content)
        return run("--models", "tiger", "--set", f"sid_file={root / 'ids.json'}", *flags)(root)

    return setup


def runs_is_a_file(root: Path) -> list[str]:
    (root / "results").mkdir()
    (root / "results" / "runs").write_text("not a folder")
    return run("--models", "pop")(root)


def launch(*flags: str):
    def setup(root: Path) -> list[str]:
        return ["launch", "--profile", "smoke", "--dataset", "ml-tiny", "--data-dir", str(TINY),
                "--results-dir", str(root / "results"), *flags]  # fmt: skip

    return setup


NESTED = "[" * 100_000 + "]" * 100_000
# the case description says what is wrong; the command may also be valid-but-refused
CASES: list[Case] = [
    # ---- flags of `run`
    ("--models empty", run("--models", "")),
    ("--models only commas", run("--models", ",,")),
    ("--models duplicate", run("--models", "pop,pop")),
    ("--models unknown", run("--models", "tigre")),
    ("--models unknown plug-in", run("--models", "tiger+sodaa")),
    ("--models plug-in on a baseline", run("--models", "pop+soda")),
    ("--models plug-in twice", run("--models", "tiger+soda+soda")),
    ("--dataset empty", run("--models", "pop", "--dataset", "")),
    ("--dataset unknown", run("--models", "pop", "--dataset", "bauty")),
    ("--dataset ../ escape", run("--models", "pop", "--dataset", "../evil")),
    ("--dataset absolute path", run("--models", "pop", "--dataset", "/etc")),
    ("--dataset duplicate", run("--models", "pop", "--dataset", "ml-tiny,ml-tiny")),
    ("--seeds negative", run("--models", "pop", "--seeds", "-1")),
    ("--seeds too large", run("--models", "pop", "--seeds", str(2**32))),
    ("--seeds not a number", run("--models", "pop", "--seeds", "a")),
    ("--seeds duplicate", run("--models", "pop", "--seeds", "1,1")),
    ("--seeds empty", run("--models", "pop", "--seeds", "")),
    ("--threads 0", run("--models", "pop", "--threads", "0")),
    ("--threads negative", run("--models", "pop", "--threads", "-2")),
    ("--threads not a number", run("--models", "pop", "--threads", "two")),
    ("--ks 0", run("--models", "pop", "--ks", "0")),
    ("--ks negative", run("--models", "pop", "--ks", "-5")),
    ("--ks not a number", run("--models", "pop", "--ks", "ten")),
    ("--ks duplicate", run("--models", "pop", "--ks", "10,10")),
    ("--ks empty", run("--models", "pop", "--ks", "")),
    ("--ks without the selection K", run("--models", "pop", "--ks", "5")),
    ("--select unknown metric", run("--models", "pop", "--select", "auc@10")),
    ("--select K not in --ks", run("--models", "pop", "--select", "ndcg@7")),
    ("--select without @", run("--models", "pop", "--select", "ndcg10")),
    ("--select K not a number", run("--models", "pop", "--select", "ndcg@x")),
    ("--max-history 0", run("--models", "pop", "--max-history", "0")),
    ("--max-history negative", run("--models", "pop", "--max-history", "-3")),
    ("--max-history not a number", run("--models", "pop", "--max-history", "x")),
    ("--time-budget 0", run("--models", "pop", "--time-budget", "0")),
    ("--time-budget negative", run("--models", "pop", "--time-budget", "-1")),
    ("--time-budget nan", run("--models", "pop", "--time-budget", "nan")),
    ("--time-budget inf", run("--models", "pop", "--time-budget", "inf")),
    ("--stop-after 0", run("--models", "pop", "--stop-after", "0")),
    ("--stop-after not a number", run("--models", "pop", "--stop-after", "soon")),
    ("--profile unknown", run("--models", "pop", "--profile", "fast")),
    ("--set without =", run("--models", "tiger", "--set", "lr")),
    ("--set unknown key", run("--models", "tiger", "--set", "learning_rate=1")),
    ("--set key typo", run("--models", "tiger", "--set", "d_modle=8")),
    ("--set int not a number", run("--models", "tiger", "--set", "d_model=big")),
    ("--set float not a number", run("--models", "tiger", "--set", "lr=fast")),
    ("--set bool not a bool", run("--models", "tiger", "--set", "rq_standardize=maybe")),
    ("--set enum typo", run("--models", "tiger", "--set", "tokenizer=rkmean")),
    ("--set schedule typo", run("--models", "tiger", "--set", "lr_schedule=cosin")),
    ("--set diger decay typo", run("--models", "diger", "--set", "decay=frqd")),
    ("--set soda kl typo", run("--models", "tiger+soda", "--set", "soda_kl=user")),
    ("--set epochs 0", run("--models", "sasrec", "--set", "epochs=0")),
    ("--set epochs negative", run("--models", "sasrec", "--set", "epochs=-4")),
    ("--set batch_size 0", run("--models", "sasrec", "--set", "batch_size=0")),
    ("--set d_model 0", run("--models", "tiger", "--set", "d_model=0")),
    ("--set codebook_size 0", run("--models", "tiger", "--set", "codebook_size=0")),
    ("--set beam_size 0", run("--models", "tiger", "--set", "beam_size=0")),
    ("--set patience 0", run("--models", "tiger", "--set", "patience=0")),
    ("--set lr 0", run("--models", "tiger", "--set", "lr=0")),
    ("--set lr negative", run("--models", "tiger", "--set", "lr=-1e-3")),
    ("--set lr nan", run("--models", "tiger", "--set", "lr=nan")),
    ("--set lr inf", run("--models", "tiger", "--set", "lr=inf")),
    ("--set dropout 1", run("--models", "tiger", "--set", "dropout=1")),
    ("--set dropout negative", run("--models", "tiger", "--set", "dropout=-0.1")),
    ("--set weight_decay nan", run("--models", "tiger", "--set", "weight_decay=nan")),
    ("--set tokenizer_lr 0", run("--models", "diger", "--set", "tokenizer_lr=0")),
    ("--set temperature 0", run("--models", "tiger", "--set", "temperature=0")),
    ("--set tau 0", run("--models", "diger", "--set", "tau=0")),
    ("--set cf_weight negative", run("--models", "letter", "--set", "cf_weight=-3")),
    ("--set weight_decay negative", run("--models", "tiger", "--set", "weight_decay=-1")),
    ("--set rq_beta negative", run("--models", "tiger", "--set", "rq_beta=-2")),
    ("--set rq_hidden 1e3", run("--models", "tiger", "--set", "rq_hidden=1e3")),
    ("--set usage_momentum 1", run("--models", "diger", "--set", "usage_momentum=1")),
    ("--set scoped to a model not run", run("--models", "pop", "--set", "tiger.lr=1")),
    ("--set a training key for pop", run("--models", "pop", "--set", "pop.lr=0.1")),
    ("--set unscoped lr with pop", run("--models", "pop,sasrec", "--set", "lr=0.01")),
    ("--set tau_min above tau_max", run("--models", "unigrec", "--set", "tau_min=2")),
    ("--set external without sid_file", run("--models", "tiger", "--set", "tokenizer=external")),
    (
        "--set sid_file missing",
        run("--models", "tiger", "--set", "tokenizer=external", "--set", "sid_file=/nope.json"),
    ),
    (
        "--set sid_file not JSON",
        with_file(
            "not json",
            lambda root: run(
                "--models",
                "tiger",
                "--set",
                "tokenizer=external",
                "--set",
                f"sid_file={root / 'file'}",
            )(root),
        ),
    ),
    (
        "--set sid_file wrong shape",
        with_file(
            "[1, 2, 3]",
            lambda root: run(
                "--models",
                "tiger",
                "--set",
                "tokenizer=external",
                "--set",
                f"sid_file={root / 'file'}",
            )(root),
        ),
    ),
    ("--set encoder that is not offline", run("--models", "tiger", "--set", "encoder=nope/none")),
    (
        "--results-dir is a file",
        with_file(
            "x", lambda root: [*run("--models", "pop")(root), "--results-dir", str(root / "file")]
        ),
    ),
    (
        "--results-dir under a file",
        with_file(
            "x",
            lambda root: [*run("--models", "pop")(root), "--results-dir", str(root / "file" / "r")],
        ),
    ),
    (
        "status --results-dir is a file",
        with_file("x", lambda root: ["status", "--results-dir", str(root / "file")]),
    ),
    ("status --results-dir missing", lambda root: ["status", "--results-dir", str(root / "no")]),
    (
        "--save-models is a file",
        with_file(
            "x", lambda root: [*run("--models", "pop")(root), "--save-models", str(root / "file")]
        ),
    ),
    (
        "--data-dir missing",
        lambda root: [
            "run",
            "--models",
            "pop",
            "--dataset",
            "office",
            "--data-dir",
            str(root / "no"),
        ],
    ),
    (
        "--data-dir is a file",
        with_file(
            "x",
            lambda root: [
                "run",
                "--models",
                "pop",
                "--dataset",
                "office",
                "--data-dir",
                str(root / "file"),
            ],
        ),
    ),
    ("--tuned without a tuned file", run("--models", "pop", "--tuned")),
    # ---- user atomic files
    ("atomic: empty file", atomic("")),
    ("atomic: header only", atomic(HEADER + "\n")),
    ("atomic: header without types", atomic("user_id\titem_id\ttimestamp\n1\t2\t3\n")),
    ("atomic: unknown type", atomic("user_id:int\titem_id:token\ttimestamp:float\n1\t2\t3\n")),
    ("atomic: missing timestamp column", atomic("user_id:token\titem_id:token\n1\t2\n")),
    ("atomic: duplicate column", atomic(HEADER + "\titem_id:token\n" + "1\t2\t3\t4\n")),
    ("atomic: a row with an extra field", atomic(HEADER + "\n" + ROWS + "\n1\t2\t3\t4\n")),
    ("atomic: timestamp not a number", atomic(HEADER + "\n" + ROWS + "\n1\t2\tyesterday\n")),
    (
        "atomic: latin-1 text",
        atomic((HEADER + "\n" + ROWS + "\n1\tcaf\xe9\t9\n").encode("latin-1")),
    ),
    ("atomic: binary garbage", atomic(b"\x00\x01\x02\xff" * 100)),
    ("atomic: a folder instead of the file", lambda root: _folder_inter(root)),
    ("atomic: too few interactions for the split", atomic(HEADER + "\n1\t1\t1\n2\t2\t2\n")),
    (
        "atomic: item file with a bad header",
        atomic(HEADER + "\n" + ROWS + "\n", item="item\ttitle\n1\tx\n"),
    ),
    (
        "atomic: item file not UTF-8",
        atomic(HEADER + "\n" + ROWS + "\n", item=b"item_id:token\ttitle:token\n1\t\xe9\n"),
    ),
    (
        "atomic: item file with a duplicate item_id",
        atomic(HEADER + "\n" + ROWS + "\n", item="item_id:token\ttitle:token\n1\tx\n1\ty\n"),
    ),
    (
        "atomic: item file without item_id",
        atomic(HEADER + "\n" + ROWS + "\n", item="id:token\ttitle:token\n1\tx\n"),
    ),
    (
        "atomic: dataset name with a space and ..",
        atomic(HEADER + "\n" + ROWS + "\n", name="my data.."),
    ),
    # ---- JSON (office card)
    ("json: not JSON", office("{not json")),
    ("json: a list, not an object", office("[[1, 2, 3]]")),
    ("json: an empty object", office("{}")),
    ("json: a user with a string, not a list", office('{"0": "1 2 3"}')),
    ("json: a user with nested lists", office('{"0": [[1], [2]]}')),
    ("json: a user with booleans", office('{"0": [true, false, true]}')),
    ("json: deeply nested", office(NESTED)),
    ("json: not UTF-8", office(b'{"0": [1, 2, 3], "\xff": [1]}')),
    ("json: binary", office(b"\x00" * 64)),
    ("json: a folder where the inter file belongs", office(None)),
    ("json: item file is a list", office('{"0": [1, 2, 3, 4], "1": [2, 3, 4, 5]}', item="[1]")),
    ("json: item file not JSON", office('{"0": [1, 2, 3, 4]}', item="{")),
    ("json: item file deeply nested", office('{"0": [1, 2, 3, 4]}', item='{"1": ' + NESTED + "}")),
    # ---- gzip JSON lines (amazon2014 card)
    ("amazon: reviews not gzip", amazon(b'{"reviewerID": "u"}\n')),
    ("amazon: reviews truncated gzip", amazon(gzip.compress(b'{"reviewerID": "u"}\n' * 100)[:40])),
    (
        "amazon: a review without asin",
        amazon(gzip.compress(b'{"reviewerID": "u", "unixReviewTime": 1}\n')),
    ),
    (
        "amazon: a review with a null time",
        amazon(gzip.compress(b'{"reviewerID": "u", "asin": "a", "unixReviewTime": null}\n')),
    ),
    (
        "amazon: a review with a word for a time",
        amazon(gzip.compress(b'{"reviewerID": "u", "asin": "a", "unixReviewTime": "May"}\n')),
    ),
    (
        "amazon: a review with a list for an id",
        amazon(gzip.compress(b'{"reviewerID": ["u"], "asin": "a", "unixReviewTime": 1}\n')),
    ),
    ("amazon: a line that is not an object", amazon(gzip.compress(b"[1, 2]\n"))),
    ("amazon: a garbage line", amazon(gzip.compress(b"}}}\n"))),
    ("amazon: not UTF-8 inside the gzip", amazon(gzip.compress(b'{"reviewerID": "\xff"}\n'))),
    (
        "amazon: meta not gzip",
        amazon(gzip.compress(b'{"reviewerID": "u", "asin": "a", "unixReviewTime": 1}\n'), b"plain"),
    ),
    # ---- leaderboard
    ("leaderboard: no records", lambda root: ["leaderboard", "--results-dir", str(root / "none")]),
    ("leaderboard: only a truncated record", records(b'{"schema_version": 1, "run')),
    ("leaderboard: only a binary record", records(b"\xff\xfe\x00")),
    ("leaderboard: only a JSON list", records(b"[]")),
    ("leaderboard: only a record without fields", records(b'{"schema_version": 1}')),
    ("leaderboard: only a record of another schema", records(b'{"schema_version": 99}')),
    # ---- found by a new user's audit (session 8)
    ("--dataset second unknown, first fine", run("--models", "pop", "--dataset", "ml-tiny,bauty")),
    ("--dataset second malformed, first fine", lambda root: _second_malformed(root)),
    ("--set key of only one of the models", run("--models", "pop,tiger", "--set", "beam_size=5")),
    ("--ks at or above the item count", run("--models", "pop", "--ks", "10,100000")),
    ("--label for two models", run("--models", "pop,sasrec", "--label", "mine")),
    ("--set rq_hidden with a negative width", run("--models", "tiger", "--set", "rq_hidden=64,-1")),
    ("sid_file without tokenizer=external", sid_file('{"1": ["<a_1>"]}')),
    (
        "sid_file with a malformed token",
        sid_file('{"1": ["<a_1>", "<b_x>"]}', "--set", "tokenizer=external"),
    ),  # fmt: skip
    (
        "sid_file with IDs of two lengths",
        sid_file('{"1": ["<a_1>"], "2": ["<a_1>", "<b_2>"]}', "--set", "tokenizer=external"),
    ),  # fmt: skip
    ("tuned YAML: float for an int", tuned_yaml("epochs: 1.5\n")),
    ("tuned YAML: not YAML", tuned_yaml("lr: [0.001\n")),
    ("tuned YAML of another protocol", tuned_yaml("lr: 0.001\n", {"max_history": 50})),
    ("results folder's runs/ is a file", runs_is_a_file),
    ("--set the same key twice", run("--models", "pop", "--set", "lr=1", "--set", "lr=2")),
    (
        "leaderboard: --results-dir is a file",
        with_file("x", lambda root: ["leaderboard", "--results-dir", str(root / "file")]),
    ),  # fmt: skip
    ("tune: negative seed", tune("--model", "sasrec", "--seed", "-1")),
    ("tune: two datasets", tune("--model", "sasrec", "--dataset", "ml-tiny,office")),
    *(  # where Slurm is installed this would submit a job
        [("launch: slurm without sbatch", launch("--models", "pop", "--executor", "slurm"))]
        if shutil.which("sbatch") is None
        else []
    ),
    ("launch: tune an unknown model", launch("--tune", "tigre", "--executor", "local")),
    # ---- tune
    ("tune: unknown model", tune("--model", "tigre")),
    ("tune: a model without a search space", tune("--model", "pop")),
    ("tune: trials 0", tune("--model", "sasrec", "--trials", "0")),
    ("tune: bad storage URL", tune("--model", "sasrec", "--storage", "nonsense://x")),
    (
        "tune: storage driver not installed",
        tune("--model", "sasrec", "--storage", "postgresql://u@localhost/db"),
    ),
    (
        "tune: storage folder missing",
        tune("--model", "sasrec", "--storage", "sqlite:////no/such/dir/x.db"),
    ),
    ("tune: unknown dataset", tune("--model", "sasrec", "--dataset", "bauty")),
    ("tune: --threads 0", tune("--model", "sasrec", "--threads", "0")),
    ("tune: timeout negative", tune("--model", "sasrec", "--timeout", "-5")),
]


def _folder_inter(root: Path) -> list[str]:
    folder = root / "data" / "mine"
    (folder / "mine.inter").mkdir(parents=True)
    return ["run", "--models", "pop", "--dataset", "mine", "--data-dir", str(root / "data")]


def _second_malformed(root: Path) -> list[str]:
    """ml-tiny, then a dataset whose item file lists an item twice: found before ml-tiny trains."""
    shutil.copytree(TINY / "ml-tiny", root / "data" / "ml-tiny")
    atomic(HEADER + "\n" + ROWS + "\n", item="item_id:token\ttitle:token\n1\tx\n1\ty\n")(root)
    return ["run", "--models", "pop", "--dataset", "ml-tiny,mine", "--data-dir", str(root / "data")]


def classify(argv: list[str], root: Path) -> tuple[str, int, str]:
    argv = list(argv)
    if "--results-dir" not in argv and argv[0] in ("run", "tune"):
        argv += ["--results-dir", str(root / "results")]
    if argv[0] == "run" and "--quiet" not in argv:
        argv.append("--quiet")
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception:  # noqa: BLE001 - what the survey looks for
        return "traceback", -1, traceback.format_exc().strip().splitlines()[-1][:120]
    text = err.getvalue()
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "Traceback" in text:
        return "traceback", code, first[:120]
    written = root / "results" / "runs"
    wrote = written.exists() and any(written.rglob("*.json"))
    if code == 0:
        return "silent", code, (out.getvalue().strip().splitlines() or [""])[-1][:120]
    if wrote and argv[0] == "run":
        return "late", code, first[:120]
    line = next((line for line in text.splitlines() if "error:" in line), first)
    return ("clear" if code == 2 else "other"), code, line[:120]


def main_survey() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    os.environ.setdefault("GENREC_CACHE_DIR", tempfile.mkdtemp(prefix="genrec-bad-inputs-"))
    counts: dict[str, int] = {}
    rows = []
    for name, setup in CASES:
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            argv = setup(root)
            kind, code, line = classify(argv, root)
        counts[kind] = counts.get(kind, 0) + 1
        rows.append((name, kind, code, line.replace("|", "/").replace(str(Path(scratch)), "<tmp>")))
    if args.markdown:
        print("| case | result | exit | first line |\n|---|---|---|---|")
        for name, kind, code, line in rows:
            print(f"| {name} | {kind} | {code} | `{line}` |")
    else:
        for name, kind, code, line in rows:
            print(f"{kind:10} {code:>3}  {name:45} {line}")
    print(f"\n{len(rows)} cases: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    print("RESULT " + json.dumps({"cases": len(rows), **counts}))
    sys.exit(0 if set(counts) <= {"clear"} else 1)


if __name__ == "__main__":
    main_survey()
