"""Write the tiny test fixture ``datasets/fixture/ml-tiny`` from the ml-100k copy in recbole:
the first 60 users' 30 most recent ratings each, with the movies' text. Re-run to regenerate."""

import argparse
import sys
from pathlib import Path

import pandas as pd
import recbole

SOURCE = Path(recbole.__file__).parent / "dataset_example" / "ml-100k"
TARGET = Path(__file__).resolve().parent.parent / "datasets" / "fixture" / "ml-tiny"


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__).parse_args(argv or [])  # --help; no stray flag
    inter = pd.read_csv(SOURCE / "ml-100k.inter", sep="\t", dtype=str)
    inter = inter[inter["user_id:token"].astype(int) <= 60]
    inter = inter.sort_values(["user_id:token", "timestamp:float"], kind="stable")
    inter = inter.groupby("user_id:token", sort=False).tail(30)
    items = pd.read_csv(SOURCE / "ml-100k.item", sep="\t", dtype=str)
    items = items[items["item_id:token"].isin(set(inter["item_id:token"]))]
    TARGET.mkdir(parents=True, exist_ok=True)
    inter.to_csv(TARGET / "ml-tiny.inter", sep="\t", index=False)
    items.to_csv(TARGET / "ml-tiny.item", sep="\t", index=False)


if __name__ == "__main__":
    main(sys.argv[1:])
