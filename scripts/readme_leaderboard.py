"""Copy into README.md, each between its own markers: the converged headline
(results/headline.md, HEADLINE markers), the main tables of results/leaderboard.md (LEADERBOARD
markers) and each fidelity table results/reference/<name>.md (``scripts/compare_reference*.py``,
``FIDELITY:<name>`` markers; tables without markers of their own go between the plain FIDELITY
markers).

python -m benchmark leaderboard && python scripts/readme_leaderboard.py
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- LEADERBOARD:START -->", "<!-- LEADERBOARD:END -->"
FIDELITY = "<!-- FIDELITY:START -->", "<!-- FIDELITY:END -->"
HEADLINE = "<!-- HEADLINE:START -->", "<!-- HEADLINE:END -->"


def main_tables(markdown: str) -> str:
    """Each table's heading and rows (notes, footnotes and diagnostics stay in the file).
    Tables of runs trained to convergence on all pairs come first: they are the headline;
    budgeted runs and runs on cut training data follow."""
    sections: list[list[str]] = []
    for line in markdown.splitlines():
        if line.startswith("### "):
            sections.append(["", f"**{line[4:]}**", ""])
        elif line.startswith("#### ") and sections:
            sections[-1] += ["", f"*{line[5:]}*", ""]
        elif line.startswith("|") and sections:
            sections[-1].append(line)

    def converged(section: list[str]) -> bool:
        return "no time budget" in section[1] and "trained on all pairs" in section[1]

    ordered = [s for s in sections if converged(s)] + [s for s in sections if not converged(s)]
    return "\n".join(line for section in ordered for line in section)


def replace_between(text: str, markers: tuple[str, str], body: str) -> str:
    start, end = markers
    if start not in text:
        return text
    head, rest = text.split(start, 1)
    if end not in rest:  # a hand edit lost it: say which, rather than a ValueError from split
        raise SystemExit(f"README.md has {start} but no {end} after it; restore the end marker")
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def fidelity_markers(name: str) -> tuple[str, str]:
    return f"<!-- FIDELITY:{name}:START -->", f"<!-- FIDELITY:{name}:END -->"


def fidelity_table(path: Path) -> str:
    """A comparison's table under a heading naming its dataset, method and size."""
    heading = f"**{path.stem}** (`results/reference/{path.stem}.json`)"
    return f"{heading}\n\n{path.read_text()}".rstrip()


def with_fidelity_tables(readme: str) -> str:
    rest = []
    for path in sorted((ROOT / "results" / "reference").glob("*.md")):
        markers = fidelity_markers(path.stem)
        if markers[0] in readme:
            readme = replace_between(readme, markers, fidelity_table(path))
        else:
            rest.append(fidelity_table(path))
    return replace_between(readme, FIDELITY, "\n\n".join(rest))


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__).parse_args(argv or [])  # --help; no stray flag
    board = (ROOT / "results" / "leaderboard.md").read_text()
    readme = (ROOT / "README.md").read_text()
    readme = replace_between(readme, (START, END), main_tables(board))
    headline = ROOT / "results" / "headline.md"
    if headline.exists():
        readme = replace_between(readme, HEADLINE, headline.read_text().rstrip())
    readme = with_fidelity_tables(readme)
    (ROOT / "README.md").write_text(readme)


if __name__ == "__main__":
    main(sys.argv[1:])
