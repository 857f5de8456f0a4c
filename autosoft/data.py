"""Data sets as whole uint8 tensors: CIFAR-10/100, SVHN and image folders.

A data set is loaded once into memory as one ``(N, C, H, W)`` uint8 tensor plus
int64 labels (airbench style: it can then live on the GPU and be augmented a
batch at a time, no DataLoader workers). Files found on disk are validated by
shape, dtype, counts and label range rather than by checksum, so a re-packed
copy of a set works; the md5 check is kept for archives we download ourselves.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from autosoft.errors import AutosoftError
from autosoft.splits import resolve_count, split_indices, stratified_pick

__all__ = [
    "Dataset",
    "ImageFiles",
    "DATASET_NAMES",
    "IMAGEFOLDER_PREFIX",
    "SPLITS",
    "load_dataset",
    "open_split",
    "split_indices",
    "available_memory",
    "data_root",
    "train_val_split",
    "stratified_subset",
    "channel_mean_std",
    "resize_images",
]

DATASET_NAMES = ["cifar10", "cifar100", "cifar100-coarse", "svhn"]
IMAGEFOLDER_PREFIX = "imagefolder:"  # "imagefolder:PATH", one sub-folder per class
SPLITS = ("train", "test")
_ALLOWED = ", ".join(DATASET_NAMES + [IMAGEFOLDER_PREFIX + "PATH"])
_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
IMAGEFOLDER_SIZE = 32         # image folders are resized to this square side unless told otherwise
TEST_FRACTION = 0.2           # a folder without train/ and test/: this share is carved out as its test split
CARVE_SEED = 0                # fixed, not the training seed: every run and search of a folder holds out the same images

# Official sources (the ones torchvision uses). The md5 is only checked on
# files we download; files already on disk are validated by content instead.
_CIFAR10 = dict(folder="cifar-10-batches-py", url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                archive="cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a")
_CIFAR100 = dict(folder="cifar-100-python", url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                 archive="cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85")
_SVHN = {
    "train": ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "train_32x32.mat",
              "e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test": ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "test_32x32.mat",
             "eb5a983be6a315427106f1b164d9cef3"),
}
# Official image counts; checked only with strict=True (test fixtures are tiny).
_OFFICIAL_COUNTS = {
    "cifar10": {"train": 50000, "test": 10000},
    "cifar100": {"train": 50000, "test": 10000},
    "cifar100-coarse": {"train": 50000, "test": 10000},
    "svhn": {"train": 73257, "test": 26032},
}
# Per-channel mean/std of the *train* split in [0, 1] scale (pixel-level std).
_MEAN_STD = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "cifar100-coarse": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}


# ----------------------------------------------------------------------------- Dataset

@dataclass(repr=False, eq=False)
class Dataset:
    """A whole data set in memory: uint8 images (N, C, H, W), int64 labels (N,)."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list

    def __post_init__(self):
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8 or self.images.dim() != 4:
            got = tuple(self.images.shape) if isinstance(self.images, torch.Tensor) else type(self.images).__name__
            raise AutosoftError(f"Dataset images must be a uint8 tensor (N, C, H, W); got {got}")
        if not isinstance(self.labels, torch.Tensor) or self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise AutosoftError("Dataset labels must be an int64 tensor (N,)")
        if len(self.labels) != len(self.images):
            raise AutosoftError(f"Dataset has {len(self.images)} images but {len(self.labels)} labels")
        self.classes = list(self.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> "Dataset":
        """Copy to `device` (no copy if already there)."""
        return Dataset(self.name, self.images.to(device), self.labels.to(device), self.classes)

    def subset(self, indices) -> "Dataset":
        """The images at `indices` (index tensor, list, or boolean mask), in that order."""
        idx = torch.as_tensor(indices, device=self.labels.device)
        if idx.dtype != torch.bool:
            idx = idx.long()
        return Dataset(self.name, self.images[idx].contiguous(), self.labels[idx], self.classes)

    def pixels_sha256(self) -> str:
        """SHA-256 of the images' bytes (N, C, H, W uint8, C-contiguous).

        For CIFAR this equals the hash of the standard layout's `data` rows, so a result can
        say which copy of a test split it was measured on (the offline copy's manifest lists it).
        """
        return hashlib.sha256(self.images.cpu().contiguous().numpy().tobytes()).hexdigest()

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return (f"Dataset({self.name!r}, {n} images {c}x{h}x{w} uint8, "
                f"{self.num_classes} classes, device={self.device})")


# ----------------------------------------------------------------------------- loading

def data_root(data_dir=None) -> Path:
    """Where data sets live: `data_dir`, else $AUTOSOFT_DATA, else ~/.cache/autosoft/data."""
    if data_dir is None:
        data_dir = os.environ.get("AUTOSOFT_DATA") or "~/.cache/autosoft/data"
    return Path(data_dir).expanduser()


def load_dataset(name: str, split: str, *, data_dir=None, download: bool = False,
                 image_size: int | None = None, strict: bool = False,
                 test_fraction: float = TEST_FRACTION) -> Dataset:
    """Load a whole split into memory.

    name: cifar10 | cifar100 (fine labels) | cifar100-coarse | svhn | imagefolder:PATH.
    split: "train" | "test". image_size: resize to this square size (imagefolder default 32;
    the 32x32 sets are left as they are unless a different size is asked for).
    strict: also require the official image counts (e.g. 50000/10000 for CIFAR).
    test_fraction: an image folder without train/ and test/ sub-folders has this share of each
    class carved out (seeded, the same every time) as its test split; "train" is the rest.
    """
    source = open_split(name, split, data_dir=data_dir, download=download, image_size=image_size,
                        strict=strict, test_fraction=test_fraction)
    return source.subset(None) if isinstance(source, ImageFiles) else source


def open_split(name: str, split: str, *, data_dir=None, download: bool = False, image_size: int | None = None,
               strict: bool = False, test_fraction: float = TEST_FRACTION) -> "Dataset | ImageFiles":
    """A split as `load_dataset` gives it, except that an image folder is only listed: its
    `ImageFiles` decodes the images a caller picks (`subset`), so a subset never costs the
    memory or time of the whole folder. Bad input fails here, before anything is decoded."""
    if not isinstance(name, str):
        raise AutosoftError(f"data set name must be a string; allowed: {_ALLOWED}")
    if split not in SPLITS:
        raise AutosoftError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 1):
        raise AutosoftError(f"image_size must be a positive integer; got {image_size!r}")
    root = data_root(data_dir)

    if name.startswith(IMAGEFOLDER_PREFIX):
        return _list_imagefolder(name, split, root, image_size or IMAGEFOLDER_SIZE, test_fraction)
    if name == "cifar10":
        ds = _load_cifar(name, split, root, download, _CIFAR10)
    elif name in ("cifar100", "cifar100-coarse"):
        ds = _load_cifar(name, split, root, download, _CIFAR100)
    elif name == "svhn":
        ds = _load_svhn(split, root, download)
    else:
        raise AutosoftError(f"unknown data set {name!r}; allowed: {_ALLOWED}")

    if strict and len(ds) != _OFFICIAL_COUNTS[name][split]:
        raise AutosoftError(f"{name} {split} has {len(ds)} images; the official set has "
                            f"{_OFFICIAL_COUNTS[name][split]} (strict=True)")
    if image_size is not None and image_size != ds.images.shape[-1]:
        check_memory(len(ds), ds.images.shape[1], image_size, f"{name} {split}")
        ds = Dataset(ds.name, resize_images(ds.images, image_size), ds.labels, ds.classes)
    return ds


def _missing(name: str, path: Path, root: Path) -> AutosoftError:
    return AutosoftError(
        f"{name} not found: {path} is missing; pass --download (download=True) to fetch it, "
        f"or point --data-dir / AUTOSOFT_DATA at the folder that holds it (looked in {root})")


def _one_line(e: Exception) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())


def _download(name: str, root: Path, fn, *args, **kwargs) -> None:
    # Imported lazily: the download path is the only user of torchvision here.
    try:
        root.mkdir(parents=True, exist_ok=True)
        fn(*args, **kwargs)
    except Exception as e:  # network, disk or md5 failures all end the same way for the user
        raise AutosoftError(f"downloading {name} into {root} failed ({_one_line(e)}); check the network, "
                            f"or download the files yourself and set --data-dir / AUTOSOFT_DATA") from e


def _read_pickle(path: Path) -> dict:
    # CIFAR's own format is a pickle; this is the only place autosoft unpickles anything.
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="latin1")
    except Exception as e:
        raise AutosoftError(f"{path}: not a readable CIFAR pickle, file truncated or corrupt "
                            f"({_one_line(e)})") from e
    if not isinstance(obj, dict):
        raise AutosoftError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _field(obj: dict, key: str, path: Path):
    if key not in obj:
        raise AutosoftError(f"{path}: key {key!r} missing; keys present: {sorted(map(str, obj))}")
    return obj[key]


def _check_labels(labels, n_rows: int, num_classes: int, path: Path, low: int = 0) -> np.ndarray:
    try:
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iuf" or (labels.dtype.kind == "f" and np.any(labels != np.round(labels))):
            raise ValueError(f"dtype {labels.dtype}")
        labels = labels.astype(np.int64).reshape(-1)
    except Exception as e:
        raise AutosoftError(f"{path}: labels are not integers ({_one_line(e)})") from e
    if len(labels) != n_rows:
        raise AutosoftError(f"{path}: {len(labels)} labels for {n_rows} images; counts must match")
    if n_rows and (labels.min() < low or labels.max() >= low + num_classes):
        raise AutosoftError(f"{path}: label out of range [{labels.min()}, {labels.max()}]; "
                            f"allowed {low}..{low + num_classes - 1}")
    return labels


def _load_cifar(name: str, split: str, root: Path, download: bool, spec: dict) -> Dataset:
    folder = root / spec["folder"]
    if spec is _CIFAR10:
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        meta_file, names_key, label_key = "batches.meta", "label_names", "labels"
        num_classes = 10
    else:
        files = [split]
        meta_file = "meta"
        coarse = name == "cifar100-coarse"
        names_key = "coarse_label_names" if coarse else "fine_label_names"
        label_key = "coarse_labels" if coarse else "fine_labels"
        num_classes = 20 if coarse else 100
    needed = [folder / f for f in files + [meta_file]]
    absent = [p for p in needed if not p.is_file()]
    if absent and download:
        from torchvision.datasets.utils import download_and_extract_archive
        _download(name, root, download_and_extract_archive, spec["url"], str(root),
                  filename=spec["archive"], md5=spec["md5"])
        absent = [p for p in needed if not p.is_file()]
    if absent:
        raise _missing(name, absent[0], root)

    meta_path = folder / meta_file
    classes = _field(_read_pickle(meta_path), names_key, meta_path)
    if not isinstance(classes, (list, tuple)) or len(classes) != num_classes:
        raise AutosoftError(f"{meta_path}: {names_key!r} should list {num_classes} class names")

    datas, labels = [], []
    for f in files:
        path = folder / f
        obj = _read_pickle(path)
        data = _field(obj, "data", path)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise AutosoftError(f"{path}: 'data' is {got}; expected uint8 rows of 3072 (3x32x32, R|G|B planes)")
        labels.append(_check_labels(_field(obj, label_key, path), len(data), num_classes, path))
        datas.append(data)
    # Rows are channel-planar R|G|B of 32x32, so a plain reshape gives (N, 3, 32, 32).
    images = np.concatenate(datas).reshape(-1, 3, 32, 32)
    return Dataset(name, torch.from_numpy(images), torch.from_numpy(np.concatenate(labels)),
                   [str(c) for c in classes])


def _load_svhn(split: str, root: Path, download: bool) -> Dataset:
    url, filename, md5 = _SVHN[split]
    path = root / filename
    if not path.is_file() and download:
        from torchvision.datasets.utils import download_url
        _download("svhn", root, download_url, url, str(root), filename=filename, md5=md5)
    if not path.is_file():
        raise _missing("svhn", path, root)
    try:
        import scipy.io
    except ImportError as e:
        raise AutosoftError("reading SVHN .mat files needs scipy; pip install scipy") from e
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as e:
        raise AutosoftError(f"{path}: not a readable SVHN .mat file, truncated or corrupt ({_one_line(e)})") from e
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None:
        raise AutosoftError(f"{path}: expected variables 'X' and 'y'; found {sorted(k for k in mat if not k.startswith('__'))}")
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[2] != 3 or x.shape[0] < 1 or x.shape[1] < 1:
        raise AutosoftError(f"{path}: 'X' is {x.dtype} {x.shape}; expected uint8 (H, W, 3, N)")
    labels = _check_labels(y, x.shape[3], 10, path, low=1)
    labels[labels == 10] = 0  # SVHN stores digit 0 as class 10
    # (H, W, C, N) -> (N, C, H, W)
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))
    return Dataset("svhn", torch.from_numpy(images), torch.from_numpy(labels), [str(d) for d in range(10)])


@dataclass(repr=False, eq=False)
class ImageFiles:
    """One split of an image folder, listed but not decoded: `subset(indices)` decodes those
    files (in parallel) into a `Dataset`. `carved`: how the test split was carved out of a
    folder without train/ and test/ (fraction, seed, the held-out files), else None."""

    name: str
    base: Path
    files: list
    labels: torch.Tensor
    classes: list
    size: int
    carved: dict | None = None

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, indices=None) -> Dataset:
        """The images at `indices` (index tensor or list; None: all), decoded, in that order."""
        picked = range(len(self.files)) if indices is None else torch.as_tensor(indices).long().tolist()
        files = [self.files[i] for i in picked]
        if not files:
            raise AutosoftError(f"{self.base}: no images found")
        images = decode_images(files, self.size, what=f"{self.base}")
        return Dataset(self.name, images, self.labels[list(picked)].clone(), self.classes)

    def __repr__(self) -> str:
        return (f"ImageFiles({self.name!r}, {len(self)} files at {self.size}x{self.size}, "
                f"{len(self.classes)} classes{', test split carved' if self.carved else ''})")


def _list_files(folder: Path) -> list:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_EXTS and not p.name.startswith("."))


def _list_imagefolder(name: str, split: str, root: Path, size: int, test_fraction: float) -> ImageFiles:
    if not name[len(IMAGEFOLDER_PREFIX):].strip():
        raise AutosoftError(f"imagefolder needs a path: {IMAGEFOLDER_PREFIX}PATH")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 <= test_fraction < 1:
        raise AutosoftError(f"test_fraction: expected a fraction in [0, 1) of an image folder to hold out "
                            f"as its test split (0: none); got {test_fraction!r}")
    given = Path(name[len(IMAGEFOLDER_PREFIX):]).expanduser()
    candidates = [given] if given.is_absolute() else [given, root / given]
    base = next((p for p in candidates if p.is_dir()), None)
    if base is None:
        raise AutosoftError(f"image folder not found: looked in {', '.join(str(p.resolve()) for p in candidates)}; "
                            f"give {IMAGEFOLDER_PREFIX}PATH with one sub-folder per class")
    has_splits = (base / "train").is_dir() and (base / "test").is_dir()
    train_dir, folder = (base / "train", base / split) if has_splits else (base, base)
    # Classes come from the train folder so that test labels mean the same thing.
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise AutosoftError(f"{train_dir} has no class sub-folders; expected one sub-folder per class")
    present = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    extra = [c for c in present if c not in classes]
    if extra:
        raise AutosoftError(f"{folder} has class folders not in {train_dir}: {', '.join(extra)}")
    files, labels = [], []
    for label, cls in enumerate(classes):
        cdir = folder / cls
        if not cdir.is_dir():
            continue
        found = _list_files(cdir)
        if not found and folder == train_dir:
            raise AutosoftError(f"{cdir}: class folder has no images (extensions: {', '.join(sorted(_IMAGE_EXTS))})")
        files += found
        labels += [label] * len(found)
    if not files:
        raise AutosoftError(f"{folder}: no images found")
    labels = torch.tensor(labels, dtype=torch.int64)
    if has_splits:
        return ImageFiles(name, base, files, labels, classes, size)
    return _carve(ImageFiles(name, base, files, labels, classes, size), split, test_fraction)


def _carve(whole: ImageFiles, split: str, fraction: float) -> ImageFiles:
    """The train or test part of a folder without train/ and test/: each class gives `fraction`
    of its images to test (largest remainder, seeded by CARVE_SEED, so the same images every time)."""
    base = whole.base
    if fraction == 0:
        if split == "test":
            raise AutosoftError(f"{base} has no train/ and test/ sub-folders and test_fraction is 0, so it has no "
                                f"test split; set test_fraction > 0 (--test-fraction) to carve one")
        return whole
    n_test = round(fraction * len(whole))
    if n_test < 1:
        raise AutosoftError(f"{base}: test_fraction {fraction} of its {len(whole)} images holds out none; "
                            f"add images, raise test_fraction, or give it train/ and test/ sub-folders")
    test = stratified_pick(whole.labels, n_test, CARVE_SEED)
    left = torch.bincount(whole.labels[~test], minlength=len(whole.classes))
    empty = [whole.classes[c] for c in range(len(whole.classes)) if left[c] == 0]
    if empty:
        raise AutosoftError(f"{base}: carving a test split of {fraction:g} leaves class {empty[0]!r} no training "
                            f"image; add images to it, lower test_fraction, or give the folder train/ and test/")
    carved = {"folder": str(base.resolve()), "test_fraction": fraction, "seed": CARVE_SEED,
              "test_images": int(test.sum()), "train_images": int((~test).sum()),
              "test_files": [str(whole.files[i].relative_to(base)) for i in test.nonzero().squeeze(1).tolist()]}
    keep = (test if split == "test" else ~test).nonzero().squeeze(1).tolist()
    return ImageFiles(whole.name, base, [whole.files[i] for i in keep], whole.labels[keep], whole.classes,
                      whole.size, carved)


def available_memory() -> int:
    """Bytes of memory this process can still allocate: the system's MemAvailable, lowered by a
    cgroup limit where one is set (containers), else what sysconf reports."""
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except OSError:
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 1 << 62  # no way to tell: do not refuse
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


def _bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def check_memory(n: int, channels: int, size: int, what: str) -> None:
    """Refuse, in one line, an in-memory uint8 copy of n images that would not fit. Splitting the
    set (train / validation / subset) copies what it keeps, so twice the copy must be free."""
    need = n * channels * size * size
    free = available_memory()
    if 2 * need > free:
        raise AutosoftError(
            f"{what}: {n} images of {channels}x{size}x{size} take {_bytes(need)} in memory as uint8 (and as much "
            f"again while splitting), but {_bytes(free)} is available; train on fewer images (--train-size) or at a "
            f"smaller --image-size")


def decode_images(files: list, size: int, *, what: str = "image folder", workers: int | None = None) -> torch.Tensor:
    """Decode image files into one uint8 (N, 3, size, size) tensor, stretched to a square (nothing
    cropped away). A thread pool: PIL releases the GIL while it decodes and resizes, so threads
    scale without the pickling of a process pool. workers=1 decodes in this thread."""
    from PIL import Image  # only needed for image folders

    check_memory(len(files), 3, size, what)
    out = np.empty((len(files), 3, size, size), dtype=np.uint8)

    def decode(i: int) -> None:
        try:
            with Image.open(files[i]) as im:
                im = im.convert("RGB").resize((size, size), Image.BILINEAR)
                out[i] = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
        except Exception as e:
            raise AutosoftError(f"{files[i]}: cannot read image ({_one_line(e)})") from e

    if workers is None:
        workers = min(32, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if workers <= 1 or len(files) < 64:
        for i in range(len(files)):
            decode(i)
    else:
        def decode_chunk(start: int) -> None:  # one task per 64 files: a task per file costs more than a small PNG
            for i in range(start, min(start + 64, len(files))):
                decode(i)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            # map raises the first failure in file order, so a broken file is named the same way every time
            for _ in pool.map(decode_chunk, range(0, len(files), 64)):
                pass
    return torch.from_numpy(out)


def resize_images(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 (N, C, H, W) to (N, C, size, size), in chunks to bound memory."""
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8, device=images.device)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].float()
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False)
        out[i:i + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


# ----------------------------------------------------------------------------- splits

def train_val_split(ds: Dataset, val_size, *, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split into (train, val), stratified by label and deterministic per seed.

    val_size: int count, or float fraction of len(ds). Both parts keep the original order.
    """
    n = resolve_count(val_size, len(ds), "val_size", allow_all=False)
    mask = stratified_pick(ds.labels, n, seed)
    return ds.subset((~mask).nonzero().squeeze(1)), ds.subset(mask.nonzero().squeeze(1))


def stratified_subset(ds: Dataset, n, *, seed: int = 0) -> Dataset:
    """n images (int, or float fraction) drawn per class in proportion, deterministic per seed."""
    n = resolve_count(n, len(ds), "n", allow_all=True)
    return ds.subset(stratified_pick(ds.labels, n, seed).nonzero().squeeze(1))


# ----------------------------------------------------------------------------- normalisation

def channel_mean_std(name_or_ds, *, measure: bool = False) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) in [0, 1] scale for normalising inputs.

    A known name (cifar10, cifar100, cifar100-coarse, svhn) gives the published train-split
    constants; a Dataset with a known name does too unless measure=True, otherwise the
    statistics are measured from its images (pass the train split).
    """
    if isinstance(name_or_ds, str):
        if name_or_ds not in _MEAN_STD:
            raise AutosoftError(f"no known mean/std for {name_or_ds!r}; known: {', '.join(_MEAN_STD)}; "
                                f"pass the loaded Dataset to measure it")
        return _MEAN_STD[name_or_ds]
    if not isinstance(name_or_ds, Dataset):
        raise AutosoftError(f"channel_mean_std takes a data set name or a Dataset; got {type(name_or_ds).__name__}")
    if not measure and name_or_ds.name in _MEAN_STD:
        return _MEAN_STD[name_or_ds.name]
    images = name_or_ds.images
    if len(images) == 0:
        raise AutosoftError("cannot measure mean/std of an empty data set")
    c = images.shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for i in range(0, len(images), 8192):  # chunks keep the float copy small
        x = images[i:i + 8192].float()  # squares of 0..255 are exact in float32; sums go to float64
        s += x.sum(dim=(0, 2, 3), dtype=torch.float64).cpu()
        s2 += x.square_().sum(dim=(0, 2, 3), dtype=torch.float64).cpu()
    count = images.numel() / c
    mean = s / count
    std = (s2 / count - mean.square()).clamp_min(0).sqrt()
    return tuple((mean / 255).tolist()), tuple((std / 255).tolist())
