"""DECA's 236-number code vector and how it splits into FLAME parameters (pure tensor code).

The coarse encoder regresses one vector per image; DECA cuts it, in this order:

==========  ==========  ======  ==========================================================
name        slice       shape   meaning
==========  ==========  ======  ==========================================================
``shape``   0:100       (100,)  FLAME identity-shape coefficients (units of the model's std)
``tex``     100:150     (50,)   albedo coefficients (DECA's BFM-derived texture space)
``exp``     150:200     (50,)   FLAME expression coefficients (first 50 components)
``pose``    200:206     (6,)    axis-angle, radians: global head rotation [0:3], jaw [3:6]
``cam``     206:209     (3,)    weak-perspective camera: scale s, translation tx, ty
``light``   209:236     (9, 3)  second-order spherical-harmonics light, 9 bands × RGB
==========  ==========  ======  ==========================================================

The camera maps FLAME points ``X`` (model units, metres; y up) into the 224×224 crop as
``ndc_xy = s · (X_xy + [tx, ty])``, then ``ndc_y ← −ndc_y`` (image y points down), then
``pixel = ndc · 112 + 112`` (``ndc = ±1`` at the crop borders).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import torch

N_CODES = 236
"""Length of the encoder's raw output vector."""

CODE_LAYOUT: Mapping[str, slice] = MappingProxyType({
    "shape": slice(0, 100),
    "tex": slice(100, 150),
    "exp": slice(150, 200),
    "pose": slice(200, 206),
    "cam": slice(206, 209),
    "light": slice(209, 236),
})
"""Code name → its slice of the raw (B, 236) vector, in DECA's order (see the module docstring)."""

CODE_SHAPES: Mapping[str, tuple[int, ...]] = MappingProxyType({
    "shape": (100,), "tex": (50,), "exp": (50,), "pose": (6,), "cam": (3,), "light": (9, 3),
})
"""Code name → per-image shape of that code."""


def split_codes(raw: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw codes (B, 236) → ``{name: (B, *CODE_SHAPES[name])}`` views, in DECA's order."""
    if raw.ndim != 2 or raw.shape[1] != N_CODES:
        raise ValueError(f"raw DECA codes must have shape (B, {N_CODES}), got {tuple(raw.shape)}")
    return {name: raw[:, part].reshape(raw.shape[0], *CODE_SHAPES[name])
            for name, part in CODE_LAYOUT.items()}
