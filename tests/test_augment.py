import pytest
import torch

from autosoft.augment import PolicyAugment
from autosoft.errors import AutosoftError
from autosoft.ops import apply_op
from autosoft.policy import Policy


def _batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % 10


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_single_certain_op_equals_apply_op():
    images, labels = _batch()
    policy = Policy.from_dict({"version": 1, "base": [["Posterize", 1.0, 0.5]]})
    out = PolicyAugment(policy, 10)(images, labels, generator=_gen())
    assert torch.equal(out.images, apply_op("Posterize", images, 0.5))
    assert torch.equal(out.severity, torch.zeros(32))  # no sensitivity: hard labels


def test_same_seed_same_output_and_input_untouched():
    images, labels = _batch()
    copy = images.clone()
    augment = PolicyAugment("autoaugment-cifar10", 10)
    a = augment(images, labels, generator=_gen(3))
    b = augment(images, labels, generator=_gen(3))
    c = augment(images, labels, generator=_gen(4))
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.images, c.images)
    assert torch.equal(images, copy)


def test_each_image_draws_its_own_outcome():
    # Identical images through a p=0.5 op: some change, some do not, in one batch.
    image = _batch(1)[0]
    images = image.expand(64, -1, -1, -1).contiguous()
    policy = Policy.from_dict({"version": 1, "base": [["Invert", 0.5, 1.0]]})
    out = PolicyAugment(policy, 10)(images, torch.zeros(64, dtype=torch.long), generator=_gen())
    changed = (out.images != images).flatten(1).any(1)
    assert 10 < changed.sum() < 54
    # and per-image magnitudes: trivialaugment gives many distinct outputs of one image
    ta = PolicyAugment("trivialaugment", 10)(images, torch.zeros(64, dtype=torch.long), generator=_gen())
    assert len({bytes(x.numpy()) for x in ta.images}) > 32


def test_softcrop_severity_is_fraction_lost_and_sets_targets():
    images, labels = _batch(64)
    policy = Policy.from_dict({"version": 1, "base": [["SoftCrop", 1.0, 0.75]],
                               "soft_targets": {"mode": "target", "p_min": 0.1, "power": 2.0,
                                                "sensitivity": {"SoftCrop": 1.0}}})
    out = PolicyAugment(policy, 10, fill=128)(images, labels, generator=_gen())
    assert out.severity.max() > 0.2
    p = out.targets[torch.arange(64), labels]
    assert torch.allclose(p, 1 - 0.9 * out.severity ** 2, atol=1e-6)
    assert torch.allclose(out.targets.sum(1), torch.ones(64))
    assert torch.equal(out.weights, torch.ones(64))


def test_sensitivity_scales_photometric_severity_and_combines():
    images, labels = _batch(8)
    policy = Policy.from_dict({"version": 1, "base": [["Brightness", 1.0, 0.5], ["Contrast", 1.0, 0.4]],
                               "soft_targets": {"sensitivity": {"Brightness": 0.5, "Contrast": 1.0}}})
    out = PolicyAugment(policy, 10)(images, labels, generator=_gen())
    expected = 1 - (1 - 0.25) * (1 - 0.4)
    assert torch.allclose(out.severity, torch.full((8,), expected))


def test_strength_scales_magnitudes():
    images, labels = _batch(8)
    out = PolicyAugment("randaugment", 10, strength=0.0)(images, labels, generator=_gen())
    # at strength 0 only the flip (magnitude-free) can change an image
    assert all(torch.equal(o, i) or torch.equal(o, i.flip(-1)) for o, i in zip(out.images, images))
    assert not torch.equal(PolicyAugment("randaugment", 10)(images, labels, generator=_gen()).images, out.images)


def test_bad_input():
    with pytest.raises(AutosoftError, match="uint8"):
        PolicyAugment("baseline", 10)(torch.rand(2, 3, 8, 8), torch.zeros(2, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    images, labels = _batch()
    augment = PolicyAugment("autoaugment-cifar10", 10)
    cpu = augment(images, labels, generator=_gen())
    gpu = augment(images.cuda(), labels.cuda(), generator=_gen())
    assert gpu.images.is_cuda
    assert (gpu.images.cpu().int() - cpu.images.int()).abs().max() <= 1


def test_mixup_mixes_images_rows_and_weights_with_the_next_image():
    from autosoft.augment import mix_batch
    images = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 2, 2)
    rows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    weights = torch.tensor([1.0, 0.5, 0.0])
    x, t, w = mix_batch(images, rows, weights, kind="mixup", lam=0.75)
    # image i is mixed with image i-1 (torchvision's roll pairing)
    assert torch.allclose(x[:, 0, 0, 0], torch.tensor([0.75 * 0 + 0.25 * 2, 0.75 * 1 + 0.25 * 0, 0.75 * 2 + 0.25 * 1]))
    assert torch.allclose(t[1], torch.tensor([0.25, 0.75]))
    assert torch.allclose(t.sum(1), torch.ones(3))
    assert torch.allclose(w, torch.tensor([0.75, 0.625, 0.125]))


def test_cutmix_pastes_a_box_and_uses_the_kept_area():
    from autosoft.augment import mix_batch
    images = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    rows = torch.eye(2)
    x, t, _ = mix_batch(images, rows, torch.ones(2), kind="cutmix", lam=0.75, box_center=(0.0, 0.0))
    pasted = (x[0] == 1).sum().item()   # image 0 received a box from image 1
    assert pasted == 4  # a 4x4 box centred on the corner: a 2x2 quarter lies inside the image
    assert t[0, 1].item() == pytest.approx(pasted / 64)
    with pytest.raises(AutosoftError, match="allowed: mixup, cutmix"):
        mix_batch(images, rows, torch.ones(2), kind="blend", lam=0.5)


def test_keep_freed_memory_sets_glibc_thresholds_or_declines(monkeypatch):
    import platform

    from autosoft.augment import keep_freed_memory
    expected = platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory.__wrapped__() is expected
    monkeypatch.setenv("AUTOSOFT_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory.__wrapped__() is False
