"""Batched autosoft ops vs torchvision TrivialAugmentWide, one CPU thread.

Same policy on both sides: per image, one of the 14 TrivialAugmentWide ops drawn
uniformly, magnitude bin uniform over 31 bins (m = k/30, wide ranges), random
sign; AutoContrast/Equalize run at m = 1 (the plain op, as TrivialAugment does).
autosoft side: draw per image, group images by op, one `run_op` per op, scatter
back (the core of the augment engine). torchvision side: `v2.TrivialAugmentWide`
called on one uint8 image at a time.

    python experiments/bench_augment.py [--data-dir DIR] [-n 10000] [--batch-size 512]
"""

import argparse
import os
import pickle
import platform
import time
from pathlib import Path

import sys

import torch
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from autosoft.ops import run_op  # noqa: E402

TA_OPS = ["Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
          "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize"]
FULL_STRENGTH = {"AutoContrast", "Equalize"}  # magnitude-free in TrivialAugment: always the whole op
NUM_BINS = 31


def load_cifar_batch(data_dir: Path, n: int) -> torch.Tensor:
    path = data_dir / "cifar-10-batches-py" / "data_batch_1"
    if not path.exists():
        raise SystemExit(f"CIFAR-10 batch not found at {path}; pass --data-dir or set AUTOSOFT_DATA")
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="latin1")
    x = torch.from_numpy(d["data"]).view(-1, 3, 32, 32)
    return x[:n].contiguous()


def trivial_augment_batched(images, generator, batch_size):
    """TrivialAugmentWide policy, per-image draws, grouped by op."""
    out = torch.empty_like(images)
    n_ops = len(TA_OPS)
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        b = len(x)
        op_idx = torch.randint(0, n_ops, (b,), generator=generator)
        m = torch.randint(0, NUM_BINS, (b,), generator=generator).to(torch.float64) / (NUM_BINS - 1)
        sign = torch.randint(0, 2, (b,), generator=generator) * 2 - 1
        y = torch.empty_like(x)
        for k, name in enumerate(TA_OPS):
            idx = (op_idx == k).nonzero().flatten()
            if len(idx) == 0:
                continue
            if name == "Identity":
                y[idx] = x[idx]
                continue
            mk = torch.ones(len(idx), dtype=torch.float64) if name in FULL_STRENGTH else m[idx]
            y[idx], _ = run_op(name, x[idx], mk, sign[idx], wide=True, generator=generator, fill=0)
        out[start:start + b] = y
    return out


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
    p.add_argument("--data-dir", default=os.environ.get("AUTOSOFT_DATA", "/work/shared/data"))
    p.add_argument("-n", type=int, default=10_000, help="number of images")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side; best is reported")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    images = load_cifar_batch(Path(args.data_dir), args.n)
    n = len(images)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)

    trivial_augment_batched(images[:1024], g, args.batch_size)  # warm-up
    torchvision_per_image(images[:200])
    t_ours = timed(lambda: trivial_augment_batched(images, g, args.batch_size), args.repeats)
    t_tv = timed(lambda: torchvision_per_image(images), args.repeats)

    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads={torch.get_num_threads()}, {n} CIFAR-10 images, best of {args.repeats}")
    print(f"autosoft batched (batch {args.batch_size}, grouped by op): {n / t_ours:10,.0f} images/s")
    print(f"torchvision v2.TrivialAugmentWide per image:        {n / t_tv:10,.0f} images/s")
    print(f"speed-up: {t_tv / t_ours:.1f}x")


if __name__ == "__main__":
    main()
