"""The op table and its batched kernels.

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

from dataclasses import dataclass
from numbers import Real

import torch
import torch.nn.functional as nnf

from autosoft.errors import AutosoftError

__all__ = ["Op", "OPS", "OP_NAMES", "run_op", "apply_op", "describe_ops"]


@dataclass(frozen=True)
class Op:
    """One augmentation op: how m in [0, 1] maps to a physical value."""

    name: str
    kind: str  # "geometric" | "photometric" | "occlusion" | "mix"
    unit: str
    high: float  # physical value at m = 1, torchvision AutoAugment ranges
    wide_high: float  # physical value at m = 1, TrivialAugmentWide ranges
    signed: bool  # direction flips with sign = -1
    lossy: bool  # removes content; `lost` reports the fraction removed
    description: str

    def value(self, m, wide: bool = False):
        """Physical value for magnitude ``m`` (float or tensor): the one mapping."""
        return m * (self.wide_high if wide else self.high)


def _op(name, kind, unit, high, wide_high, signed, lossy, description):
    return name, Op(name, kind, unit, float(high), float(wide_high), signed, lossy, description)


_ENHANCE = "factor offset"
OPS: dict[str, Op] = dict(
    [
        _op("Identity", "photometric", "-", 0, 0, False, False, "returns the image unchanged"),
        _op("ShearX", "geometric", "shear factor", 0.3, 0.99, True, True,
            "x += value*y about the top-left corner (as AutoAugment), nearest, filled"),
        _op("ShearY", "geometric", "shear factor", 0.3, 0.99, True, True,
            "y += value*x about the top-left corner (as AutoAugment), nearest, filled"),
        _op("TranslateX", "geometric", "fraction of width", 150 / 331, 1.0, True, True,
            "shift right by trunc(value*W) px (left for sign -1), filled"),
        _op("TranslateY", "geometric", "fraction of height", 150 / 331, 1.0, True, True,
            "shift down by trunc(value*H) px (up for sign -1), filled"),
        _op("Rotate", "geometric", "degrees", 30, 135, True, True,
            "rotate counter-clockwise about the centre (clockwise for sign -1), nearest, filled"),
        _op("AutoContrast", "photometric", "blend weight", 1, 1, False, False,
            "per-channel min-max stretch, blended with the original by m"),
        _op("Invert", "photometric", "blend weight", 1, 1, False, False,
            "255 - x, blended with the original by m"),
        _op("Equalize", "photometric", "blend weight", 1, 1, False, False,
            "per-channel histogram equalisation (PIL scheme), blended with the original by m"),
        _op("Solarize", "photometric", "threshold drop", 256, 256, False, False,
            "invert pixels >= 256 - value (so m = 0 inverts none)"),
        _op("Posterize", "photometric", "bits removed", 4, 6, False, False,
            "keep the top 8 - round(value) bits of each pixel"),
        _op("Contrast", "photometric", _ENHANCE, 0.9, 0.99, True, False,
            "factor 1 + sign*value: blend with the mean grey level"),
        _op("Color", "photometric", _ENHANCE, 0.9, 0.99, True, False,
            "factor 1 + sign*value: blend with the greyscale image (saturation)"),
        _op("Brightness", "photometric", _ENHANCE, 0.9, 0.99, True, False,
            "factor 1 + sign*value: blend with black"),
        _op("Sharpness", "photometric", _ENHANCE, 0.9, 0.99, True, False,
            "factor 1 + sign*value: blend with a 3x3 smoothed image (borders kept)"),
        _op("Cutout", "occlusion", "side / min(H, W)", 0.6, 0.6, False, True,
            "fill a square of side round(value*min(H,W)) px, centre uniform over the image (clipped)"),
        _op("SamplePairing", "mix", "weight of the other image", 0.5, 0.5, False, False,
            "blend with another image of the batch (random permutation)"),
        _op("FlipLR", "geometric", "flip (on when m > 0)", 1, 1, False, False,
            "mirror left-right when m > 0"),
        _op("PadCrop", "geometric", "max shift / size", 0.25, 0.25, False, True,
            "pad-and-random-crop: shift by integers uniform in [-S, S], S = round(value*size), filled"),
        _op("SoftCrop", "geometric", "shift std / size", 0.5, 0.5, False, True,
            "Soft Augmentation crop: shift by round(N(0, value*size)) px truncated to |t| <= size, filled"),
    ]
)
OP_NAMES = list(OPS)


# --- helpers ------------------------------------------------------------------

def _col(t: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1) for per-image broadcasting."""
    return t.view(-1, 1, 1, 1)


def _blend(img1: torch.Tensor, img2: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend`` with a per-image ratio (float64, (B,)).

    torchvision computes ``img1*r`` then ``add_(img2, alpha=1-r)``, i.e. a fused
    multiply-add; ``addcmul`` is fused the same way, so results match bit for bit.
    ``1 - r`` is taken in float64 before the cast, as Python does it there.
    """
    r = _col(ratio.to(torch.float32))
    alpha = _col((1.0 - ratio).to(torch.float32))
    return torch.addcmul(img1.mul(r), img2, alpha).clamp_(0, 255).to(torch.uint8)


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


def _padded(images: torch.Tensor, py: int, px: int, fill: torch.Tensor) -> torch.Tensor:
    """Images framed by a border of fill (py rows, px columns), flattened to (B, C, H2*W2)."""
    b, c, h, w = images.shape
    out = fill.expand(b, c, h + 2 * py, w + 2 * px).clone()
    out[:, :, py:py + h, px:px + w] = images
    return out.view(b, c, -1)


def _gather(flat: torch.Tensor, idx: torch.Tensor, shape) -> torch.Tensor:
    """out[b, c, p] = flat[b, c, idx[b, p]]: one gather for the batch, shared by the channels."""
    b, c = flat.shape[:2]
    return flat.gather(2, idx.view(b, 1, -1).expand(b, c, idx.shape[-1])).view(shape)


def _shift(images: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, fill: torch.Tensor, px: int, py: int):
    """Shift each image by integer (dx, dy) px (content moves right/down), fill the rest.

    Exact (no interpolation). The source is framed by a fill border wide enough for
    any shift (|dx| <= px, |dy| <= py), so the source index is one subtraction and
    vacated pixels read the border. Returns (images, lost).
    """
    b, c, h, w = images.shape
    dev = images.device
    dx = dx.clamp(-px, px)
    dy = dy.clamp(-py, py)
    w2 = w + 2 * px
    base = ((torch.arange(h, device=dev) + py) * w2).view(h, 1) + (torch.arange(w, device=dev) + px)
    idx = base.view(1, h * w) - (dy * w2 + dx).view(b, 1)
    out = _gather(_padded(images, py, px, fill), idx, images.shape)
    lost = 1.0 - ((w - dx.abs()) * (h - dy.abs())).to(torch.float64) / (h * w)
    return out, lost


def _inverse_affine(angle, shear_x, shear_y, cx, cy):
    """Batched torchvision ``_get_inverse_affine_matrix`` (degrees, no translate, scale 1).

    All inputs float64 tensors (B,) or floats; returns (B, 2, 3) float64.
    """
    rot = torch.deg2rad(angle)
    sx = torch.deg2rad(shear_x)
    sy = torch.deg2rad(shear_y)
    cos_sy = torch.cos(sy)
    tan_sx = torch.tan(sx)
    a = torch.cos(rot - sy) / cos_sy
    b_ = -(a * tan_sx + torch.sin(rot))
    c = torch.sin(rot - sy) / cos_sy
    d = torch.cos(rot) - c * tan_sx
    m0, m1, m3, m4 = d, -b_, -c, a
    m2 = cx - m0 * cx - m1 * cy
    m5 = cy - m3 * cx - m4 * cy
    return torch.stack([m0, m1, m2, m3, m4, m5], dim=1).view(-1, 2, 3)


def _warp(images: torch.Tensor, matrix: torch.Tensor, fill: torch.Tensor):
    """Nearest-neighbour warp of each image by its own inverse affine matrix.

    The sampling grid is built exactly as torchvision's ``_affine_grid`` (same
    float32 ops, batched), and the nearest source pixel is picked with the same
    arithmetic as ``grid_sample(mode="nearest", align_corners=False)``:
    ``round_half_even((g + 1) * size/2 - 0.5)``. Instead of ``grid_sample`` on
    floats, one integer gather does the sampling: coordinates are clamped into a
    one-pixel fill frame, and a ones channel gathered alongside measures ``lost``.
    """
    b, c, h, w = images.shape
    dev = images.device
    theta = matrix.to(device=dev, dtype=torch.float32)
    base = torch.empty(1, h, w, 3, dtype=torch.float32, device=dev)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=dev))
    base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=dev).unsqueeze_(-1))
    base[..., 2].fill_(1)
    scaled = theta.transpose(1, 2).div_(torch.tensor([0.5 * w, 0.5 * h], dtype=torch.float32, device=dev))
    grid = base.view(1, h * w, 3).expand(b, h * w, 3).bmm(scaled)  # (B, HW, 2)
    ix = grid[..., 0].add(1.0).mul_(0.5 * w).sub_(0.5).round_().clamp_(-1, w)
    iy = grid[..., 1].add(1.0).mul_(0.5 * h).sub_(0.5).round_().clamp_(-1, h)
    idx = iy.add_(1.0).mul_(w + 2).add_(ix).add_(1.0).to(torch.int64)
    src = torch.cat((images, torch.ones(b, 1, h, w, dtype=torch.uint8, device=dev)), dim=1)
    fill1 = torch.cat((fill.expand(1, c, 1, 1), fill.new_zeros(1, 1, 1, 1)), dim=1)
    out = _gather(_padded(src, 1, 1, fill1), idx, (b, c + 1, h, w))
    lost = 1.0 - out[:, c].sum(dim=(1, 2), dtype=torch.float64) / (h * w)
    return out[:, :c].contiguous(), lost


def _apply_lut(images: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """out = lut[b, (c,) x]: per-image (B, 256) or per-channel (B, C, 256) uint8 tables."""
    b, c = images.shape[:2]
    rows = b * c if lut.ndim == 3 else b
    return lut.reshape(rows, 256).gather(1, images.reshape(rows, -1).to(torch.int64)).view(images.shape)


def _levels(images: torch.Tensor, lead: int) -> torch.Tensor:
    """Float32 0..255 ramp shaped (1, ..., 256) with `lead` leading singleton dims."""
    return torch.arange(256, dtype=torch.float32, device=images.device).view(*([1] * lead), 256)


def _blend_lut(op_lut: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """LUT of ``_blend(op(x), x, m)`` from the LUT of op (B, C, 256): pixel-wise ops stay pixel-wise."""
    levels = _levels(op_lut, 2)
    r = m.to(torch.float32).view(-1, 1, 1)
    alpha = (1.0 - m).to(torch.float32).view(-1, 1, 1)
    return torch.addcmul(op_lut.to(torch.float32).mul(r), levels, alpha).clamp_(0, 255).to(torch.uint8)


# --- kernels: (images, value, sign, m, generator, fill, top) -> (images, lost or None) ---
# value, sign, m: float64 (B,) on the images' device; fill: uint8 (1, C|1, 1, 1);
# top: the physical value at m = 1 in the range in use (a static bound for buffer sizes).

def _k_identity(x, v, s, m, g, fill, top):
    return x.clone(), None


def _k_shear(axis):
    def k(x, v, s, m, g, fill, top):
        b, _, h, w = x.shape
        deg = torch.rad2deg(torch.atan(v * s))  # torchvision passes degrees(atan(level))
        zero = torch.zeros_like(deg)
        sx, sy = (deg, zero) if axis == "x" else (zero, deg)
        # center=[0, 0] (top-left) expressed relative to the image centre
        return _warp(x, _inverse_affine(zero, sx, sy, -0.5 * w, -0.5 * h), fill)
    return k


def _trunc_px(v, size):
    # trunc like torchvision's int(); the tiny epsilon keeps 149.99999... at 150
    return torch.trunc(v * size + 1e-6).to(torch.int64)


def _k_translate(axis):
    def k(x, v, s, m, g, fill, top):
        h, w = x.shape[-2:]
        size = w if axis == "x" else h
        px = _trunc_px(v, size) * s.to(torch.int64)
        bound = int(top * size + 1e-6)
        zero = torch.zeros_like(px)
        if axis == "x":
            return _shift(x, px, zero, fill, bound, 0)
        return _shift(x, zero, px, fill, 0, bound)
    return k


def _k_rotate(x, v, s, m, g, fill, top):
    zero = torch.zeros_like(v)
    # torchvision's rotate calls the affine helper with -angle (counter-clockwise)
    return _warp(x, _inverse_affine(-(v * s), zero, zero, zero, zero), fill)


def _k_autocontrast(x, v, s, m, g, fill, top):
    # torchvision's autocontrast_image, evaluated on the 256 levels of each channel
    b, c = x.shape[:2]
    lo, hi = x.view(b, c, -1).aminmax(dim=2)
    minimum = lo.to(torch.float32).unsqueeze(-1)
    maximum = hi.to(torch.float32).unsqueeze(-1)
    eq = maximum == minimum
    inv_scale = maximum.sub_(minimum).mul_(1.0 / 255)
    minimum[eq] = 0.0
    inv_scale[eq] = 1.0
    lut = (_levels(x, 2) - minimum).div_(inv_scale).clamp_(0, 255).to(torch.uint8)
    return _apply_lut(x, _blend_lut(lut, m)), None


def _k_invert(x, v, s, m, g, fill, top):
    lut = (255 - torch.arange(256, device=x.device, dtype=torch.uint8)).view(1, 1, 256)
    return _apply_lut(x, _blend_lut(lut, m)[:, 0]), None


def _k_equalize(x, v, s, m, g, fill, top):
    # torchvision's equalize_image (PIL's scheme) per channel, as a LUT; one bincount for the batch
    b, c = x.shape[:2]
    n = x.shape[-1] * x.shape[-2]
    flat = x.reshape(b * c, n).to(torch.int64)
    offset = torch.arange(b * c, device=x.device).view(-1, 1) * 256
    hist = torch.bincount((flat + offset).view(-1), minlength=b * c * 256).view(b * c, 256)
    cum_hist = hist.cumsum(dim=-1)
    last = cum_hist.argmax(dim=-1, keepdim=True)  # last non-empty bin
    step = (n - hist.gather(-1, last)).div_(255, rounding_mode="floor")
    lut = cum_hist[:, :-1].add(step // 2).div_(step.clamp(min=1), rounding_mode="floor").clamp_(0, 255)
    lut = torch.cat([lut.new_zeros(b * c, 1), lut], dim=1)
    lut = torch.where(step != 0, lut, torch.arange(256, device=x.device))  # flat histogram: unchanged
    lut = _blend_lut(lut.view(b, c, 256), m).view(b * c, 256)
    return lut.gather(1, flat).view(x.shape), None


def _k_solarize(x, v, s, m, g, fill, top):
    # x >= t (float) <=> x >= ceil(t) for integer x; t = 256 (m = 0) inverts nothing
    t = torch.ceil((256.0 - v).to(torch.float32)).to(torch.int64)
    flip = torch.where(t <= 255, 255, 0).to(torch.uint8)
    t8 = t.clamp(max=255).to(torch.uint8)
    return torch.where(x >= _col(t8), x ^ _col(flip), x), None


def _k_posterize(x, v, s, m, g, fill, top):
    bits = 8 - torch.round(v).to(torch.int64)
    mask = ((1 << bits) - 1) << (8 - bits)
    return x & _col(mask.to(torch.uint8)), None


def _k_contrast(x, v, s, m, g, fill, top):
    mean = torch.mean(_grey(x), dim=(-3, -2, -1), keepdim=True)  # (B, 1, 1, 1)
    r = 1.0 + s * v
    lut = torch.addcmul(_levels(x, 1).mul(r.to(torch.float32).view(-1, 1)), mean.view(-1, 1),
                        (1.0 - r).to(torch.float32).view(-1, 1))
    return _apply_lut(x, lut.clamp_(0, 255).to(torch.uint8)), None


def _k_color(x, v, s, m, g, fill, top):
    if x.shape[1] == 1:  # saturation is a no-op on grey images (as torchvision / PIL)
        return x.clone(), None
    return _blend(x, _grey(x), 1.0 + s * v), None


def _k_brightness(x, v, s, m, g, fill, top):
    f = (1.0 + s * v).to(torch.float32).view(-1, 1)
    return _apply_lut(x, _levels(x, 1).mul(f).clamp_(0, 255).to(torch.uint8)), None


def _k_sharpness(x, v, s, m, g, fill, top):
    b, c, h, w = x.shape
    if h <= 2 or w <= 2:
        return x.clone(), None
    # torchvision: round(conv3x3([[1,1,1],[1,5,1],[1,1,1]] / 13)). The exact value N/13 is
    # never within 1/26 of a .5 tie, so round(N / 13) from the integer sum N is identical.
    # Sums run on each image flattened (long contiguous rows); the wrapped values they
    # produce at the left/right borders are never used (borders are kept).
    f = x.reshape(b * c, h * w).to(torch.float32)
    rows = f[:, : -2 * w] + f[:, w:-w]
    rows += f[:, 2 * w:]  # vertical 3-sums, centred one row down
    box = rows[:, :-2] + rows[:, 1:-1]
    box += rows[:, 2:]  # 3x3 sums, centred at flat index w + 1 + j
    centre = f[:, w + 1: h * w - w - 1]
    blurred = box.add_(centre, alpha=4).div_(13).round_()
    alpha = (1.0 - (1.0 + s * v)).to(torch.float32).repeat_interleave(c).view(-1, 1)
    new = torch.addcmul(centre, blurred.sub_(centre), alpha)  # fused like torchvision's add_(alpha=...)
    out = f.view(b, c, h, w).clone()
    inner = torch.empty(b * c, (h - 2) * w, dtype=torch.float32, device=x.device)
    inner[:, 1:-1] = new
    out[..., 1:-1, 1:-1] = inner.view(b, c, h - 2, w)[..., 1:-1]
    return out.clamp_(0, 255).to(torch.uint8), None


def _k_cutout(x, v, s, m, g, fill, top):
    b, _, h, w = x.shape
    dev = x.device
    side = torch.round(v * min(h, w)).to(torch.int64)
    gdev = g.device if g is not None else "cpu"
    cy = torch.randint(0, h, (b,), generator=g, device=gdev).to(dev)
    cx = torch.randint(0, w, (b,), generator=g, device=gdev).to(dev)
    y0 = (cy - side // 2).clamp(0, h)
    y1 = (cy - side // 2 + side).clamp(0, h)
    x0 = (cx - side // 2).clamp(0, w)
    x1 = (cx - side // 2 + side).clamp(0, w)
    ys = torch.arange(h, device=dev).view(1, h)
    xs = torch.arange(w, device=dev).view(1, w)
    iny = (ys >= y0.view(b, 1)) & (ys < y1.view(b, 1))
    inx = (xs >= x0.view(b, 1)) & (xs < x1.view(b, 1))
    hole = iny.view(b, 1, h, 1) & inx.view(b, 1, 1, w)
    lost = ((y1 - y0) * (x1 - x0)).to(torch.float64) / (h * w)
    return torch.where(hole, fill, x), lost


def _k_sample_pairing(x, v, s, m, g, fill, top):
    gdev = g.device if g is not None else "cpu"
    perm = torch.randperm(x.shape[0], generator=g, device=gdev).to(x.device)
    return _blend(x[perm], x, v), None


def _k_flip(x, v, s, m, g, fill, top):
    return torch.where(_col(m > 0), x.flip(-1), x), None


def _k_padcrop(x, v, s, m, g, fill, top):
    b, _, h, w = x.shape

    def offsets(size):
        span = torch.round(v * size).to(torch.int64)  # S
        u = _rand(b, g, x.device)
        k = torch.minimum(torch.floor(u * (2 * span + 1)).to(torch.int64), 2 * span)
        return k - span

    dx = offsets(w)
    dy = offsets(h)
    return _shift(x, dx, dy, fill, round(top * w), round(top * h))


def _k_softcrop(x, v, s, m, g, fill, top):
    b, _, h, w = x.shape

    def offsets(size):
        # Truncated normal by inverse CDF: same law as redrawing until |t| <= size.
        sigma = v * size
        lim = torch.special.ndtr(size / sigma.clamp_min(1e-12))
        u = _rand(b, g, x.device)
        p = (1.0 - lim) + u * (2.0 * lim - 1.0)
        p = p.clamp(1e-300, 1.0 - 1e-16)
        t = (sigma * torch.special.ndtri(p)).clamp(-size, size)
        return torch.round(t).to(torch.int64)

    dx = offsets(w)
    dy = offsets(h)
    return _shift(x, dx, dy, fill, w, h)


_KERNELS = {
    "Identity": _k_identity,
    "ShearX": _k_shear("x"),
    "ShearY": _k_shear("y"),
    "TranslateX": _k_translate("x"),
    "TranslateY": _k_translate("y"),
    "Rotate": _k_rotate,
    "AutoContrast": _k_autocontrast,
    "Invert": _k_invert,
    "Equalize": _k_equalize,
    "Solarize": _k_solarize,
    "Posterize": _k_posterize,
    "Contrast": _k_contrast,
    "Color": _k_color,
    "Brightness": _k_brightness,
    "Sharpness": _k_sharpness,
    "Cutout": _k_cutout,
    "SamplePairing": _k_sample_pairing,
    "FlipLR": _k_flip,
    "PadCrop": _k_padcrop,
    "SoftCrop": _k_softcrop,
}
assert list(_KERNELS) == OP_NAMES


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
    vals = [fill] if isinstance(fill, Real) else list(fill) if isinstance(fill, (list, tuple)) else None
    c = images.shape[1]
    if (vals is None or len(vals) not in (1, c)
            or not all(isinstance(f, Real) and 0 <= f <= 255 for f in vals)):
        raise AutosoftError(f"fill must be a number in [0, 255] or a sequence of {c} of them; got {fill!r}")
    t = torch.tensor([round(float(f)) for f in vals], dtype=torch.uint8, device=images.device)
    return t.view(1, -1, 1, 1)


def run_op(name, images, magnitude, sign, *, wide=False, generator=None, fill=128):
    """Apply op ``name`` with per-image ``magnitude`` and ``sign`` (tensors (B,)).

    The engine's inner call: the name and image type are checked, values are
    trusted (``apply_op`` validates them). Returns ``(images, lost)``: uint8
    images of the same shape and device, and float32 (B,) on that device, the
    fraction of each image's content lost (0 for ops that are not lossy).
    """
    op = _get_op(name)
    _check_images(images)
    dev = images.device
    b = images.shape[0]
    fill_t = _fill_tensor(fill, images)
    if b == 0:
        return images.clone(), torch.zeros(0, dtype=torch.float32, device=dev)
    m = torch.as_tensor(magnitude).to(device=dev, dtype=torch.float64).reshape(-1).expand(b)
    s = torch.as_tensor(sign).to(device=dev, dtype=torch.float64).reshape(-1).expand(b)
    out, lost = _KERNELS[op.name](images, op.value(m, wide), s, m, generator, fill_t, op.value(1.0, wide))
    if lost is None:
        lost = torch.zeros(b, dtype=torch.float32, device=dev)
    return out, lost.to(torch.float32)


def apply_op(name, images, magnitude, sign=+1, *, wide=False, generator=None, fill=128):
    """Apply one op to a batch; scalars broadcast, tensors (B,) give per-image values.

    ``magnitude`` in [0, 1] (0 = identity, 1 = strongest); ``sign`` +1 or -1 flips
    the direction of signed ops; ``wide`` picks the TrivialAugmentWide ranges;
    random ops (Cutout, SamplePairing, PadCrop, SoftCrop) draw from ``generator``.

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
