"""Copy the main tables of results/leaderboard.md into README.md between the LEADERBOARD markers.

python -m benchmark leaderboard && python scripts/readme_leaderboard.py
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- LEADERBOARD:START -->", "<!-- LEADERBOARD:END -->"


def main_tables(markdown: str) -> str:
    """Each table's heading and rows (notes, footnotes and diagnostics stay in the file)."""
    out: list[str] = []
    for line in markdown.splitlines():
        if line.startswith("### "):
            out += ["", f"**{line[4:]}**", ""]
        elif line.startswith("#### "):
            out += ["", f"*{line[5:]}*", ""]
        elif line.startswith("|"):
            out.append(line)
    return "\n".join(out)


def main() -> None:
    board = (ROOT / "results" / "leaderboard.md").read_text()
    readme = (ROOT / "README.md").read_text()
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    (ROOT / "README.md").write_text(f"{head}{START}\n{main_tables(board)}\n{END}{tail}")


if __name__ == "__main__":
    main()
