"""The FLAME head model in PyTorch: :class:`FlameModel` (buffers, forward pass, landmarks) and
:class:`FlameOutput`. Pure math lives in :mod:`.lbs` and :mod:`.landmarks`; the files are read by
:mod:`pseudo3d.reconstruction.assets`."""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("the FLAME layer needs PyTorch; install it with: pip install 'pseudo3d[train]'") from error

from pseudo3d.reconstruction.flame.model import FlameModel, FlameOutput

__all__ = ["FlameModel", "FlameOutput"]
