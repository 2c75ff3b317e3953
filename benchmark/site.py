"""The leaderboard as a static web page: ``results/site/index.html`` plus its figures.

No server and no network: one HTML file with its CSS and a few lines of JavaScript inline, and
the figures copied next to it, so the folder can be opened from disk or published as it is.
Per table (dataset x profile x stopping rule x training data x protocol): the leaderboard
sortable by any column (click a header; again to reverse), mean ± std over seeds with the
best in bold, the second underlined and † on models significantly worse than the column's
best, cost columns, semantic-ID diagnostics, the table's notes, its figures (learning curves
included), and per model the list of its runs with their provenance, each linked to its record.
Every accuracy cell links to its model's runs.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pandas as pd

from benchmark.atomic import write_text_atomic
from benchmark.leaderboard import (
    ALL_PAIRS,
    ALPHA,
    COST,
    DIGITS,
    Leaderboard,
    Style,
    Table,
    comparison_cells,
    comparison_legend,
    metric_label,
    untested_notes,
)
from benchmark.metrics import headline_metrics

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1b1f24; }
h1 { font-size: 1.6rem; }
h2 { font-size: 1.2rem; margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f6f8; cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
td a { color: inherit; text-decoration: none; } td a:hover { text-decoration: underline; }
.best { font-weight: 700; } .second { text-decoration: underline; } .sig { color: #b42318; }
.notes { color: #555; font-size: .9em; } figure { display: inline-block; margin: .5rem; }
figure img { max-width: 560px; border: 1px solid #eee; } details { margin: .3rem 0; }
nav a { margin-right: 1rem; } code { font-size: .9em; }
"""

# Click a header: sort its table by that column (numbers by data-value, text otherwise).
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col], v = cell.getAttribute("data-value");
        return v === null ? cell.textContent.trim() : (v === "" ? null : parseFloat(v));
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null) return 1; if (y === null) return -1;
        var c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
        return up ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _anchor(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts)).strip("-")


def _number(value: float) -> str:
    return "" if pd.isna(value) else repr(float(value))


def _accuracy_cell(row: pd.Series | None, link: str) -> str:
    if row is None or row["n_seeds"] == 0 or pd.isna(row["mean"]):
        return '<td data-value="">—</td>'
    text = f"{row['mean']:.{DIGITS}f}"
    if not pd.isna(row["std"]):
        text += f" ± {row['std']:.{DIGITS}f}"
    css = {1: "best", 2: "second"}.get(row["place"], "")
    mark = '<span class="sig" title="significantly worse than the best">†</span>'
    dagger = mark if row["significant"] else ""
    return (
        f'<td data-value="{_number(row["mean"])}" class="{css}">'
        f'<a href="#{link}">{text}</a>{dagger}</td>'
    )


def _leaderboard_html(table: Table, summary: pd.DataFrame) -> str:
    by_cell = summary.set_index(["model", "metric"])
    metrics = table.columns
    head = ["Model", "Seeds"]
    head += [metric_label(m) for m in metrics]
    head += list(COST.values())
    rows = []
    for model in table.models:
        runs_link = _anchor("runs", table.slug, model)
        n_ok = int((table.runs["model"] == model).sum())
        seeds = str(n_ok) if n_ok == len(table.seeds) else f"{n_ok}/{len(table.seeds)}"
        cells = [f"<td>{html.escape(model)}</td>", f'<td data-value="{n_ok}">{seeds}</td>']
        for metric in metrics:
            row = by_cell.loc[(model, metric)] if (model, metric) in by_cell.index else None
            cells.append(_accuracy_cell(row, runs_link))
        for metric in COST:
            value = by_cell["mean"].get((model, metric), float("nan"))
            shown = "—" if pd.isna(value) else (f"{value:,.0f}" if value >= 100 else f"{value:.1f}")
            cells.append(f'<td data-value="{_number(value)}">{shown}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in head)
    return (
        f'<table class="sortable" id="{_anchor("board", table.slug)}"><thead><tr>{header}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _sid_html(summary: pd.DataFrame) -> str:
    sid = summary[summary["metric"].str.startswith("sid_")]
    if sid.empty:
        return ""
    wide = sid.pivot(index="model", columns="metric", values="mean")
    columns = sorted(wide.columns)
    header = "<th>Model</th>" + "".join(
        f"<th>{html.escape(c.removeprefix('sid_').replace('_', ' '))}</th>" for c in columns
    )
    rows = []
    for model, values in wide.iterrows():
        cells = [f"<td>{html.escape(str(model))}</td>"]
        for column in columns:
            value = values[column]
            text = "—" if pd.isna(value) else f"{value:.4g}"
            cells.append(f'<td data-value="{_number(value)}">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<h3>Semantic-ID diagnostics (mean over seeds)</h3>"
        f'<table class="sortable"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _comparisons_html(table: Table) -> str:
    """Each method against what it builds on (the Markdown's "Against what ..." table)."""
    comparisons = table.comparisons
    if comparisons.empty:
        return ""
    style = Style("<strong>{}</strong>", "<u>{}</u>", " ± ", "†", "α", "—", html.escape)
    cells = comparison_cells(comparisons, style, ALPHA)
    header = "".join(f'<th scope="col">{html.escape(str(h))}</th>' for h in cells.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{value}</td>" for value in row) + "</tr>"
        for row in cells.itertuples(index=False)
    )
    return (
        "<h3>Against what each method builds on</h3>"
        f'<table class="sortable"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>'
        f'<p class="notes">{html.escape(comparison_legend(style, ALPHA))}</p>'
    )


def _runs_html(table: Table) -> str:
    parts = ["<h3>Runs</h3>"]
    name = headline_metrics(json.loads(table.protocol).get("selection", "ndcg@10"))[0]
    for model in table.models:
        runs = table.runs[table.runs["model"] == model].sort_values("seed")
        items = []
        for run in runs.itertuples():
            link = f"../{run.path}" if isinstance(run.path, str) else "#"
            metric = run._asdict().get(name)
            score = "" if metric is None or pd.isna(metric) else f", test {name} {metric:.4f}"
            commit = (run.git_commit or "")[:7] if isinstance(run.git_commit, str) else ""
            items.append(
                f'<li>seed {run.seed}: <a href="{html.escape(link)}">run '
                f"{html.escape(str(run.run_id))}</a>{score}, commit <code>"
                f"{html.escape(commit)}</code>, finished {html.escape(str(run.finished_at))}</li>"
            )
        failed = table.failed[table.failed["model"] == model]
        for run in failed.itertuples():
            items.append(
                f"<li>seed {run.seed}: {html.escape(str(run.status))} "
                f"({html.escape(str(run.error))})</li>"
            )
        parts.append(
            f'<details id="{_anchor("runs", table.slug, model)}"><summary>{html.escape(model)}: '
            f"{len(runs)} run(s)</summary><ul>{''.join(items)}</ul></details>"
        )
    return "".join(parts)


def write_site(
    board: Leaderboard,
    summaries: list[pd.DataFrame],
    results_dir: Path,
    figures: list[Path] | None = None,
) -> list[Path]:
    """Write ``<results_dir>/site/index.html`` and copy the PNG figures beside it."""
    site = Path(results_dir) / "site"
    (site / "figures").mkdir(parents=True, exist_ok=True)
    pngs = [p for p in figures or [] if p.suffix == ".png"]
    written = []
    for path in pngs:
        target = site / "figures" / path.name
        shutil.copyfile(path, target)
        written.append(target)
    # runs trained to convergence on all pairs first: they are the headline
    order = sorted(
        zip(board.tables, summaries),
        key=lambda pair: (pair[0].budget is not None, pair[0].training_data != ALL_PAIRS),
    )
    nav = " ".join(f'<a href="#{_anchor(t.slug)}">{html.escape(t.slug)}</a>' for t, _ in order)
    sections = []
    for table, summary in order:
        images = "".join(
            f'<figure><img src="figures/{p.name}" alt="{html.escape(p.stem)}" loading="lazy">'
            f"<figcaption>{html.escape(p.stem.removeprefix(table.slug + '_'))}</figcaption>"
            "</figure>"
            for p in pngs
            if p.stem.startswith(table.slug + "_")
        )
        notes = "".join(
            f"<li>{html.escape(n)}</li>" for n in table.notes + untested_notes(table, summary)
        )
        sections.append(
            f'<section id="{_anchor(table.slug)}"><h2>{html.escape(table.title)}</h2>'
            + _leaderboard_html(table, summary)
            + '<p class="notes">Mean ± std over seeds; bold best, underlined second; † '
            "significantly worse than the column's best (Wilcoxon signed-rank on per-user "
            f"scores, Holm-corrected, α = {ALPHA}). Click a header to sort; a cell links to its "
            "runs.</p>"
            + (f'<ul class="notes">{notes}</ul>' if notes else "")
            + _comparisons_html(table)
            + _sid_html(summary)
            + (f"<h3>Figures</h3>{images}" if images else "")
            + _runs_html(table)
            + "</section>"
        )
    if len(board.orphans):  # runs that match no table's data, protocol or profile, with why
        items = "".join(
            f"<li>{html.escape(str(run.model))} on {html.escape(str(run.dataset))} seed "
            f"{run.seed} (run {html.escape(str(run.run_id))}): {html.escape(str(run.error))}</li>"
            for run in board.orphans.sort_values(["model", "seed"]).itertuples()
        )
        sections.append(f'<section id="failed"><h2>Runs outside every table</h2>'
                        f"<ul>{items}</ul></section>")  # fmt: skip
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>genrec-bench leaderboard</title><style>{STYLE}</style></head><body>"
        "<h1>genrec-bench leaderboard</h1>"
        f"<p>{board.n_records} run records. Generated by <code>python -m benchmark "
        f"leaderboard</code>; every number comes from a record in <code>runs/</code>.</p>"
        f"<nav>{nav}</nav>{''.join(sections)}<script>{SCRIPT}</script></body></html>"
    )
    index = site / "index.html"
    write_text_atomic(index, page)
    return [index, *written]
