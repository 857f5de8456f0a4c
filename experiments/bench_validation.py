"""What per-epoch validation costs a search trial: the derived proxy of the main table's
target trained with validation after every epoch and after the last only, side by side.
With --as-is, the target config itself instead (a table or dev-split run; --val-size as
`table.py --split dev` sets it).

Interleaved runs (best of --repeats), same config, seed and threads; prints each run's
seconds per epoch and the share of a trial that per-epoch validation takes.

    python experiments/bench_validation.py [--epochs 2] [--repeats 2] [--threads 1]
    python experiments/bench_validation.py --as-is --target experiments/configs/cifar100_cpu_w32_n10k_e40.json --val-size 5000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
from autosoft.process import keep_freed_memory  # noqa: E402
from autosoft.search.proxy import derive_proxy  # noqa: E402
from autosoft.train import TrainConfig, load_data, train  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default=str(ROOT / "experiments/configs/cifar10_cpu_w32.json"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads (default: a trial's 1, or the config's own with --as-is)")
    ap.add_argument("--as-is", action="store_true", help="time the target config itself, not its derived proxy")
    ap.add_argument("--val-size", type=int, default=None, help="validation images (default: the config's)")
    args = ap.parse_args(argv)
    keep_freed_memory()
    target = json.loads(Path(args.target).read_text())
    timed = target if args.as_is else derive_proxy(target, n_train=50000)[0]
    threads = args.threads or (timed.get("threads", 1) if args.as_is else 1)
    base = {**timed, "epochs": args.epochs, "warmup_epochs": 0.5, "threads": threads, "eval_test": False}
    if args.val_size is not None:
        base["val_size"] = args.val_size
    data = load_data(TrainConfig.from_dict(base))
    times = {"every epoch": [], "last epoch only": []}
    for _ in range(args.repeats):
        for name, every in (("every epoch", 1), ("last epoch only", 0)):
            t0 = time.perf_counter()
            train(TrainConfig.from_dict({**base, "val_every": every}), "trivialaugment", data=data)
            times[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    print(f"{'config' if args.as_is else 'proxy'}: {base['dataset']}, width {(base.get('model_kwargs') or {}).get('width')}, "
          f"{base['train_size']} images, batch {base['batch_size']}, {base['val_size']} validation images, "
          f"{threads} thread(s), {args.epochs} epochs")
    for k, v in best.items():
        print(f"  validated {k}: {v / args.epochs:.1f} s/epoch (runs: {', '.join(f'{t:.1f}' for t in times[k])} s)")
    one_pass = (best["every epoch"] - best["last epoch only"]) / (args.epochs - 1)
    epoch = best["last epoch only"] / args.epochs
    print(f"  one validation pass: {one_pass:.1f} s = {one_pass / (epoch + one_pass):.0%} of a validated epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
