"""DECA's coarse encoder: 224×224 face crops → FLAME shape, expression, pose and camera codes.

* :mod:`.codes`: the 236-number code layout (:data:`CODE_LAYOUT`) and the camera convention;
* :mod:`.resnet`: the ResNet-50 backbone with the checkpoint's module names;
* :mod:`.encoder`: :class:`DecaEncoder`, the backbone plus regressor, loaded by
  :meth:`DecaEncoder.from_checkpoint`;
* :mod:`.checkpoint`: the safe loader for ``deca_model.tar`` (tensors only, checked keys).

Synthetic checkpoints for tests and demos: :func:`pseudo3d.testing.deca_assets.write_synthetic_deca_checkpoint`.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("the DECA encoder needs PyTorch; install it with: pip install 'pseudo3d[train]'") from error

from pseudo3d.reconstruction.deca.checkpoint import load_deca_state_dict
from pseudo3d.reconstruction.deca.codes import CODE_LAYOUT, CODE_SHAPES, N_CODES, split_codes
from pseudo3d.reconstruction.deca.encoder import IMAGE_SIZE, DecaEncoder

__all__ = ["CODE_LAYOUT", "CODE_SHAPES", "DecaEncoder", "IMAGE_SIZE", "N_CODES", "load_deca_state_dict",
           "split_codes"]
