"""Apply a policy to a whole batch: per-image draws, batched kernels, soft targets.

Every image draws its own sub-policy (or ops), its own apply/skip outcome, its
own magnitude and sign. The hot path loops over ops, never over images: the
images that drew the same op are gathered and transformed by one batched
kernel. Each applied op reports a raw severity (the fraction of the image lost
for lossy ops, else the magnitude); the policy's per-op sensitivity scales it,
severities of several ops combine as 1 - prod(1 - s), and the soft-target
curve turns the result into `(B, C)` target rows.

>>> import torch
>>> augment = PolicyAugment("softaug", num_classes=10)
>>> images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
>>> out = augment(images, torch.arange(8), generator=torch.Generator().manual_seed(0))
>>> out.images.shape, out.targets.shape, bool(torch.allclose(out.targets.sum(1), torch.ones(8)))
(torch.Size([8, 3, 32, 32]), torch.Size([8, 10]), True)
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from autosoft.errors import AutosoftError
from autosoft.ops import OPS, _run
from autosoft.policy import OpEntry, Policy, load_policy
from autosoft.soft_targets import soft_targets


class AugmentedBatch(NamedTuple):
    images: torch.Tensor    # uint8 (B, C, H, W), same device as the input
    targets: torch.Tensor   # float (B, C) rows, each sums to 1
    weights: torch.Tensor   # float (B,) per-sample loss weights (1 unless the mode weights)
    severity: torch.Tensor  # float (B,) combined severity in [0, 1]


def _uniform(n: int, generator: torch.Generator | None) -> torch.Tensor:
    # Random numbers are drawn on the CPU so one CPU generator drives any device reproducibly.
    return torch.rand(n, generator=generator)


def _rows(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) uint8 as (B, bytes) rows, viewed as int64 when the row size allows:
    moving whole images around by index is several times faster on 8-byte elements."""
    rows = images.contiguous().view(images.shape[0], -1)
    return rows.view(torch.int64) if rows.shape[1] % 8 == 0 else rows


class PolicyAugment(torch.nn.Module):
    """A policy as a module: ``(uint8 images, int labels) -> AugmentedBatch``.

    Use it after a DataLoader or on the GPU, in place of torchvision's
    AutoAugment: ``images, targets, weights, _ = augment(images, labels)`` then
    ``autosoft.soft_target_cross_entropy(model(x), targets, weights)``.
    `strength` scales every magnitude (the trainer lowers it for the last
    epochs, as in the Soft Augmentation recipe).
    """

    def __init__(self, policy: Policy | str, num_classes: int, *, fill: int = 128, strength: float = 1.0):
        super().__init__()
        self.policy = load_policy(policy)
        if num_classes < 2:
            raise AutosoftError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.fill = fill
        self.strength = strength
        st = self.policy.soft_targets
        self._sensitivity = dict(st.sensitivity) if st is not None else {}

    def extra_repr(self) -> str:
        return f"policy={self.policy.name or self.policy.kind}, num_classes={self.num_classes}, strength={self.strength:g}"

    @torch.no_grad()
    def forward(self, images: torch.Tensor, labels: torch.Tensor, *,
                generator: torch.Generator | None = None) -> AugmentedBatch:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise AutosoftError(f"images must be a uint8 (B, C, H, W) tensor, got {images.dtype} {tuple(images.shape)}")
        n = images.shape[0]
        keep = torch.ones(n, device=images.device)  # prod(1 - s_i) over the ops applied so far
        for entry in self.policy.base:
            applied = _uniform(n, generator) < entry.probability
            images, keep = self._apply_per_image(images, keep, [entry.op], torch.zeros(n, dtype=torch.long),
                                                 torch.full((n,), entry.magnitude), applied, generator)
        images, keep = self._apply_policy_ops(images, keep, generator)

        severity = 1.0 - keep
        st = self.policy.soft_targets
        if st is None:
            rows, weights = soft_targets(labels, torch.zeros_like(severity), self.num_classes)
        else:
            rows, weights = soft_targets(labels, severity, self.num_classes,
                                         p_min=st.p_min, power=st.power, mode=st.mode)
        return AugmentedBatch(images, rows, weights, severity)

    def _apply_per_image(self, images, keep, op_names, op_index, magnitude, applied, generator):
        """Image i runs op_names[op_index[i]] at magnitude[i] where applied[i] (index tensors on the CPU).

        The batch is sorted once by op; each op's images are gathered straight from the
        input and its results written straight into one output batch, so no full-batch
        temporaries are made (on the CPU those cost page faults as much as copying).
        """
        n, dev = images.shape[0], images.device
        skip = len(op_names)
        op_index = torch.where(applied, op_index, skip)  # skipped images form the last group
        counts = torch.bincount(op_index, minlength=skip + 1).tolist()
        if counts[skip] == n:
            return images, keep
        order = torch.argsort(op_index, stable=True)
        sign = torch.where(_uniform(n, generator) < 0.5, -1.0, 1.0)[order].to(dev, torch.float64)
        magnitude = (magnitude[order] * self.strength).clamp(0, 1).to(dev, torch.float64)
        order = order.to(dev)
        src = _rows(images)
        passthrough = counts[skip] + sum(c for k, c in enumerate(counts[:skip]) if op_names[k] == "Identity")
        if 2 * passthrough > n:  # mostly unchanged: one copy, then overwrite the transformed images
            out = images.clone(memory_format=torch.contiguous_format)
        else:
            out = torch.empty(images.shape, dtype=images.dtype, device=dev)
        dst = _rows(out)
        wide = self.policy.ranges == "wide"
        survive, lo = None, 0
        for k, count in enumerate(counts):
            hi = lo + count
            if not count:
                continue
            idx = order[lo:hi]
            if k < skip and op_names[k] != "Identity":
                op = op_names[k]
                piece = src.index_select(0, idx).view(torch.uint8).view(count, *images.shape[1:])
                sensitivity = self._sensitivity.get(op, 0.0)
                result, lost = _run(op, piece, magnitude[lo:hi], sign[lo:hi], wide, generator, self.fill,
                                    sensitivity > 0 and OPS[op].lossy)
                dst.index_copy_(0, idx, _rows(result))
                if sensitivity > 0:
                    raw = lost.float() if OPS[op].lossy else magnitude[lo:hi].float()
                    if survive is None:
                        survive = torch.ones(n, device=dev)
                    survive.index_copy_(0, idx, 1.0 - sensitivity * raw.clamp(0, 1))
            elif 2 * passthrough <= n:
                dst.index_copy_(0, idx, src.index_select(0, idx))
            lo = hi
        return out, keep if survive is None else keep * survive

    def _apply_policy_ops(self, images, keep, generator):
        p, n = self.policy, images.shape[0]
        if p.kind == "subpolicies":
            # Per image: a sub-policy; then each of its positions, in order, with its own probability.
            chosen = torch.randint(len(p.subpolicies), (n,), generator=generator)
            names = sorted({e.op for sub in p.subpolicies for e in sub})
            for pos in range(max(len(sub) for sub in p.subpolicies)):
                table = [sub[pos] if pos < len(sub) else OpEntry("Identity", 0.0, 0.0) for sub in p.subpolicies]
                op_index = torch.tensor([names.index(e.op) for e in table])[chosen]
                prob = torch.tensor([e.probability for e in table])[chosen]
                magnitude = torch.tensor([e.magnitude for e in table])[chosen]
                applied = _uniform(n, generator) < prob
                images, keep = self._apply_per_image(images, keep, names, op_index, magnitude, applied, generator)
        elif p.kind == "randaugment":
            ra = p.randaugment
            for _ in range(ra.num_ops):
                op_index = torch.randint(len(ra.ops), (n,), generator=generator)
                magnitude = torch.full((n,), ra.magnitude)
                if ra.magnitude_std > 0:
                    magnitude = magnitude + ra.magnitude_std * torch.randn(n, generator=generator)
                images, keep = self._apply_per_image(images, keep, list(ra.ops), op_index, magnitude.clamp(0, 1),
                                                     torch.ones(n, dtype=torch.bool), generator)
        elif p.kind == "trivialaugment":
            ops = list(p.trivialaugment.ops)
            op_index = torch.randint(len(ops), (n,), generator=generator)
            magnitude = _uniform(n, generator)
            images, keep = self._apply_per_image(images, keep, ops, op_index, magnitude,
                                                 torch.ones(n, dtype=torch.bool), generator)
        return images, keep
