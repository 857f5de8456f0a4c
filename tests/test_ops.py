"""autosoft.ops: every op, image by image, against torchvision.transforms.v2.functional.

Each batch gives different images different magnitudes and signs, so a match
proves per-image parameters. Pixel-wise ops and integer shifts must match
exactly. Shear/Rotate go through a float sampling grid: ops.py rebuilds
torchvision's grid arithmetic for the batch, but a source coordinate that sits
on an exact rounding tie (shear 0.2 puts whole columns on one) may go either
way, and which way depends on the CPU's float arithmetic (FMA, vector width).
So a pixel may differ from torchvision only where torchvision itself changes
its answer when the op's value is stretched by 1 +- TIE_STRETCH: a tie.
"""

import doctest
import inspect
import math

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2.functional._color import _blend as tv_blend

import autosoft.ops as ops
from autosoft.errors import AutosoftError
from autosoft.ops import OP_NAMES, OPS, apply_op, describe_ops, run_op, run_warps

TIE_STRETCH = 1e-4  # moves a sampling coordinate by < 0.01 px: flips rounding ties, nothing else
LOST_TIE_TOL = 0.01  # CUDA vs CPU: lost fraction may differ by the border pixels a flipped tie moves
FILL = 128
NEAREST = InterpolationMode.NEAREST
MAGS = torch.tensor([0.0, 0.1, 0.3, 0.5, 2 / 3, 1.0], dtype=torch.float64)  # 2/3 wide = 90 deg rotate
SIGNS = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0, 1.0], dtype=torch.float64)
SHAPES = [(3, 32, 32), (3, 24, 40), (1, 20, 28)]
RANDOM_OPS = {n for n, op in OPS.items() if op.random}  # kernels that draw from the generator
WARPS = [n for n, op in OPS.items() if op.warp]  # Shear, Rotate: through a float sampling grid
DETERMINISTIC_OPS = [n for n in OP_NAMES if n not in RANDOM_OPS]


def batch(shape, n=6, seed=0, high=256):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, (n, *shape), generator=g, dtype=torch.uint8)


def reference(name, img, m, sign, wide, fill=FILL, stretch=1.0):
    """What torchvision does to one image with the op's physical value (times stretch: see untied_mismatch)."""
    v = OPS[name].value(m, wide)
    sv = sign * v * stretch
    _, h, w = img.shape
    if name == "Identity":
        return img
    if name in ("ShearX", "ShearY"):
        deg = math.degrees(math.atan(sv))
        shear = [deg, 0.0] if name == "ShearX" else [0.0, deg]
        return F.affine(img, angle=0.0, translate=[0, 0], scale=1.0, shear=shear,
                        interpolation=NEAREST, fill=[float(fill)], center=[0, 0])
    if name in ("TranslateX", "TranslateY"):
        px = int(sign) * int(v * (w if name == "TranslateX" else h) + 1e-6)
        t = [px, 0] if name == "TranslateX" else [0, px]
        return F.affine(img, angle=0.0, translate=t, scale=1.0, shear=[0.0, 0.0],
                        interpolation=NEAREST, fill=[float(fill)])
    if name == "Rotate":
        return F.rotate(img, sv, interpolation=NEAREST, fill=[float(fill)])
    if name in ("AutoContrast", "Invert", "Equalize"):
        fn = {"AutoContrast": F.autocontrast, "Invert": F.invert, "Equalize": F.equalize}[name]
        return tv_blend(fn(img), img, m)
    if name == "Solarize":
        thr = 256.0 - v
        return img.clone() if thr > 255 else F.solarize(img, threshold=thr)
    if name == "Posterize":
        return F.posterize(img, bits=8 - round(v))
    if name == "Contrast":
        return F.adjust_contrast(img, 1.0 + sv)
    if name == "Color":
        return F.adjust_saturation(img, 1.0 + sv)
    if name == "Brightness":
        return F.adjust_brightness(img, 1.0 + sv)
    if name == "Sharpness":
        return F.adjust_sharpness(img, 1.0 + sv)
    if name == "FlipLR":
        return F.horizontal_flip(img) if m > 0 else img
    raise AssertionError(name)


def untied_mismatch(out, name, img, m, sign, wide):
    """Fraction of pixels where out differs from torchvision other than at a rounding tie of a warp."""
    stretches = (1.0, 1 + TIE_STRETCH, 1 - TIE_STRETCH) if OPS[name].warp else (1.0,)
    bad = torch.ones(img.shape[1:], dtype=torch.bool)
    for stretch in stretches:
        bad &= (out != reference(name, img, m, sign, wide, stretch=stretch)).any(0)
    return bad.float().mean().item()


def shifted(img, dx, dy, fill=FILL):
    """torchvision pad-and-crop: content moved right by dx, down by dy, rest filled."""
    _, h, w = img.shape
    p = max(abs(dx), abs(dy), 1)
    return F.crop(F.pad(img, [p, p, p, p], fill=fill), top=p - dy, left=p - dx, height=h, width=w)


# --- deterministic ops against torchvision, image by image ------------------------------

@pytest.mark.parametrize("wide", [False, True], ids=["standard", "wide"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", DETERMINISTIC_OPS)
def test_matches_torchvision_per_image(name, shape, wide):
    x = batch(shape)
    for signs in (SIGNS, -SIGNS):
        out, lost = run_op(name, x, MAGS, signs, wide=wide, fill=FILL)
        assert out.dtype == torch.uint8 and out.shape == x.shape
        assert lost.dtype == torch.float32 and lost.shape == (len(x),)
        for i in range(len(x)):
            diff = untied_mismatch(out[i], name, x[i], float(MAGS[i]), int(signs[i]), wide)
            assert diff == 0, (name, i, float(MAGS[i]), int(signs[i]), diff)
        if not OPS[name].lossy:
            assert torch.all(lost == 0)


@pytest.mark.parametrize("name", [n for n, op in OPS.items() if op.lossy and not op.random])
def test_geometric_lost_is_filled_fraction(name):
    # no source pixel equals the fill, so filled pixels are exactly the lost ones
    x = batch((3, 24, 40), high=100)
    out, lost = run_op(name, x, MAGS, SIGNS, wide=True, fill=255)
    filled = (out == 255).all(1).float().mean((1, 2))
    torch.testing.assert_close(lost, filled, rtol=0, atol=1e-6)
    assert lost[0] == 0 and torch.all(lost[1:] > 0)


def test_translate_lost_known_answer():
    x = batch((3, 32, 32), n=3)
    m = torch.tensor([0.25, 0.5, 1.0])  # wide: 8, 16, 32 px of 32
    _, lost = run_op("TranslateX", x, m, torch.tensor([1, -1, 1]), wide=True)
    torch.testing.assert_close(lost, torch.tensor([0.25, 0.5, 1.0]))
    # standard range: trunc(150/331 * 331) = 150 px of a 331-px-wide image
    wide_img = torch.zeros(1, 1, 2, 331, dtype=torch.uint8)
    _, lost = run_op("TranslateX", wide_img, torch.tensor([1.0]), torch.tensor([-1]))
    assert lost.item() == pytest.approx(150 / 331)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny tensors: thread hand-offs cost more than they save, badly so on a busy 2-core box
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- properties every op shares --------------------------------------------------------

@pytest.mark.parametrize("wide", [False, True], ids=["standard", "wide"])
@pytest.mark.parametrize("name", OP_NAMES)
def test_magnitude_zero_is_identity(name, wide):
    for shape in SHAPES:
        x = batch(shape)
        out, lost = run_op(name, x, torch.zeros(6), SIGNS, wide=wide, generator=torch.Generator().manual_seed(1))
        assert torch.equal(out, x), name
        assert torch.all(lost == 0), name
        assert out.data_ptr() != x.data_ptr()  # a new tensor, never the input


@pytest.mark.parametrize("name", OP_NAMES)
def test_same_seed_same_output(name):
    x = batch((3, 32, 32), n=8)
    m = torch.linspace(0.2, 1.0, 8)
    s = torch.tensor([1, -1] * 4)
    a = run_op(name, x, m, s, generator=torch.Generator().manual_seed(7))
    b = run_op(name, x, m, s, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("name", sorted(RANDOM_OPS))
def test_random_ops_depend_on_seed(name):
    x = batch((3, 32, 32), n=16)
    m = torch.ones(16)
    a, _ = run_op(name, x, m, torch.ones(16), generator=torch.Generator().manual_seed(1))
    b, _ = run_op(name, x, m, torch.ones(16), generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)


@pytest.mark.parametrize("name", [n for n in OP_NAMES if OPS[n].signed])
def test_sign_flips_direction(name):
    x = batch((3, 32, 32), n=1)
    plus = apply_op(name, x, 0.5, +1)
    minus = apply_op(name, x, 0.5, -1)
    assert not torch.equal(plus, minus)


def smooth_batch(n, seed=0):
    """Image-like batch: random colour gradients plus mild noise."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, 32)
    a, b, c = (torch.rand(3, n, 3, 1, 1, generator=g) * 255).unbind(0)
    img = a * ramp.view(1, 1, 32, 1) + b * ramp.view(1, 1, 1, 32) + c * (1 - ramp.view(1, 1, 1, 32))
    img = img / 2 + torch.randn(n, 3, 32, 32, generator=g) * 8
    return img.clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("name", [n for n in OP_NAMES if n not in ("Identity", "FlipLR")])
def test_stronger_with_magnitude(name):
    # strength = mean `lost` for lossy ops, else mean absolute pixel change; random ops reuse
    # the same seed, so only the scale of their draws changes with m
    x = smooth_batch(64)
    strength = []
    for m in (0.25, 0.5, 1.0):
        out, lost = run_op(name, x, torch.full((64,), m), torch.ones(64), generator=torch.Generator().manual_seed(0))
        change = (out.float() - x.float()).abs().mean().item()
        strength.append(lost.mean().item() if OPS[name].lossy else change)
    assert strength[0] < strength[1] < strength[2], (name, strength)


def test_op_table():
    assert OP_NAMES == ["Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "AutoContrast",
                        "Invert", "Equalize", "Solarize", "Posterize", "Contrast", "Color", "Brightness",
                        "Sharpness", "Cutout", "SamplePairing", "FlipLR", "PadCrop", "SoftCrop"]
    assert OPS["Rotate"].value(0.5) == 15.0 and OPS["Rotate"].value(0.5, wide=True) == 67.5
    assert OPS["Posterize"].value(1.0, wide=True) == 6.0
    with pytest.raises(Exception):
        OPS["Rotate"].high = 1.0  # frozen
    assert {op.kind for op in OPS.values()} <= {"geometric", "photometric", "occlusion", "mix"}
    text = describe_ops()
    assert all(n in text for n in OP_NAMES) and "30 degrees" in text
    assert "135 degrees" in describe_ops(wide=True)


def test_op_table_flags():
    # the engine's knowledge of each op is in its entry: random, warp (theta), lossy, signed, kernel
    assert RANDOM_OPS == {"Cutout", "SamplePairing", "PadCrop", "SoftCrop"}
    assert WARPS == ["ShearX", "ShearY", "Rotate"]
    assert all(op.lossy for op in OPS.values() if op.warp)
    assert {n for n, op in OPS.items() if op.signed} == {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
                                                         "Contrast", "Color", "Brightness", "Sharpness"}
    assert all(callable(op.kernel) and (op.theta is None) != op.warp for op in OPS.values())


@pytest.mark.parametrize("name", OP_NAMES)
def test_kernel_takes_named_arguments(name):
    sig = inspect.signature(OPS[name].kernel)
    params = list(sig.parameters.values())
    assert params[0].name == "images" and params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert [p.name for p in params[1:]] == ["value", "sign", "magnitude", "generator", "fill", "max_value",
                                            "need_lost"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty for p in params[1:])


@pytest.mark.parametrize("name", OP_NAMES)
def test_random_flag_is_whether_the_generator_is_used(name):
    x = batch((3, 32, 32), n=8)
    g = torch.Generator().manual_seed(3)
    before = g.get_state()
    run_op(name, x, torch.linspace(0.2, 1.0, 8), torch.tensor([1, -1] * 4), generator=g)
    assert (not torch.equal(g.get_state(), before)) is OPS[name].random


def test_run_warps_matches_each_warp_alone():
    # warps of mixed ops in one lookup: each image as run_op makes it, bit for bit, and the same `lost`
    x = batch((3, 24, 40), n=12)
    parts = [("Rotate", 5), ("ShearX", 4), ("ShearY", 3)]
    m = torch.rand(12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    s = torch.tensor([1.0, -1.0] * 6, dtype=torch.float64)
    out, losts = run_warps(parts, x, m, s, wide=True, fill=7, need_lost=[True, False, True])
    assert losts[1] is None
    lo = 0
    for (name, count), lost in zip(parts, losts):
        ref, ref_lost = run_op(name, x[lo:lo + count], m[lo:lo + count], s[lo:lo + count], wide=True, fill=7)
        assert torch.equal(out[lo:lo + count], ref), name
        if lost is not None:
            assert torch.equal(lost, ref_lost), name
        lo += count
    with pytest.raises(AutosoftError, match="run_warps runs warps only .* got TranslateX"):
        run_warps([("TranslateX", 12)], x, m, s)


def test_docstring_examples_run():
    assert doctest.testmod(ops, raise_on_error=False).failed == 0


# --- random ops: exact against per-image torchvision references -------------------------

def find_shift(out, fill):
    """(dx, dy) of a shifted image whose source pixels never equal `fill` (None: all filled)."""
    filled = (out == fill).all(0)  # (H, W)
    if filled.all():
        return None
    cols, rows = filled.all(0), filled.all(1)

    def run_len(v):  # leading all-fill lines
        return int(v.long().cumprod(0).sum())

    dx = run_len(cols) or -run_len(cols.flip(0))
    dy = run_len(rows) or -run_len(rows.flip(0))
    return dx, dy


@pytest.mark.parametrize("name", [n for n in OP_NAMES if OPS[n].random and OPS[n].kind == "geometric"])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 24, 40)], ids=["32x32", "24x40"])
def test_shift_ops_match_pad_crop(name, shape):
    n = 200
    x = batch(shape, n=n, high=200)  # fill 255 never occurs in the source
    m = torch.rand(n, generator=torch.Generator().manual_seed(4))
    out, lost = run_op(name, x, m, torch.ones(n), generator=torch.Generator().manual_seed(5), fill=255)
    _, h, w = shape
    for i in range(n):
        shift = find_shift(out[i], 255)
        if shift is None:
            assert lost[i] == 1.0
            continue
        dx, dy = shift
        if name == "PadCrop":
            sx, sy = round(float(m[i]) * 0.25 * w), round(float(m[i]) * 0.25 * h)
            assert abs(dx) <= sx and abs(dy) <= sy
        assert torch.equal(out[i], shifted(x[i], dx, dy, fill=255)), (i, dx, dy)
        assert lost[i].item() == pytest.approx(1 - (w - abs(dx)) * (h - abs(dy)) / (w * h), abs=1e-6)


def test_padcrop_offsets_uniform():
    # m = 0.5 on 32 px is the classic pad-4 crop: every offset in [-4, 4], none beyond
    n = 4000
    x = batch((1, 32, 32), n=n, high=200)
    out, _ = run_op("PadCrop", x, torch.full((n,), 0.5), torch.ones(n),
                    generator=torch.Generator().manual_seed(0), fill=255)
    dx = torch.tensor([find_shift(o, 255)[0] for o in out])
    counts = torch.bincount(dx + 4, minlength=9)
    assert len(counts) == 9 and counts.min() > n / 9 * 0.75


def test_softcrop_offsets_normal_truncated():
    # m = 0.75 on 32 px is the paper's sigma = 12 px, truncated to |t| <= 32
    n = 4000
    x = batch((1, 32, 32), n=n, high=200)
    out, lost = run_op("SoftCrop", x, torch.full((n,), 0.75), torch.ones(n),
                       generator=torch.Generator().manual_seed(0), fill=255)
    shifts = [find_shift(o, 255) for o in out]
    dx = torch.tensor([s[0] for s in shifts if s is not None], dtype=torch.float64)
    assert dx.abs().max() <= 32
    assert abs(dx.mean().item()) < 0.6
    assert 11.3 < dx.std().item() < 12.5  # truncation at 2.67 sigma shrinks it ~2%
    assert torch.all((lost >= 0) & (lost <= 1))


def test_cutout_matches_square_hole():
    n = 300
    x = batch((3, 24, 40), n=n, high=200)
    m = torch.rand(n, generator=torch.Generator().manual_seed(4))
    out, lost = run_op("Cutout", x, m, torch.ones(n), generator=torch.Generator().manual_seed(6), fill=255)
    for i in range(n):
        side = round(float(m[i]) * 0.6 * 24)
        hole = (out[i] == 255).all(0)
        assert torch.equal(out[i][:, ~hole], x[i][:, ~hole])
        assert lost[i].item() == pytest.approx(hole.float().mean().item(), abs=1e-6)
        if side == 0:
            assert not hole.any()
            continue
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        y0, y1, x0, x1 = rows.min().item(), rows.max().item() + 1, cols.min().item(), cols.max().item() + 1
        assert hole[y0:y1, x0:x1].all() and hole.sum() == (y1 - y0) * (x1 - x0)  # a rectangle
        # a square of `side` px, clipped only where it meets a border
        assert (y1 - y0 == side) or y0 == 0 or y1 == 24
        assert (x1 - x0 == side) or x0 == 0 or x1 == 40
        ref = x[i].clone()
        ref[:, y0:y1, x0:x1] = 255
        assert torch.equal(out[i], ref)


def test_cutout_lost_inside_image():
    # side 19 px at m = 1 on 32 px; whenever the square is not clipped lost = 19^2 / 32^2
    n = 400
    x = batch((3, 32, 32), n=n, high=200)
    out, lost = run_op("Cutout", x, torch.ones(n), torch.ones(n), generator=torch.Generator().manual_seed(0), fill=255)
    hole = (out == 255).all(1)
    inside = hole.any(2).sum(1) == 19
    inside &= hole.any(1).sum(1) == 19
    assert inside.sum() > 50
    assert torch.all(lost[inside] == 19 * 19 / 1024)
    assert torch.all(lost <= 19 * 19 / 1024)


@pytest.mark.parametrize("size", [32, 64, 96])
def test_pixel_magnitudes_scale_with_the_image_size(size):
    """AutoAugment states its pixel magnitudes on 32 px (or 331 px); here they are fractions of
    the image, so a policy means the same at 64 or 96 px (image folders at --image-size)."""
    n = 300
    x = batch((1, size, size), n=n, high=200)
    # TranslateX at m = 1 shifts trunc(150/331 * size) px: 14, 29, 43
    _, lost = run_op("TranslateX", x[:1], torch.ones(1), torch.ones(1))
    assert lost.item() == pytest.approx(int(150 / 331 * size) / size, abs=1e-6)
    # PadCrop at m = 0.5 (the baseline's pad-4 crop on 32 px): offsets up to size / 8, both ends reached
    out, _ = run_op("PadCrop", x, torch.full((n,), 0.5), torch.ones(n),
                    generator=torch.Generator().manual_seed(0), fill=255)
    dx = [find_shift(o, 255)[0] for o in out]
    assert max(dx) == size // 8 and min(dx) == -(size // 8)
    # Cutout at m = 1: a square of round(0.6 * size) px (19, 38, 58) where it is not clipped
    out, _ = run_op("Cutout", x, torch.ones(n), torch.ones(n), generator=torch.Generator().manual_seed(0), fill=255)
    hole = (out == 255).all(1)
    assert hole.any(1).sum(1).max().item() == round(0.6 * size) == hole.any(2).sum(1).max().item()


def test_sample_pairing_blends_with_a_permutation():
    x = batch((3, 32, 32), n=6)
    m = MAGS
    out, lost = run_op("SamplePairing", x, m, SIGNS, generator=torch.Generator().manual_seed(3))
    partners = []
    for i in range(6):
        hits = [j for j in range(6) if torch.equal(out[i], tv_blend(x[j], x[i], 0.5 * float(m[i])))]
        assert hits, i
        partners.append(hits)
    # a partner choice exists that is a permutation (m = 0 rows match every j)
    assert any(len(set(p)) == 6 for p in _choices(partners))
    assert torch.all(lost == 0)


def _choices(options, prefix=()):
    if len(prefix) == len(options):
        yield prefix
        return
    for j in options[len(prefix)]:
        if j not in prefix:
            yield from _choices(options, prefix + (j,))


# --- fill, errors ----------------------------------------------------------------------

def test_fill_per_channel():
    x = batch((3, 16, 16), n=1)
    out = apply_op("TranslateX", x, 1.0, wide=True, fill=(1, 2, 3))
    assert out[0, :, 0, 0].tolist() == [1, 2, 3] and (out[0, 0] == 1).all()


@pytest.mark.parametrize("call, message", [
    (lambda x: apply_op("Foo", x, 0.5), "unknown op 'Foo'; allowed: Identity, ShearX"),
    (lambda x: run_op("rotate", x, torch.ones(2), torch.ones(2)), "unknown op 'rotate'"),
    (lambda x: apply_op("Rotate", x, 1.5), "magnitude must be in [0, 1] for op Rotate; got 1.5"),
    (lambda x: apply_op("Rotate", x, torch.tensor([0.1, -0.2])), "magnitude must be in [0, 1]"),
    (lambda x: apply_op("Rotate", x, float("nan")), "magnitude must be in [0, 1]"),
    (lambda x: apply_op("Rotate", x, 0.5, sign=0), "sign must be +1 or -1; got 0"),
    (lambda x: apply_op("Rotate", x, torch.ones(3)), "magnitude must be a scalar or a tensor of shape (2,)"),
    (lambda x: apply_op("Rotate", x, "big"), "magnitude and sign must be numbers"),
    (lambda x: apply_op("Rotate", x.float(), 0.5), "images must be a uint8 tensor (B, C, H, W); got torch.float32"),
    (lambda x: apply_op("Rotate", x[0], 0.5), "images must be a uint8 tensor (B, C, H, W); got torch.uint8 tensor of shape (3, 8, 8)"),
    (lambda x: apply_op("Rotate", x.numpy(), 0.5), "got ndarray"),
    (lambda x: apply_op("Rotate", x, 0.5, fill=300), "fill must be a number in [0, 255]"),
    (lambda x: apply_op("Rotate", x, 0.5, fill=(1, 2)), "sequence of 3"),
    (lambda x: apply_op("Color", torch.zeros(2, 4, 8, 8, dtype=torch.uint8), 0.5), "need 1 or 3 channels; got 4"),
])
def test_bad_input_raises(call, message):
    x = batch((3, 8, 8), n=2)
    with pytest.raises(AutosoftError) as e:
        call(x)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


# --- CUDA --------------------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", OP_NAMES)
def test_cuda_matches_cpu(name):
    x = batch((3, 32, 32), n=6)
    cpu, lost_cpu = run_op(name, x, MAGS, SIGNS, wide=True, generator=torch.Generator().manual_seed(2))
    gpu, lost_gpu = run_op(name, x.cuda(), MAGS.cuda(), SIGNS.cuda(), wide=True,
                           generator=torch.Generator().manual_seed(2))
    assert gpu.is_cuda and lost_gpu.is_cuda
    if OPS[name].random:
        assert torch.equal(gpu.cpu(), cpu), name
    else:  # the GPU may settle a rounding tie the other way than the CPU
        for i in range(len(x)):
            assert untied_mismatch(gpu[i].cpu(), name, x[i], float(MAGS[i]), int(SIGNS[i]), True) == 0, (name, i)
    # a tie flipped at the image border moves a pixel between kept and filled
    torch.testing.assert_close(lost_gpu.cpu(), lost_cpu, rtol=0, atol=LOST_TIE_TOL if OPS[name].warp else 0.0)
