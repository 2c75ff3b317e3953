"""Copy the main tables of results/leaderboard.md into README.md between the LEADERBOARD markers.

python -m benchmark leaderboard && python scripts/readme_leaderboard.py
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- LEADERBOARD:START -->", "<!-- LEADERBOARD:END -->"


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


def main() -> None:
    board = (ROOT / "results" / "leaderboard.md").read_text()
    readme = (ROOT / "README.md").read_text()
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    (ROOT / "README.md").write_text(f"{head}{START}\n{main_tables(board)}\n{END}{tail}")


if __name__ == "__main__":
    main()
