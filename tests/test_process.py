import platform

import torch

from autosoft.augment import PolicyAugment
from autosoft.process import keep_freed_memory


def test_keep_freed_memory_sets_glibc_thresholds_or_declines(monkeypatch):
    expected = platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory.__wrapped__() is expected
    monkeypatch.setenv("AUTOSOFT_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory.__wrapped__() is False


def test_building_policy_augment_leaves_malloc_alone():
    # process-wide settings are made where a process starts, never by the engine
    keep_freed_memory.cache_clear()
    augment = PolicyAugment("baseline", 10)
    augment(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    info = keep_freed_memory.cache_info()
    assert info.hits + info.misses == 0
    keep_freed_memory()
