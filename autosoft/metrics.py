"""Evaluation metrics: pure functions over tensors (CPU or CUDA).

Calibration follows Guo et al. 2017: ECE over 15 equal-width bins of the
maximum probability, L1 gap weighted by bin size (the torchmetrics default).
Bins are (lo, hi], so confidence 1.0 falls in the top bin and a confidence
exactly on an edge falls in the lower bin.

Robustness protocols (fixed, so numbers compare across models and runs):
- occlusion: each test image gets one square patch of fill value 128 whose
  side is round(sqrt(fraction * H * W)), placed uniformly at random fully
  inside the image; positions come from `seed`, drawn once for the whole test
  set, so every model sees the same patches whatever the batch size.
- shift: the whole image content moves by (dx, dy) = (+-p, +-p) pixels, the
  vacated border filled with 128; the score is the mean accuracy over the four
  diagonal directions. By default p is 1/8 and 1/4 of the image width (4 and 8
  px on CIFAR's 32 px), so a shift means the same at any image size.
- on the validation split (every trial and confirmation run, see
  `validation_metrics`): occlusion at VAL_OCCLUSION with patches drawn from a
  fixed seed (so runs on one split see the same patches), and a shift of 1/8
  of the width in which image i moves along diagonal i % 4: one pass instead
  of four, the same expectation as the test protocol's mean.

`predict` arguments are callables mapping a uint8 batch (B, C, H, W) to
logits (B, K); the trainer supplies one that normalises and runs the model.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from autosoft.errors import AutosoftError

Predict = Callable[[torch.Tensor], torch.Tensor]

__all__ = [
    "accuracy",
    "nll",
    "expected_calibration_error",
    "reliability_bins",
    "fit_temperature",
    "occlude",
    "shift",
    "predict_logits",
    "occlusion_accuracy",
    "shift_accuracy",
    "evaluate",
    "validation_metrics",
    "robust_accuracy",
]

# fit_temperature keeps T inside this range: beyond it the data are
# (near-)separable and NLL keeps falling without a meaningful optimum.
_T_MIN, _T_MAX = 1e-2, 1e2


# ----------------------------------------------------------------------------
# Input checks

def _check_pair(scores: torch.Tensor, labels: torch.Tensor, what: str) -> None:
    if scores.ndim != 2:
        raise AutosoftError(f"{what} must be 2-D (N, classes); got shape {tuple(scores.shape)}")
    if labels.ndim != 1 or labels.shape[0] != scores.shape[0]:
        raise AutosoftError(
            f"labels must be 1-D with one entry per row of {what} ({scores.shape[0]}); "
            f"got shape {tuple(labels.shape)}"
        )
    if scores.shape[0] == 0:
        raise AutosoftError(f"{what} is empty; need at least one sample")


def _check_probs(probs: torch.Tensor) -> None:
    # A common mistake is passing logits; rows of probabilities sum to 1.
    row_sums = probs.sum(dim=1)
    if bool((probs < 0).any()) or bool(((row_sums - 1).abs() > 1e-3).any()):
        raise AutosoftError(
            "probs must be probabilities (rows >= 0 summing to 1), e.g. logits.softmax(1); "
            f"got row sums in [{row_sums.min().item():.4g}, {row_sums.max().item():.4g}]"
        )


def _check_n_bins(n_bins: int) -> None:
    if not isinstance(n_bins, int) or n_bins < 1:
        raise AutosoftError(f"n_bins must be a positive integer; got {n_bins!r}")


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.dtype != torch.uint8:
        raise AutosoftError(
            f"images must be a uint8 tensor (B, C, H, W); got {images.dtype} of shape {tuple(images.shape)}"
        )


# ----------------------------------------------------------------------------
# Accuracy, NLL, calibration

def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1] of `logits` (or probabilities) (N, K) against int labels (N,)."""
    _check_pair(logits, labels, "logits")
    return (logits.argmax(dim=1) == labels.to(logits.device)).double().mean().item()


def nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cross-entropy (nats) of `logits` (N, K) against int labels (N,)."""
    _check_pair(logits, labels, "logits")
    return F.cross_entropy(logits.double(), labels.to(logits.device)).item()


def _bin_stats(probs: torch.Tensor, labels: torch.Tensor, n_bins: int):
    """Per-bin (count, sum of confidence, number correct) as float64 tensors."""
    _check_pair(probs, labels, "probs")
    _check_n_bins(n_bins)
    _check_probs(probs)
    conf, pred = probs.double().max(dim=1)
    correct = (pred == labels.to(probs.device)).double()
    # Bin i is (i/n, (i+1)/n]: bucketize(right=False) gives i with edge[i-1] < conf <= edge[i].
    # Inner edges are i/n in float64 so a confidence equal to an edge (e.g. 0.2) lands in the lower bin.
    inner = torch.tensor([i / n_bins for i in range(1, n_bins)], dtype=torch.float64, device=conf.device)
    idx = torch.bucketize(conf, inner, right=False)
    count = torch.zeros(n_bins, dtype=torch.float64, device=probs.device)
    conf_sum = torch.zeros_like(count)
    correct_sum = torch.zeros_like(count)
    count.index_add_(0, idx, torch.ones_like(conf))
    conf_sum.index_add_(0, idx, conf)
    correct_sum.index_add_(0, idx, correct)
    return count, conf_sum, correct_sum


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """ECE: sum over equal-width max-probability bins of |acc - conf| * count / N (Guo et al. 2017).

    `probs` are probabilities (N, K) (softmax of logits), not logits.
    """
    count, conf_sum, correct_sum = _bin_stats(probs, labels, n_bins)
    # |acc - conf| * count == |correct_sum - conf_sum|; empty bins contribute 0.
    return ((correct_sum - conf_sum).abs().sum() / count.sum()).item()


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict:
    """Per-bin data for a reliability diagram, JSON-serialisable.

    Keys: "lower", "upper" (bin edges), "confidence" (mean max prob), "accuracy",
    "count" (lists of length n_bins; confidence/accuracy are 0.0 where count is 0),
    plus "ece" and "n_bins".
    """
    count, conf_sum, correct_sum = _bin_stats(probs, labels, n_bins)
    safe = count.clamp(min=1)
    return {
        "n_bins": n_bins,
        "lower": [i / n_bins for i in range(n_bins)],
        "upper": [(i + 1) / n_bins for i in range(n_bins)],
        "confidence": (conf_sum / safe).tolist(),
        "accuracy": (correct_sum / safe).tolist(),
        "count": [int(c) for c in count.tolist()],
        "ece": ((correct_sum - conf_sum).abs().sum() / count.sum()).item(),
    }


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, max_iter: int = 50) -> float:
    """Temperature T > 0 minimising NLL of logits / T (LBFGS on log T; deterministic).

    Fit on validation logits, never on the test set. T is kept within [0.01, 100].
    """
    _check_pair(logits, labels, "logits")
    # Callers often hold logits from torch.inference_mode(); autograd needs ordinary tensors
    # (a copy) and grad mode on, whatever context we are called from.
    with torch.inference_mode(False), torch.enable_grad():
        x = logits.detach().to(torch.float64, copy=True)
        y = labels.to(x.device, copy=True)
        # Optimising log T keeps T positive without constraints.
        log_t = torch.zeros((), dtype=torch.float64, device=x.device, requires_grad=True)
        opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-9, tolerance_change=1e-12)

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(x / log_t.exp(), y)
            loss.backward()
            return loss

        opt.step(closure)
    t = math.exp(log_t.item())
    if not math.isfinite(t):
        return 1.0
    return min(max(t, _T_MIN), _T_MAX)


# ----------------------------------------------------------------------------
# Image corruptions

def _occlude_at(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, side: int, fill: int) -> torch.Tensor:
    """Fill a side x side square at per-image (top, left) with `fill`, using masks (no per-image loop)."""
    _, _, h, w = images.shape
    dev = images.device
    top, left = top.to(dev), left.to(dev)
    rows = torch.arange(h, device=dev)
    cols = torch.arange(w, device=dev)
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)       # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)     # (B, W)
    mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]           # (B, 1, H, W)
    return images.masked_fill(mask, fill)


def _patch_side(fraction: float, h: int, w: int) -> int:
    if not 0.0 <= fraction <= 1.0:
        raise AutosoftError(f"occlusion fraction must be in [0, 1]; got {fraction!r}")
    # A square cannot exceed the shorter side: on non-square images the area is then below fraction.
    return min(round(math.sqrt(fraction * h * w)), h, w)


def _patch_positions(n: int, side: int, h: int, w: int, generator: torch.Generator | None):
    # Drawn on CPU with the generator (the convention), moved to the images' device later.
    top = torch.randint(0, h - side + 1, (n,), generator=generator)
    left = torch.randint(0, w - side + 1, (n,), generator=generator)
    return top, left


def occlude(images: torch.Tensor, fraction: float, *, generator: torch.Generator | None = None,
            fill: int = 128) -> torch.Tensor:
    """Per image, a random square of side round(sqrt(fraction*H*W)) set to `fill`, fully inside the image."""
    _check_images(images)
    b, _, h, w = images.shape
    side = _patch_side(fraction, h, w)
    top, left = _patch_positions(b, side, h, w, generator)
    return _occlude_at(images, top, left, side, fill)


def shift(images: torch.Tensor, dx: int, dy: int, *, fill: int = 128) -> torch.Tensor:
    """Move every image's content right by dx and down by dy pixels (negative: left/up); vacated area = fill."""
    _check_images(images)
    _, _, h, w = images.shape
    dx, dy = int(dx), int(dy)
    out = torch.full_like(images, fill)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    # out[y, x] = images[y - dy, x - dx] where the source is inside the image.
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


# ----------------------------------------------------------------------------
# Model-level evaluation (chunked so memory is bounded by batch_size)

def _chunks(n: int, batch_size: int) -> Iterable[slice]:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise AutosoftError(f"batch_size must be a positive integer; got {batch_size!r}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _check_eval_inputs(images: torch.Tensor, labels: torch.Tensor) -> None:
    _check_images(images)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise AutosoftError(
            f"labels must be 1-D with one entry per image ({images.shape[0]}); got shape {tuple(labels.shape)}"
        )
    if images.shape[0] == 0:
        raise AutosoftError("images is empty; need at least one image")


@torch.no_grad()
def predict_logits(predict: Predict, images: torch.Tensor, *, batch_size: int = 1000) -> torch.Tensor:
    """Logits (N, K) of `predict` over `images`, in chunks of batch_size, as float32 on the images' device."""
    _check_images(images)
    out = [predict(images[s]).float() for s in _chunks(images.shape[0], batch_size)]
    return torch.cat(out).to(images.device)


@torch.no_grad()
def _corrupted_accuracy(predict: Predict, images, labels, corrupt, batch_size: int) -> float:
    """Accuracy of predict(corrupt(chunk, slice)) over all chunks; counts only, no logits kept."""
    correct = 0
    for s in _chunks(images.shape[0], batch_size):
        logits = predict(corrupt(images[s], s))
        correct += int((logits.argmax(dim=1) == labels[s].to(logits.device)).sum())
    return correct / images.shape[0]


def occlusion_accuracy(predict: Predict, images: torch.Tensor, labels: torch.Tensor, fraction: float, *,
                       seed: int = 0, generator: torch.Generator | None = None,
                       batch_size: int = 1000, fill: int = 128) -> float:
    """Top-1 accuracy with one random square patch covering `fraction` of each image (see module doc).

    Patch positions come from `generator` if given, else from a fresh generator seeded with `seed`;
    they are drawn for all images at once, so results do not depend on batch_size.
    """
    _check_eval_inputs(images, labels)
    n, _, h, w = images.shape
    side = _patch_side(fraction, h, w)
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    top, left = _patch_positions(n, side, h, w, generator)
    return _corrupted_accuracy(predict, images, labels,
                               lambda x, s: _occlude_at(x, top[s], left[s], side, fill), batch_size)


def shift_accuracy(predict: Predict, images: torch.Tensor, labels: torch.Tensor, pixels: int, *,
                   batch_size: int = 1000, fill: int = 128) -> float:
    """Mean top-1 accuracy over the 4 diagonal shifts (+-pixels, +-pixels), vacated area = fill."""
    _check_eval_inputs(images, labels)
    if not isinstance(pixels, int) or pixels < 0:
        raise AutosoftError(f"shift pixels must be a non-negative integer; got {pixels!r}")
    directions = [(pixels, pixels), (pixels, -pixels), (-pixels, pixels), (-pixels, -pixels)]
    accs = [
        _corrupted_accuracy(predict, images, labels, lambda x, s, dx=dx, dy=dy: shift(x, dx, dy, fill=fill),
                            batch_size)
        for dx, dy in directions
    ]
    return sum(accs) / len(accs)


def evaluate(predict: Predict, images: torch.Tensor, labels: torch.Tensor, *,
             val_logits: torch.Tensor | None = None, val_labels: torch.Tensor | None = None,
             occlusion_fractions: Iterable[float] = (0.1, 0.25, 0.5), shift_pixels: Iterable[int] | None = None,
             batch_size: int = 1000, seed: int = 0, n_bins: int = 15) -> dict:
    """Full test report as a JSON-serialisable dict.

    Keys: "n", "top1", "nll", "ece", "ece_n_bins", "temperature", "nll_ts", "ece_ts",
    "occlusion_acc@<f>" per fraction (e.g. "occlusion_acc@0.25"), "shift_acc@<p>px" per pixel count
    (default: 1/8 and 1/4 of the image width, so 4 and 8 px at 32 px, 12 and 24 px at 96 px),
    and "reliability": reliability_bins(...) of the test predictions (lists; for the diagram,
    see plots.reliability_diagram_from_bins). Temperature is fitted on val_logits/val_labels
    only; without them "temperature", "nll_ts" and "ece_ts" are None (never fitted on test data).
    """
    _check_eval_inputs(images, labels)
    if (val_logits is None) != (val_labels is None):
        raise AutosoftError("give both val_logits and val_labels for temperature scaling, or neither")
    logits = predict_logits(predict, images, batch_size=batch_size)
    labels_d = labels.to(logits.device)
    probs = logits.double().softmax(dim=1)
    report: dict = {
        "n": int(images.shape[0]),
        "top1": accuracy(logits, labels_d),
        "nll": nll(logits, labels_d),
        "ece": expected_calibration_error(probs, labels_d, n_bins),
        "ece_n_bins": n_bins,
        "temperature": None,
        "nll_ts": None,
        "ece_ts": None,
    }
    if val_logits is not None:
        t = fit_temperature(val_logits, val_labels)
        report["temperature"] = t
        report["nll_ts"] = nll(logits / t, labels_d)
        report["ece_ts"] = expected_calibration_error((logits.double() / t).softmax(dim=1), labels_d, n_bins)
    for f in occlusion_fractions:
        report[f"occlusion_acc@{f:g}"] = occlusion_accuracy(predict, images, labels, f, seed=seed,
                                                            batch_size=batch_size)
    if shift_pixels is None:  # a shift means the same at any image size
        shift_pixels = (max(1, images.shape[-1] // 8), max(1, images.shape[-1] // 4))
    for p in shift_pixels:
        report[f"shift_acc@{p}px"] = shift_accuracy(predict, images, labels, p, batch_size=batch_size)
    report["reliability"] = reliability_bins(probs, labels_d, n_bins)
    return report


# The robustness measured on the validation split in every trial and confirmation run: the
# occlusion the product's bar is read at (occlusion_acc@0.25 on test) and a 1/8-width shift.
VAL_OCCLUSION = 0.25
VAL_SHIFT_SHARE = 1 / 8
# The robust objective (`--objective robust`): clean accuracy and the two corrupted accuracies,
# weighted. Clean accuracy keeps half the weight so robustness cannot be bought with it.
ROBUST_WEIGHTS = {"val_acc": 0.5, "val_occlusion_acc": 0.25, "val_shift_acc": 0.25}


def robust_accuracy(metrics: dict) -> float:
    """The ROBUST_WEIGHTS combination of a run's validation accuracies."""
    return sum(w * metrics[k] for k, w in ROBUST_WEIGHTS.items())


def diagonal_shift_accuracy(predict: Predict, images: torch.Tensor, labels: torch.Tensor, pixels: int, *,
                            batch_size: int = 1000, fill: int = 128) -> float:
    """Top-1 accuracy with image i shifted by `pixels` along diagonal i % 4 (one pass over the images)."""
    _check_eval_inputs(images, labels)
    directions = [(pixels, pixels), (pixels, -pixels), (-pixels, pixels), (-pixels, -pixels)]

    def corrupt(x: torch.Tensor, s: slice) -> torch.Tensor:
        which = torch.arange(s.start, s.start + x.shape[0]) % 4
        out = x.clone()
        for d, (dx, dy) in enumerate(directions):
            rows = (which == d).nonzero().squeeze(1).to(x.device)
            if len(rows):
                out[rows] = shift(x[rows], dx, dy, fill=fill)
        return out
    return _corrupted_accuracy(predict, images, labels, corrupt, batch_size)


def validation_metrics(predict: Predict, images: torch.Tensor, labels: torch.Tensor, *,
                       batch_size: int = 1000) -> dict:
    """What every validation pass reports: clean accuracy, NLL and ECE, occlusion and shift
    accuracy (see the module doc) and their `robust_accuracy`."""
    logits = predict_logits(predict, images, batch_size=batch_size)
    labels_d = labels.to(logits.device)
    # (clean metrics computed as the trainer always has, so earlier runs' numbers stay comparable to the bit)
    out = {"val_acc": (logits.argmax(1) == labels_d).float().mean().item(),
           "val_nll": F.cross_entropy(logits, labels_d).item(),
           "val_ece": expected_calibration_error(logits.softmax(1), labels_d),
           "val_occlusion_acc": occlusion_accuracy(predict, images, labels, VAL_OCCLUSION, seed=0,
                                                   batch_size=batch_size),
           "val_shift_acc": diagonal_shift_accuracy(predict, images, labels,
                                                    max(1, round(VAL_SHIFT_SHARE * images.shape[-1])),
                                                    batch_size=batch_size)}
    out["val_robust_acc"] = robust_accuracy(out)
    return out
