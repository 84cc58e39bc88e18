"""SPECTRE: DECA's coarse encoder plus a lip-reading-supervised temporal expression encoder.

* :mod:`.mobilenet`: MobileNetV2 with torchvision's module names (the expression encoder's backbone);
* :mod:`.encoder`: :class:`ExpressionEncoder` and :class:`SpectreEncoder`, loaded by
  :meth:`SpectreEncoder.from_checkpoint`;
* :mod:`.checkpoint`: the safe loader for ``spectre_model.tar`` (tensors only, checked keys, every
  layout the file is met in).

Synthetic checkpoints for tests and demos:
:func:`pseudo3d.testing.spectre_assets.write_synthetic_spectre_checkpoint`.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("the SPECTRE encoder needs PyTorch; install it with: pip install 'pseudo3d[train]'") from error

from pseudo3d.reconstruction.spectre.checkpoint import load_spectre_state_dicts
from pseudo3d.reconstruction.spectre.encoder import ExpressionEncoder, SpectreEncoder

__all__ = ["ExpressionEncoder", "SpectreEncoder", "load_spectre_state_dicts"]
