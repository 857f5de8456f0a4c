"""Image-folder decoding: sequential vs the thread pool, measured side by side in one run.

Writes N RGB PNGs (sides random in [SRC, 1.5 SRC] px, noise plus gradients so zlib has work) to
a temporary folder, then decodes them to S x S with `decode_images(workers=1)` and with the
default pool, alternating, R rounds each; prints the median seconds and the ratio.

    python experiments/bench_decode.py [--n 3000] [--src 32] [--size 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from autosoft.data import decode_images  # noqa: E402


def write_pngs(folder: Path, n: int, src: int) -> list:
    from PIL import Image
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        h, w = rng.integers(src, src * 3 // 2 + 1, size=2)
        ramp = np.add.outer(np.arange(h), np.arange(w))[..., None] * 3
        pixels = (ramp + rng.integers(0, 64, (h, w, 3))).astype(np.uint8)
        files.append(folder / f"{i:05d}.png")
        Image.fromarray(pixels).save(files[-1])
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--src", type=int, default=32, help="smallest side of the written PNGs")
    p.add_argument("--size", type=int, default=32, help="side they are decoded to")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_pngs(Path(tmp), args.n, args.src)
        decode_images(files, args.size)  # warm the page cache and PIL's plugins
        times = {"sequential": [], "parallel": []}
        for _ in range(args.rounds):
            for kind, workers in (("sequential", 1), ("parallel", None)):
                t0 = time.perf_counter()
                decode_images(files, args.size, workers=workers)
                times[kind].append(time.perf_counter() - t0)
    seq, par = (statistics.median(times[k]) for k in ("sequential", "parallel"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.n} PNGs of {args.src}-{args.src * 3 // 2} px -> {args.size}x{args.size}, {cores} cores, median of {args.rounds}: "
          f"sequential {seq:.2f} s ({args.n / seq:.0f}/s), parallel {par:.2f} s ({args.n / par:.0f}/s), "
          f"ratio {seq / par:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
