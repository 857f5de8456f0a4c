"""Process-wide settings, made where a process starts (never as a side effect of building an object)."""

from __future__ import annotations

import ctypes
import functools
import os
import platform

__all__ = ["keep_freed_memory"]


@functools.cache
def keep_freed_memory() -> bool:
    """Fix glibc's malloc thresholds so that freed tensor memory is reused, not returned to the OS.

    By default glibc adapts its mmap threshold to the sizes freed so far; depending on that
    history, a process either reuses the augmentation temporaries' memory or maps and
    page-faults it afresh on every batch, which halves the engine's speed (measured: about
    150k vs 250k CIFAR images/s, varying from one process to the next). Fixed thresholds pick
    the fast state every time: blocks up to 32 MiB come from the heap, and up to 128 MiB of
    freed heap is kept. Call it once where a process starts, before its first batch (the
    trainer, the CLI and the benchmarks do; later calls are free); AUTOSOFT_KEEP_FREED_MEMORY=0
    leaves malloc alone. Returns whether the thresholds were set (glibc only).
    """
    if os.environ.get("AUTOSOFT_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 128 << 20))
