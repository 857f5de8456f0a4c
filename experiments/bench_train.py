"""Training-loop overhead of augmentation and soft targets, and the loop vs bare compute.

Side by side in one run, on the same model, batch and threads (interleaved, best of
--repeats, so background load hits both sides alike):
  * bare:   forward + backward + SGD step on one fixed, pre-normalised batch
            (the network's own throughput; no data handling at all);
  * none:   a real `autosoft.train.train` epoch with policy `none`;
  * ta+soft: the same epoch with TrivialAugment (wide) + pad-crop/flip + soft targets.
Prints images/s for each and the ratios ta+soft / none (target >= 0.9) and none / bare.

    python experiments/bench_train.py [--width 16] [--images 10000] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from autosoft.models import build_model  # noqa: E402
from autosoft.policy import BUILTIN_POLICIES, Policy  # noqa: E402
from autosoft.process import keep_freed_memory  # noqa: E402
from autosoft.train import TrainConfig, load_data, train  # noqa: E402

TA_SOFT = Policy.from_dict({**BUILTIN_POLICIES["trivialaugment"], "name": "trivialaugment+soft",
                            "soft_targets": {"mode": "both", "power": 2.0,
                                             "sensitivity": {"PadCrop": 1.0, "TranslateX": 1.0, "TranslateY": 1.0,
                                                             "Brightness": 0.3, "Contrast": 0.3}}})


def bare_throughput(width: int, batch: int, steps: int) -> float:
    model = build_model("proxy", 10, width=width).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    for i in range(steps + 3):
        if i == 3:
            t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def epoch_throughput(config: TrainConfig, policy, data) -> float:
    times = []
    train(config, policy, data=data, report=lambda e, m: times.append(m["epoch_time_s"]))
    return config.train_size / min(times[1:])  # the first epoch warms up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", default=None, help="data root (default: $AUTOSOFT_DATA, else ~/.cache/autosoft/data)")
    args = ap.parse_args()
    keep_freed_memory()  # malloc's thresholds, before the first batch (train() also does)
    torch.set_num_threads(args.threads)
    config = TrainConfig(model="proxy", model_kwargs={"width": args.width}, epochs=3, batch_size=args.batch_size,
                         train_size=args.images, val_size=0, eval_test=False, data_dir=args.data_dir,
                         threads=args.threads)
    data = load_data(config)
    best = {"bare": 0.0, "none": 0.0, "ta+soft": 0.0}
    steps = args.images // args.batch_size
    for _ in range(args.repeats):
        best["bare"] = max(best["bare"], bare_throughput(args.width, args.batch_size, steps))
        best["none"] = max(best["none"], epoch_throughput(config, "none", data))
        best["ta+soft"] = max(best["ta+soft"], epoch_throughput(config, TA_SOFT, data))
    print(f"torch {torch.__version__}, threads={args.threads}, proxy width {args.width}, batch {args.batch_size}, "
          f"{args.images} CIFAR-10 images per epoch, best of {args.repeats}")
    for name, value in best.items():
        print(f"{name:>8}: {value:8,.0f} images/s")
    print(f"ta+soft / none: {best['ta+soft'] / best['none']:.3f}   (target >= 0.9)")
    print(f"none / bare:    {best['none'] / best['bare']:.3f}   (the loop's cost over bare compute)")


if __name__ == "__main__":
    main()
