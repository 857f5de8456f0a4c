"""A policy's preview grid (`autosoft show --preview`): written, and at the size training would see."""

from PIL import Image

from autosoft.cli import main


def test_preview_writes_a_grid(small_cifar10, tmp_path, capsys):
    path = tmp_path / "grid.png"
    assert main(["show", "softaug", "--preview", str(path), "--data-dir", str(small_cifar10)]) == 0
    with Image.open(path) as im:
        assert im.size[0] > 200 and im.size[1] > 200


def test_preview_shows_the_images_at_the_size_training_would_use(small_cifar10, tmp_path, monkeypatch):
    from autosoft import preview
    shown = []
    monkeypatch.setattr(preview, "image_grid", lambda images, path, **kw: shown.append(images.shape) or path)
    for size in ([], ["--image-size", "64"]):
        assert main(["show", "softaug", "--preview", str(tmp_path / "g.png"), "--data-dir", str(small_cifar10), *size]) == 0
    assert [tuple(s) for s in shown] == [(40, 3, 32, 32), (40, 3, 64, 64)]  # 8 originals + 4 draws of 8
