"""Stratified, seeded picks of a split's images: the validation split, the train subset, a carved test split.

Everything here works on label tensors and returns indices or masks; `autosoft.data` applies
them to data sets (`train_val_split`, `stratified_subset`), and the trainer to its splits
(`split_indices`).
"""

from __future__ import annotations

import numpy as np
import torch

from autosoft.errors import AutosoftError

__all__ = ["resolve_count", "split_indices", "stratified_pick"]


def stratified_pick(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Boolean mask selecting n items, each class in proportion to its size (largest remainder)."""
    labels = labels.cpu()
    classes, counts = torch.unique(labels, return_counts=True)
    quota = counts.double() * n / len(labels)
    take = quota.floor().long()
    short = n - int(take.sum())
    if short:
        # Hand the leftover slots to the classes with the largest remainders (ties: lower class id).
        order = sorted(range(len(classes)), key=lambda i: (-(quota[i] - take[i]).item(), i))
        for i in order[:short]:
            take[i] += 1
    g = torch.Generator().manual_seed(int(seed))
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for c, k in zip(classes.tolist(), take.tolist()):  # loop over classes, not images
        idx = (labels == c).nonzero().squeeze(1)
        mask[idx[torch.randperm(len(idx), generator=g)[:k]]] = True
    return mask


def resolve_count(size, total: int, what: str, allow_all: bool) -> int:
    """`size` as a number of items out of `total`: an int count, or a float fraction in (0, 1);
    between 1 and `total` (`allow_all`) or `total` - 1, else an error naming `what`."""
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise AutosoftError(f"{what} must be an int count or a float fraction in (0, 1); got {size!r}")
    if isinstance(size, (float, np.floating)):
        if not 0.0 < size < 1.0:
            raise AutosoftError(f"{what} as a fraction must be in (0, 1); got {size}")
        size = round(size * total)
    size = int(size)
    hi = total if allow_all else total - 1
    if not 1 <= size <= hi:
        raise AutosoftError(f"{what} must be between 1 and {hi} for a data set of {total}; got {size}")
    return size


def split_indices(labels: torch.Tensor, *, val_size, train_size, seed: int = 0):
    """(train, val) indices into a split of these labels: `val_size` held out as `data.train_val_split`
    does, then a `data.stratified_subset` of `train_size` of the rest (None: no validation / all of it).
    The same images, in the same order, as those two functions applied one after the other."""
    n = len(labels)
    train_idx = val_idx = None
    if val_size:
        mask = stratified_pick(labels, resolve_count(val_size, n, "val_size", allow_all=False), seed)
        train_idx, val_idx = (~mask).nonzero().squeeze(1), mask.nonzero().squeeze(1)
    rest = n if train_idx is None else len(train_idx)
    if train_size is not None and train_size < rest:
        rest_labels = labels if train_idx is None else labels[train_idx]
        pick = stratified_pick(rest_labels, resolve_count(train_size, rest, "n", allow_all=True), seed).nonzero().squeeze(1)
        train_idx = pick if train_idx is None else train_idx[pick]
    return train_idx, val_idx
