"""Stratified, seeded picks on labels: proportions, determinism, counts and fractions."""

import pytest
import torch

from autosoft.errors import AutosoftError
from autosoft.splits import resolve_count, split_indices, stratified_pick

LABELS = torch.tensor([0] * 30 + [1] * 20 + [2] * 10)


def test_stratified_pick_takes_each_class_in_proportion_and_is_seeded():
    mask = stratified_pick(LABELS, 12, seed=3)
    assert mask.dtype == torch.bool and int(mask.sum()) == 12
    assert torch.bincount(LABELS[mask], minlength=3).tolist() == [6, 4, 2]
    assert torch.equal(mask, stratified_pick(LABELS, 12, seed=3))
    assert not torch.equal(mask, stratified_pick(LABELS, 12, seed=4))
    assert int(stratified_pick(LABELS, 7, seed=0).sum()) == 7  # uneven quotas add up (largest remainder)


def test_resolve_count_takes_counts_and_fractions():
    assert resolve_count(12, 60, "val_size", allow_all=False) == 12
    assert resolve_count(0.25, 60, "val_size", allow_all=False) == 15
    assert resolve_count(60, 60, "n", allow_all=True) == 60
    for bad in (0, 60, 1.0, -0.1, "5", True):
        with pytest.raises(AutosoftError, match="val_size"):
            resolve_count(bad, 60, "val_size", allow_all=False)


def test_split_indices_hold_out_then_subset_disjointly():
    train_idx, val_idx = split_indices(LABELS, val_size=12, train_size=20, seed=1)
    assert len(val_idx) == 12 and len(train_idx) == 20
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    assert split_indices(LABELS, val_size=0, train_size=None) == (None, None)
