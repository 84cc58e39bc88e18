"""Small helpers shared by the asset loaders: existence checks with clear errors (file hashes:
:func:`pseudo3d.files.file_sha256`)."""

from __future__ import annotations

from pathlib import Path

from pseudo3d.errors import AssetError


def require_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path if it is a readable file; otherwise an :class:`AssetError` saying which
    file was expected (``what``, e.g. "FLAME model (generic_model.pkl or flame2023_Open.pkl)")."""
    path = Path(path).expanduser()
    if not path.exists():
        raise AssetError(f"{what} not found: {path}")
    if not path.is_file():
        raise AssetError(f"{what} must be a file, got a directory: {path}")
    return path
