import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
FIXTURE_DIR = REPO / "datasets" / "fixture"
SHARED_DATA = Path(os.environ.get("GENREC_DATA_DIR", REPO.parent / "shared" / "data"))

# One thread: tiny models gain nothing from two, and on a loaded 2-core machine two OpenMP
# threads per process were measured 5-20x slower than one.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """One artifact cache per test session, so tests never read a developer's stale cache."""
    os.environ["GENREC_CACHE_DIR"] = str(tmp_path_factory.mktemp("genrec-cache"))
    yield


@pytest.fixture(scope="session")
def tiny_data():
    from benchmark.data import load_sequence_data

    return load_sequence_data("ml-tiny", FIXTURE_DIR)
