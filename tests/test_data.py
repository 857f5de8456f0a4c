"""Data loading on tiny fixtures written in the exact on-disk formats, plus the real offline CIFAR-10."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from autosoft.data import (CARVE_SEED, DATASET_NAMES, Dataset, channel_mean_std, decode_images, load_dataset,
                           open_split, stratified_subset, train_val_split)
from autosoft.errors import AutosoftError
from autosoft.splits import split_indices

# ----------------------------------------------------------------------------- fixture writers

def _dump(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar10(root: Path, n_per_batch=4, n_test=6) -> dict:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _dump(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": n_per_batch, "num_vis": 3072})
    out = {"train": [], "train_labels": []}
    for i in range(1, 6):
        rows = _rows(n_per_batch, i)
        labels = [(i + j) % 10 for j in range(n_per_batch)]
        _dump(folder / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "data": rows,
                                          "labels": labels, "filenames": [f"f{j}.png" for j in range(n_per_batch)]})
        out["train"].append(rows)
        out["train_labels"] += labels
    test = _rows(n_test, 99)
    _dump(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "data": test,
                                  "labels": [j % 10 for j in range(n_test)]})
    out["train"] = np.concatenate(out["train"])
    out["test"] = test
    return out


def write_cifar100(root: Path, n_train=20, n_test=10) -> dict:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    fine_names = [f"fine{i:02d}" for i in range(100)]
    coarse_names = [f"coarse{i:02d}" for i in range(20)]
    _dump(folder / "meta", {"fine_label_names": fine_names, "coarse_label_names": coarse_names})
    out = {}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        rows = _rows(n, seed)
        fine = [(7 * j + seed) % 100 for j in range(n)]
        coarse = [f // 5 for f in fine]
        _dump(folder / split, {"filenames": [f"{j}.png" for j in range(n)], "batch_label": split,
                               "fine_labels": fine, "coarse_labels": coarse, "data": rows})
        out[split] = (rows, fine, coarse)
    return out


# ----------------------------------------------------------------------------- CIFAR fixtures

def test_cifar100_pixels_labels_and_class_names(tmp_path):
    truth = write_cifar100(tmp_path)
    for split in ("train", "test"):
        rows, fine, coarse = truth[split]
        ds = load_dataset("cifar100", split, data_dir=tmp_path)
        assert len(ds) == len(rows) and ds.num_classes == 100
        assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(rows), 3, 32, 32)
        assert ds.images.is_contiguous() and ds.labels.dtype == torch.int64
        # CIFAR rows are channel-planar R|G|B, each plane row-major 32x32.
        n, c, h, w = 3, 2, 5, 17
        assert ds.images[n, c, h, w].item() == rows[n, c * 1024 + h * 32 + w]
        assert ds.images[n, 0, 0, 0].item() == rows[n, 0]
        assert ds.images[n, 1, 0, 0].item() == rows[n, 1024]
        assert torch.equal(ds.images.reshape(len(rows), -1), torch.from_numpy(rows))
        assert ds.labels.tolist() == fine
        assert ds.classes[fine[0]] == f"fine{fine[0]:02d}"
        cs = load_dataset("cifar100-coarse", split, data_dir=tmp_path)
        assert cs.labels.tolist() == coarse and cs.num_classes == 20
        assert cs.classes[0] == "coarse00" and cs.name == "cifar100-coarse"
        assert torch.equal(cs.images, ds.images)


def test_cifar10_fixture_and_env_var(tmp_path, monkeypatch):
    truth = write_cifar10(tmp_path)
    monkeypatch.setenv("AUTOSOFT_DATA", str(tmp_path))
    ds = load_dataset("cifar10", "train")
    assert len(ds) == 20 and ds.classes[0] == "airplane"
    assert torch.equal(ds.images.reshape(20, -1), torch.from_numpy(truth["train"]))
    assert ds.labels.tolist() == truth["train_labels"]
    te = load_dataset("cifar10", "test")
    assert len(te) == 6
    # The official counts are only enforced when asked.
    with pytest.raises(AutosoftError, match="50000"):
        load_dataset("cifar10", "train", strict=True)
    small = load_dataset("cifar10", "train", image_size=16)
    assert small.images.shape == (20, 3, 16, 16) and small.images.dtype == torch.uint8


def test_missing_set_names_path_and_remedy(tmp_path):
    with pytest.raises(AutosoftError) as e:
        load_dataset("cifar10", "train", data_dir=tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg
    assert "--download" in msg and "AUTOSOFT_DATA" in msg and "\n" not in msg
    with pytest.raises(AutosoftError, match="test_32x32.mat"):
        load_dataset("svhn", "test", data_dir=tmp_path)


def test_truncated_pickle_is_named(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(AutosoftError, match="data_batch_3") as e:
        load_dataset("cifar10", "train", data_dir=tmp_path)
    assert "truncated" in str(e.value) and "\n" not in str(e.value)
    load_dataset("cifar10", "test", data_dir=tmp_path)  # the other files are still fine


def test_bad_contents_are_rejected(tmp_path):
    write_cifar100(tmp_path)
    folder = tmp_path / "cifar-100-python"
    good = pickle.load(open(folder / "train", "rb"), encoding="latin1")
    _dump(folder / "train", dict(good, fine_labels=[100] + good["fine_labels"][1:]))
    with pytest.raises(AutosoftError, match="out of range"):
        load_dataset("cifar100", "train", data_dir=tmp_path)
    _dump(folder / "train", dict(good, fine_labels=good["fine_labels"][:-1]))
    with pytest.raises(AutosoftError, match="counts must match"):
        load_dataset("cifar100", "train", data_dir=tmp_path)
    _dump(folder / "train", dict(good, data=good["data"][:, :3000]))
    with pytest.raises(AutosoftError, match="3072"):
        load_dataset("cifar100", "train", data_dir=tmp_path)
    _dump(folder / "train", dict(good, data=good["data"].astype(np.float32)))
    with pytest.raises(AutosoftError, match="uint8"):
        load_dataset("cifar100", "train", data_dir=tmp_path)
    _dump(folder / "train", {k: v for k, v in good.items() if k != "fine_labels"})
    with pytest.raises(AutosoftError, match="fine_labels"):
        load_dataset("cifar100", "train", data_dir=tmp_path)


def test_download_uses_official_archive(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    calls = []

    def fake_download(url, root, filename=None, md5=None, **kw):
        calls.append((url, root, filename, md5))
        write_cifar100(Path(root))  # what extracting the real archive leaves behind

    monkeypatch.setattr(tvu, "download_and_extract_archive", fake_download)
    ds = load_dataset("cifar100", "train", data_dir=tmp_path, download=True)
    assert len(ds) == 20
    assert calls == [("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", str(tmp_path),
                      "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85")]
    load_dataset("cifar100", "test", data_dir=tmp_path, download=True)
    assert len(calls) == 1  # present now: not downloaded again

    def failing(*a, **k):
        raise RuntimeError("File not found or corrupted.")

    monkeypatch.setattr(tvu, "download_and_extract_archive", failing)
    with pytest.raises(AutosoftError, match="downloading cifar10"):
        load_dataset("cifar10", "train", data_dir=tmp_path, download=True)


# ----------------------------------------------------------------------------- SVHN

def test_svhn_mat_layout_and_label_10_is_zero(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    n = 12
    x = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = np.array([[1 + (j % 10)] for j in range(n)], dtype=np.uint8)  # 1..10, 10 means digit 0
    scipy_io.savemat(str(tmp_path / "train_32x32.mat"), {"X": x, "y": y})
    ds = load_dataset("svhn", "train", data_dir=tmp_path)
    assert ds.images.shape == (n, 3, 32, 32) and ds.images.is_contiguous()
    assert ds.images[4, 2, 7, 30].item() == x[7, 30, 2, 4]  # X is (H, W, C, N)
    assert torch.equal(ds.images, torch.from_numpy(x).permute(3, 2, 0, 1))
    assert ds.labels.tolist() == [(1 + (j % 10)) % 10 for j in range(n)]
    assert ds.classes == [str(d) for d in range(10)]

    scipy_io.savemat(str(tmp_path / "test_32x32.mat"), {"X": x, "y": y * 0})
    with pytest.raises(AutosoftError, match="out of range"):
        load_dataset("svhn", "test", data_dir=tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes((tmp_path / "train_32x32.mat").read_bytes()[:3000])
    with pytest.raises(AutosoftError, match="test_32x32.mat"):
        load_dataset("svhn", "test", data_dir=tmp_path)


# ----------------------------------------------------------------------------- image folders

def _png(path: Path, colour, size=(8, 6)):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_imagefolder_train_only(tmp_path):
    _png(tmp_path / "cats" / "a.png", (255, 0, 0))
    _png(tmp_path / "cats" / "b.png", (250, 10, 0), size=(20, 9))
    _png(tmp_path / "dogs" / "c.PNG", (0, 0, 255))
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    ds = load_dataset(f"imagefolder:{tmp_path}", "train", image_size=4, test_fraction=0)  # 0: all of it is train
    assert ds.classes == ["cats", "dogs"] and ds.labels.tolist() == [0, 0, 1]
    assert ds.images.shape == (3, 3, 4, 4)
    assert ds.images[0, :, 2, 1].tolist() == [255, 0, 0]  # solid colours survive the resize
    assert ds.images[2, :, 0, 3].tolist() == [0, 0, 255]
    assert load_dataset(f"imagefolder:{tmp_path}", "train", test_fraction=0).images.shape[-2:] == (32, 32)
    with pytest.raises(AutosoftError, match="no test split; set test_fraction > 0"):
        load_dataset(f"imagefolder:{tmp_path}", "test", test_fraction=0)
    # A relative path is also looked up under the data root.
    ds2 = load_dataset(f"imagefolder:{tmp_path.name}", "train", data_dir=tmp_path.parent, image_size=4,
                       test_fraction=0)
    assert torch.equal(ds2.images, ds.images)
    # Broken image file is named.
    (tmp_path / "dogs" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(AutosoftError, match="bad.png"):
        load_dataset(f"imagefolder:{tmp_path}", "train", test_fraction=0)


def _numbered_folder(root: Path, per_class: dict) -> Path:
    """One PNG per image whose red level is its number, so a decoded image says which file it was."""
    k = 0
    for cls, n in per_class.items():
        for _ in range(n):
            _png(root / cls / f"{k:03d}.png", (k, 0, 0))
            k += 1
    return root


def test_folder_without_splits_carves_a_stratified_seeded_test_split(tmp_path):
    root = _numbered_folder(tmp_path / "f", {"a": 10, "b": 10, "c": 5})
    name = f"imagefolder:{root}"
    train = load_dataset(name, "train", image_size=2)
    test = load_dataset(name, "test", image_size=2)
    # 20% of 25 = 5, in proportion: 2 + 2 + 1; train is the rest, every image in exactly one split
    assert torch.bincount(test.labels).tolist() == [2, 2, 1] and torch.bincount(train.labels).tolist() == [8, 8, 4]
    train_ids, test_ids = set(train.images[:, 0, 0, 0].tolist()), set(test.images[:, 0, 0, 0].tolist())
    assert train_ids.isdisjoint(test_ids) and train_ids | test_ids == set(range(25))
    # the same images every time, whatever the image size; recorded by file name with the seed
    assert torch.equal(load_dataset(name, "test", image_size=3).images[:, 0, 0, 0], test.images[:, 0, 0, 0])
    listed = open_split(name, "train")
    assert listed.carved["seed"] == CARVE_SEED and listed.carved["test_fraction"] == 0.2
    assert listed.carved["test_files"] == [f"{'abc'[k // 10]}/{k:03d}.png" for k in sorted(test_ids)]
    assert open_split(name, "test").carved == listed.carved
    assert len(load_dataset(name, "test", test_fraction=0.4)) == 10
    with pytest.raises(AutosoftError, match="holds out none"):
        load_dataset(f"imagefolder:{_numbered_folder(tmp_path / 'two', {'a': 1, 'b': 1})}", "train")
    with pytest.raises(AutosoftError, match="leaves class 'a' no training image"):
        load_dataset(f"imagefolder:{_numbered_folder(tmp_path / 'ones', dict.fromkeys('abcde', 1))}", "train")
    with pytest.raises(AutosoftError, match=r"test_fraction: expected a fraction in \[0, 1\)"):
        load_dataset(name, "train", test_fraction=1.0)


def test_parallel_decoding_gives_the_sequential_result_on_several_threads(tmp_path, monkeypatch):
    import threading

    from PIL import Image
    rng = np.random.default_rng(0)
    files = []
    for i in range(200):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (9 + i % 5, 12, 3), dtype=np.uint8)).save(files[-1])
    sequential = decode_images(files, 7, workers=1)
    threads = set()
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: threads.add(threading.get_ident()) or real_open(*a, **k))
    parallel = decode_images(files, 7, workers=4)
    assert torch.equal(parallel, sequential) and parallel.shape == (200, 3, 7, 7)
    assert len(threads) > 1 and threading.get_ident() not in threads
    (tmp_path / "77.png").write_bytes(b"broken")  # the first broken file in order is the one named
    (tmp_path / "150.png").write_bytes(b"broken")
    with pytest.raises(AutosoftError, match="77.png: cannot read image"):
        decode_images(files, 7, workers=4)


def test_a_copy_that_would_not_fit_in_memory_is_refused_in_one_line(tmp_path, monkeypatch):
    import autosoft.data
    root = _numbered_folder(tmp_path / "f", {"a": 6, "b": 4})
    monkeypatch.setattr(autosoft.data, "available_memory", lambda: 100_000)
    with pytest.raises(AutosoftError) as info:
        load_dataset(f"imagefolder:{root}", "train", image_size=64)  # 8 x 3 x 64 x 64 = 96 KiB, twice that needed
    message = str(info.value)
    assert "\n" not in message and "8 images of 3x64x64 take 96.0 KiB" in message
    assert "97.7 KiB is available" in message and "--train-size" in message and "--image-size" in message
    assert len(load_dataset(f"imagefolder:{root}", "train", image_size=16)) == 8  # 24 KiB: fits
    write_cifar10(tmp_path / "c")  # 20 train images: a CIFAR copy resized to 64 px is checked too
    with pytest.raises(AutosoftError, match="cifar10 train: 20 images of 3x64x64 take 240.0 KiB"):
        load_dataset("cifar10", "train", data_dir=tmp_path / "c", image_size=64)


def test_imagefolder_train_test_and_errors(tmp_path):
    for split in ("train", "test"):
        for cls, colour in (("a", (10, 20, 30)), ("b", (40, 50, 60)), ("c", (70, 80, 90))):
            if split == "test" and cls == "b":
                continue  # a class missing from test keeps its label index
            _png(tmp_path / split / cls / "x.png", colour)
    te = load_dataset(f"imagefolder:{tmp_path}", "test", image_size=8)
    assert te.classes == ["a", "b", "c"] and te.labels.tolist() == [0, 2]
    assert te.images[1, :, 0, 0].tolist() == [70, 80, 90]
    mean, std = channel_mean_std(te)
    assert mean == pytest.approx((40 / 255, 50 / 255, 60 / 255)) and std == pytest.approx((30 / 255,) * 3)
    with pytest.raises(AutosoftError, match="not found"):
        load_dataset(f"imagefolder:{tmp_path / 'missing'}", "train")


# ----------------------------------------------------------------------------- Dataset, splits

def _toy(n_per_class=(30, 20, 10)) -> Dataset:
    labels = torch.cat([torch.full((k,), c) for c, k in enumerate(n_per_class)])
    images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 8, 8).contiguous()
    return Dataset("toy", images, labels.long(), ["a", "b", "c"])


def test_dataset_basics():
    ds = _toy()
    assert len(ds) == 60 and ds.num_classes == 3
    assert repr(ds) == "Dataset('toy', 60 images 3x8x8 uint8, 3 classes, device=cpu)"
    sub = ds.subset([5, 2])
    assert sub.images[:, 0, 0, 0].tolist() == [5, 2] and sub.labels.tolist() == [0, 0]
    assert ds.to("cpu").images.device.type == "cpu"
    with pytest.raises(AutosoftError, match="uint8"):
        Dataset("bad", ds.images.float(), ds.labels, ds.classes)
    with pytest.raises(AutosoftError, match="labels"):
        Dataset("bad", ds.images, ds.labels[:5], ds.classes)


def test_split_stratified_disjoint_deterministic():
    ds = _toy()
    train, val = train_val_split(ds, 12, seed=3)
    ids_t = set(train.images[:, 0, 0, 0].tolist())
    ids_v = set(val.images[:, 0, 0, 0].tolist())
    assert len(val) == 12 and len(train) == 48
    assert not ids_t & ids_v and ids_t | ids_v == set(range(60))
    assert torch.bincount(val.labels, minlength=3).tolist() == [6, 4, 2]  # 20% of each class
    again = train_val_split(ds, 12, seed=3)[1]
    assert torch.equal(again.images, val.images)
    other = train_val_split(ds, 12, seed=4)[1]
    assert not torch.equal(other.images, val.images)
    frac = train_val_split(ds, 0.5, seed=0)[1]
    assert torch.bincount(frac.labels, minlength=3).tolist() == [15, 10, 5]
    # Uneven quotas still add up exactly (largest remainder).
    assert len(train_val_split(ds, 7)[1]) == 7
    sub = stratified_subset(ds, 30, seed=1)
    assert len(sub) == 30 and torch.bincount(sub.labels).tolist() == [15, 10, 5]
    for bad in (0, 60, 1.0, -0.1, "5", True):
        with pytest.raises(AutosoftError, match="val_size"):
            train_val_split(ds, bad)


def test_split_indices_pick_what_the_two_split_functions_pick():
    ds = _toy((30, 20, 10))
    for val_size, train_size, seed in ((12, 20, 0), (12, None, 3), (0, 25, 1), (0, None, 0), (12, 999, 2)):
        train_idx, val_idx = split_indices(ds.labels, val_size=val_size, train_size=train_size, seed=seed)
        train, val = train_val_split(ds, val_size, seed=seed) if val_size else (ds, None)
        if train_size is not None and train_size < len(train):
            train = stratified_subset(train, train_size, seed=seed)
        assert torch.equal(ds.images if train_idx is None else ds.subset(train_idx).images, train.images)
        assert (val_idx is None) == (val is None)
        if val is not None:
            assert torch.equal(ds.subset(val_idx).images, val.images)


def test_channel_mean_std_constants_and_names():
    assert channel_mean_std("cifar10") == ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    assert channel_mean_std("cifar100")[0] == channel_mean_std("cifar100-coarse")[0]
    with pytest.raises(AutosoftError, match="cifar10"):
        channel_mean_std("imagefolder:x")
    assert set(DATASET_NAMES) == {"cifar10", "cifar100", "cifar100-coarse", "svhn"}


def test_unknown_name_and_split():
    with pytest.raises(AutosoftError, match="allowed: cifar10, cifar100, cifar100-coarse, svhn, imagefolder:PATH"):
        load_dataset("mnist", "train")
    with pytest.raises(AutosoftError, match="allowed: train, test"):
        load_dataset("cifar10", "val")


# ----------------------------------------------------------------------------- the real offline data sets

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# The official CIFAR-100 order (meta's fine_label_names / coarse_label_names), spot-checked.
CIFAR100_FINE = {0: "apple", 1: "aquarium_fish", 19: "cattle", 50: "mouse", 99: "worm"}
CIFAR100_COARSE = {0: "aquatic_mammals", 1: "fish", 7: "insects", 14: "people", 19: "vehicles_2"}


def test_real_cifar10(real_cifar10):
    train = load_dataset("cifar10", "train", data_dir=real_cifar10, strict=True)
    test = load_dataset("cifar10", "test", data_dir=real_cifar10, strict=True)
    assert len(train) == 50000 and len(test) == 10000
    assert train.classes == CIFAR10_CLASSES and test.classes == CIFAR10_CLASSES
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    mean, std = channel_mean_std(train, measure=True)
    assert mean == pytest.approx((0.4914, 0.4822, 0.4465), abs=1e-3)
    assert std == pytest.approx((0.2470, 0.2435, 0.2616), abs=1e-3)
    # The exact test split: its first image (a cat) has these official first pixels (R plane).
    assert test.labels[:5].tolist() == [3, 8, 8, 0, 6]
    assert test.images[0, 0, 0, :4].tolist() == [158, 159, 165, 166]
    assert test.pixels_sha256() == "177777c33ba79825320efa646ad04a94bdc3c80e4ebe3bd21724f8cdfd4b9d56"


def test_real_cifar100_fine_and_coarse(real_cifar100):
    for split, n in (("train", 50000), ("test", 10000)):
        fine = load_dataset("cifar100", split, data_dir=real_cifar100, strict=True)
        coarse = load_dataset("cifar100-coarse", split, data_dir=real_cifar100, strict=True)
        assert len(fine) == n and fine.images.shape == (n, 3, 32, 32) and fine.num_classes == 100
        assert fine.labels.min() == 0 and fine.labels.max() == 99
        assert torch.bincount(fine.labels).tolist() == [n // 100] * 100
        assert len(coarse) == n and coarse.num_classes == 20 and torch.equal(coarse.images, fine.images)
        assert torch.bincount(coarse.labels).tolist() == [n // 20] * 20
        # Every fine class lies in exactly one super-class (5 fine classes each).
        pairs = torch.unique(fine.labels * 20 + coarse.labels)
        assert len(pairs) == 100 and torch.bincount(pairs % 20).tolist() == [5] * 20
    assert all(fine.classes[i] == name for i, name in CIFAR100_FINE.items())
    assert all(coarse.classes[i] == name for i, name in CIFAR100_COARSE.items())
    # First test image: a mountain (large natural outdoor scenes); first train image: cattle.
    assert fine.classes[int(fine.labels[0])] == "mountain"
    assert coarse.classes[int(coarse.labels[0])] == "large_natural_outdoor_scenes"
    train = load_dataset("cifar100", "train", data_dir=real_cifar100)
    assert train.classes[int(train.labels[0])] == "cattle"
    mean, std = channel_mean_std(train, measure=True)
    assert mean == pytest.approx(channel_mean_std("cifar100")[0], abs=1e-3)
    assert std == pytest.approx(channel_mean_std("cifar100")[1], abs=1e-3)
    assert mean == pytest.approx((0.5071, 0.4865, 0.4409), abs=1e-3)
    test = load_dataset("cifar100", "test", data_dir=real_cifar100)
    assert test.pixels_sha256() == "83c56492b2c11211ad1bb2dbd4f2eef4170a0441e41a41f3039c3144b1f5a511"


def test_small_cuts_are_real_prefixes(small_cifar10, small_cifar100, real_cifar10, real_cifar100):
    for name, small, real, n in (("cifar10", small_cifar10, real_cifar10, 300),
                                 ("cifar100", small_cifar100, real_cifar100, 300),
                                 ("cifar100-coarse", small_cifar100, real_cifar100, 300)):
        cut = load_dataset(name, "test", data_dir=small)
        full = load_dataset(name, "test", data_dir=real)
        assert len(cut) == n and cut.classes == full.classes
        assert torch.equal(cut.images, full.images[:n]) and torch.equal(cut.labels, full.labels[:n])
    assert len(load_dataset("cifar100", "train", data_dir=small_cifar100)) == 1000
