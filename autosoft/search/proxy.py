"""The proxy task, derived from the target: the training the searched policy is for.

A search knows its target (`autosoft train`'s defaults for the data set, or a target config
file) and derives the proxy from it by fixed rules, so that the proxy ranks policies the way
the target would: the same model, optimizer and schedule (its epochs: each image is seen as
often as in the target) on a fraction of its images, the target's number of optimizer steps
(enough whatever the data set's size), and a validation split large enough that its noise
stays below the differences being ranked. `experiments/proxy_fidelity.py` measures how well candidate rules rank a fixed
panel of policies (Spearman against the target) and what they cost; the numbers behind the
rules below are in `experiments/results/proxy_fidelity/fidelity.md`.

Every piece of proxy knowledge lives here: the rules (`derive_proxy`), the fixed presets a
user may pick instead (`PROXY_PRESETS`), the proxy's config made from either with the user's
overrides (`proxy_config`), the confirmation runs' config (`confirmation_config`), the
defaults of the confirmation stage and early stopping, and the check that a proxy learned
anything (`chance_note`).

>>> p, notes = derive_proxy({"epochs": 40, "batch_size": 256, "lr": 0.2, "warmup_epochs": 2,
...                          "train_size": 5000, "val_size": 1000}, n_train=50000)
>>> p["epochs"], p["train_size"], p["val_size"], p["batch_size"], p["lr"], round(p["warmup_epochs"], 3)
(40, 1250, 5000, 64, 0.05, 2.0)
>>> p, notes = derive_proxy({"epochs": 10, "batch_size": 256, "lr": 0.2, "warmup_epochs": 1,
...                          "train_size": None, "val_size": 0}, n_train=1442)
>>> p["batch_size"], p["lr"], p["val_size"], p["train_size"], p["epochs"]
(64, 0.05, 144, 1298, 10)
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

from autosoft.config import TrainConfig
from autosoft.data import TEST_FRACTION
from autosoft.errors import AutosoftError

PROXY_COST = 0.25             # one trial costs about this fraction of one target run (images seen)
PROXY_VAL_SHARE = 0.1         # validation: this share of the train split ...
PROXY_VAL_RANGE = (100, 5000)  # ... within these bounds (an accuracy's std error is ~0.65 points at 5,000)
MIN_BATCH = 16
MIN_STEPS = 150               # optimizer steps a trial gets at least, even past the cost fraction
# device -> (top-K searched policies, seeds each starts the race with, seed cap). On CPU the
# CIFAR-10 budget-200 search took 5,122 s of trials and 1,430 s for 8 policies x 2 seeds
# (experiments/results/search_cifar10_exact/search-joint/wall_times.jsonl): a race that gives
# the two or three policies within noise of the best 2 more seeds each keeps it near 2 hours.
CONFIRM_DEFAULTS = {"cpu": (3, 2, 4), "gpu": (5, 3, 6)}
# The one validation split of every confirmation run (`TrainConfig.split_seed`), whatever the
# run's or the search's seed: seeds then change the model and the augmentation draws only, so
# policies are compared paired on the same images; every search aimed at a target shares it
# (their baselines' runs are reused) and it is not the proxy's split, which the trials were
# selected on (the proxy's follows the search seed, a small number).
CONFIRM_SPLIT_SEED = 1_000_003
# Early stopping. On the fidelity panel, the proxies' validation accuracy at a third and at
# half of their schedule ranked policies against the target's order (negative Spearman on
# the first policies measured), so by default every trial runs its whole (already compressed)
# schedule; "asha" puts its first rung at ASHA_GRACE of the schedule.
EARLY_STOPPING = ("off", "asha")   # the first is the default
ASHA_GRACE = 2 / 3

# Proxy tasks for search. cpu: sized so a budget-200 search fits in about an hour on
# 2 cores (a trial is seconds); gpu: the AutoAugment literature's WRN-40-2 on 4,000 images.
PROXY_PRESETS: dict[str, dict] = {
    "cpu": {"model": "proxy", "model_kwargs": {"width": 16}, "epochs": 15, "batch_size": 256, "lr": 0.2,
            "warmup_epochs": 1, "train_size": 5000, "val_size": 1000, "eval_test": False},
    "gpu": {"model": "wrn40_2", "epochs": 40, "batch_size": 128, "lr": 0.1, "warmup_epochs": 2,
            "train_size": 4000, "val_size": 5000, "eval_test": False},
}


def target_config(dataset: str, target=None, *, data_dir=None, image_size: int | None = None,
                  test_fraction: float | None = None) -> dict:
    """The target TrainConfig as a dict: `autosoft train`'s defaults for `dataset`, a config
    file's path, or a dict of TrainConfig fields. The search's data set and data folder win, and
    its image size and test fraction where given (None: the target's own)."""
    if target is None:
        fields = {}
    elif isinstance(target, dict):
        fields = dict(target)
    else:
        path = Path(target)
        try:
            fields = json.loads(path.read_text())
        except OSError as e:
            raise AutosoftError(f"--target-config {path}: cannot read it ({e.strerror})") from None
        except json.JSONDecodeError as e:
            raise AutosoftError(f"--target-config {path}: invalid JSON at line {e.lineno} ({e.msg})") from None
        if not isinstance(fields, dict):
            raise AutosoftError(f"--target-config {path}: expected a JSON object of train settings")
    given = fields.get("dataset")
    if given is not None and given != dataset:
        raise AutosoftError(f"the target config trains on {given!r} but the search is on {dataset!r}; "
                            "use the same data set")
    fields.update(dataset=dataset, data_dir=None if data_dir is None else str(data_dir))
    fields.update({k: v for k, v in (("image_size", image_size), ("test_fraction", test_fraction)) if v is not None})
    config = TrainConfig.from_dict(fields)
    config.validate()
    return config.to_dict()


def derive_proxy(target: dict, n_train: int, *, cost: float = PROXY_COST) -> tuple[dict, list[str]]:
    """The proxy's TrainConfig fields for `target` on a train split of `n_train` images, and
    the rules that changed something, in words (search.json keeps them)."""
    notes: list[str] = []
    lo, hi = PROXY_VAL_RANGE
    val = int(min(hi, max(lo, PROXY_VAL_SHARE * n_train)))
    if val > n_train // 2:
        raise AutosoftError(f"the train split has {n_train} images: too few to hold out {val} for validating "
                            f"the trials; add data, or set --val-size and --train-size yourself")
    target_train = min(target.get("train_size") or n_train, n_train - (target.get("val_size") or 0))
    target_steps_per_epoch = max(1, target_train // target["batch_size"])
    full = min(n_train - val, target_train)
    # Fewer images, not fewer epochs. Strong augmentation pays only when each image is seen
    # many times: on the fidelity panel, the table target's epochs cut 4x ranked policies with
    # Spearman 0.58 against the target (AutoAugment and RandAugment below the baseline, above it
    # at the target), its epochs kept on a quarter of its images with 0.84, at the same cost.
    epochs = target["epochs"]
    train_n = min(full, max(int(cost * target_train), 2 * MIN_BATCH))
    # The target's number of optimizer steps: the batch shrinks with the images (a power of two,
    # the lr scaled alike). On the fidelity panel, the table regime's proxy at its own batch
    # (190 steps) ranked policies against the target's order; with batch 64 (790 steps), with it.
    target_steps = target["epochs"] * target_steps_per_epoch
    batch = _power_of_two_at_most(train_n * epochs / target_steps)
    batch = max(MIN_BATCH, min(target["batch_size"], batch))
    if epochs * math.ceil(train_n / batch) < MIN_STEPS:  # too few steps to learn anything: all the data
        train_n = full
        epochs = max(epochs, math.ceil(MIN_STEPS / math.ceil(train_n / batch)))
        notes.append(f"{epochs} epochs of {train_n} images: at least {MIN_STEPS} optimizer steps per trial, "
                     f"even past {cost:g} of the target's cost")
    elif train_n < full:
        notes.append(f"train subset of {train_n} images at the target's {epochs} epochs, so that a trial costs "
                     f"{cost:g} of the target")
    if batch != target["batch_size"]:
        notes.append(f"batch {target['batch_size']} -> {batch}: about the target's {target_steps} optimizer steps "
                     f"(lr scaled alike)")
    scale = epochs / target["epochs"]
    # Warm-up keeps the target's number of steps (a shorter one let the lr jump to its peak in
    # 9 steps and cost a width-32 net half its accuracy), at most a quarter of the schedule.
    warmup_steps = target.get("warmup_epochs", 1.0) * target_steps_per_epoch
    warmup = min(warmup_steps / max(1, train_n // batch), epochs / 4)
    proxy = {**target, "epochs": epochs, "train_size": train_n, "val_size": val, "batch_size": batch,
             "lr": target["lr"] * batch / target["batch_size"],
             "warmup_epochs": warmup,
             "weak_aug_epochs": min(epochs, round(target.get("weak_aug_epochs", 0) * scale)),
             "eval_test": False}
    return proxy, notes


# What a rung of successive halving changes in the proxy (`rung_config`): the fields derive_proxy
# sizes from the cost, but for the validation split, which stays the trials'.
RUNG_FIELDS = ("epochs", "train_size", "batch_size", "lr", "warmup_epochs", "weak_aug_epochs")
REDUCTION_FACTOR = 4          # successive halving: the best 1/4 of a rung go on to the next (Ray's ASHA default)


def rung_config(proxy: dict, target: dict, n_train: int, cost: float) -> tuple[dict, list[str]]:
    """The proxy's config with its train subset (and what follows from it) sized for `cost`
    (`derive_proxy`), on the proxy's own validation split: a rung of successive halving, or a
    fidelity study's share. Returns the config and the sizing rules that fired, in words."""
    derived, notes = derive_proxy(target, n_train, cost=cost)
    split_seed = proxy["seed"] if proxy.get("split_seed") is None else proxy["split_seed"]
    return {**proxy, **{k: derived[k] for k in RUNG_FIELDS}, "split_seed": split_seed, "eval_test": False}, notes


def proxy_config(dataset: str, proxy: str | dict = "auto", *, target: dict, n_train: int, seed: int = 0,
                 data_dir=None, threads: int | None = None, early_stopping: str = "off") -> tuple[dict, list[str]]:
    """The proxy task's TrainConfig as a dict, and how it was made, in words.

    "auto" derives it from `target` (`derive_proxy`); "cpu" / "gpu" start from a fixed
    preset (`PROXY_PRESETS`) instead. `proxy` may be a dict of overrides with an optional "preset" key.
    """
    overrides = dict(proxy) if isinstance(proxy, dict) else {"preset": proxy}
    preset = overrides.pop("preset", "auto")
    cost = overrides.pop("cost", None)
    if cost is not None and preset != "auto":
        raise AutosoftError(f"proxy cost: sizes the proxy derived from the target; the {preset!r} preset has "
                            "its own size (drop --proxy-cost, or use --proxy auto)")
    if preset == "auto":
        cost = check_cost(PROXY_COST if cost is None else cost)
        base, notes = derive_proxy(target, n_train, cost=cost)
        notes = ["derived from the target" + ("" if cost == PROXY_COST else f" at {cost:g} of its cost")] + notes
    elif preset in PROXY_PRESETS:
        base, notes = PROXY_PRESETS[preset], [f"the {preset!r} preset"]
    else:
        raise AutosoftError(f"unknown proxy preset {preset!r}; allowed: auto (derived from the target), "
                            f"{', '.join(PROXY_PRESETS)}")
    if overrides:
        notes.append("overridden: " + ", ".join(sorted(overrides)))
    # Without early stopping only a trial's final score is used; ASHA scores every epoch.
    if early_stopping == "off":
        base = {**base, "val_every": 0}
        notes.append("validated after the last epoch only")
    elif overrides.get("val_every", 1) != 1:
        raise AutosoftError(f"proxy val_every: early stopping ({early_stopping}) scores every epoch; "
                            f"expected 1, got {overrides['val_every']!r}")
    # The proxy sees the target's images: the same size, the same test split held out (a preset too).
    same_data = {k: target.get(k, default) for k, default in (("image_size", None), ("test_fraction", TEST_FRACTION))}
    for key, value in same_data.items():
        if key in overrides and overrides[key] != value:
            raise AutosoftError(f"proxy {key} {overrides[key]!r} differs from the target's {value!r}: a policy is "
                                f"searched on the images it is for; set it for both with --{key.replace('_', '-')}")
    config = {**base, **overrides, **same_data, "dataset": dataset, "seed": seed, "data_dir": data_dir,
              "eval_test": False}
    if threads is not None:
        config["threads"] = threads
    train_config = TrainConfig.from_dict(config)
    train_config.validate()
    if not train_config.val_size:
        raise AutosoftError("proxy val_size: expected > 0; the search scores on a validation split carved "
                            "from train, never on the test split")
    return train_config.to_dict(), notes


def check_cost(cost) -> float:
    """A trial's share of one target run's cost: a number or a fraction such as "1/16", in (0, 1]."""
    try:
        value = float(Fraction(str(cost).strip()))
    except (ValueError, ZeroDivisionError):
        value = None
    if value is None or not 0 < value <= 1:
        raise AutosoftError(f"proxy cost {cost!r}: expected a share of one target run in (0, 1], "
                            f"such as 0.25 (the default) or 1/16")
    return value


def _power_of_two_at_most(x: float) -> int:
    return 2 ** max(0, math.floor(math.log2(max(x, 1.0))))


def confirmation_config(target: dict, proxy: dict, fidelity: float = 1.0) -> dict:
    """The target with `fidelity` of its epochs, scored on a validation split as large as the
    proxy's, once, after the last epoch (only the final score is compared)."""
    if not 0 < fidelity <= 1:
        raise AutosoftError(f"confirmation fidelity: expected a fraction in (0, 1], got {fidelity!r}")
    epochs = max(1, round(target["epochs"] * fidelity))
    scale = epochs / target["epochs"]
    return {**target, "epochs": epochs, "warmup_epochs": target.get("warmup_epochs", 1.0) * scale,
            "weak_aug_epochs": min(epochs, round(target.get("weak_aug_epochs", 0) * scale)),
            "val_size": max(target.get("val_size") or 0, proxy["val_size"]), "val_every": 0, "eval_test": False,
            "threads": proxy.get("threads")}


def chance_note(best_score: float | None, val_labels, metric: str = "val_acc") -> dict | None:
    """If the best validation accuracy is within noise of chance (or of always predicting the
    majority class), what to tell the user; else None. Any accuracy objective (clean, robust,
    occluded, shifted) is at chance when the proxy learned nothing."""
    import torch

    if not metric.endswith("_acc") or best_score is None or val_labels is None or len(val_labels) == 0:
        return None
    n = len(val_labels)
    counts = torch.bincount(val_labels.cpu())
    chance = max(1.0 / max(int((counts > 0).sum()), 1), counts.max().item() / n)
    noise = 3 * math.sqrt(chance * (1 - chance) / n)   # three standard errors of an accuracy at chance
    if best_score > chance + noise:
        return None
    return {"best": best_score, "chance": chance, "noise": noise, "val_images": n,
            "message": (f"the best trial scored {best_score:.3f}, within noise of chance ({chance:.3f} ± {noise:.3f} "
                        f"on {n} validation images): the proxy learned nothing, so its ranking means nothing. "
                        "Give the target (and so the proxy) more epochs or a smaller batch (--target-config), "
                        "check the labels, or use more data")}
