"""The `autosoft` command: show, train, eval, search.

Every user error ends as one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from autosoft.errors import AutosoftError


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (what was wrong, where to look), exit 2."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def read_json_object(path: str, what: str) -> dict:
    """A --config file: a JSON object of settings, or one clear error line."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AutosoftError(f"--config {path}: cannot read a JSON object ({e})") from None
    if not isinstance(data, dict):
        raise AutosoftError(f"--config {path}: expected a JSON object of {what}")
    return data


def add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=os.environ.get("AUTOSOFT_DATA"),
                   help="data root holding the standard layouts (default: $AUTOSOFT_DATA, else ~/.cache/autosoft/data)")
    p.add_argument("--download", action="store_true", help="download a missing data set (checksum verified)")


# ---- show --------------------------------------------------------------------------
def _show(args) -> int:
    if args.what == "ops":
        from autosoft.ops import describe_ops
        print(describe_ops(wide=args.wide))
        return 0
    if args.what == "spaces":
        from autosoft.search import describe_spaces
        print(describe_spaces())
        return 0
    from autosoft.policy import BUILTIN_POLICIES, load_policy
    if args.what == "policies":
        for name in BUILTIN_POLICIES:
            print(repr(load_policy(name)), end="\n\n")
        return 0
    policy = load_policy(args.what)
    print(repr(policy))
    if args.json:
        print(policy.to_json())
    if args.preview:
        path = write_preview(policy, args.preview, dataset=args.dataset, data_dir=args.data_dir,
                             download=args.download, seed=args.seed)
        print(f"preview written to {path}")
    return 0


def write_preview(policy, path, *, dataset: str, data_dir=None, download=False, seed: int = 0,
                  n_images: int = 8, n_draws: int = 4) -> Path:
    """A grid: the original images in the first row, then several draws of the policy,
    each image captioned with the target confidence p it would train with."""
    import torch

    from autosoft import plots
    from autosoft.augment import PolicyAugment
    from autosoft.data import load_dataset

    ds = load_dataset(dataset, "train", data_dir=data_dir, download=download)
    images, labels = ds.images[:n_images], ds.labels[:n_images]
    augment = PolicyAugment(policy, ds.num_classes)
    gen = torch.Generator().manual_seed(seed)
    rows, captions = [images], [ds.classes[int(y)][:10] for y in labels]
    for _ in range(n_draws):
        out = augment(images, labels, generator=gen)
        # p(severity) from the curve: the target row's true-class entry, or the loss weight in "weight" mode
        st = augment.policy.soft_targets
        confidence = out.weights if st is not None and st.mode == "weight" else \
            out.targets.gather(1, labels.view(-1, 1)).flatten()
        rows.append(out.images)
        captions += [f"p={c:.2f}" for c in confidence.tolist()]
    return plots.image_grid(torch.cat(rows), path, nrow=n_images, labels=captions,
                            title=f"{policy.name or 'policy'}: originals, then {n_draws} draws")


# ---- train / eval -----------------------------------------------------------------
def _train_config(args):
    from autosoft.train import TrainConfig
    base = read_json_object(args.config, "train settings") if args.config else {}
    flags = {k: getattr(args, k) for k in ("dataset", "model", "epochs", "batch_size", "lr", "weight_decay",
                                           "label_smoothing", "schedule", "warmup_epochs", "weak_aug_epochs",
                                           "train_size", "val_size", "seed", "device", "threads", "data_dir",
                                           "mixup_alpha", "cutmix_alpha")}
    base.update({k: v for k, v in flags.items() if v is not None})
    if args.width is not None:
        base["model_kwargs"] = {**base.get("model_kwargs", {}), "width": args.width}
    base["download"] = args.download
    return TrainConfig.from_dict(base)


def _train(args) -> int:
    from autosoft.train import RunDir, train
    config = _train_config(args)
    out = Path(args.out or f"runs/train-{config.dataset.replace(':', '_').replace('/', '_')}-{Path(str(args.policy)).stem}-s{config.seed}")
    if args.resume and not RunDir(out).config.exists():
        raise AutosoftError(f"--resume: {out} holds no run to resume; drop --resume to start one")
    final = train(config, args.policy, run_dir=out, quiet=args.quiet,
                  report=None if not args.quiet else _quiet_report(config.epochs))
    _print_final(final, out)
    return 0


def _quiet_report(epochs: int):
    def report(epoch: int, m: dict) -> None:
        val = f" val_acc {m['val_acc']:.4f}" if "val_acc" in m else ""
        print(f"epoch {epoch + 1}/{epochs} loss {m['train_loss']:.4f} acc {m['train_acc']:.4f}{val} "
              f"({m['epoch_time_s']:.1f}s)", flush=True)
    return report


def _print_final(final: dict, out: Path | None) -> None:
    keys = ["top1", "nll", "ece", "ece_ts", "temperature"] + [k for k in final if "@" in k]
    for k in keys:
        if final.get(k) is not None:
            print(f"{k:>22}: {final[k]:.4f}")
    if out is not None:
        print(f"results in {out}/ (final.json, metrics.jsonl, reliability.png, training_curves.png)")


def _eval(args) -> int:
    from autosoft.train import evaluate_run
    final = evaluate_run(args.checkpoint, data_dir=args.data_dir, device=args.device)
    _print_final(final, None)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from autosoft import __version__
    parser = _Parser(prog="autosoft", description="Search augmentation policies jointly with soft targets.")
    parser.add_argument("--version", action="version", version=f"autosoft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    show = sub.add_parser("show", help="print ops, search spaces or a policy (file or built-in name)")
    show.add_argument("what", help="ops | spaces | policies | a built-in policy name | a policy JSON file")
    show.add_argument("--wide", action="store_true", help="with 'ops': the wide (TrivialAugmentWide) ranges")
    show.add_argument("--json", action="store_true", help="also print the policy's JSON form")
    show.add_argument("--preview", metavar="PNG", help="write a grid of images under several draws of the policy")
    show.add_argument("--dataset", default="cifar10", help="data set for --preview (default cifar10)")
    show.add_argument("--seed", type=int, default=0)
    add_data_flags(show)
    show.set_defaults(func=_show)

    tr = sub.add_parser("train", help="train a model with a policy; reports accuracy, calibration, robustness")
    tr.add_argument("--policy", default="baseline", help="built-in policy name or policy JSON file")
    tr.add_argument("--out", help="run directory (default runs/train-DATASET-POLICY-sSEED); rerun to resume")
    tr.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    tr.add_argument("--config", help="JSON file of train settings (flags override it)")
    tr.add_argument("--dataset", help="cifar10 | cifar100 | cifar100-coarse | svhn | imagefolder:PATH")
    tr.add_argument("--model", help="proxy | resnet18 | wrn40_2 | wrn28_10")
    tr.add_argument("--width", type=int, help="width of the proxy model")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--lr", type=float, help="peak learning rate")
    tr.add_argument("--weight-decay", type=float)
    tr.add_argument("--label-smoothing", type=float)
    tr.add_argument("--schedule", help="onecycle | cosine")
    tr.add_argument("--warmup-epochs", type=float)
    tr.add_argument("--weak-aug-epochs", type=int, help="last N epochs with augmentation strength / 1000")
    tr.add_argument("--mixup-alpha", type=float, help="MixUp on top of the policy's (soft) targets; 0 = off")
    tr.add_argument("--cutmix-alpha", type=float, help="CutMix likewise; with both, each batch picks one")
    tr.add_argument("--train-size", type=int, help="train on a stratified subset of this many images")
    tr.add_argument("--val-size", type=int, help="hold out this many train images (temperature scaling, val metrics)")
    tr.add_argument("--seed", type=int)
    tr.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    tr.add_argument("--threads", type=int, help="CPU threads for torch")
    tr.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    add_data_flags(tr)
    tr.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="evaluate a finished or interrupted run directory on its test split")
    ev.add_argument("--checkpoint", required=True, help="run directory written by 'autosoft train'")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--data-dir", default=os.environ.get("AUTOSOFT_DATA"))
    ev.set_defaults(func=_eval)

    from autosoft.search import add_search_parser  # imports Ray and Optuna only when a search runs
    add_search_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from autosoft.process import keep_freed_memory; keep_freed_memory()  # noqa: E702 (malloc thresholds)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except AutosoftError as e:
        print(f"autosoft: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autosoft: interrupted; rerun the same command to continue from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
