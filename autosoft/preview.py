"""A policy's preview: a grid of training images under several of its draws (`autosoft show --preview`).

Loads the first images of a data set's train split, augments them as training would and
captions each with the target confidence it would train with.
"""

from __future__ import annotations

from pathlib import Path

import torch

from autosoft.augment import PolicyAugment
from autosoft.data import load_dataset, resize_images
from autosoft.plots import image_grid

__all__ = ["write_preview"]


def write_preview(policy, path, *, dataset: str, data_dir=None, download=False, seed: int = 0,
                  n_images: int = 8, n_draws: int = 4, image_size: int | None = None) -> Path:
    """A grid: the original images in the first row, then several draws of the policy,
    each image captioned with the target confidence p it would train with; at `image_size`
    (as training would see them) when given."""
    folder = dataset.startswith("imagefolder:")  # decoded at the size asked; a packed set is resized below
    ds = load_dataset(dataset, "train", data_dir=data_dir, download=download,
                      image_size=image_size if folder else None)
    images, labels = ds.images[:n_images], ds.labels[:n_images]
    if image_size is not None and images.shape[-1] != image_size:
        images = resize_images(images, image_size)  # only the images shown, not the whole split
    augment = PolicyAugment(policy, ds.num_classes)
    gen = torch.Generator().manual_seed(seed)
    rows, captions = [images], [ds.classes[int(y)][:10] for y in labels]
    for _ in range(n_draws):
        out = augment(images, labels, generator=gen)
        # p(severity) from the curve: the target row's true-class entry, or the loss weight in "weight" mode
        st = augment.policy.soft_targets
        confidence = out.weights if st is not None and st.mode == "weight" else \
            out.targets.gather(1, labels.view(-1, 1)).flatten()
        rows.append(out.images)
        captions += [f"p={c:.2f}" for c in confidence.tolist()]
    return image_grid(torch.cat(rows), path, nrow=n_images, labels=captions,
                       title=f"{policy.name or 'policy'}: originals, then {n_draws} draws")
