"""Classifiers: a fast proxy CNN for search, and the standard CIFAR nets for final runs.

All models take float input (B, C, H, W), already normalised; the trainer
converts uint8 and normalises. All end in a global pool, so any image size works from the
smallest one in MIN_IMAGE_SIZE up (the ResNets keep CIFAR's stride-1 stem: their cost grows with
the pixel count, 9x from 32 to 96 px).
"""

from __future__ import annotations

from torch import nn

from autosoft.errors import AutosoftError

__all__ = ["MODEL_NAMES", "MIN_IMAGE_SIZE", "build_model", "ProxyNet", "ResNet18", "WideResNet"]

MODEL_NAMES = ["proxy", "resnet18", "wrn40_2", "wrn28_10"]
# The smallest square side in px each model takes, and why (the others take any size: their
# strided 3x3 convolutions are padded, so even a 1x1 map stays 1x1).
MIN_IMAGE_SIZE = {"proxy": (8, "its three 2x max poolings leave nothing below 8 px")}


def build_model(name: str, num_classes: int, *, in_channels: int = 3, **options) -> nn.Module:
    """Build a model by name.

    options: proxy takes `width` (channels of the first stage, default 32);
    wrn40_2 / wrn28_10 take `dropout` (default 0.0). Anything else is an error.
    """
    if name not in _BUILDERS:
        raise AutosoftError(f"unknown model {name!r}; allowed: {', '.join(MODEL_NAMES)}")
    for what, v in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise AutosoftError(f"{what} must be a positive integer; got {v!r}")
    allowed = _OPTIONS[name]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise AutosoftError(f"model {name!r} takes no option {', '.join(map(repr, unknown))}; "
                            f"allowed: {', '.join(allowed) or 'none'}")
    return _BUILDERS[name](num_classes, in_channels, **options)


# ----------------------------------------------------------------------------- proxy

class _ConvBN(nn.Sequential):
    def __init__(self, cin, cout, pool=False):
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False)]
        if pool:
            # Pool before BN/activation (airbench): 4x fewer elements to normalise and activate.
            layers.append(nn.MaxPool2d(2))
        layers += [nn.BatchNorm2d(cout), nn.GELU()]
        super().__init__(*layers)


class ProxyNet(nn.Module):
    """airbench-like CNN: conv stem, 3 stages of (conv-pool-BN-GELU, conv-BN-GELU), max pool, linear.

    Stage widths are (w, 2w, 4w) after a stem of w/2 channels (airbench: 24 / 64,256,256).
    Measured on the 2-core CPU, batch 256, channels_last, fwd+bwd+SGD step (129 MFLOP/image at w=32):
    w=16 ~3.9k img/s, w=32 ~1.8k (27 s per 50k epoch), w=48 ~0.8k, w=64 ~0.6k. After 2 epochs of
    CIFAR-10 (flip only): w=16 68.4%, w=32 74.0%, w=48 75.3% test accuracy, so w=32 is the
    default: the best accuracy per second of the three.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32):
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 4:
            raise AutosoftError(f"proxy width must be an integer >= 4; got {width!r}")
        self.width = width
        widths = (width, 2 * width, 4 * width)
        stem = max(width // 2, 8)
        self.stem = _ConvBN(in_channels, stem)
        stages, cin = [], stem
        for w in widths:
            stages.append(nn.Sequential(_ConvBN(cin, w, pool=True), _ConvBN(w, w)))
            cin = w
        self.stages = nn.Sequential(*stages)
        # Global max pool (airbench pools max); adaptive so any H, W >= 8 works.
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(cin, num_classes)
        _init(self)

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.head(self.pool(x).flatten(1))


# ----------------------------------------------------------------------------- ResNet-18

class _BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18, CIFAR variant: 3x3 stride-1 stem and no max pool (~11.2M parameters for 10 classes)."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True))
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(512, num_classes)
        _init(self)

    def forward(self, x):
        return self.head(self.pool(self.layers(self.stem(x))).flatten(1))


# ----------------------------------------------------------------------------- Wide-ResNet

class _PreActBlock(nn.Module):
    """Pre-activation wide block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3, plus shortcut."""

    def __init__(self, cin, cout, stride, dropout):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        # 1x1 projection when the shape changes; it reads the pre-activated input, as in the paper's code.
        self.project = None if (stride == 1 and cin == cout) else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        a = self.relu(self.bn1(x))
        shortcut = x if self.project is None else self.project(a)
        out = self.conv1(a)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + shortcut


class WideResNet(nn.Module):
    """WRN-depth-k (Zagoruyko & Komodakis 2016), pre-activation, widths 16k/32k/64k.

    WRN-28-10: ~36.5M parameters; WRN-40-2: ~2.2M (10 classes).
    """

    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        if (depth - 4) % 6:
            raise AutosoftError(f"WRN depth must be 6n+4; got {depth}")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
            raise AutosoftError(f"dropout must be in [0, 1); got {dropout!r}")
        n = (depth - 4) // 6
        widths = (16 * widen, 32 * widen, 64 * widen)
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        blocks, cin = [], 16
        for w, stride in zip(widths, (1, 2, 2)):
            for i in range(n):
                blocks.append(_PreActBlock(cin, w, stride if i == 0 else 1, float(dropout)))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.final = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(cin, num_classes)
        _init(self)

    def forward(self, x):
        return self.head(self.final(self.blocks(self.stem(x))).flatten(1))


# ----------------------------------------------------------------------------- init and table

def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


_BUILDERS = {
    "proxy": lambda c, i, **o: ProxyNet(c, i, **o),
    "resnet18": lambda c, i: ResNet18(c, i),
    "wrn40_2": lambda c, i, **o: WideResNet(40, 2, c, i, **o),
    "wrn28_10": lambda c, i, **o: WideResNet(28, 10, c, i, **o),
}
_OPTIONS = {"proxy": ("width",), "resnet18": (), "wrn40_2": ("dropout",), "wrn28_10": ("dropout",)}
