"""Soft targets: how confident the label of a transformed image should be.

Soft Augmentation (Liu et al., CVPR 2023): with severity ``s`` (the fraction of
the object lost, 1 - visibility) the true class gets confidence

    p(s) = 1 - (1 - p_min) * s ** k

and the rest, 1 - p, is spread evenly over the other classes. The loss only
ever sees ``(B, C)`` rows (timm's soft-target cross-entropy form) and an
optional per-sample weight.

>>> import torch
>>> rows, weights = soft_targets(torch.tensor([0, 1]), torch.tensor([0.0, 1.0]), 4,
...                              p_min=0.25, power=2.0, mode="target")
>>> rows
tensor([[1.0000, 0.0000, 0.0000, 0.0000],
        [0.2500, 0.2500, 0.2500, 0.2500]])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autosoft.errors import AutosoftError

MODES = ("target", "weight", "both")  # how p is used; the one list (policy files and the soft space read it)


def target_confidence(severity: torch.Tensor, *, p_min: float, power: float) -> torch.Tensor:
    """Confidence on the true class for each severity in [0, 1]."""
    return 1.0 - (1.0 - p_min) * severity.clamp(0, 1) ** power


def combine_severities(severities: torch.Tensor) -> torch.Tensor:
    """Severity of several ops on one image, (n_ops, B) -> (B,): 1 - prod(1 - s_i)."""
    return 1.0 - (1.0 - severities).prod(dim=0)


def soft_rows(labels: torch.Tensor, confidence: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, C) rows: `confidence` on the label, the rest spread evenly; each row sums to 1."""
    other = (1.0 - confidence) / max(num_classes - 1, 1)
    rows = other.unsqueeze(1).expand(-1, num_classes).clone()
    rows.scatter_(1, labels.view(-1, 1), confidence.view(-1, 1).to(rows.dtype))
    return rows


def soft_targets(labels: torch.Tensor, severity: torch.Tensor, num_classes: int, *,
                 p_min: float | None = None, power: float = 2.0, mode: str = "target",
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Target rows (B, C) and per-sample loss weights (B,) for one batch.

    mode "target" softens the rows, "weight" keeps one-hot rows and weights the
    loss by p, "both" does both. `p_min=None` is chance, 1 / num_classes.
    """
    if mode not in MODES:
        raise AutosoftError(f"soft target mode {mode!r} is unknown; allowed: {', '.join(MODES)}")
    p_min = 1.0 / num_classes if p_min is None else p_min
    confidence = target_confidence(severity.float(), p_min=p_min, power=power)
    ones = torch.ones_like(confidence)
    rows = soft_rows(labels, confidence if mode in ("target", "both") else ones, num_classes)
    weights = confidence if mode in ("weight", "both") else ones
    return rows, weights


def smooth_rows(rows: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Label smoothing applied to (possibly already soft) rows."""
    return rows * (1.0 - label_smoothing) + label_smoothing / rows.shape[1]


def soft_target_cross_entropy(logits: torch.Tensor, rows: torch.Tensor,
                              weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of weight * sum(-rows * log_softmax(logits))."""
    per_sample = -(rows * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
    if weights is not None:
        per_sample = per_sample * weights
    return per_sample.mean()


class SoftTargetLoss(torch.nn.Module):
    """`soft_target_cross_entropy` as a module, for drop-in use in a training loop."""

    def forward(self, logits: torch.Tensor, rows: torch.Tensor, weights: torch.Tensor | None = None):
        return soft_target_cross_entropy(logits, rows, weights)
