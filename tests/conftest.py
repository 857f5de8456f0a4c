"""Shared fixtures: a small CIFAR-10 cut from the offline copy, written in the standard layout."""

import os
import pickle
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

SHARED_DATA = Path(os.environ.get("AUTOSOFT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def write_small_cifar10(root: Path, per_batch: int, n_test: int) -> Path:
    """The first images of each real batch file, re-written in the exact CIFAR-10 python layout."""
    src, dst = SHARED_DATA / "cifar-10-batches-py", root / "cifar-10-batches-py"
    dst.mkdir(parents=True)
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        with open(src / name, "rb") as f:
            d = pickle.load(f, encoding="latin1")
        with open(dst / name, "wb") as f:
            pickle.dump({"data": d["data"][:n], "labels": list(d["labels"][:n])}, f, protocol=4)
    (dst / "batches.meta").write_bytes((src / "batches.meta").read_bytes())
    return root


@pytest.fixture(scope="session")
def small_cifar10(tmp_path_factory) -> Path:
    """Data root with 1,000 train and 300 test CIFAR-10 images (real pixels, real labels)."""
    if not (SHARED_DATA / "cifar-10-batches-py").is_dir():
        pytest.skip(f"offline CIFAR-10 not found under {SHARED_DATA} (set AUTOSOFT_DATA)")
    return write_small_cifar10(tmp_path_factory.mktemp("data"), per_batch=200, n_test=300)
