"""The trainer: one function that the CLI, Optuna and Ray Tune all drive.

`train(config, policy, report=...)` trains a model with a policy and calls
``report(epoch, metrics)`` once per epoch. The data set lives on the training
device as one uint8 tensor and is augmented a whole batch at a time (no
DataLoader workers in the hot path). With a run directory, every epoch ends
with an atomic checkpoint, so a killed run continues where it stopped and ends
with the same result as an uninterrupted one with the same seed: every random
draw of epoch e comes from a generator seeded by (seed, e), never from state
that a restart would lose.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch

from autosoft import __version__
from autosoft.augment import PolicyAugment, mix_batch
from autosoft.data import TEST_FRACTION, Dataset, ImageFiles, channel_mean_std, open_split, split_indices
from autosoft.errors import AutosoftError
from autosoft.files import atomic_path, atomic_write_json, atomic_write_text
from autosoft.metrics import evaluate, predict_logits, validation_metrics
from autosoft.models import MIN_IMAGE_SIZE, build_model
from autosoft.policy import Policy, load_policy, same_training
from autosoft.process import keep_freed_memory
from autosoft.soft_targets import smooth_rows, soft_target_cross_entropy

Report = Callable[[int, dict], None]
SCHEDULES = ("onecycle", "cosine")
# Fewer optimizer steps than this in a whole run often end near chance (measured: the defaults on
# the 1,438 train images of sklearn's digits, 50 steps, 20% top-1); the derived search proxy keeps
# at least as many (autosoft/search/proxy.py MIN_STEPS).
FEW_STEPS = 150


class TrainingDiverged(AutosoftError):
    """The loss became NaN or infinite (usually: the learning rate is too high)."""


@dataclass
class TrainConfig:
    dataset: str = "cifar10"
    image_size: int | None = None   # square side in px the images are resized to (None: CIFAR/SVHN 32, folders 32)
    test_fraction: float = TEST_FRACTION  # an image folder without train/ and test/: held out as its test split
    model: str = "proxy"
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.2                 # peak learning rate, reached after warm-up
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    schedule: str = "onecycle"      # onecycle: linear up then linear down; cosine: warm-up then cosine
    warmup_epochs: float = 1.0
    weak_aug_epochs: int = 0        # last N epochs with augmentation strength / 1000 (Soft Augmentation recipe)
    mixup_alpha: float = 0.0        # > 0: MixUp with lam ~ Beta(alpha, alpha) on top of the policy's rows
    cutmix_alpha: float = 0.0       # > 0: CutMix likewise; with both, each batch picks one at random
    train_size: int | None = None   # stratified subset of the train split (None = all of it)
    val_size: int = 0               # held out of the train split, stratified; never the test split
    val_every: int = 1              # validate every N epochs and after the last; 0: after the last only
    seed: int = 0
    split_seed: int | None = None   # seeds the validation split and train subset (None: `seed`); a search's
                                    # confirmation fixes it so seeds change the model and draws, not the split
    device: str = "auto"            # auto = cuda if available, else cpu
    threads: int | None = None      # CPU threads for torch (None = torch's default)
    data_dir: str | None = None     # data root (else $AUTOSOFT_DATA)
    download: bool = False
    eval_test: bool = True          # evaluate on the test split at the end

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise AutosoftError(f"train config: unknown field {unknown[0]!r}; allowed: {', '.join(sorted(names))}")
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs", "an integer >= 1"),
            (self.batch_size >= 1, "batch_size", "an integer >= 1"),
            (self.lr > 0, "lr", "a number > 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing", "a number in [0, 1)"),
            (self.schedule in SCHEDULES, "schedule", "one of " + ", ".join(SCHEDULES)),
            (0 <= self.weak_aug_epochs <= self.epochs, "weak_aug_epochs", f"an integer in [0, epochs={self.epochs}]"),
            (self.mixup_alpha >= 0, "mixup_alpha", "a number >= 0"),
            (self.cutmix_alpha >= 0, "cutmix_alpha", "a number >= 0"),
            (self.val_size >= 0, "val_size", "an integer >= 0"),
            (self.val_every >= 0, "val_every", "an integer >= 0 (0: validate after the last epoch only)"),
            (self.train_size is None or self.train_size >= 2, "train_size", "an integer >= 2 or None"),
            (self.split_seed is None or (isinstance(self.split_seed, int) and not isinstance(self.split_seed, bool)),
             "split_seed", "an integer or None (None: the split follows seed)"),
            (self.image_size is None or (isinstance(self.image_size, int) and not isinstance(self.image_size, bool)
                                         and self.image_size >= 1), "image_size", "an integer >= 1 or None"),
            (isinstance(self.test_fraction, (int, float)) and 0 <= self.test_fraction < 1, "test_fraction",
             "a fraction in [0, 1) (0: an image folder without train/ and test/ has no test split)"),
        ]
        for ok, name, allowed in checks:
            if not ok:
                raise AutosoftError(f"train config {name}: expected {allowed}, got {getattr(self, name)!r}")


# Proxy tasks for search. cpu: sized so a budget-200 search fits in about an hour on
# 2 cores (a trial is seconds); gpu: the AutoAugment literature's WRN-40-2 on 4,000 images.
PROXY_PRESETS: dict[str, dict] = {
    "cpu": {"model": "proxy", "model_kwargs": {"width": 16}, "epochs": 15, "batch_size": 256, "lr": 0.2,
            "warmup_epochs": 1, "train_size": 5000, "val_size": 1000, "eval_test": False},
    "gpu": {"model": "wrn40_2", "epochs": 40, "batch_size": 128, "lr": 0.1, "warmup_epochs": 2,
            "train_size": 4000, "val_size": 5000, "eval_test": False},
}


class TrainData(NamedTuple):
    train: Dataset
    val: Dataset | None
    test: Dataset | None
    test_split: dict | None = None   # a test split carved out of an image folder: which files (test_split.json)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AutosoftError(f"unknown device {name!r}; allowed: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AutosoftError(f"device {name!r} requested but no CUDA GPU is available; use --device cpu")
    return device


def open_train_split(config: TrainConfig):
    """The config's train split: a `Dataset`, or for an image folder its `ImageFiles` (listed,
    not decoded; `load_data` decodes only the images it keeps). Missing data fails here."""
    return open_split(config.dataset, "train", data_dir=config.data_dir, download=config.download,
                      image_size=config.image_size, test_fraction=config.test_fraction)


def load_data(config: TrainConfig, *, train_set: "Dataset | ImageFiles | None" = None) -> TrainData:
    """The train / validation / test sets the config asks for (validation comes out of train).

    `train_set`: the config's whole train split (`open_train_split`), when the caller has it already.
    An image folder is decoded only for the images kept (`--train-size` bounds the memory).
    """
    source = train_set if train_set is not None else open_train_split(config)
    train_idx, val_idx = split_indices(source.labels, val_size=config.val_size, train_size=config.train_size,
                                       seed=config.seed if config.split_seed is None else config.split_seed)
    val_set = source.subset(val_idx) if val_idx is not None else None
    if train_idx is not None:
        train_set = source.subset(train_idx)
    else:  # all of it: a Dataset as it is (no copy), an image folder decoded whole
        train_set = source.subset(None) if isinstance(source, ImageFiles) else source
    test_set = test_split = None
    if config.eval_test:
        test = open_split(config.dataset, "test", data_dir=config.data_dir, download=config.download,
                          image_size=config.image_size, test_fraction=config.test_fraction)
        test_set = test.subset(None) if isinstance(test, ImageFiles) else test
    carved = source.carved if isinstance(source, ImageFiles) else None
    if carved is not None:  # held out whether or not this run evaluates: never trained on
        test_split = {"dataset": config.dataset, **carved}
    return TrainData(train_set, val_set, test_set, test_split)


def check_model(config: TrainConfig, num_classes: int, in_channels: int = 3, image_size: int | None = None) -> None:
    """Build the config's model without allocating its weights (on the meta device): an unknown
    model or option, or images too small for it, fail here, before anything is written."""
    smallest, why = MIN_IMAGE_SIZE.get(config.model, (1, ""))
    if image_size is not None and image_size < smallest:
        raise AutosoftError(f"model {config.model!r} needs images of at least {smallest}x{smallest} px ({why}); "
                            f"got {image_size}x{image_size}; raise --image-size, or use another model")
    try:
        with torch.device("meta"):
            build_model(config.model, num_classes, in_channels=in_channels, **config.model_kwargs)
    except AutosoftError:
        raise
    except Exception as e:  # e.g. a width the layers cannot take
        raise AutosoftError(f"model {config.model!r} with options {config.model_kwargs}: cannot build it "
                            f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})") from None


def few_steps_warning(config: TrainConfig, n_train: int, *, flags: str = "--batch-size / --lr / --epochs") -> str | None:
    """What to tell the user when the config trains too few optimizer steps on `n_train`
    images to learn (small data at the default batch of 256), else None."""
    per_epoch = max(1, n_train // config.batch_size)
    total = per_epoch * config.epochs
    if total >= FEW_STEPS:
        return None
    batch = min(2 ** max(4, math.floor(math.log2(max(n_train * config.epochs / FEW_STEPS, 1.0)))),
                config.batch_size // 2)
    if batch >= 16:
        advice = f"a smaller batch (e.g. {batch}, lr {config.lr * batch / config.batch_size:g}) or more epochs"
    else:
        advice = f"more epochs (e.g. {math.ceil(FEW_STEPS / per_epoch)})"
    return (f"this trains only {total} optimizer steps ({n_train} images / batch {config.batch_size} = {per_epoch} "
            f"per epoch x {config.epochs} epochs), which often ends near chance; for small data use {advice} "
            f"({flags})")


# ---- learning-rate schedule -------------------------------------------------------
def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the peak lr at `step`: linear warm-up, then linear (onecycle) or cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return max(1.0 - progress, 0.0)


# ---- run directory ----------------------------------------------------------------
def environment_info(device: torch.device) -> dict:
    import torchvision
    info = {"autosoft": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu_threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class RunDir:
    """config.json, policy.json, metrics.jsonl, checkpoint.pt, final.json in one folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.policy = self.path / "policy.json"
        self.metrics = self.path / "metrics.jsonl"
        self.checkpoint = self.path / "checkpoint.pt"
        self.final = self.path / "final.json"
        self.test_split = self.path / "test_split.json"   # the images carved out of a folder as its test split

    def check(self, config: TrainConfig, policy: Policy) -> bool:
        """Whether this folder can take this run (it writes nothing): True when it holds this very
        run to resume; False when it is new, or left by a run that trained nothing (see
        `trained_nothing`), which this one replaces; else an error."""
        if self.final.exists():
            raise AutosoftError(f"{self.path} already holds a finished run ({self.final.name}); "
                                "choose another --out, or delete it to train again")
        if not self.config.exists():
            if self.path.exists() and any(self.path.iterdir()):
                raise AutosoftError(f"{self.path} exists and is not an autosoft run directory; choose another --out")
            return False
        if self.records(config, policy):
            return True
        if self.trained_nothing():  # e.g. a config.json cut short
            return False
        raise AutosoftError(f"{self.path} holds an unfinished run with a different config or policy; "
                            "choose another --out, or rerun with the same settings to resume")

    def records(self, config: TrainConfig, policy: Policy) -> bool:
        """Whether config.json records this very run: its train config and policy (provenance aside)."""
        try:
            saved = json.loads(self.config.read_text())
        except (OSError, json.JSONDecodeError):
            return False
        return (isinstance(saved, dict) and with_defaults(saved.get("train")) == config.to_dict()
                and same_training(saved.get("policy"), policy))

    def prepare(self, config: TrainConfig, policy: Policy, device: torch.device) -> dict | None:
        """Create the folder, or check it belongs to this run; returns the checkpoint to resume from."""
        if self.check(config, policy):
            if self.checkpoint.exists():
                return torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            return None
        self.path.mkdir(parents=True, exist_ok=True)
        record = {"train": config.to_dict(), "policy": policy.to_dict(), "environment": environment_info(device)}
        atomic_write_json(self.config, record)
        policy.save(self.policy)
        return None

    def trained_nothing(self) -> bool:
        """Only a config and a policy (and no epoch logged): what a run that failed before its first
        epoch leaves. Anything else (a checkpoint, a metrics line, weights, results) is the user's."""
        entries = [p for p in self.path.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp"))]
        ours = (self.config.name, self.policy.name, self.metrics.name, self.test_split.name)
        if any(p.name not in ours for p in entries):
            return False
        return not (self.metrics.exists() and self.metrics.read_text().strip())

    def save_checkpoint(self, state: dict) -> None:
        with atomic_path(self.checkpoint) as tmp:
            torch.save(state, tmp)

    def append_metrics(self, metrics: dict) -> None:
        with self.metrics.open("a") as f:
            f.write(json.dumps(metrics) + "\n")

    def history(self, up_to_epoch: int) -> list[dict]:
        """Metrics lines of epochs < up_to_epoch (a kill between the log and the checkpoint leaves extras)."""
        if not self.metrics.exists():
            return []
        rows = [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]
        return [r for r in rows if r["epoch"] < up_to_epoch]

    def rewrite_metrics(self, rows: list[dict]) -> None:
        atomic_write_text(self.metrics, "".join(json.dumps(r) + "\n" for r in rows))


def with_defaults(saved) -> dict | None:
    """A saved train config with the fields added since it was written at their defaults, so
    that a run (or a search, `autosoft.search.settings`) of an older autosoft still resumes
    (a new field's default changes nothing)."""
    if not isinstance(saved, dict):
        return saved
    return {**TrainConfig().to_dict(), **saved}


# ---- the model as a function of uint8 images -------------------------------------
class Normalize(torch.nn.Module):
    """uint8 (B, C, H, W) -> normalised float, in channels_last (faster convolutions on CPU and GPU)."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)


def make_predict(model: torch.nn.Module, normalize: Normalize, device: torch.device):
    """A callable uint8 images -> float32 logits, in eval mode, on the model's device."""
    @torch.no_grad()
    def predict(images: torch.Tensor) -> torch.Tensor:
        model.eval()
        with _autocast(device):
            return model(normalize(images.to(device))).float()
    return predict


def _draw_mix(config: TrainConfig, rng: np.random.Generator) -> tuple[str, dict] | None:
    """This batch's MixUp/CutMix draw: the kind (one at random when both are on) and its parameters."""
    alphas = {k: a for k, a in (("mixup", config.mixup_alpha), ("cutmix", config.cutmix_alpha)) if a > 0}
    if not alphas:
        return None
    kind = list(alphas)[int(rng.integers(len(alphas)))]
    params = {"lam": float(rng.beta(alphas[kind], alphas[kind]))}
    if kind == "cutmix":
        params["box_center"] = (float(rng.random()), float(rng.random()))
    return kind, params


def _autocast(device: torch.device):
    # bf16 autocast on CUDA: mixed precision without a loss scaler; full fp32 on the CPU.
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


# ---- training --------------------------------------------------------------------
def train(config: TrainConfig, policy: Policy | str, *, run_dir: str | Path | None = None,
          report: Report | None = None, quiet: bool = True, data: TrainData | None = None,
          warn: Callable[[str], None] | None = None) -> dict:
    """Train `config.model` with `policy`; returns the final metrics.

    With `run_dir`, rerunning into the same folder resumes from its last checkpoint.
    `warn` is told, in words, about a config that will likely learn nothing (too few steps).
    """
    keep_freed_memory()  # a training process: fix malloc's thresholds before the first batch
    config.validate()
    policy = load_policy(policy)
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    run = RunDir(run_dir) if run_dir is not None else None
    if run:
        run.check(config, policy)  # a folder this run cannot use: say so before loading anything
    # Everything that can fail on the user's input (the data, the splits, the model) comes
    # before the run directory is written: a run that cannot start leaves nothing behind.
    data = data or load_data(config)
    train_set = data.train.to(device)
    num_classes = train_set.num_classes
    check_model(config, num_classes, train_set.images.shape[1], train_set.images.shape[-1])
    if warn is not None and (message := few_steps_warning(config, len(train_set))):
        warn(message)
    torch.manual_seed(config.seed)  # model initialisation
    model = build_model(config.model, num_classes, in_channels=train_set.images.shape[1], **config.model_kwargs)
    model = model.to(device).to(memory_format=torch.channels_last)
    mean, std = channel_mean_std(data.train)
    normalize = Normalize(mean, std).to(device)
    augment = PolicyAugment(policy, num_classes)
    decay, no_decay = [], []
    for p in model.parameters():  # no weight decay on norms and biases
        (decay if p.ndim > 1 else no_decay).append(p)
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": config.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    checkpoint = run.prepare(config, policy, device) if run else None
    if run and data.test_split is not None:
        atomic_write_json(run.test_split, data.test_split)

    steps_per_epoch = len(train_set) // config.batch_size or 1  # drop the last partial batch
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = min(int(config.warmup_epochs * steps_per_epoch), total_steps - 1)

    start_epoch, history = 0, []
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_epoch = checkpoint["epoch"] + 1
    if run:  # a kill between an epoch's metrics line and its checkpoint leaves a line to drop
        history = run.history(start_epoch)
        run.rewrite_metrics(history)

    predict = make_predict(model, normalize, device)
    progress = None
    if not quiet:
        from tqdm.auto import tqdm
        progress = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch, unit="step",
                        dynamic_ncols=True, desc=f"{config.model}/{policy.name or policy.kind}")
    try:
        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            epoch_seed = config.seed * 100_003 + epoch
            gen = torch.Generator().manual_seed(epoch_seed)
            mix_rng = np.random.default_rng(epoch_seed)  # Beta draws: torch has no seeded Beta sampler
            augment.strength = 1e-3 if epoch >= config.epochs - config.weak_aug_epochs else 1.0
            order = torch.randperm(len(train_set), generator=gen).to(device)
            model.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device)
            seen = 0
            for i in range(steps_per_epoch):
                step = epoch * steps_per_epoch + i
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * lr_factor(step, total_steps, warmup_steps, config.schedule)
                idx = order[i * config.batch_size:(i + 1) * config.batch_size]
                labels = train_set.labels[idx]
                batch = augment(train_set.images[idx], labels, generator=gen)
                targets = batch.targets
                if config.label_smoothing:
                    targets = smooth_rows(targets, config.label_smoothing)
                x, weights = normalize(batch.images), batch.weights
                mix = _draw_mix(config, mix_rng)
                if mix is not None:
                    kind, params = mix
                    x, targets, weights = mix_batch(x, targets, weights, kind=kind, **params)
                with _autocast(device):
                    logits = model(x)
                loss = soft_target_cross_entropy(logits, targets, weights)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(idx)
                correct += (logits.detach().argmax(1) == labels).sum()
                seen += len(idx)
                if progress is not None and (i % 10 == 0 or i == steps_per_epoch - 1):
                    progress.update(i + 1 - (progress.n - epoch * steps_per_epoch))
                    progress.set_postfix(epoch=f"{epoch + 1}/{config.epochs}",
                                         loss=f"{loss.item():.3f}", acc=f"{correct.item() / seen:.3f}")
            train_loss = loss_sum.item() / seen
            if not math.isfinite(train_loss):
                raise TrainingDiverged(f"training diverged in epoch {epoch + 1} (loss {train_loss}); "
                                       f"lower the learning rate (lr={config.lr})")
            metrics: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss,
                                       "train_acc": correct.item() / seen,
                                       "lr": optimizer.param_groups[0]["lr"]}
            if data.val is not None and _validates(config, epoch):
                metrics.update(validation_metrics(predict, data.val.images, data.val.labels))
            metrics["epoch_time_s"] = time.perf_counter() - t0
            history.append(metrics)
            if run:
                run.append_metrics(metrics)
                run.save_checkpoint({"epoch": epoch, "model": model.state_dict(),
                                     "optimizer": optimizer.state_dict()})
            if report is not None:
                report(epoch, metrics)
    finally:
        if progress is not None:
            progress.close()

    final = {"epochs": config.epochs, "train_images": len(train_set),
             "train_time_s": sum(m["epoch_time_s"] for m in history)}
    if data.val is not None:
        final.update({k: v for k, v in history[-1].items() if k.startswith("val_")})
    reliability = None
    if data.test is not None:
        val_logits = predict_logits(predict, data.val.images) if data.val is not None else None
        test_report = evaluate(predict, data.test.images, data.test.labels, val_logits=val_logits,
                               val_labels=data.val.labels if data.val is not None else None, seed=config.seed)
        reliability = test_report.pop("reliability")
        final.update(test_report)
        final["test_pixels_sha256"] = data.test.pixels_sha256()  # which copy of the test split
    if run:
        torch.save(model.state_dict(), run.path / "model.pt")
        write_plots(run.path, history, reliability)
        atomic_write_json(run.final, final)
    return final


def _validates(config: TrainConfig, epoch: int) -> bool:
    """Whether epoch `epoch` (0-based) ends with a validation pass: the last one always does."""
    last = epoch == config.epochs - 1
    return last or (config.val_every > 0 and (epoch + 1) % config.val_every == 0)


def write_plots(folder: Path, history: list[dict], reliability: dict | None) -> None:
    """Training curves and the test reliability diagram, as PNGs a person can look at."""
    from autosoft import plots
    if history:
        plots.training_curves(history, folder / "training_curves.png")
    if reliability is not None:
        plots.reliability_diagram_from_bins(reliability, folder / "reliability.png", title="test set")


def evaluate_run(run_dir: str | Path, *, data_dir: str | None = None, device: str = "auto") -> dict:
    """Evaluate a run directory's model (final weights, else the last checkpoint) on its test split.

    Temperature is fitted on the run's own validation split, rebuilt from its config.
    Writes eval.json and reliability.png into the run directory.
    """
    run = RunDir(run_dir)
    if not run.config.exists():
        raise AutosoftError(f"{run.path} is not an autosoft run directory (no config.json); "
                            "pass the --out folder of 'autosoft train'")
    record = json.loads(run.config.read_text())
    config = TrainConfig.from_dict(record["train"])
    if data_dir is not None:
        config.data_dir = data_dir
    config.eval_test = True
    dev = resolve_device(device)
    weights_path = run.path / "model.pt"
    if weights_path.exists():
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    elif run.checkpoint.exists():
        state = torch.load(run.checkpoint, map_location="cpu", weights_only=True)["model"]
    else:
        raise AutosoftError(f"{run.path} has no model.pt or checkpoint.pt yet; train for at least one epoch")
    data = load_data(config)
    if run.test_split.exists() and data.test_split is not None:
        recorded = json.loads(run.test_split.read_text())
        if recorded.get("test_files") != data.test_split["test_files"]:
            raise AutosoftError(f"the test split carved from {data.test_split['folder']} is not the one recorded in "
                                f"{run.test_split} (images added or removed since training?); evaluating would mix "
                                "training images into the test split; restore the folder or train again")
    model = build_model(config.model, data.train.num_classes, in_channels=data.train.images.shape[1],
                        **config.model_kwargs)
    model.load_state_dict(state)
    model = model.to(dev).to(memory_format=torch.channels_last)
    normalize = Normalize(*channel_mean_std(data.train)).to(dev)
    predict = make_predict(model, normalize, dev)
    val_logits = predict_logits(predict, data.val.images) if data.val is not None else None
    report = evaluate(predict, data.test.images, data.test.labels, val_logits=val_logits,
                      val_labels=data.val.labels if data.val is not None else None, seed=config.seed)
    write_plots(run.path, [], report.pop("reliability"))
    report["test_pixels_sha256"] = data.test.pixels_sha256()
    atomic_write_json(run.path / "eval.json", report)
    return report
