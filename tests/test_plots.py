import sys

import pytest
import torch
from PIL import Image

from autosoft import plots
from autosoft.errors import AutosoftError


def _check_png(path):
    assert path.exists() and path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        assert w > 0 and h > 0
        return w, h


def test_import_is_lazy():
    # Importing autosoft.plots must not pull in matplotlib (keeps `import autosoft` fast).
    import subprocess

    code = "import autosoft.plots, autosoft.metrics, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_reliability_diagram(tmp_path):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2000, 10, generator=g) * 3
    labels = torch.multinomial((logits / 2).softmax(1), 1, generator=g).squeeze(1)  # over-confident
    path = plots.reliability_diagram(logits.softmax(1), labels, tmp_path / "rel.png", title="test")
    _check_png(path)


def test_image_grid_rgb_gray_and_captions(tmp_path):
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    caps = [f"p={0.5 + i / 20:.2f}" for i in range(10)]
    w, h = _check_png(plots.image_grid(images, tmp_path / "grid.png", nrow=5, labels=caps, title="preview"))
    assert w > h  # 5 columns x 2 rows
    _check_png(plots.image_grid(images[:3, :1], tmp_path / "sub" / "gray.png", nrow=4))
    with pytest.raises(AutosoftError, match="caption"):
        plots.image_grid(images, tmp_path / "x.png", nrow=5, labels=["a"])


def test_training_curves(tmp_path):
    history = [{"epoch": e, "train_loss": 2.0 / (e + 1), "val_acc": 0.5 + e / 20, "lr": 0.1} for e in range(10)]
    history[3]["val_acc"] = None  # missing values are skipped
    _check_png(plots.training_curves(history, tmp_path / "curves.png"))
    with pytest.raises(AutosoftError, match="epoch"):
        plots.training_curves([{"loss": 1.0}], tmp_path / "bad.png")


def test_search_history_and_pareto(tmp_path):
    scores = [0.6, None, 0.7, 0.65, None, 0.8, 0.75]
    _check_png(plots.search_history(scores, tmp_path / "hist.png"))
    _check_png(plots.search_history([None, None], tmp_path / "allfailed.png", objective_name="ece", maximize=False))
    points = [(0.90, 0.05), (0.92, 0.04), (0.88, 0.02), (0.85, 0.06)]
    _check_png(plots.pareto_front(points, [False, True, True, False], tmp_path / "pareto.png"))
