"""Small helpers shared by the asset loaders: existence checks with clear errors (file hashes:
:func:`pseudo3d.files.file_sha256`)."""

from __future__ import annotations

from pathlib import Path

from pseudo3d.errors import AssetError, ConfigError


def asset_option(path: str | None, option: str) -> str:
    """The path ``reconstruct.<option>`` gives for an asset the backend needs (a
    :class:`~pseudo3d.config.BuildConfig` refuses the backend without it)."""
    if path is None:
        raise ConfigError(f"reconstruct.{option} is not set")
    return path


def require_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path if it is a readable file; otherwise an :class:`AssetError` saying which
    file was expected (``what``, e.g. "FLAME model (generic_model.pkl or flame2023_Open.pkl)")."""
    path = Path(path).expanduser()
    if not path.exists():
        raise AssetError(f"{what} not found: {path}")
    if not path.is_file():
        raise AssetError(f"{what} must be a file, got a directory: {path}")
    return path
