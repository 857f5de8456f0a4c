"""The op table and its batched kernels.

``OPS`` maps each op's name to an ``Op``: its magnitude mapping and everything the
engine (autosoft.augment) needs to run it: ``kernel``, ``signed``, ``lossy``,
``random`` (the kernel draws from the generator) and, for warps, ``theta`` (the
inverse affine matrices; ``Op.warp``), so that several warps share one sampling
lookup through ``run_warps``. Kernels take the images and keyword-only arguments
(see ``Kernel``); ``run_op`` is the checked entry point, ``apply_op`` also
validates the values.

One magnitude scale for every op: ``m`` in [0, 1], 0 = identity, 1 = strongest,
stronger as ``m`` grows. ``Op.value`` maps ``m`` to the op's physical value
(``m * high``, or ``m * wide_high`` for the TrivialAugmentWide ranges); that is
the only place a magnitude becomes a physical unit.

Every image of a batch gets its own magnitude and sign, and kernels work on the
whole batch at once (no Python loop over images). Pixel results match
``torchvision.transforms.v2.functional`` applied to each image alone with the
same physical value: exactly for pixel-wise ops, up to rare float ties of the
sampling grid for Shear/Rotate (see tests/test_ops.py).

Conventions that are easy to get wrong, fixed here once:

- Shear is about the top-left corner (``center=[0, 0]``), as torchvision's
  AutoAugment and the original AutoAugment do; Rotate is about the image
  centre, counter-clockwise for sign +1; geometric ops use nearest sampling.
- Translate shifts by ``trunc(value * size)`` whole pixels (torchvision passes
  ``int(magnitude)`` pixels); content moves right/down for sign +1.
- Solarize inverts pixels ``>= 256 - value``, so m = 0 changes nothing
  (torchvision's threshold 255 would already invert pure white).
- AutoContrast, Invert, Equalize have no magnitude of their own: the output is
  ``blend(op(x), x, m)``, i.e. exactly the op at m = 1.
- ``lost`` is the fraction of output pixels whose content is gone (filled):
  0 for every op that is not ``lossy``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from numbers import Real
from typing import Callable, Protocol

import torch

from autosoft.errors import AutosoftError

__all__ = ["Kernel", "Op", "OPS", "OP_NAMES", "run_op", "run_warps", "apply_op", "describe_ops"]


class Kernel(Protocol):
    """A batched kernel: every op's entry in the table has one, called with these names only.

    ``value``, ``sign``, ``magnitude``: float64 (B,) on the images' device (the physical value,
    +1 / -1, and m); ``fill``: uint8 (1, C|1, 1, 1); ``max_value``: the physical value at m = 1 in
    the range in use (a static bound for buffer sizes); ``generator`` feeds ops that are
    ``random``; with ``need_lost`` False a kernel may skip computing ``lost``.
    Returns ``(images, lost)``: uint8 images of the input's shape, and float (B,) or None (none lost).
    """

    def __call__(self, images: torch.Tensor, *, value: torch.Tensor, sign: torch.Tensor,
                 magnitude: torch.Tensor, generator: torch.Generator | None, fill: torch.Tensor,
                 max_value: float, need_lost: bool) -> tuple[torch.Tensor, torch.Tensor | None]: ...


@dataclass(frozen=True)
class Op:
    """One augmentation op: how m in [0, 1] maps to a physical value, and how the engine runs it."""

    name: str
    kind: str  # "geometric" | "photometric" | "occlusion" | "mix"
    unit: str
    high: float  # physical value at m = 1, torchvision AutoAugment ranges
    wide_high: float  # physical value at m = 1, TrivialAugmentWide ranges
    signed: bool  # direction flips with sign = -1
    lossy: bool  # removes content; `lost` reports the fraction removed
    description: str
    kernel: Kernel = field(repr=False, compare=False)  # the batched kernel
    random: bool = False  # the kernel draws from the generator: the engine runs all its images in one call
    # warps only: (h, w, value, sign) -> inverse affine matrices (B, 6); warps share one sampling grid
    theta: Callable[..., torch.Tensor] | None = field(default=None, repr=False, compare=False)

    @property
    def warp(self) -> bool:
        """A nearest-neighbour affine warp (Shear, Rotate): several run as one lookup (``run_warps``)."""
        return self.theta is not None

    def value(self, m, wide: bool = False):
        """Physical value for magnitude ``m`` (float or tensor): the one mapping."""
        return m * (self.wide_high if wide else self.high)


# --- helpers ------------------------------------------------------------------
# Speed notes (CPU, one thread): uint8 <-> float32 casts and float arithmetic are
# vectorised, but float -> uint8 casts, bool-producing comparisons, `where`,
# `trunc`, `aminmax` and int64 temporaries are many times slower, and gathers
# (index_select, gather, LUT lookups) move one element at a time, about 10x the cost
# of a float pass per element. The kernels below therefore stay in float32 or int16
# arithmetic, cast to uint8 through int16, use int32 indices, and move whole rows
# where they can (shifts).

def _col(t: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1) for per-image broadcasting."""
    return t.view(-1, 1, 1, 1)


def _u8(f: torch.Tensor) -> torch.Tensor:
    """Float already clamped to [0, 255] -> uint8, truncating as ``.to(torch.uint8)`` does.

    Via int16: identical values, but the direct float -> uint8 cast is not vectorised.
    """
    return f.to(torch.int16).to(torch.uint8)


def _f32(images: torch.Tensor) -> torch.Tensor:
    return images.to(torch.float32)


def _blend(img1: torch.Tensor, img2: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend`` with a per-image ratio (float64, (B,)); img1, img2 float32.

    torchvision computes ``img1*r`` then ``add_(img2, alpha=1-r)``, i.e. a fused
    multiply-add; ``addcmul`` is fused the same way, so results match bit for bit.
    ``1 - r`` is taken in float64 before the cast, as Python does it there.
    """
    r = _col(ratio.to(torch.float32))
    alpha = _col((1.0 - ratio).to(torch.float32))
    return _u8(torch.addcmul(img1.mul_(r), img2, alpha).clamp_(0, 255))


def _grey(images: torch.Tensor) -> torch.Tensor:
    """Float greyscale (B, 1, H, W) floored to integers, as torchvision does for uint8."""
    c = images.shape[1]
    if c == 1:
        return images.to(torch.float32)
    if c != 3:
        raise AutosoftError(f"Color/Contrast need 1 or 3 channels; got {c}")
    r, g, b = images.unbind(dim=1)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).floor_().unsqueeze(1)


def _rand(n: int, generator, device, dtype=torch.float64) -> torch.Tensor:
    """Uniform [0, 1) draws made where the generator lives (CPU), then moved."""
    gdev = generator.device if generator is not None else "cpu"
    return torch.rand(n, generator=generator, device=gdev, dtype=dtype).to(device)


def _index_dtype(numel: int):
    # int32 indices halve the index traffic; int64 only when the flat size needs it
    return torch.int32 if numel < 2**31 - 1 else torch.int64


def _sample(images: torch.Tensor, idx: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """out[b, c, p] = image b, channel c, framed by one pixel of fill, at flat position idx[b, 0, p]
    (idx (B, 1, H*W) into the (H+2) x (W+2) framed image).

    One gather for the batch; the index is shared by the channels (expanded, not copied).
    """
    b, c, h, w = images.shape
    framed = fill.expand(b, c, h + 2, w + 2).clone()
    framed[:, :, 1:-1, 1:-1] = images
    return framed.view(b, c, -1).gather(2, idx.to(torch.int64).expand(b, c, h * w)).view(images.shape)


@functools.lru_cache(maxsize=64)
def _const(kind: str, h: int, w: int, device: torch.device) -> torch.Tensor:
    """Per-shape constants, built once (tiny ops dominate small groups)."""
    if kind == "frame":  # 1 on the one-pixel fill frame of an (h+2, w+2) image, flattened
        frame = torch.ones(h + 2, w + 2, dtype=torch.uint8, device=device)
        frame[1:-1, 1:-1] = 0
        return frame.view(-1)
    if kind == "half":  # torchvision divides the transposed matrix by [0.5 w, 0.5 h]
        return torch.tensor([0.5 * w, 0.5 * h], dtype=torch.float32, device=device).view(1, 2, 1, 1)
    if kind == "bx":  # torchvision's _affine_grid x coordinates
        return torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=device).view(1, 1, 1, w)
    if kind == "by":
        return torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=device).view(1, 1, h, 1)
    if kind == "shear_x":  # theta = base + t * pattern: [1, t, t*h/2; 0, 1, 0]
        return torch.tensor([[1.0, 0, 0, 0, 1, 0], [0, 1, 0.5 * h, 0, 0, 0]], dtype=torch.float64, device=device)
    if kind == "shear_y":  # [1, 0, 0; t, 1, t*w/2]
        return torch.tensor([[1.0, 0, 0, 0, 1, 0], [0, 0, 0, 1, 0, 0.5 * w]], dtype=torch.float64, device=device)
    if kind == "rotate":  # cos * [1, 0, 0; 0, 1, 0] + sin * [0, 1, 0; -1, 0, 0]
        return torch.tensor([[1.0, 0, 0, 0, 1, 0], [0, 1, 0, -1, 0, 0]], dtype=torch.float64, device=device)
    if kind == "ys":  # pixel rows, int64 (1, H)
        return torch.arange(h, device=device).view(1, h)
    if kind == "levels32":  # 0..255 as float32
        return torch.arange(256, dtype=torch.float32, device=device)
    raise KeyError(kind)


def _blend_lut(op_lut: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """LUT of ``_blend(op(x), x, m)`` from the LUT of op (B, C, 256): pixel-wise ops stay pixel-wise."""
    levels = _const("levels32", 0, 0, op_lut.device).view(1, 1, 256)
    r = m.to(torch.float32).view(-1, 1, 1)
    alpha = (1.0 - m).to(torch.float32).view(-1, 1, 1)
    return _u8(torch.addcmul(op_lut.to(torch.float32).mul_(r), levels, alpha).clamp_(0, 255))


def _shift_lost(h: int, w: int, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    return 1.0 - ((w - dx.abs()) * (h - dy.abs())).to(torch.float64) / (h * w)


def _shift(images: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, fill: torch.Tensor, max_dx: int | None = None):
    """Shift each image by integer (dx, dy) px (content moves right/down), fill the rest.

    Exact (no interpolation), and a copy of whole rows rather than a gather of pixels (several
    times faster): the images sit in a canvas with one fill row above and below and S fill
    columns on either side, and every output row is the W-pixel window of the canvas that
    starts in its source row (or a fill row), S - dx columns in. S = W covers any shift;
    a smaller known bound ``max_dx`` on |dx| keeps the canvas small. Returns (images, lost).
    """
    b, c, h, w = images.shape
    dev = images.device
    side = w if max_dx is None else min(max_dx, w)
    dx, dy = dx.clamp(-side, side), dy.clamp(-h, h)
    width = w + 2 * side
    canvas = fill.expand(b, c, h + 2, width).clone()
    canvas[:, :, 1:h + 1, side:side + w] = images
    src_row = (_const("ys", h, w, dev) - dy.view(b, 1)).clamp_(-1, h).add_(1)  # (B, H) canvas rows
    plane = torch.arange(0, b * c * (h + 2), h + 2, device=dev).view(b, c, 1)
    start = (plane + src_row.view(b, 1, h)).mul_(width).add_((side - dx).view(b, 1, 1))  # (B, C, H)
    windows = canvas.view(-1).as_strided((canvas.numel() - w + 1, w), (1, 1))  # one per offset
    return windows.index_select(0, start.view(-1)).view(images.shape), _shift_lost(h, w, dx, dy)


def _warp_index(h: int, w: int, theta: torch.Tensor) -> torch.Tensor:
    """Framed source index (B, 1, H*W) of a nearest-neighbour warp by inverse affine matrices (B, 6).

    The sampling grid is built exactly as torchvision's ``_affine_grid`` (same
    float32 ops, batched), and the nearest source pixel is picked with the same
    arithmetic as ``grid_sample(mode="nearest", align_corners=False)``:
    ``round_half_even((g + 1) * size/2 - 0.5)``; one integer lookup then replaces
    ``grid_sample`` on floats.
    """
    b, dev = theta.shape[0], theta.device
    half = _const("half", h, w, dev)
    t = theta.to(torch.float32).view(b, 2, 3).transpose(1, 2).div_(half.view(2))  # (B, 3, 2)
    t = t.unsqueeze(-1).unsqueeze(-1)  # (B, 3, 2, 1, 1): x and y planes side by side
    # torchvision's base grid is [x, y, 1] @ scaled (a bmm); written out in the same order
    # (products rounded, then summed left to right) it gives identical floats, much faster
    # (one operand expanded first: an add with both operands broadcast is not vectorised)
    grid = (_const("bx", h, w, dev) * t[:, 0]).expand(b, 2, h, w).contiguous()
    grid = grid.add_(_const("by", h, w, dev) * t[:, 1]).add_(t[:, 2])
    ixy = grid.add_(1.0).mul_(half).sub_(0.5).round_()  # (B, 2, H, W)
    if w == h:  # clamp into the frame, [-1, w] x [-1, h]; scalar bounds are the fast path
        ixy.clamp_(-1, w)
    else:
        ixy[:, 0].clamp_(-1, w)
        ixy[:, 1].clamp_(-1, h)
    ixy = ixy.to(_index_dtype((h + 2) * (w + 2)))  # positions within one framed image
    return torch.add(ixy[:, 0], ixy[:, 1], alpha=w + 2).add_(w + 3).view(b, 1, h * w)


def _frame_lost(h: int, w: int, idx: torch.Tensor) -> torch.Tensor:
    """Share of each image's samples (framed index (B, 1, H*W)) that land on the fill frame."""
    frame = _const("frame", h, w, idx.device).index_select(0, idx.view(-1)).view(idx.shape[0], h * w)
    return frame.sum(1, dtype=torch.float64) / (h * w)


def _theta_shear(axis):
    kind = "shear_" + axis

    def theta(h, w, v, s):
        # torchvision's inverse matrix for shear about center=[0, 0] (the top-left corner),
        # written out; it passes degrees(atan(level)), so t = tan(radians(degrees(atan(level))))
        t = torch.tan(torch.deg2rad(torch.rad2deg(torch.atan(v * s))))
        base, pattern = _const(kind, h, w, v.device)
        # exact: every entry is 0, 1, t or t * size/2 (one rounded product, as written out)
        return torch.addcmul(base, t.view(-1, 1), pattern)
    return theta


def _theta_rotate(h, w, v, s):
    # torchvision's rotate takes the inverse matrix of -angle about the centre, written out:
    # [cos r, sin r, 0; -sin r, cos r, 0] with r = radians(-angle); counter-clockwise
    r = torch.deg2rad(-(v * s))
    # exact: each entry is cos, sin, -sin or 0 (products with 0 and +-1, sums with 0)
    return torch.stack([torch.cos(r), torch.sin(r)], dim=1) @ _const("rotate", h, w, v.device)


_theta_shear_x, _theta_shear_y = _theta_shear("x"), _theta_shear("y")


def _warp_kernel(theta):
    """The kernel of a warp alone (``run_warps`` batches several warps into one lookup)."""
    def k(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
        h, w = images.shape[-2:]
        idx = _warp_index(h, w, theta(h, w, value, sign))
        return _sample(images, idx, fill), _frame_lost(h, w, idx) if need_lost else None
    return k


def _k_translate(axis):
    def k(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
        size = images.shape[-1] if axis == "x" else images.shape[-2]
        # trunc like torchvision's int(); the tiny epsilon keeps 149.99999... at 150
        px = torch.trunc(value * size + 1e-6).to(torch.int64) * sign.to(torch.int64)
        zero = torch.zeros_like(px)
        dx, dy = (px, zero) if axis == "x" else (zero, px)
        return _shift(images, dx, dy, fill, max_dx=int(max_value * size + 1e-6) if axis == "x" else 0)
    return k


# --- kernels: images, *, value, sign, magnitude, generator, fill, max_value, need_lost ---
# -> (images, lost or None); the arguments are described by `Kernel`.

def _k_identity(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    return images.clone(), None


def _k_autocontrast(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    # torchvision's autocontrast_image, then blended with the original by m
    b, c = images.shape[:2]
    flat = images.view(b, c, -1)
    minimum = flat.amin(dim=2).to(torch.float32).view(b, c, 1, 1)
    maximum = flat.amax(dim=2).to(torch.float32).view(b, c, 1, 1)
    eq = maximum == minimum
    inv_scale = maximum.sub_(minimum).mul_(1.0 / 255).masked_fill_(eq, 1.0)
    minimum.masked_fill_(eq, 0.0)
    y = _f32(images)
    # .to(uint8) truncates; values are clamped to >= 0, so floor is the same
    op = (y - minimum).div_(inv_scale).clamp_(0, 255).floor_()
    return _blend(op, y, magnitude), None


def _k_invert(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    y = _f32(images)
    return _blend(torch.rsub(y, 255.0), y, magnitude), None


def _k_equalize(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    # torchvision's equalize_image (PIL's scheme) per channel, as a LUT; one bincount for the batch
    b, c = images.shape[:2]
    n = images.shape[-1] * images.shape[-2]
    rows = b * c
    dt = _index_dtype(rows * 256)
    pixels = images.reshape(rows, n)
    offset = torch.arange(0, rows * 256, 256, device=images.device, dtype=dt).view(-1, 1)
    flat = pixels.to(dt).add_(offset)  # level + 256 * row: one histogram for all rows
    hist = torch.bincount(flat.view(-1), minlength=rows * 256).view(rows, 256)
    top_count = hist.gather(1, pixels.amax(dim=1, keepdim=True).to(torch.int64))  # last non-empty bin
    step = (n - top_count).div_(255, rounding_mode="floor")
    # lut[k] = (cum[k - 1] + step // 2) // step with lut[0] = 0, i.e. the exclusive cumsum
    # (cum - hist) for every k. The floor of the float quotient is exact: quotients are at most
    # ~256 and at least 1/step from the next integer, which float32 resolves while n < 2^24
    # (float64 beyond).
    ftype = torch.float32 if n < 2**24 else torch.float64
    lut = (hist.cumsum(dim=-1) - hist).add_(step // 2).to(ftype)
    lut = lut.div_(step.clamp(min=1).to(ftype)).floor_().clamp_(0, 255)
    # a flat histogram (step 0) leaves the channel unchanged; arithmetic select (`where` is slow)
    keep = (step != 0).to(ftype)
    op = lut.mul_(keep).add_(_const("levels32", 0, 0, images.device).to(ftype) * (1 - keep))
    lut = _blend_lut(op.view(b, c, 256), magnitude)
    return lut.view(-1).index_select(0, flat.view(-1)).view(images.shape), None


def _k_solarize(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    # torchvision: where(x >= threshold, 255 - x, x). For integer x, x >= thr is x >= ceil(thr);
    # done in int16 arithmetic: flip = clamp(x - ceil(thr) + 1, 0, 1), out = x ^ (255 * flip)
    thr = torch.ceil((256.0 - value).to(torch.float32)).to(torch.int16)
    x16 = images.to(torch.int16)
    flip = (x16 - _col(thr - 1)).clamp_(0, 1).mul_(255)
    return flip.bitwise_xor_(x16).to(torch.uint8), None


def _k_posterize(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    bits = 8 - torch.round(value).to(torch.int64)
    mask = ((1 << bits) - 1) << (8 - bits)
    return images & _col(mask.to(torch.uint8)), None


def _k_contrast(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    b, _, h, w = images.shape
    mean = torch.mean(_grey(images), dim=(-3, -2, -1), keepdim=True)  # (B, 1, 1, 1)
    r = 1.0 + sign * value
    # the mean spread over one channel plane: addcmul's fast path takes one broadcast operand only
    out = torch.addcmul(_f32(images).mul_(_col(r.to(torch.float32))), mean.expand(b, 1, h, w).contiguous(),
                        _col((1.0 - r).to(torch.float32)))
    return _u8(out.clamp_(0, 255)), None


def _k_color(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    if images.shape[1] == 1:  # saturation is a no-op on grey images (as torchvision / PIL)
        return images.clone(), None
    return _blend(_f32(images), _grey(images), 1.0 + sign * value), None


def _k_brightness(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    f = _col((1.0 + sign * value).to(torch.float32))
    return _u8(_f32(images).mul_(f).clamp_(0, 255)), None


def _k_sharpness(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    b, c, h, w = images.shape
    if h <= 2 or w <= 2:
        return images.clone(), None
    # torchvision: round(conv3x3([[1,1,1],[1,5,1],[1,1,1]] / 13)). The exact value N/13 is
    # never within 1/26 of a .5 tie, so round(N / 13) from the integer sum N is identical.
    # Sums run on each image flattened (long contiguous rows); the wrapped values they
    # produce at the left/right borders are overwritten with the original borders after.
    # The 3x3 sums (at most 13 * 255) are exact in int16, twice as many lanes as float32.
    i = images.reshape(b * c, h * w).to(torch.int16)
    rows = i[:, : -2 * w] + i[:, w:-w]
    rows += i[:, 2 * w:]  # vertical 3-sums, centred one row down
    box = rows[:, :-2] + rows[:, 1:-1]
    box += rows[:, 2:]  # 3x3 sums, centred at flat index w + 1 + j
    f = _f32(images.reshape(b * c, h * w))
    centre = f[:, w + 1: h * w - w - 1]
    blurred = _f32(box.add_(i[:, w + 1: h * w - w - 1], alpha=4)).div_(13).round_().sub_(centre)
    alpha = (1.0 - (1.0 + sign * value)).to(torch.float32).view(b, 1, 1).expand(b, c, 1).reshape(b * c, 1)
    centre.addcmul_(blurred, alpha)  # fused like torchvision's add_(alpha=...); in place: f is ours
    out = f.view(b, c, h, w)
    out[..., 1:-1, 0] = images[..., 1:-1, 0]  # borders are kept
    out[..., 1:-1, -1] = images[..., 1:-1, -1]
    return _u8(out.clamp_(0, 255)), None


def _k_cutout(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    b, _, h, w = images.shape
    dev = images.device
    side = torch.round(value * min(h, w)).to(torch.int64)
    gdev = generator.device if generator is not None else "cpu"
    cy = torch.randint(0, h, (b,), generator=generator, device=gdev).to(dev)
    cx = torch.randint(0, w, (b,), generator=generator, device=gdev).to(dev)
    y0 = (cy - side // 2).clamp(0, h)
    y1 = (cy - side // 2 + side).clamp(0, h)
    x0 = (cx - side // 2).clamp(0, w)
    x1 = (cx - side // 2 + side).clamp(0, w)
    ys = torch.arange(h, device=dev).view(1, h)
    xs = torch.arange(w, device=dev).view(1, w)
    iny = ((ys >= y0.view(b, 1)) & (ys < y1.view(b, 1))).to(torch.uint8)
    inx = ((xs >= x0.view(b, 1)) & (xs < x1.view(b, 1))).to(torch.uint8)
    hole = iny.view(b, 1, h, 1) * inx.view(b, 1, 1, w)  # 0/1; uint8 arithmetic beats `where`
    lost = ((y1 - y0) * (x1 - x0)).to(torch.float64) / (h * w)
    return (images - images * hole).add_(hole * fill), lost


def _k_sample_pairing(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    gdev = generator.device if generator is not None else "cpu"
    perm = torch.randperm(images.shape[0], generator=generator, device=gdev).to(images.device)
    return _blend(_f32(images.index_select(0, perm)), _f32(images), value), None


def _k_flip(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    on = _col((magnitude > 0).to(torch.uint8))
    return (images - images * on).add_(images.flip(-1) * on), None


def _k_padcrop(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    b, _, h, w = images.shape

    def offsets(size):
        span = torch.round(value * size).to(torch.int64)  # S
        u = _rand(b, generator, images.device)
        k = torch.minimum(torch.floor(u * (2 * span + 1)).to(torch.int64), 2 * span)
        return k - span

    dx = offsets(w)
    dy = offsets(h)
    return _shift(images, dx, dy, fill, max_dx=round(max_value * w))


def _k_softcrop(images, *, value, sign, magnitude, generator, fill, max_value, need_lost):
    b, _, h, w = images.shape

    def offsets(size):
        # Truncated normal by inverse CDF: same law as redrawing until |t| <= size.
        sigma = value * size
        lim = torch.special.ndtr(size / sigma.clamp_min(1e-12))
        u = _rand(b, generator, images.device)
        p = (1.0 - lim) + u * (2.0 * lim - 1.0)
        p = p.clamp(1e-300, 1.0 - 1e-16)
        t = (sigma * torch.special.ndtri(p)).clamp(-size, size)
        return torch.round(t).to(torch.int64)

    dx = offsets(w)
    dy = offsets(h)
    return _shift(images, dx, dy, fill)


# --- the op table ------------------------------------------------------------------
# Everything the engine needs to know about an op is a field of its entry: the magnitude
# mapping, `signed`, `lossy`, `random` (draws from the generator), `theta` (a warp) and
# the kernel. Warps get their kernel from their theta.

def _op(name, kind, unit, high, wide_high, signed, lossy, description, kernel=None, *, random=False, theta=None):
    if theta is not None:
        kernel = _warp_kernel(theta)
    return name, Op(name, kind, unit, float(high), float(wide_high), signed, lossy, description, kernel,
                    random=random, theta=theta)


_ENHANCE = "factor offset"
OPS: dict[str, Op] = dict(
    [
        _op("Identity", "photometric", "-", 0, 0, False, False, "returns the image unchanged",
            _k_identity),
        _op("ShearX", "geometric", "shear factor", 0.3, 0.99, True, True,
            "x += value*y about the top-left corner (as AutoAugment), nearest, filled",
            theta=_theta_shear_x),
        _op("ShearY", "geometric", "shear factor", 0.3, 0.99, True, True,
            "y += value*x about the top-left corner (as AutoAugment), nearest, filled",
            theta=_theta_shear_y),
        _op("TranslateX", "geometric", "fraction of width", 150 / 331, 1.0, True, True,
            "shift right by trunc(value*W) px (left for sign -1), filled",
            _k_translate("x")),
        _op("TranslateY", "geometric", "fraction of height", 150 / 331, 1.0, True, True,
            "shift down by trunc(value*H) px (up for sign -1), filled",
            _k_translate("y")),
        _op("Rotate", "geometric", "degrees", 30, 135, True, True,
            "rotate counter-clockwise about the centre (clockwise for sign -1), nearest, filled",
            theta=_theta_rotate),
        _op("AutoContrast", "photometric", "blend weight", 1, 1, False, False,
            "per-channel min-max stretch, blended with the original by m",
            _k_autocontrast),
        _op("Invert", "photometric", "blend weight", 1, 1, False, False,
            "255 - x, blended with the original by m",
            _k_invert),
        _op("Equalize", "photometric", "blend weight", 1, 1, False, False,
            "per-channel histogram equalisation (PIL scheme), blended with the original by m",
            _k_equalize),
        _op("Solarize", "photometric", "threshold drop", 256, 256, False, False,
            "invert pixels >= 256 - value (so m = 0 inverts none)",
            _k_solarize),
        _op("Posterize", "photometric", "bits removed", 4, 6, False, False,
            "keep the top 8 - round(value) bits of each pixel",
            _k_posterize),
        _op("Contrast", "photometric", _ENHANCE, 0.9, 0.99, True, False,
            "factor 1 + sign*value: blend with the mean grey level",
            _k_contrast),
        _op("Color", "photometric", _ENHANCE, 0.9, 0.99, True, False,
            "factor 1 + sign*value: blend with the greyscale image (saturation)",
            _k_color),
        _op("Brightness", "photometric", _ENHANCE, 0.9, 0.99, True, False,
            "factor 1 + sign*value: blend with black",
            _k_brightness),
        _op("Sharpness", "photometric", _ENHANCE, 0.9, 0.99, True, False,
            "factor 1 + sign*value: blend with a 3x3 smoothed image (borders kept)",
            _k_sharpness),
        _op("Cutout", "occlusion", "side / min(H, W)", 0.6, 0.6, False, True,
            "fill a square of side round(value*min(H,W)) px, centre uniform over the image (clipped)",
            _k_cutout, random=True),
        _op("SamplePairing", "mix", "weight of the other image", 0.5, 0.5, False, False,
            "blend with another image of the batch (random permutation)",
            _k_sample_pairing, random=True),
        _op("FlipLR", "geometric", "flip (on when m > 0)", 1, 1, False, False,
            "mirror left-right when m > 0",
            _k_flip),
        _op("PadCrop", "geometric", "max shift / size", 0.25, 0.25, False, True,
            "pad-and-random-crop: shift by integers uniform in [-S, S], S = round(value*size), filled",
            _k_padcrop, random=True),
        _op("SoftCrop", "geometric", "shift std / size", 0.5, 0.5, False, True,
            "Soft Augmentation crop: shift by round(N(0, value*size)) px truncated to |t| <= size, filled",
            _k_softcrop, random=True),
    ]
)
OP_NAMES = list(OPS)


# --- public API -----------------------------------------------------------------

def _get_op(name) -> Op:
    op = OPS.get(name) if isinstance(name, str) else None
    if op is None:
        raise AutosoftError(f"unknown op {name!r}; allowed: {', '.join(OP_NAMES)}")
    return op


def _check_images(images) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        got = (f"{images.dtype} tensor of shape {tuple(images.shape)}" if isinstance(images, torch.Tensor)
               else type(images).__name__)
        raise AutosoftError(f"images must be a uint8 tensor (B, C, H, W); got {got}")


def _fill_tensor(fill, images: torch.Tensor) -> torch.Tensor:
    c = images.shape[1]
    key = fill if isinstance(fill, Real) else tuple(fill) if isinstance(fill, (list, tuple)) else None
    try:
        return _fill_cached(key, c, images.device)
    except TypeError:  # unhashable entries: invalid anyway
        return _fill_cached.__wrapped__(key, c, images.device)


@functools.lru_cache(maxsize=64)
def _fill_cached(fill, c: int, device) -> torch.Tensor:
    """The fill as uint8 (1, C|1, 1, 1), validated and built once per (fill, C, device)."""
    vals = [fill] if isinstance(fill, Real) else list(fill) if isinstance(fill, tuple) else None
    if (vals is None or len(vals) not in (1, c)
            or not all(isinstance(f, Real) and 0 <= f <= 255 for f in vals)):
        raise AutosoftError(f"fill must be a number in [0, 255] or a sequence of {c} of them; got {fill!r}")
    t = torch.tensor([round(float(f)) for f in vals], dtype=torch.uint8, device=device)
    return t.view(1, -1, 1, 1)


def run_op(name, images, magnitude, sign, *, wide=False, generator=None, fill=128, need_lost=True):
    """Apply op ``name`` with per-image ``magnitude`` and ``sign`` (tensors (B,)).

    The engine's inner call: the name and image type are checked, values are
    trusted (``apply_op`` validates them). Returns ``(images, lost)``: uint8
    images of the same shape and device, and float32 (B,) on that device, the
    fraction of each image's content lost (0 for ops that are not lossy). With
    ``need_lost=False`` the caller has no use for ``lost``: it may come back None
    (the kernel skips that work).
    """
    op = _get_op(name)
    _check_images(images)
    dev = images.device
    b = images.shape[0]
    fill_t = _fill_tensor(fill, images)
    if b == 0:
        return images.clone(), torch.zeros(0, dtype=torch.float32, device=dev)
    m, s = _per_image(magnitude, b, dev), _per_image(sign, b, dev)
    out, lost = op.kernel(images, value=op.value(m, wide), sign=s, magnitude=m, generator=generator, fill=fill_t,
                          max_value=op.value(1.0, wide), need_lost=need_lost)
    if lost is None:
        return out, torch.zeros(b, dtype=torch.float32, device=dev) if need_lost else None
    return out, lost.to(torch.float32)


def _per_image(t, b: int, dev) -> torch.Tensor:
    """Float64 (B,) on dev (already so: returned as is, no tiny conversion ops)."""
    if isinstance(t, torch.Tensor) and t.dtype == torch.float64 and t.shape == (b,) and t.device == dev:
        return t
    return torch.as_tensor(t).to(device=dev, dtype=torch.float64).reshape(-1).expand(b)


def run_warps(parts, images, magnitude, sign, *, wide=False, fill=128, need_lost=None):
    """Several warps (ops with a ``theta``) in one sampling grid and one lookup.

    ``parts``: ``[(name, count), ...]``; the images come grouped in that order, the first
    ``count`` images running the first op, and so on; ``magnitude`` and ``sign``: float64 (B,)
    on the images' device. Each image comes out as ``run_op`` makes it. ``need_lost``: one
    bool per part (None: all). Returns ``(images, [lost (float32) or None per part])``.
    """
    _check_images(images)
    h, w = images.shape[-2:]
    thetas, lo = [], 0
    for name, count in parts:
        op, hi = _get_op(name), lo + count
        if op.theta is None:
            raise AutosoftError(f"run_warps runs warps only ({', '.join(n for n, o in OPS.items() if o.warp)}); "
                                f"got {op.name}")
        thetas.append(op.theta(h, w, op.value(magnitude[lo:hi], wide), sign[lo:hi]))
        lo = hi
    idx = _warp_index(h, w, torch.cat(thetas))
    losts, lo = [], 0
    for k, (_, count) in enumerate(parts):
        want = need_lost is None or need_lost[k]
        losts.append(_frame_lost(h, w, idx[lo:lo + count]).to(torch.float32) if want else None)
        lo += count
    return _sample(images, idx, _fill_tensor(fill, images)), losts


def apply_op(name, images, magnitude, sign=+1, *, wide=False, generator=None, fill=128):
    """Apply one op to a batch; scalars broadcast, tensors (B,) give per-image values.

    ``magnitude`` in [0, 1] (0 = identity, 1 = strongest); ``sign`` +1 or -1 flips
    the direction of signed ops; ``wide`` picks the TrivialAugmentWide ranges;
    random ops (``Op.random``: Cutout, SamplePairing, PadCrop, SoftCrop) draw from ``generator``.

    >>> import torch
    >>> x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    >>> all(torch.equal(apply_op(name, x, 0.0), x) for name in OP_NAMES)
    True
    >>> white = torch.full((1, 1, 1, 2), 255, dtype=torch.uint8)
    >>> apply_op("Posterize", white, 1.0).flatten().tolist()  # 4 bits removed
    [240, 240]
    >>> apply_op("Brightness", white, torch.tensor([0.5]), sign=-1).flatten().tolist()  # factor 0.55
    [140, 140]
    """
    op = _get_op(name)
    _check_images(images)
    b = images.shape[0]

    def per_image(x, what):
        t = torch.as_tensor(x)
        if t.ndim == 0:
            t = t.expand(b)
        if t.ndim != 1 or t.shape[0] != b:
            raise AutosoftError(f"{what} must be a scalar or a tensor of shape ({b},); got shape {tuple(t.shape)}")
        return t

    try:
        m = per_image(magnitude, "magnitude").to(torch.float64)
        s = per_image(sign, "sign").to(torch.float64)
    except (TypeError, ValueError, RuntimeError) as e:
        if isinstance(e, AutosoftError):
            raise
        raise AutosoftError(f"magnitude and sign must be numbers or tensors; got {magnitude!r}, {sign!r}") from None
    if b and not bool(((m >= 0) & (m <= 1)).all()):
        raise AutosoftError(f"magnitude must be in [0, 1] for op {op.name}; got {_show(m)}")
    if b and not bool(((s == 1) | (s == -1)).all()):
        raise AutosoftError(f"sign must be +1 or -1; got {_show(s)}")
    return run_op(op.name, images, m, s, wide=wide, generator=generator, fill=fill)[0]


def _show(t: torch.Tensor) -> str:
    """The offending values, short."""
    vals = t.unique().tolist()
    return ", ".join(f"{v:g}" for v in vals[:5]) + (" ..." if len(vals) > 5 else "")


def describe_ops(wide: bool = False) -> str:
    """Readable table of the ops: name, kind, value at m = 1 with unit, flags, what it does."""
    rows = [("name", "kind", "at m=1", "signed", "lossy", "description")]
    for op in OPS.values():
        at1 = op.value(1.0, wide)
        rows.append((op.name, op.kind, f"{at1:.4g} {op.unit}" if op.unit != "-" else "-",
                     "yes" if op.signed else "no", "yes" if op.lossy else "no", op.description))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    title = f"ops ({'wide: TrivialAugmentWide' if wide else 'standard: AutoAugment'} ranges); m in [0, 1], 0 = identity"
    lines = [title]
    for r in rows:
        lines.append("  ".join(c.ljust(wd) for c, wd in zip(r[:5], widths)) + "  " + r[5])
    return "\n".join(lines)
