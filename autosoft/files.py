"""Atomic file writes: a crash or a kill -9 leaves the old file or the new one, never half of either.

Each write goes to a temporary file in the same folder (so the rename stays on one
file system), is flushed to disk (fsync), then renamed over the target (os.replace).

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> atomic_write_json(folder / "a.json", {"x": 1}).read_text()
'{\\n  "x": 1\\n}\\n'
>>> sorted(p.name for p in folder.iterdir())  # no temporary file left behind
['a.json']
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_json"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path next to `path`; once the block has written it, it replaces `path`.

    For writers that want a file name (``torch.save(state, tmp)``). If the block raises,
    the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns `path` as a Path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        # O_EXCL: never write through a stale file or link; 0o666 & umask: the same mode as open()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8, newlines as given) to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data, *, indent: int | None = 2) -> Path:
    """`data` as JSON (indented, with a final newline) written to `path` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=indent) + "\n")
