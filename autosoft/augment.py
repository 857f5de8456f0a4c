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
from autosoft.ops import OPS, run_op
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
        images = images.clone()  # the kernels write into this copy, never into the caller's batch
        keep = torch.ones(n)  # prod(1 - s_i) over the ops applied so far, on the CPU
        for entry in self.policy.base:
            images, keep = self._apply_entry(images, keep, entry, generator)
        images, keep = self._apply_policy_ops(images, keep, generator)

        severity = (1.0 - keep).to(images.device)
        st = self.policy.soft_targets
        if st is None:
            rows, weights = soft_targets(labels, torch.zeros_like(severity), self.num_classes)
        else:
            rows, weights = soft_targets(labels, severity, self.num_classes,
                                         p_min=st.p_min, power=st.power, mode=st.mode)
        return AugmentedBatch(images, rows, weights, severity)

    # ---- one op on the images that drew it -------------------------------------
    def _run_group(self, images, keep, op: str, idx: torch.Tensor, magnitude: torch.Tensor, generator):
        """Apply `op` to images[idx] (idx on the CPU) with per-image magnitudes."""
        if idx.numel() == 0:
            return images, keep
        magnitude = (magnitude * self.strength).clamp(0, 1)
        sign = torch.where(_uniform(idx.numel(), generator) < 0.5, -1.0, 1.0)
        dev = images.device
        out, lost = run_op(op, images[idx.to(dev)], magnitude.to(dev), sign.to(dev),
                           wide=self.policy.ranges == "wide", generator=generator, fill=self.fill)
        images.index_copy_(0, idx.to(dev), out)
        sensitivity = self._sensitivity.get(op, 0.0)
        if sensitivity > 0:
            raw = lost.float().cpu() if OPS[op].lossy else magnitude
            keep = keep.index_copy(0, idx, keep[idx] * (1.0 - sensitivity * raw.clamp(0, 1)))
        return images, keep

    def _apply_entry(self, images, keep, entry: OpEntry, generator):
        applied = _uniform(images.shape[0], generator) < entry.probability
        idx = applied.nonzero().flatten()
        return self._run_group(images, keep, entry.op, idx, torch.full((idx.numel(),), entry.magnitude), generator)

    def _apply_per_image(self, images, keep, op_names, op_index, magnitude, applied, generator):
        """Each image i runs op_names[op_index[i]] at magnitude[i] where applied[i]."""
        for k, op in enumerate(op_names):
            idx = ((op_index == k) & applied).nonzero().flatten()
            images, keep = self._run_group(images, keep, op, idx, magnitude[idx], generator)
        return images, keep

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
