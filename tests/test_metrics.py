import json
import math

import pytest
import torch

from autosoft import metrics as M
from autosoft.errors import AutosoftError


def two_class_probs(conf: float, n: int) -> torch.Tensor:
    """n rows predicting class 0 with confidence conf."""
    return torch.tensor([[conf, 1 - conf]] * n, dtype=torch.float64)


# ----------------------------------------------------------------------------
# accuracy / nll

def test_accuracy_hand_example():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [0.0, 1.0, 0.5]])
    labels = torch.tensor([0, 1, 0, 2])
    assert M.accuracy(logits, labels) == pytest.approx(0.5)


def test_nll_hand_example():
    # Uniform logits over 4 classes: NLL = log 4; a two-class example computed by hand.
    assert M.nll(torch.zeros(3, 4), torch.tensor([0, 1, 3])) == pytest.approx(math.log(4))
    logits = torch.tensor([[math.log(3.0), 0.0]])  # softmax = (0.75, 0.25)
    assert M.nll(logits, torch.tensor([1])) == pytest.approx(-math.log(0.25))


def test_shape_errors_are_autosoft_errors():
    with pytest.raises(AutosoftError, match="labels"):
        M.accuracy(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(AutosoftError, match="probabilities"):
        M.expected_calibration_error(torch.randn(5, 3) * 4, torch.zeros(5, dtype=torch.long))


# ----------------------------------------------------------------------------
# ECE

def test_ece_perfectly_calibrated_is_zero():
    probs = two_class_probs(0.7, 10)
    labels = torch.tensor([0] * 7 + [1] * 3)  # 7 of 10 correct at confidence 0.7
    assert M.expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)


def test_ece_maximally_overconfident_is_one():
    probs = torch.zeros(8, 5, dtype=torch.float64)
    probs[:, 0] = 1.0
    labels = torch.full((8,), 3)
    assert M.expected_calibration_error(probs, labels) == pytest.approx(1.0)


def test_ece_two_bin_hand_example():
    # Bin (0.6, 0.7]: 4 samples at 0.65, 1 correct -> |0.25 - 0.65| = 0.40, weight 4/10.
    # Bin (0.9, 1.0]: 6 samples at 0.95, 6 correct -> |1.0 - 0.95| = 0.05, weight 6/10.
    probs = torch.cat([two_class_probs(0.65, 4), two_class_probs(0.95, 6)])
    labels = torch.tensor([0, 1, 1, 1] + [0] * 6)
    expected = 0.4 * 0.40 + 0.6 * 0.05
    assert M.expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(expected)
    bins = M.reliability_bins(probs, labels, n_bins=10)
    assert bins["count"] == [0] * 6 + [4, 0, 0, 6]
    assert bins["accuracy"][6] == pytest.approx(0.25) and bins["accuracy"][9] == pytest.approx(1.0)
    assert bins["confidence"][6] == pytest.approx(0.65) and bins["confidence"][9] == pytest.approx(0.95)
    assert bins["lower"][6] == pytest.approx(0.6) and bins["upper"][6] == pytest.approx(0.7)
    assert bins["ece"] == pytest.approx(expected)
    json.dumps(bins)


def test_ece_bins_are_right_closed():
    # Confidence exactly on an edge (0.8 with 5 bins) belongs to (0.6, 0.8]; 1.0 to the top bin.
    probs = torch.cat([two_class_probs(0.8, 1), two_class_probs(1.0, 1)])
    bins = M.reliability_bins(probs, torch.tensor([0, 0]), n_bins=5)
    assert bins["count"] == [0, 0, 0, 1, 1]


def test_ece_matches_reference_loop():
    g = torch.Generator().manual_seed(0)
    probs = (torch.randn(500, 10, generator=g) * 2).softmax(1)
    labels = torch.randint(0, 10, (500,), generator=g)
    conf, pred = probs.max(1)
    ref = 0.0
    for i in range(15):
        inb = (conf > i / 15) & (conf <= (i + 1) / 15)
        if inb.any():
            acc = (pred[inb] == labels[inb]).double().mean().item()
            ref += abs(acc - conf[inb].double().mean().item()) * inb.sum().item() / 500
    assert M.expected_calibration_error(probs, labels) == pytest.approx(ref, abs=1e-6)


# ----------------------------------------------------------------------------
# temperature scaling

def _sampled(scale: float, n: int = 20000, k: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    true_logits = torch.randn(n, k, generator=g) * 2.0
    labels = torch.multinomial(true_logits.softmax(1), 1, generator=g).squeeze(1)
    return true_logits * scale, labels


def test_fit_temperature_recovers_scale():
    logits, labels = _sampled(3.0)
    t = M.fit_temperature(logits, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    assert M.nll(logits / t, labels) < M.nll(logits, labels) - 0.1


def test_fit_temperature_is_one_when_calibrated():
    logits, labels = _sampled(1.0, seed=1)
    assert M.fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.1)


def test_fit_temperature_lowers_nll_and_is_deterministic():
    logits, labels = _sampled(0.4, n=5000, seed=2)  # under-confident: T < 1
    t = M.fit_temperature(logits, labels)
    assert t < 1.0
    assert M.nll(logits / t, labels) <= M.nll(logits, labels)
    assert M.fit_temperature(logits, labels) == t


def test_fit_temperature_accepts_inference_mode_logits():
    logits, labels = _sampled(3.0, n=2000, seed=3)
    expected = M.fit_temperature(logits, labels)
    with torch.inference_mode():
        frozen = logits.clone()
        assert M.fit_temperature(frozen, labels) == expected  # called inside inference mode
    assert M.fit_temperature(frozen, labels) == expected      # inference tensor, called outside


# ----------------------------------------------------------------------------
# occlusion and shift

def _noise_images(n=16, c=3, h=32, w=32, seed=0):
    # Values in [0, 127]: no pixel equals the fill value 128.
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 128, (n, c, h, w), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_occlude_changes_exact_square(fraction):
    images = _noise_images()
    out = M.occlude(images, fraction, generator=torch.Generator().manual_seed(0))
    side = round(math.sqrt(fraction * 32 * 32))
    changed = out != images                                   # (B, C, H, W)
    assert (changed.sum(dim=(2, 3)) == side * side).all()    # every image, every channel
    assert (out[changed] == 128).all()
    # The changed region is one side x side square fully inside the image.
    mask = changed[:, 0]
    rows, cols = mask.any(2), mask.any(1)
    assert (rows.sum(1) == side).all() and (cols.sum(1) == side).all()


def test_occlude_positions_differ_per_image_and_deterministic_per_seed():
    images = _noise_images(n=32)
    a = M.occlude(images, 0.25, generator=torch.Generator().manual_seed(5))
    b = M.occlude(images, 0.25, generator=torch.Generator().manual_seed(5))
    c = M.occlude(images, 0.25, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    masks = (a != images)[:, 0].flatten(1)
    assert len({tuple(m.nonzero().flatten()[:1].tolist()) for m in masks}) > 5


def test_occlude_edge_fractions_and_errors():
    images = _noise_images(n=2, h=8, w=8)
    assert torch.equal(M.occlude(images, 0.0), images)
    assert (M.occlude(images, 1.0) == 128).all()
    with pytest.raises(AutosoftError, match="fraction"):
        M.occlude(images, 1.5)


def test_shift_known_answer():
    img = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4)
    out = M.shift(img, 1, 2, fill=255)  # right by 1, down by 2
    expected = torch.tensor([
        [255, 255, 255, 255],
        [255, 255, 255, 255],
        [255, 0, 1, 2],
        [255, 4, 5, 6],
    ], dtype=torch.uint8)
    assert torch.equal(out[0, 0], expected)
    back = M.shift(img, -1, -1, fill=255)  # left and up by 1
    assert torch.equal(back[0, 0], torch.tensor(
        [[5, 6, 7, 255], [9, 10, 11, 255], [13, 14, 15, 255], [255, 255, 255, 255]], dtype=torch.uint8))
    assert torch.equal(M.shift(img, 0, 0), img)
    assert (M.shift(img, 4, 0) == 128).all()


# ----------------------------------------------------------------------------
# model-level evaluation with a fixed linear predictor

class Linear:
    """Fixed linear predictor on uint8 images; counts calls to check chunking."""

    def __init__(self, c=3, h=8, w=8, k=4, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(c * h * w, k, generator=g) / 50
        self.batch_sizes = []

    def __call__(self, x):
        self.batch_sizes.append(x.shape[0])
        return (x.float().flatten(1) - 127.5) @ self.weight


def _dataset(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    predict = Linear()
    labels = predict(images).argmax(1)
    labels[: n // 4] = (labels[: n // 4] + 1) % 4  # 75% accuracy on clean images
    predict.batch_sizes.clear()
    return predict, images, labels


def test_occlusion_and_shift_accuracy_zero_effect_cases():
    predict, images, labels = _dataset()
    assert M.occlusion_accuracy(predict, images, labels, 0.0) == pytest.approx(0.75)
    assert M.shift_accuracy(predict, images, labels, 0) == pytest.approx(0.75)


def test_occlusion_accuracy_independent_of_batch_size():
    predict, images, labels = _dataset()
    a = M.occlusion_accuracy(predict, images, labels, 0.25, seed=3, batch_size=1000)
    b = M.occlusion_accuracy(predict, images, labels, 0.25, seed=3, batch_size=7)
    assert a == b
    assert max(predict.batch_sizes[-29:]) == 7


def test_shift_accuracy_is_mean_of_four_diagonals():
    predict, images, labels = _dataset()
    manual = sum(
        M.accuracy(predict(M.shift(images, dx, dy)), labels) for dx, dy in [(2, 2), (2, -2), (-2, 2), (-2, -2)]
    ) / 4
    assert M.shift_accuracy(predict, images, labels, 2, batch_size=64) == pytest.approx(manual)


def test_evaluate_keys_and_json():
    predict, images, labels = _dataset()
    val_logits, val_labels = _sampled(3.0, n=2000, k=4)
    r = M.evaluate(predict, images, labels, val_logits=val_logits, val_labels=val_labels, batch_size=64)
    expected = {"n", "top1", "nll", "ece", "ece_n_bins", "temperature", "nll_ts", "ece_ts",
                "occlusion_acc@0.1", "occlusion_acc@0.25", "occlusion_acc@0.5",
                "shift_acc@1px", "shift_acc@2px", "reliability"}  # 1/8 and 1/4 of these 8 px images
    assert set(r) == expected
    assert r["top1"] == pytest.approx(0.75)
    assert r["nll"] == pytest.approx(M.nll(predict(images), labels), rel=1e-5)
    assert r["temperature"] == pytest.approx(3.0, rel=0.15)
    assert r["ece_n_bins"] == 15 and len(r["reliability"]["count"]) == 15
    assert sum(r["reliability"]["count"]) == 200
    for k, v in r.items():
        if k != "reliability":
            assert isinstance(v, (int, float)), k
    json.loads(json.dumps(r))


def test_evaluate_without_validation_never_fits_on_test():
    predict, images, labels = _dataset()
    r = M.evaluate(predict, images, labels, occlusion_fractions=(0.3,), shift_pixels=(1,))
    assert r["temperature"] is None and r["ece_ts"] is None and r["nll_ts"] is None
    assert "occlusion_acc@0.3" in r and "shift_acc@1px" in r
    with pytest.raises(AutosoftError, match="val_labels"):
        M.evaluate(predict, images, labels, val_logits=torch.zeros(3, 4))


def _corner_is_fill(images):
    """Class 1 when the top-left pixel is the fill value 128 (a shift vacated it), else class 0."""
    corner = (images[:, 0, 0, 0] == 128).long()
    return torch.nn.functional.one_hot(corner, 2).float()


def test_diagonal_shift_accuracy_known_answer_and_one_pass():
    # Of the four diagonals only (-p, -p) keeps the top-left pixel's content: accuracy 1/4, as the mean of four.
    images = torch.zeros(12, 3, 8, 8, dtype=torch.uint8)
    labels = torch.zeros(12, dtype=torch.long)
    calls = []

    def predict(x):
        calls.append(len(x))
        return _corner_is_fill(x)
    assert M.diagonal_shift_accuracy(predict, images, labels, 2, batch_size=5) == 0.25
    assert sum(calls) == 12  # each image once
    assert M.shift_accuracy(_corner_is_fill, images, labels, 2) == 0.25


def test_validation_metrics_keys_and_robust_combination():
    images = torch.zeros(8, 3, 16, 16, dtype=torch.uint8)
    labels = torch.zeros(8, dtype=torch.long)
    out = M.validation_metrics(_corner_is_fill, images, labels)
    assert out["val_acc"] == 1.0 and out["val_shift_acc"] == 0.25
    # an occlusion patch (fill 128) covers the corner only where it is placed at (0, 0)
    assert 0 <= out["val_occlusion_acc"] <= 1
    assert out["val_robust_acc"] == pytest.approx(0.5 * 1.0 + 0.25 * out["val_occlusion_acc"] + 0.25 * 0.25)
    assert out == M.validation_metrics(_corner_is_fill, images, labels, batch_size=3)  # fixed patches
