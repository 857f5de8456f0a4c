"""The train config: its fields, their checks, and what they mean before anything is trained.

`TrainConfig` is every setting of one training run (`autosoft train`, a search's proxy and
confirmation runs), `validate` checks each value; `resolve_device`, `check_model` and
`few_steps_warning` check the device, the model and the number of optimizer steps a config
implies, before anything is loaded or written.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from autosoft.data import TEST_FRACTION
from autosoft.errors import AutosoftError
from autosoft.models import MIN_IMAGE_SIZE, build_model

SCHEDULES = ("onecycle", "cosine")
# Fewer optimizer steps than this in a whole run often end near chance (measured: the defaults on
# the 1,438 train images of sklearn's digits, 50 steps, 20% top-1); the derived search proxy keeps
# at least as many (autosoft/search/proxy.py MIN_STEPS).
FEW_STEPS = 150


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
