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
from autosoft.ops import OPS, run_op, run_warps
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


# Most images one kernel call handles: bigger calls amortise per-call overhead, but their
# float temporaries (12 KB per CIFAR image) outgrow the caches.
_CHUNK = 256


def _rows(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) uint8 as (B, bytes) rows, viewed with the widest element the row size allows:
    moving whole images by index (index_copy_ is element-wise) is several times faster on
    16-byte elements. Only copied, never computed on, so the bits travel unchanged."""
    rows = images.contiguous().view(images.shape[0], -1)
    for dtype, size in ((torch.complex128, 16), (torch.int64, 8)):
        if rows.shape[1] % size == 0 and rows.storage_offset() % size == 0:
            return rows.view(dtype)
    return rows


class Call(NamedTuple):
    """One kernel call of a step: the next ``size`` images of the plan's order."""

    kind: str  # "warps": one shared lookup (run_warps); "op": run_op of the one part; "pass": left unchanged
    parts: tuple[tuple[str, int], ...]  # (op name, images) in order, summing to size; () for "pass"
    size: int


class StepPlan(NamedTuple):
    """One step of a policy (each image runs at most one op), planned from its random draws.

    ``order`` lists the images in processing order: the warps first (they share one
    sampling lookup per chunk), then the other ops in the order given (so ops that
    draw random numbers keep their relative order), the images left unchanged last.
    ``calls`` cut that order into consecutive kernel calls.
    """

    order: torch.Tensor      # int64 (B,): image indices, in processing order
    magnitude: torch.Tensor  # float64 (B,): each image's magnitude in that order, strength applied, in [0, 1]
    sign: torch.Tensor       # float64 (B,): each image's sign (+1 / -1) in that order
    calls: tuple[Call, ...]
    copy_input: bool         # most images pass unchanged: the output starts as a copy of the input


def plan_step(op_names, op_index, applied, magnitude, sign, *, strength: float = 1.0,
              chunk: int = _CHUNK) -> StepPlan:
    """The kernel calls of one step, from its draws (CPU tensors (B,)); draws nothing itself.

    Image i runs ``op_names[op_index[i]]`` at ``magnitude[i] * strength`` (clamped to [0, 1])
    with ``sign[i]`` where ``applied[i]``. A call handles at most ``chunk`` images (bigger
    calls amortise per-call overhead, but their temporaries outgrow the caches); warped
    images share one lookup per chunk, spanning op groups; an op that draws random numbers
    runs all its images in one call (one stream of draws).
    """
    n, skip = op_index.shape[0], len(op_names)
    warps = [k for k, name in enumerate(op_names) if OPS[name].warp]
    rank = warps + [k for k in range(skip) if not OPS[op_names[k]].warp] + [skip]
    key = torch.empty(skip + 1, dtype=torch.long)
    key[rank] = torch.arange(skip + 1)
    op_key = key[torch.where(applied, op_index, skip)]
    counts = torch.bincount(op_key, minlength=skip + 1).tolist()
    order = torch.argsort(op_key, stable=True)
    names = [op_names[k] for k in rank[:-1]]
    passthrough = counts[skip] + sum(c for name, c in zip(names, counts) if name == "Identity")
    calls = _warp_calls(names[:len(warps)], counts, chunk)
    for name, c in zip(names[len(warps):] + [None], counts[len(warps):]):
        unchanged = name is None or name == "Identity"
        step = c if not unchanged and OPS[name].random else chunk
        while c:
            take = min(c, step)
            calls.append(Call("pass", (), take) if unchanged else Call("op", ((name, take),), take))
            c -= take
    return StepPlan(order, (magnitude[order] * strength).clamp(0, 1).to(torch.float64),
                    sign[order].to(torch.float64), tuple(calls), 2 * passthrough > n)


def _warp_calls(names, counts, chunk: int) -> list[Call]:
    """Chunks of at most ``chunk`` warped images, filled in turn by each warp's images."""
    calls, pending, size = [], [], 0
    for name, c in zip(names, counts):
        while c:
            take = min(c, chunk - size)
            pending.append((name, take))
            size, c = size + take, c - take
            if size == chunk:
                calls.append(Call("warps", tuple(pending), size))
                pending, size = [], 0
    if size:
        calls.append(Call("warps", tuple(pending), size))
    return calls


def execute_plan(plan: StepPlan, images: torch.Tensor, *, generator: torch.Generator | None = None,
                 wide: bool = False, fill=128, sensitivity: dict[str, float] | None = None):
    """Run a plan's kernel calls on ``images``; returns ``(images, survive)``.

    Each call's images are gathered straight from the input and its results written
    straight into one output batch (no full-batch temporaries). ``survive`` (B,) is
    ``1 - sensitivity[op] * raw severity`` for the images whose op has a sensitivity
    > 0 (raw severity: the fraction lost for lossy ops, else the magnitude), 1 for
    the others; None when no image's op has a sensitivity.
    """
    n, dev = images.shape[0], images.device
    sensitivity = sensitivity or {}
    order, magnitude, sign = plan.order, plan.magnitude, plan.sign
    if dev.type != "cpu":
        order, sign, magnitude = order.to(dev), sign.to(dev), magnitude.to(dev)
    if plan.copy_input:  # mostly unchanged: one copy, then overwrite the transformed images
        out = images.clone(memory_format=torch.contiguous_format)
    else:
        out = torch.empty(images.shape, dtype=images.dtype, device=dev)
    src, dst = _rows(images), _rows(out)
    shape = images.shape[1:]
    survive = None
    sizes = [call.size for call in plan.calls]
    for call, idx, m, sg in zip(plan.calls, order.split(sizes), magnitude.split(sizes), sign.split(sizes)):
        if call.kind == "pass":
            if not plan.copy_input:
                dst.index_copy_(0, idx, src.index_select(0, idx))
            continue
        piece = src.index_select(0, idx).view(torch.uint8).view(call.size, *shape)
        need_lost = [OPS[op].lossy and sensitivity.get(op, 0.0) > 0 for op, _ in call.parts]
        if call.kind == "warps":
            result, losts = run_warps(call.parts, piece, m, sg, wide=wide, fill=fill, need_lost=need_lost)
        else:
            result, lost = run_op(call.parts[0][0], piece, m, sg, wide=wide, generator=generator, fill=fill,
                                  need_lost=need_lost[0])
            losts = [lost]
        dst.index_copy_(0, idx, result.reshape(call.size, -1).view(dst.dtype))
        lo = 0
        for (op, c), lost in zip(call.parts, losts):
            weight = sensitivity.get(op, 0.0)
            if weight > 0:
                raw = lost if OPS[op].lossy else m[lo:lo + c].float()
                if survive is None:
                    survive = torch.ones(n, device=dev)
                survive.index_copy_(0, idx[lo:lo + c], 1.0 - weight * raw.clamp(0, 1))
            lo += c
    return out, survive


class PolicyAugment(torch.nn.Module):
    """A policy as a module: ``(uint8 images, int labels) -> AugmentedBatch``.

    Use it after a DataLoader or on the GPU, in place of torchvision's
    AutoAugment: ``images, targets, weights, _ = augment(images, labels)`` then
    ``autosoft.soft_target_cross_entropy(model(x), targets, weights)``.
    `strength` scales every magnitude (the trainer lowers it for the last
    epochs, as in the Soft Augmentation recipe). For its full speed, call
    `autosoft.process.keep_freed_memory()` once where the process starts (the trainer
    and the CLI do).
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
        """Image i runs op_names[op_index[i]] at magnitude[i] where applied[i] (tensors on the CPU):
        the signs are drawn, the step planned (`plan_step`) and run (`execute_plan`)."""
        n = images.shape[0]
        if not bool(applied.any()):
            return images, keep
        sign = torch.where(_uniform(n, generator) < 0.5, -1.0, 1.0)
        plan = plan_step(op_names, op_index, applied, magnitude, sign, strength=self.strength)
        out, survive = execute_plan(plan, images, generator=generator, wide=self.policy.ranges == "wide",
                                    fill=self.fill, sensitivity=self._sensitivity)
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


def mix_batch(images: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, *, kind: str, lam: float,
              box_center: tuple[float, float] = (0.5, 0.5)):
    """MixUp or CutMix on top of (soft) target rows: each image is mixed with the next one in the
    batch (torchvision's pairing), and so are its target row and loss weight.

    `images` are float (B, C, H, W). For CutMix a box of area (1 - lam) centred at `box_center`
    (fractions of height and width) is pasted; lam is then the area actually kept.

    >>> import torch
    >>> rows = torch.eye(2)
    >>> _, mixed, _ = mix_batch(torch.zeros(2, 1, 4, 4), rows, torch.ones(2), kind="cutmix", lam=0.75)
    >>> mixed
    tensor([[0.7500, 0.2500],
            [0.2500, 0.7500]])
    """
    if kind == "mixup":
        images = images.mul(lam).add_(images.roll(1, 0), alpha=1.0 - lam)
    elif kind == "cutmix":
        h, w = images.shape[-2:]
        cut = (1.0 - lam) ** 0.5
        cy, cx = box_center[0] * h, box_center[1] * w
        y0, y1 = int(max(cy - cut * h / 2, 0)), int(min(cy + cut * h / 2, h))
        x0, x1 = int(max(cx - cut * w / 2, 0)), int(min(cx + cut * w / 2, w))
        images = images.clone()
        images[..., y0:y1, x0:x1] = images.roll(1, 0)[..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        raise AutosoftError(f"mix kind {kind!r} is unknown; allowed: mixup, cutmix")
    targets = targets.mul(lam).add_(targets.roll(1, 0), alpha=1.0 - lam)
    weights = weights.mul(lam).add_(weights.roll(1, 0), alpha=1.0 - lam)
    return images, targets, weights
