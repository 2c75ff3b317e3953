"""Dataset cards (``datasets/*.yaml``) and the readers that turn each source format into RecBole
atomic files.

Formats:

* ``atomic``: RecBole atomic files, ``<name>.inter`` (+ optional ``<name>.item``), e.g. the
  MovieLens-100k copy inside the recbole wheel or any folder a user brings.
* ``json``: ``X.inter.json`` (``{user: [item, ...]}`` oldest first) + ``X.item.json``
  (``{item: {field: text}}``), the format of the papers' preprocessed Amazon splits.
* ``amazon2014``: the raw McAuley-lab files ``reviews_<Category>_5.json.gz`` and
  ``meta_<Category>.json.gz`` (one JSON object or Python dict literal per line).

Every reader writes (once, cached by the source files' size and mtime) a folder holding
``<name>.inter`` with ``user_id:token item_id:token timestamp:float`` and a JSON map from item token
to item text. RecBole then does the filtering and the split (``benchmark.data``).
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from benchmark.errors import DataError
from benchmark.paths import check_name, check_writable_folder, under
from benchmark.registry import Registry

CARDS_DIR = Path(__file__).resolve().parent.parent / "datasets"
FORMATS = ("atomic", "json", "amazon2014")


@dataclass
class DatasetCard:
    name: str
    format: str
    files: dict[str, str]
    text_fields: list[str] = field(default_factory=list)
    filters: dict[str, int] = field(default_factory=dict)  # user_core / item_core
    description: str = ""
    source: str = ""

    @classmethod
    def from_yaml(cls, path: Path) -> DatasetCard:
        raw = yaml.safe_load(path.read_text())
        unknown = set(raw) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise DataError(f"dataset card {path}: unknown keys {sorted(unknown)}")
        card = cls(**raw)
        if card.format not in FORMATS:
            raise DataError(f"dataset card {path}: format must be one of {FORMATS}")
        return card

    def resolve(self, key: str, data_dir: Path | None) -> Path:
        """Path of one of the card's files: ``recbole:`` paths are inside the recbole wheel;
        others are relative to the data directory."""
        rel = self.files[key]
        if rel.startswith("recbole:"):
            import recbole

            return Path(recbole.__file__).parent / "dataset_example" / rel.removeprefix("recbole:")
        if data_dir is None:
            raise DataError(
                f"dataset {self.name!r} needs a data directory: pass --data-dir DIR or set "
                f"GENREC_DATA_DIR (expected {rel} under it)"
            )
        return data_dir / rel

    def missing_files(self, data_dir: Path | None) -> list[str]:
        missing = []
        for key, rel in self.files.items():
            if key == "item" and self.format == "atomic":
                continue  # optional
            try:
                if not self.resolve(key, data_dir).exists():
                    missing.append(str(self.resolve(key, data_dir)))
            except DataError:
                missing.append(rel)
        return missing


def load_cards() -> Registry[DatasetCard]:
    registry: Registry[DatasetCard] = Registry("dataset")
    for path in sorted(CARDS_DIR.glob("*.yaml")):
        card = DatasetCard.from_yaml(path)
        registry.register(card.name, card)
    return registry


def default_data_dir() -> Path | None:
    env = os.environ.get("GENREC_DATA_DIR")
    return Path(env) if env else None


def find_card(name: str, data_dir: Path | None) -> DatasetCard:
    """A registered card, or an atomic folder ``<data_dir>/<name>/<name>.inter`` a user brought."""
    cards = load_cards()
    if name in cards:
        return cards.get(name)
    check_name(name, "dataset")
    if data_dir is not None and (data_dir / name / f"{name}.inter").exists():
        return DatasetCard(
            name=name,
            format="atomic",
            files={"inter": f"{name}/{name}.inter", "item": f"{name}/{name}.item"},
            description=f"user-provided atomic files in {data_dir / name}",
        )
    message = cards.unknown_message(name)
    raise DataError(
        f"{message} Or bring your own: RecBole atomic files at <data-dir>/{name}/{name}.inter."
    )


# ---------------------------------------------------------------------------------------------
# Readers: each returns (interactions DataFrame[user, item, timestamp], {item token: text}).


def read_text_file(path: Path) -> str:
    """The UTF-8 text of a data file, or a :class:`DataError` naming the file, the line and the
    fix (a folder, a binary file or another encoding)."""
    if path.is_dir():
        raise DataError(f"{path} is a folder where a data file belongs; put the file there")
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise DataError(f"binary data (a NUL byte) in {path}:{line}; give a UTF-8 text file")
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark (Excel, Notepad) is dropped
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"byte 0x{raw[exc.start]:02x} is not UTF-8 in {path}:{line}; re-save the file as "
            "UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def _read_atomic_table(path: Path) -> pd.DataFrame:
    """Read a RecBole atomic file, checking its ``name:type`` header and row widths."""
    text = read_text_file(path)
    if not text.strip():
        raise DataError(f"{path} is empty; the first line names the columns, then one row each")
    header = text.split("\n", 1)[0].rstrip("\r").split("\t")
    for column in header:
        name, sep, kind = column.partition(":")
        if not sep or kind not in ("token", "token_seq", "float", "float_seq"):
            raise DataError(
                f"header column {column!r} is not 'name:type' in {path}:1; use types token, "
                f"token_seq, float or float_seq (e.g. 'user_id:token	item_id:token	"
                f"timestamp:float')"
            )
    names = [c.split(":")[0] for c in header]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"column {', '.join(duplicates)} appears twice in {path}:1; keep one")
    try:
        table = pd.read_csv(
            io.StringIO(text), sep="\t", dtype=str, keep_default_na=False, quoting=3
        )
    except pd.errors.ParserError as exc:
        found = re.search(r"line (\d+), saw (\d+)", str(exc))
        where = f"{path}:{found.group(1)}" if found else str(path)
        width = f" has {found.group(2)} fields" if found else " has the wrong number of fields"
        raise DataError(
            f"a row{width}, the header {len(header)}, in {where}; tab-separate exactly "
            f"{len(header)} values per row"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"no header in {path}:1; the first line names the columns") from None
    table.columns = names
    return table


def read_atomic(card: DatasetCard, data_dir: Path | None) -> tuple[pd.DataFrame, dict[str, str]]:
    path = card.resolve("inter", data_dir)
    table = _read_atomic_table(path)
    for needed in ("user_id", "item_id", "timestamp"):
        if needed not in table.columns:
            raise DataError(
                f"{path}: no '{needed}' column; the time-ordered protocol needs user_id:token, "
                f"item_id:token and timestamp:float columns"
            )
    times = pd.to_numeric(table["timestamp"], errors="coerce")
    bad = times.isna()
    if bad.any():
        row = int(bad.idxmax())
        raise DataError(
            f"{path}: line {row + 2}: timestamp {table['timestamp'][row]!r} is not a number"
        )
    inter = pd.DataFrame(
        {"user": table["user_id"], "item": table["item_id"], "timestamp": times.astype("float64")}
    )
    text: dict[str, str] = {}
    item_path = path.with_suffix(".item")
    if item_path.exists():
        items = _item_table(item_path)
        # A user-brought folder has no card: use every item column as text.
        wanted = card.text_fields or [c for c in items.columns if c != "item_id"]
        fields = [f for f in wanted if f in items.columns]
        text = _join_text(items.set_index("item_id")[fields].to_dict("index"), fields)
    return inter, text


def _item_table(path: Path) -> pd.DataFrame:
    """An atomic ``.item`` file: an ``item_id`` column and one row per item (the text of an
    item listed twice would be ambiguous)."""
    items = _read_atomic_table(path)
    if "item_id" not in items.columns:
        raise DataError(
            f"{path}: no 'item_id' column; the .item header needs item_id:token (the ids of "
            f"the .inter file), then the text columns"
        )
    repeated = items["item_id"][items["item_id"].duplicated()]
    if not repeated.empty:
        first = repeated.iloc[0]
        rows = int((items["item_id"] == first).sum())
        others = repeated.nunique() - 1
        more = f" (and {others} other id{'s' if others > 1 else ''})" if others else ""
        raise DataError(f"item_id {first!r} has {rows} rows in {path}{more}; keep one row per item")
    return items


def _parse_json(path: Path) -> Any:
    try:
        return json.loads(read_text_file(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg}) in {path}:{exc.lineno}; fix the file") from None
    except RecursionError:
        raise DataError(f"JSON nested too deeply in {path}; flatten the file") from None


def read_json(card: DatasetCard, data_dir: Path | None) -> tuple[pd.DataFrame, dict[str, str]]:
    inter_path = card.resolve("inter", data_dir)
    sequences = _parse_json(inter_path)
    shape = 'an object {"<user>": [<item>, ...]} of chronological item lists'
    if not isinstance(sequences, dict) or not sequences:
        raise DataError(f"{inter_path} is not {shape}; got {type(sequences).__name__}")
    users, items, times = [], [], []
    for user, seq in sequences.items():
        if not isinstance(seq, list) or not all(
            isinstance(i, (int, str)) and not isinstance(i, bool) for i in seq
        ):
            raise DataError(
                f"user {user!r} in {inter_path} has {str(seq)[:60]!r}, not a list of item ids; "
                f"the file must be {shape}"
            )
        users.extend([str(user)] * len(seq))
        items.extend(str(i) for i in seq)
        times.extend(range(len(seq)))  # lists are chronological; the position is the time
    inter = pd.DataFrame({"user": users, "item": items, "timestamp": pd.Series(times, dtype=float)})
    text: dict[str, str] = {}
    if "item" in card.files:
        item_path = card.resolve("item", data_dir)
        meta = _parse_json(item_path)
        if not isinstance(meta, dict) or not all(isinstance(v, dict) for v in meta.values()):
            raise DataError(
                f'{item_path} is not an object {{"<item>": {{"title": ..., ...}}}} of item '
                "fields; fix its shape"
            )
        text = _join_text(meta, card.text_fields)
    return inter, text


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        raise DataError(f"{path} is a folder where a data file belongs; put the file there")
    rows = []
    number = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    try:  # the 2014 metadata files hold Python dict literals
                        row = ast.literal_eval(line)
                    except (ValueError, SyntaxError, MemoryError):
                        raise DataError(
                            f"neither JSON nor a dict literal in {path}:{number}; fix that line"
                        ) from None
                if not isinstance(row, dict):
                    raise DataError(f"a {type(row).__name__}, not an object, in {path}:{number}")
                rows.append(row)
    except gzip.BadGzipFile:
        raise DataError(f"{path} is not a gzip file; give the .json.gz as downloaded") from None
    except EOFError:
        raise DataError(f"{path} ends early (truncated download) after line {number}") from None
    except UnicodeDecodeError:
        raise DataError(f"text that is not UTF-8 in {path}:{number + 1}") from None
    except RecursionError:
        raise DataError(f"a value nested too deeply in {path}:{number}; fix that line") from None
    return rows


def read_amazon2014(
    card: DatasetCard, data_dir: Path | None
) -> tuple[pd.DataFrame, dict[str, str]]:
    path = card.resolve("reviews", data_dir)
    users, items, times = [], [], []
    for line, review in enumerate(_read_json_lines(path), 1):  # one review per line
        for key in REVIEW_FIELDS:
            if key not in review:
                raise DataError(
                    f"no {key!r} field in {path}:{line}; every review needs "
                    f"{', '.join(REVIEW_FIELDS)}"
                )
        users.append(_review_id(review, "reviewerID", path, line))
        items.append(_review_id(review, "asin", path, line))
        times.append(_review_time(review["unixReviewTime"], path, line))
    inter = pd.DataFrame({"user": users, "item": items, "timestamp": times})
    meta = {}
    if "meta" in card.files:
        meta_path = card.resolve("meta", data_dir)
        for line, row in enumerate(_read_json_lines(meta_path), 1):
            if "asin" in row:
                meta[_review_id(row, "asin", meta_path, line)] = row
    return inter, _join_text(meta, card.text_fields)


REVIEW_FIELDS = ("reviewerID", "asin", "unixReviewTime")


def _review_id(row: dict[str, Any], key: str, path: Path, line: int) -> str:
    """A user or item id of a JSON line: a string or a whole number, as the files hold."""
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DataError(
            f"{key} {_shown(value)} is not a string in {path}:{line}; give the id as text"
        )
    return str(value)


def _review_time(value: Any, path: Path, line: int) -> float:
    """``unixReviewTime`` as seconds; a null, a list or a word is a damaged line."""
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds):
        raise DataError(
            f"unixReviewTime {_shown(value)} is not a number in {path}:{line}; give the "
            f"review's time in seconds since 1970 (e.g. 1388534400) or drop the line"
        )
    return seconds


def _shown(value: Any) -> str:
    """A value of a JSON line as the file spells it (null, not None), cut short."""
    return json.dumps(value, default=str)[:40]


def _flatten(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_flatten(v) for v in value if _flatten(v))
    return str(value).strip() if value is not None else ""


def _join_text(rows: dict[str, dict[str, Any]], fields: list[str]) -> dict[str, str]:
    """One sentence per item: "title: X; brand: Y" over the card's text fields that are present."""
    out = {}
    for item, row in rows.items():
        parts = [f"{f}: {_flatten(row.get(f))}" for f in fields if _flatten(row.get(f))]
        out[str(item)] = "; ".join(parts)
    return out


READERS = {"atomic": read_atomic, "json": read_json, "amazon2014": read_amazon2014}


def check_dataset(name: str, data_dir: str | Path | None) -> DatasetCard:
    """The card of ``name`` after checking that its files exist and converting them
    (:func:`materialize_atomic`; cached, so the runs then load that copy), so a grid fails on a
    typo, a missing or a malformed file before it trains anything, not after its earlier
    datasets trained. ``data_dir`` None: ``$GENREC_DATA_DIR``."""
    from benchmark.data import cache_root  # benchmark.data imports this module

    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    card = require_files(find_card(name, data_dir), data_dir)
    cache = cache_root()
    check_writable_folder(cache, "cache folder", "GENREC_CACHE_DIR")
    materialize_atomic(card, data_dir, cache)
    return card


def require_files(card: DatasetCard, data_dir: Path | None) -> DatasetCard:
    """``card``, or a :class:`DataError` naming its missing files and the flag that fixes it."""
    missing = card.missing_files(data_dir)
    if missing:
        where = f" under {data_dir}" if data_dir else ""
        raise DataError(
            f"dataset {card.name!r}: file(s) not found{where}: {', '.join(missing)}. "
            f"Pass --data-dir or set GENREC_DATA_DIR to the folder holding them."
        )
    return card


def materialize_atomic(card: DatasetCard, data_dir: Path | None, cache_dir: Path) -> Path:
    """Write the card's data as RecBole atomic files (cached); returns RecBole's data_path."""
    require_files(card, data_dir)
    stamp = hashlib.sha1()
    stamp.update(json.dumps([card.format, card.files, card.text_fields]).encode())
    # the readers' code too: a fixed reader converts again instead of serving the old copy
    stamp.update(Path(__file__).read_bytes())
    for key in sorted(card.files):
        path = card.resolve(key, data_dir)
        if path.exists():
            stat = path.stat()
            stamp.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    check_name(card.name, "dataset")
    root = under(cache_dir, cache_dir / "atomic" / f"{card.name}-{stamp.hexdigest()[:12]}")
    if _verified(root, card.name):
        return root
    try:
        inter, text = READERS[card.format](card, data_dir)
    except (KeyError, TypeError, ValueError) as exc:  # damage the readers do not name yet
        files = ", ".join(str(card.resolve(key, data_dir)) for key in card.files)
        raise DataError(
            f"dataset {card.name!r}: cannot read {files} ({type(exc).__name__}: {exc}); check "
            f"them against the {card.format!r} format (benchmark/datasets.py's docstring)"
        ) from exc
    if inter.empty:
        raise DataError(f"dataset {card.name!r} has no interactions")
    # Staged in a folder of this process's own, published with one rename: concurrent
    # conversions never share files, and a kill leaves no half-written dataset in place.
    stage = root.parent / f".{root.name}.{os.getpid()}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    (stage / card.name).mkdir(parents=True)
    header = "user_id:token\titem_id:token\ttimestamp:float\n"
    body = inter[["user", "item", "timestamp"]].to_csv(sep="\t", header=False, index=False)
    inter_bytes = (header + body).encode("utf-8")
    (stage / card.name / f"{card.name}.inter").write_bytes(inter_bytes)
    (stage / card.name / "item_text.json").write_text(json.dumps(text))
    manifest = {
        "rows": len(inter),
        "inter_sha1": hashlib.sha1(inter_bytes).hexdigest(),
        "items_with_text": len(text),
    }
    (stage / card.name / MANIFEST).write_text(json.dumps(manifest))
    if root.exists():  # a broken earlier conversion: set it aside, then replace it
        shutil.rmtree(root, ignore_errors=True)
    try:
        os.rename(stage, root)
    except OSError:  # another process published first; its copy is verified on use
        shutil.rmtree(stage, ignore_errors=True)
    if not _verified(root, card.name):
        raise DataError(f"dataset {card.name!r}: the converted copy in {root} failed its check")
    return root


MANIFEST = "manifest.json"


def _verified(root: Path, name: str) -> bool:
    """True when ``root`` holds a complete conversion: its manifest's row count and checksum
    match the atomic file (a truncated or half-published copy is rebuilt, never used)."""
    folder = root / name
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        data = (folder / f"{name}.inter").read_bytes()
        json.loads((folder / "item_text.json").read_text())
    except (OSError, ValueError):
        return False
    rows = data.count(b"\n") - 1  # minus the header
    return rows == manifest.get("rows") and hashlib.sha1(data).hexdigest() == manifest.get(
        "inter_sha1"
    )
