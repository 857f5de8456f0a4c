"""The `autosoft` command: show, train, eval, search.

Every user error ends as one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from autosoft import __version__
from autosoft.config import TrainConfig
from autosoft.errors import AutosoftError
from autosoft.evaluation import evaluate_run
from autosoft.ops import describe_ops
from autosoft.policy import BUILTIN_POLICIES, load_policy
from autosoft.preview import write_preview
from autosoft.process import keep_freed_memory
from autosoft.rundir import RunDir
from autosoft.search import describe_spaces, run_search  # importing them imports neither Ray nor Optuna
from autosoft.search.spaces import SPACE_NAMES
from autosoft.train import train


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
        print(describe_ops(wide=args.wide))
        return 0
    if args.what == "spaces":
        print(describe_spaces())
        return 0
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
                             download=args.download, seed=args.seed, image_size=args.image_size)
        print(f"preview written to {path}")
    return 0


# ---- train / eval -----------------------------------------------------------------
# Flags that set the TrainConfig field of the same name: of `train`, and of `search` (its proxy task).
TRAIN_FLAGS = ("dataset", "model", "epochs", "batch_size", "lr", "weight_decay", "label_smoothing", "schedule",
               "warmup_epochs", "weak_aug_epochs", "train_size", "val_size", "seed", "device", "threads",
               "data_dir", "mixup_alpha", "cutmix_alpha", "image_size", "test_fraction")
PROXY_FLAGS = ("epochs", "train_size", "val_size", "model")
# Flags that describe the data rather than the training: `train` sets them like the others; a
# search sets them on its target, so that the proxy and the confirmation runs see the same images.
DATA_FLAGS = ("image_size", "test_fraction")


def add_image_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-size", type=int, metavar="PX",
                   help="resize images to PX x PX (default: CIFAR/SVHN as they are, image folders 32)")
    p.add_argument("--test-fraction", type=float, metavar="F",
                   help="an image folder without train/ and test/: hold out F of each class as the test "
                        "split (default 0.2; the same images every time, listed in test_split.json)")


def _config_from_flags(args, base: dict, keys) -> dict:
    """`base` (a preset, a --config file) with every flag that was given on top; --width
    sets model_kwargs["width"] and --download turns downloading on (train and search alike)."""
    config = dict(base)
    config.update({k: getattr(args, k) for k in keys if getattr(args, k) is not None})
    if args.width is not None:
        config["model_kwargs"] = {**config.get("model_kwargs", {}), "width": args.width}
    if args.download:
        config["download"] = True
    return config


def train_config_from_args(args):
    base = read_json_object(args.config, "train settings") if args.config else {}
    return TrainConfig.from_dict(_config_from_flags(args, base, TRAIN_FLAGS))


def _train(args) -> int:
    config = train_config_from_args(args)
    out = Path(args.out or f"runs/train-{config.dataset.replace(':', '_').replace('/', '_')}-{Path(str(args.policy)).stem}-s{config.seed}")
    if args.resume and not RunDir(out).config.exists():
        raise AutosoftError(f"--resume: {out} holds no run to resume; drop --resume to start one")
    final = train(config, args.policy, run_dir=out, quiet=args.quiet,
                  report=None if not args.quiet else _quiet_report(config.epochs),
                  warn=lambda message: print(f"autosoft: warning: {message}", file=sys.stderr, flush=True))
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
    final = evaluate_run(args.checkpoint, data_dir=args.data_dir, device=args.device)
    _print_final(final, None)
    return 0


# ---- search -----------------------------------------------------------------------
def _add_search_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("search", help="search an augmentation policy jointly with its soft targets",
                              description="Search augmentation ops, probabilities and magnitudes together with "
                                          "the soft-target curve on a proxy task (Ray Tune + Optuna + ASHA), "
                                          "then export the best policy.")
    p.add_argument("--dataset", required=True, help="cifar10 | cifar100 | cifar100-coarse | svhn | imagefolder:PATH")
    p.add_argument("--budget", type=int, required=True, help="number of trials (known policies run first)")
    p.add_argument("--space", default="autoaugment+soft",
                   help=f"{' | '.join(SPACE_NAMES)} | a space file (.py) | POLICY+soft (a built-in policy or "
                        "a policy file keeps its ops, the soft-target curve searched); see 'autosoft show spaces'")
    p.add_argument("--out", help="output folder (default runs/search-DATASET); never overwritten")
    p.add_argument("--resume", action="store_true", help="continue the search in --out; finished trials are kept")
    p.add_argument("--objective", default="robust",
                   help="robust (default: clean validation accuracy 0.5, occlusion-25%% 0.25, shift 0.25) | acc | "
                        "occlusion | shift | ece | nll, or two joined: acc,ece")
    p.add_argument("--storage", help="Optuna database URL (default sqlite:///OUT/study.db)")
    p.add_argument("--ray-address", help="join this Ray cluster: its head's host:port, auto, or ray://host:10001 "
                                         "(token authentication: README, 'Running on a cluster')")
    p.add_argument("--time-limit", help="stop starting trials after this long: 600, 30m, 1.5h (--resume continues)")
    p.add_argument("--target-config", metavar="FILE",
                   help="JSON train config the policy is for (default: 'autosoft train' defaults for the data set)")
    p.add_argument("--proxy", default="auto", choices=("auto", "cpu", "gpu"),
                   help="auto (default): the proxy task is derived from the target; cpu | gpu: a fixed preset")
    p.add_argument("--config", metavar="FILE", help="JSON file of proxy settings overriding the derived proxy or preset")
    p.add_argument("--proxy-cost", metavar="SHARE",
                   help="a trial's cost as a share of one target run, for the derived proxy: fewer train images at "
                        "the target's epochs (default 0.25; 1/16 screens about 2.7x faster, see docs/search.md)")
    p.add_argument("--rungs", metavar="SHARES",
                   help="successive halving over train images: trials at the first share of one target run's cost, "
                        "the best 1/4 (and the baselines) retrained at the next, ..., such as 1/16,1/4; the "
                        "confirmation takes the last rung's best (default: off; see docs/search.md)")
    p.add_argument("--reduction-factor", type=int, metavar="N",
                   help="with --rungs: the best 1/N of each rung go on to the next (default 4)")
    p.add_argument("--epochs", type=int, help="proxy epochs per trial")
    p.add_argument("--train-size", type=int, help="proxy train subset size")
    p.add_argument("--val-size", type=int, help="validation images held out of train (scores the trials)")
    p.add_argument("--model", help="proxy model: proxy | resnet18 | wrn40_2 | wrn28_10")
    p.add_argument("--width", type=int, help="width of the proxy model")
    p.add_argument("--cpus-per-trial", type=float, help="CPU threads per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, help="GPU fraction per trial (default 0.25 on a GPU, else 0)")
    p.add_argument("--max-concurrent", type=int, help="at most this many trials at once (default: as resources allow)")
    p.add_argument("--confirm", type=int, metavar="K",
                   help="retrain the K best searched policies and the baselines at the target's fidelity "
                        "(default 3 on a CPU, 5 on a GPU; 0 skips the stage)")
    p.add_argument("--confirm-seeds", type=int, metavar="S",
                   help="seeds every confirmed policy starts the race with (default 2 CPU, 3 GPU)")
    p.add_argument("--confirm-max-seeds", type=int, metavar="N",
                   help="seed cap: the best and those within noise of it get more seeds, paired, up to N "
                        "(default 4 CPU, 6 GPU; a --resume with a higher N adds seeds)")
    p.add_argument("--confirm-time-limit", metavar="T",
                   help="start no new race round after this long: 600, 30m, 1.5h (default: none)")
    p.add_argument("--confirm-fidelity", type=float, default=1.0, metavar="F",
                   help="confirmation runs train F of the target's epochs (default 1: the target itself)")
    p.add_argument("--reuse-confirmation", action="append", default=[], metavar="SEARCH_DIR",
                   help="copy another search's finished confirmation runs of the same policy, seed and config "
                        "instead of training them again (the baselines of searches aimed at one target); repeatable")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "random"),
                   help="tpe (default) | random: uniform draws, the control a search must beat")
    p.add_argument("--early-stopping", choices=("off", "asha"),
                   help="off (default): every trial runs its whole schedule; asha: stop weak trials at 2/3 of it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-baselines", action="store_true", help="do not run the known policies first")
    add_image_flags(p)
    add_data_flags(p)
    p.set_defaults(func=_search)
    return p


def proxy_settings_from_args(args) -> dict:
    # The preset first: a --config file's own "preset" wins over --proxy, as it always has.
    base = {"preset": args.proxy, **(read_json_object(args.config, "proxy settings") if args.config else {})}
    if args.proxy_cost is not None:
        base["cost"] = args.proxy_cost
    return _config_from_flags(args, base, PROXY_FLAGS)


def _search(args) -> int:
    data_settings = {k: getattr(args, k) for k in DATA_FLAGS if getattr(args, k) is not None}
    result = run_search(dataset=args.dataset, budget=args.budget, space=args.space, out_dir=args.out,
                        resume=args.resume, objectives=args.objective, storage=args.storage,
                        ray_address=args.ray_address, time_limit_s=args.time_limit,
                        proxy=proxy_settings_from_args(args), target=args.target_config, confirm=args.confirm,
                        confirm_seeds=args.confirm_seeds, confirm_fidelity=args.confirm_fidelity,
                        confirm_max_seeds=args.confirm_max_seeds, confirm_time_limit_s=args.confirm_time_limit,
                        sampler=args.sampler, early_stopping=args.early_stopping,
                        cpus_per_trial=args.cpus_per_trial,
                        gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent, seed=args.seed,
                        data_dir=args.data_dir, enqueue_baselines=not args.no_baselines,
                        reuse_confirmation=args.reuse_confirmation, rungs=args.rungs,
                        reduction_factor=args.reduction_factor, **data_settings)
    print(repr(result))
    if result.stage_times_s:
        print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.stage_times_s.items()))
    if result.chance:
        print(f"warning: {result.chance}")
    if result.verdict:
        print(f"verdict: {result.verdict}")
        rho = result.proxy_rank_correlation
        if rho is not None:
            print(f"proxy vs confirmation rank correlation (Spearman, {result.proxy_ranked} policies): {rho:.2f}")
        for rung in result.rung_correlations:
            rho = "n/a" if rung["spearman"] is None else f"{rung['spearman']:.2f}"
            print(f"  at {rung['cost']:g} of the target's cost: {rho} over {rung['policies']} confirmed policies")
    if result.policy_path:
        # the same data (size, held-out test split) and target as the search, or the policy is not for it
        same = "".join(f" --{k.replace('_', '-')} {v}" for k, v in data_settings.items())
        if args.target_config:
            same += f" --config {args.target_config}"
        print(f"policy: {result.policy_path}\nretrain with: autosoft train --dataset {args.dataset}{same} "
              f"--policy {result.policy_path}")
    if not result.complete:
        print(f"stopped after {result.finished}/{result.budget} trials; continue with the same command and --resume",
              file=sys.stderr)
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="autosoft", description="Search augmentation policies jointly with soft targets.")
    parser.add_argument("--version", action="version", version=f"autosoft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    show = sub.add_parser("show", help="print ops, search spaces or a policy (file or built-in name)")
    show.add_argument("what", help="ops | spaces | policies | a built-in policy name | a policy JSON file")
    show.add_argument("--wide", action="store_true", help="with 'ops': the wide (TrivialAugmentWide) ranges")
    show.add_argument("--json", action="store_true", help="also print the policy's JSON form")
    show.add_argument("--preview", metavar="PNG", help="write a grid of images under several draws of the policy")
    show.add_argument("--dataset", default="cifar10", help="data set for --preview (default cifar10)")
    show.add_argument("--image-size", type=int, help="--preview at this square size, as training would see it")
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
    add_image_flags(tr)
    add_data_flags(tr)
    tr.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="evaluate a finished or interrupted run directory on its test split")
    ev.add_argument("--checkpoint", required=True, help="run directory written by 'autosoft train'")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--data-dir", default=os.environ.get("AUTOSOFT_DATA"))
    ev.set_defaults(func=_eval)

    _add_search_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()  # a process starts here: fix malloc's thresholds once (see autosoft.process)
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
