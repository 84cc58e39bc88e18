"""Hashing files: the SHA-256 recorded for assets and weights in sample meta and the dataset card.

Writing, listing and deleting files and objects is :mod:`pseudo3d.storage`'s job.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (assets and weights in sample meta and the dataset card)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
