"""Data and machine helpers shared by the speed benchmarks in ``scripts/``."""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from models.components.semantic_ids import SemanticIDTable, add_collision_digit

BEAUTY_USERS, BEAUTY_ITEMS = 22_363, 12_101


def add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--data-dir", default=None, help="folder with the dataset files")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="Beauty-shaped random histories instead of the harness's data loader",
    )
    parser.add_argument("--max-history", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--seed", type=int, default=0)


def synthetic_sequences(
    n_users: int = BEAUTY_USERS, n_items: int = BEAUTY_ITEMS, seed: int = 0
) -> list[list[int]]:
    """Random user sequences whose lengths follow Beauty 5-core's: at least 5, mean ~8.9,
    heavy-tailed (a floored Pareto with x_min 5 and shape 2.15, capped at 250)."""
    rng = np.random.default_rng(seed)
    lengths = np.minimum(np.floor(5 * (1 - rng.random(n_users)) ** (-1 / 2.15)), 250).astype(int)
    items = rng.integers(1, n_items + 1, size=int(lengths.sum()))
    return [chunk.tolist() for chunk in np.split(items, np.cumsum(lengths)[:-1])]


def training_pairs(
    sequences: list[list[int]], max_history: int
) -> tuple[list[list[int]], np.ndarray]:
    """Leave-one-out training pairs: every prefix -> next item inside ``items[:-2]``."""
    histories, targets = [], []
    for seq in sequences:
        train = seq[:-2]
        for end in range(1, len(train)):
            histories.append(train[max(0, end - max_history) : end])
            targets.append(train[end])
    return histories, np.asarray(targets)


def load_data(
    args: argparse.Namespace,
) -> tuple[int, list[list[int]], np.ndarray, list[list[int]]]:
    """``(n_items, train_histories, train_targets, test_histories)``, real or synthetic."""
    if args.synthetic:
        sequences = synthetic_sequences(seed=args.seed)
        histories, targets = training_pairs(sequences, args.max_history)
        tests = [seq[:-1][-args.max_history :] for seq in sequences]
        return BEAUTY_ITEMS, histories, targets, tests
    from benchmark.data import load_sequence_data

    data = load_sequence_data(args.dataset, args.data_dir, args.max_history)
    return data.n_items, data.train_histories, data.train_targets, data.test_histories


def random_sids(
    n_items: int, levels: tuple[int, ...] = (256, 256, 256), seed: int = 0
) -> SemanticIDTable:
    """Random codes per level plus TIGER's collision digit. Speed depends on the IDs' shape only."""
    gen = torch.Generator().manual_seed(seed)
    codes = torch.stack([torch.randint(0, k, (n_items,), generator=gen) for k in levels], 1)
    return SemanticIDTable.from_codes(add_collision_digit(codes))


class Stopwatch:
    """Accumulates wall and process CPU seconds of ``with`` blocks. On a shared machine CPU time
    is the steadier measure: it leaves out time spent descheduled."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


def matmul_peak_gflops(size: int = 2048, repeats: int = 9) -> float:
    """Median fp32 GFLOP/s of a ``size``-square matmul on this machine."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)
