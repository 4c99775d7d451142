"""Atomic file writes: a killed process leaves either the old file or the new one, never half."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, flush to disk, then rename over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode())


def atomic_save_npz(path: Path, arrays: dict[str, np.ndarray], compress: bool = False) -> int:
    """Save arrays as an NPZ atomically; return the file size in bytes."""
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    return len(data)


def point_link(link: Path, target: Path) -> None:
    """Make `link` a symlink to `target` (relative when they share a folder tree), replacing
    whatever link was there in one rename, so a reader never finds it missing."""
    link, target = Path(link), Path(target)
    try:
        pointed = os.path.relpath(target.resolve(), link.parent.resolve())
    except ValueError:  # another drive
        pointed = str(target.resolve())
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(pointed, tmp)
    os.replace(tmp, link)
