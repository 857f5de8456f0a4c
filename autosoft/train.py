"""The trainer: one function that the CLI, Optuna and Ray Tune all drive.

`train(config, policy, report=...)` trains a model with a policy and calls
``report(epoch, metrics)`` once per epoch. The data set lives on the training
device as one uint8 tensor and is augmented a whole batch at a time (no
DataLoader workers in the hot path). With a run directory, every epoch ends
with an atomic checkpoint, so a killed run continues where it stopped and ends
with the same result as an uninterrupted one with the same seed: every random
draw of epoch e comes from a generator seeded by (seed, e), never from state
that a restart would lose.

The config (`autosoft.config`) and the run folder (`autosoft.rundir`) have modules of
their own; their names are importable from here as well.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch

from autosoft.augment import PolicyAugment, mix_batch
from autosoft.config import FEW_STEPS, SCHEDULES, TrainConfig, check_model, few_steps_warning, resolve_device
from autosoft.data import Dataset, ImageFiles, channel_mean_std, open_split
from autosoft.errors import AutosoftError
from autosoft.files import atomic_write_json
from autosoft.metrics import evaluate, predict_logits, validation_metrics
from autosoft.models import build_model
from autosoft.policy import Policy, load_policy
from autosoft.process import keep_freed_memory
from autosoft.rundir import RunDir, environment_info, with_defaults, write_plots
from autosoft.soft_targets import smooth_rows, soft_target_cross_entropy
from autosoft.splits import split_indices

__all__ = [
    # the loop
    "Report", "TrainingDiverged", "TrainData", "open_train_split", "load_data", "lr_factor", "Normalize",
    "make_predict", "train",
    # at home in autosoft.config and autosoft.rundir, importable from here as they always were
    "FEW_STEPS", "SCHEDULES", "TrainConfig", "check_model", "few_steps_warning", "resolve_device",
    "RunDir", "environment_info", "with_defaults", "write_plots",
]

Report = Callable[[int, dict], None]


class TrainingDiverged(AutosoftError):
    """The loss became NaN or infinite (usually: the learning rate is too high)."""


class TrainData(NamedTuple):
    train: Dataset
    val: Dataset | None
    test: Dataset | None
    test_split: dict | None = None   # a test split carved out of an image folder: which files (test_split.json)


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


# ---- learning-rate schedule -------------------------------------------------------
def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the peak lr at `step`: linear warm-up, then linear (onecycle) or cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return max(1.0 - progress, 0.0)


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
