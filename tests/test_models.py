"""Models build, have the published sizes, and the proxy learns."""

import pytest
import torch
from torch import nn

from autosoft.errors import AutosoftError
from autosoft.models import MIN_IMAGE_SIZE, MODEL_NAMES, build_model


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_builds_and_output_shape(name):
    torch.manual_seed(0)
    model = build_model(name, 7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("name,expected", [("resnet18", 11.17e6), ("wrn40_2", 2.24e6), ("wrn28_10", 36.48e6)])
def test_parameter_counts(name, expected):
    with torch.device("meta"):  # no memory, no init cost
        model = build_model(name, 10)
    assert _params(model) == pytest.approx(expected, rel=0.02)


def test_proxy_any_size_channels_and_width():
    model = build_model("proxy", 5, in_channels=1, width=8).eval()
    with torch.no_grad():
        for h, w in ((8, 8), (9, 13), (48, 40)):
            assert model(torch.randn(2, 1, h, w)).shape == (2, 5)
        cl = model.to(memory_format=torch.channels_last)
        x = torch.randn(2, 1, 32, 32).contiguous(memory_format=torch.channels_last)
        assert cl(x).shape == (2, 5)
    assert _params(build_model("proxy", 10, width=16)) < _params(build_model("proxy", 10))


@pytest.mark.parametrize("size", [64, 96])
@pytest.mark.parametrize("name", ["proxy", "resnet18", "wrn40_2"])
def test_models_take_images_larger_than_32(name, size):
    torch.manual_seed(0)
    model = build_model(name, 5, **({"width": 8} if name == "proxy" else {})).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 5)


def test_min_image_size_is_the_smallest_size_a_model_takes():
    from autosoft.config import TrainConfig, check_model
    smallest, _ = MIN_IMAGE_SIZE["proxy"]
    model = build_model("proxy", 3, width=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, smallest, smallest)).shape == (1, 3)
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 3, smallest - 1, smallest - 1))
        assert build_model("resnet18", 3).eval()(torch.randn(1, 3, 2, 2)).shape == (1, 3)  # no minimum
    with pytest.raises(AutosoftError, match="model 'proxy' needs images of at least 8x8 px .*; got 7x7; raise --image-size"):
        check_model(TrainConfig(model="proxy"), 10, 3, image_size=7)
    check_model(TrainConfig(model="wrn40_2"), 10, 3, image_size=7)


def test_proxy_trains():
    torch.manual_seed(0)
    model = build_model("proxy", 4, width=8)
    x, y = torch.randn(16, 3, 16, 16), torch.arange(16) % 4
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_wrn_dropout_option():
    with torch.device("meta"):
        model = build_model("wrn40_2", 10, dropout=0.3)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for m in model.modules())
    with torch.device("meta"):
        assert not any(isinstance(m, nn.Dropout) for m in build_model("wrn40_2", 10).modules())


def test_errors():
    with pytest.raises(AutosoftError, match="allowed: proxy, resnet18, wrn40_2, wrn28_10"):
        build_model("vit", 10)
    with pytest.raises(AutosoftError, match="allowed: none"):
        build_model("resnet18", 10, width=3)
    with pytest.raises(AutosoftError, match="num_classes"):
        build_model("proxy", 0)
    with pytest.raises(AutosoftError, match="width"):
        build_model("proxy", 10, width=2)
