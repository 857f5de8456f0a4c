"""Batched autosoft engine vs torchvision TrivialAugmentWide, one CPU thread.

Same policy on both sides: per image, one of the 14 TrivialAugmentWide ops drawn
uniformly at a uniformly drawn magnitude (wide ranges), random sign. autosoft
side: `PolicyAugment` (the engine users and the trainer call: per-image draws,
images grouped by op, one batched kernel per op, plus the soft-target rows).
torchvision side: `v2.TrivialAugmentWide` called on one uint8 image at a time.

    python experiments/bench_augment.py [--data-dir DIR] [-n 10000] [--batch-size 256 512 2048 10000]

Every batch size is timed in the same run as the one torchvision measurement, so the
ratios are side by side.
"""

import argparse
import pickle
import platform
import time
from pathlib import Path

import sys

import torch
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from autosoft.augment import PolicyAugment  # noqa: E402
from autosoft.data import data_root  # noqa: E402
from autosoft.process import keep_freed_memory  # noqa: E402
from autosoft.policy import Policy  # noqa: E402

# TrivialAugment without the crop/flip base, to match torchvision's TrivialAugmentWide alone.
POLICY = Policy.from_dict({"version": 1, "name": "trivialaugment-only", "kind": "trivialaugment", "ranges": "wide"})


def load_cifar_batch(data_dir: Path, n: int) -> torch.Tensor:
    path = data_dir / "cifar-10-batches-py" / "data_batch_1"
    if not path.exists():
        raise SystemExit(f"CIFAR-10 batch not found at {path}; pass --data-dir or set AUTOSOFT_DATA")
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="latin1")
    x = torch.from_numpy(d["data"]).view(-1, 3, 32, 32)
    return x[:n].contiguous()


def trivial_augment_batched(augment, images, generator, batch_size):
    labels = torch.zeros(batch_size, dtype=torch.long)
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        augment(x, labels[:len(x)], generator=generator)


def torchvision_per_image(images):
    ta = v2.TrivialAugmentWide()
    return torch.stack([ta(img) for img in images])


def timed(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=str(data_root()), help="data root (default: $AUTOSOFT_DATA, else ~/.cache/autosoft/data)")
    p.add_argument("-n", type=int, default=10_000, help="number of images")
    p.add_argument("--batch-size", type=int, nargs="+", default=[256, 512, 2048, 10_000])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side; best is reported")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    keep_freed_memory()  # malloc's thresholds, before the first batch
    torch.set_num_threads(args.threads)
    images = load_cifar_batch(Path(args.data_dir), args.n)
    n = len(images)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    augment = PolicyAugment(POLICY, num_classes=10)

    torchvision_per_image(images[:200])  # warm-up
    t_tv = timed(lambda: torchvision_per_image(images), args.repeats)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads={torch.get_num_threads()}, {n} CIFAR-10 images, best of {args.repeats}, "
          f"malloc thresholds fixed: {keep_freed_memory()}")
    print(f"torchvision v2.TrivialAugmentWide per image:   {n / t_tv:10,.0f} images/s")
    for batch_size in args.batch_size:
        trivial_augment_batched(augment, images[:max(1024, batch_size)], g, batch_size)  # warm-up
        t_ours = timed(lambda: trivial_augment_batched(augment, images, g, batch_size), args.repeats)
        print(f"autosoft PolicyAugment, batch {batch_size:6d}:     {n / t_ours:10,.0f} images/s"
              f"   speed-up {t_tv / t_ours:5.1f}x")

if __name__ == "__main__":
    main()
