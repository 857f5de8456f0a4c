import pytest
import torch
import torch.nn.functional as F

from autosoft.errors import AutosoftError
from autosoft.soft_targets import (combine_severities, smooth_rows, soft_target_cross_entropy, soft_targets,
                                   target_confidence)


def test_curve_known_values():
    s = torch.tensor([0.0, 0.5, 1.0])
    p = target_confidence(s, p_min=0.1, power=2.0)
    assert torch.allclose(p, torch.tensor([1.0, 1 - 0.9 * 0.25, 0.1]))
    # power 1 is linear
    assert torch.allclose(target_confidence(s, p_min=0.0, power=1.0), 1 - s)


def test_rows_sum_to_one_and_are_one_hot_at_zero_severity():
    labels = torch.tensor([0, 3, 2, 1])
    severity = torch.tensor([0.0, 0.3, 0.7, 1.0])
    rows, weights = soft_targets(labels, severity, 5, p_min=None, power=2.0, mode="target")
    assert torch.allclose(rows.sum(1), torch.ones(4))
    assert torch.equal(rows[0], F.one_hot(torch.tensor(0), 5).float())
    assert rows[3, 1] == pytest.approx(0.2)  # severity 1 -> chance with p_min=None
    assert torch.allclose(rows[2, [0, 1, 3, 4]], (1 - rows[2, 2]) / 4)  # rest spread evenly
    assert torch.equal(weights, torch.ones(4))


def test_weight_and_both_modes():
    labels, severity = torch.tensor([1, 1]), torch.tensor([0.0, 0.5])
    rows_w, w = soft_targets(labels, severity, 3, p_min=0.0, power=1.0, mode="weight")
    assert torch.equal(rows_w, F.one_hot(labels, 3).float())
    assert torch.allclose(w, torch.tensor([1.0, 0.5]))
    rows_b, w_b = soft_targets(labels, severity, 3, p_min=0.0, power=1.0, mode="both")
    assert rows_b[1, 1] == pytest.approx(0.5) and torch.allclose(w_b, w)
    with pytest.raises(AutosoftError, match="allowed: target, weight, both"):
        soft_targets(labels, severity, 3, mode="hard")


def test_severities_combine_multiplicatively_on_visibility():
    s = torch.tensor([[0.5, 0.0], [0.5, 0.2]])
    assert torch.allclose(combine_severities(s), torch.tensor([0.75, 0.2]))


def test_loss_matches_cross_entropy_on_one_hot_and_probability_targets():
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    labels = torch.randint(0, 4, (6,))
    one_hot = F.one_hot(labels, 4).float()
    assert soft_target_cross_entropy(logits, one_hot).item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    rows = torch.softmax(torch.randn(6, 4), 1)
    assert soft_target_cross_entropy(logits, rows).item() == pytest.approx(F.cross_entropy(logits, rows).item(), rel=1e-6)
    w = torch.rand(6)
    expected = (F.cross_entropy(logits, rows, reduction="none") * w).mean()
    assert soft_target_cross_entropy(logits, rows, w).item() == pytest.approx(expected.item(), rel=1e-6)


def test_label_smoothing_on_rows_matches_torch():
    logits, labels = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    rows = smooth_rows(F.one_hot(labels, 4).float(), 0.1)
    assert soft_target_cross_entropy(logits, rows).item() == pytest.approx(
        F.cross_entropy(logits, labels, label_smoothing=0.1).item(), rel=1e-6)


def test_torchvision_mixup_mixes_soft_rows():
    from torchvision.transforms import v2
    images = torch.rand(4, 3, 8, 8)
    rows, _ = soft_targets(torch.tensor([0, 1, 2, 0]), torch.tensor([0.5, 0.0, 0.2, 1.0]), 3, mode="target")
    torch.manual_seed(0)
    _, mixed = v2.MixUp(alpha=1.0, num_classes=3)(images, rows)
    assert mixed.shape == (4, 3)
    assert torch.allclose(mixed.sum(1), torch.ones(4))
