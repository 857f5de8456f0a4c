"""Shared fixtures: the real offline CIFAR-10/100 and small real cuts of them in the standard layouts.

The data root is $AUTOSOFT_DATA, else autosoft's default (~/.cache/autosoft/data). When that
root lacks a data set and the packed offline copy sits beside the repository
(`../shared/data/build.py`), it is written out once. With AUTOSOFT_REQUIRE_DATA=1 (set by
`.ci/run`), a missing real data set fails the tests instead of skipping them.
"""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autosoft.data import data_root

torch.set_num_threads(min(2, torch.get_num_threads()))

DATA_ROOT = data_root()
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "shared" / "data" / "build.py"
FOLDERS = {"cifar10": ("cifar-10-batches-py", "test_batch"), "cifar100": ("cifar-100-python", "test")}


def _present(name: str) -> bool:
    folder, test_file = FOLDERS[name]
    return (DATA_ROOT / folder / test_file).is_file()


def _real_root(name: str) -> Path:
    """DATA_ROOT once it holds `name` (building it from the offline copy if needed), else skip."""
    if not _present(name) and BUILD_SCRIPT.is_file():
        subprocess.run([sys.executable, str(BUILD_SCRIPT), str(DATA_ROOT), "--only", name],
                       check=True, stdout=subprocess.DEVNULL)
    if not _present(name):
        why = f"real {name} not found under {DATA_ROOT} (set AUTOSOFT_DATA, or run ../shared/data/build.py)"
        if os.environ.get("AUTOSOFT_REQUIRE_DATA") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return DATA_ROOT


@pytest.fixture(scope="session")
def real_cifar10() -> Path:
    """Data root holding the full real CIFAR-10 (exact test split)."""
    return _real_root("cifar10")


@pytest.fixture(scope="session")
def real_cifar100() -> Path:
    """Data root holding the full real CIFAR-100."""
    return _real_root("cifar100")


def _load(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def _dump(obj: dict, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


def write_small_cifar10(src_root: Path, root: Path, per_batch: int, n_test: int) -> Path:
    """The first images of each real batch file, re-written in the exact CIFAR-10 python layout."""
    src, dst = src_root / "cifar-10-batches-py", root / "cifar-10-batches-py"
    dst.mkdir(parents=True)
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        d = _load(src / name)
        _dump({"data": d["data"][:n], "labels": list(d["labels"][:n])}, dst / name)
    (dst / "batches.meta").write_bytes((src / "batches.meta").read_bytes())
    return root


def write_small_cifar100(src_root: Path, root: Path, n_train: int, n_test: int) -> Path:
    """The first images of the real CIFAR-100 splits (fine and coarse labels), in its exact layout."""
    src, dst = src_root / "cifar-100-python", root / "cifar-100-python"
    dst.mkdir(parents=True)
    for split, n in (("train", n_train), ("test", n_test)):
        d = _load(src / split)
        _dump({"filenames": d["filenames"][:n], "batch_label": d["batch_label"], "data": d["data"][:n],
               "fine_labels": list(d["fine_labels"][:n]), "coarse_labels": list(d["coarse_labels"][:n])},
              dst / split)
    (dst / "meta").write_bytes((src / "meta").read_bytes())
    return root


@pytest.fixture(scope="session")
def small_cifar10(real_cifar10, tmp_path_factory) -> Path:
    """Data root with 1,000 train and 300 test CIFAR-10 images (real pixels, real labels)."""
    return write_small_cifar10(real_cifar10, tmp_path_factory.mktemp("data"), per_batch=200, n_test=300)


@pytest.fixture(scope="session")
def small_cifar100(real_cifar100, tmp_path_factory) -> Path:
    """Data root with 1,000 train and 300 test CIFAR-100 images (real pixels, fine and coarse labels)."""
    return write_small_cifar100(real_cifar100, tmp_path_factory.mktemp("data100"), n_train=1000, n_test=300)
