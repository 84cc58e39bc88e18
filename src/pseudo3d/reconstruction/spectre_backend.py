"""The ``spectre`` backend: SPECTRE's encoders (DECA's coarse encoder plus the temporal expression
encoder, :mod:`pseudo3d.reconstruction.spectre`) on SPECTRE-convention 224×224 face crops.

It runs as the ``deca`` backend does (:mod:`pseudo3d.reconstruction.deca_backend`: batches of
``reconstruct.batch_size`` frames spanning clips and sources, pinned uploads, channels-last,
``reconstruct.precision``), with one difference: the per-frame half of the work (ResNet-50 codes
and MobileNetV2 features) runs in those batches, then each clip's temporal head runs over its
whole sequence, its edges padded by repeating the first and last frame. That equals SPECTRE's
demo procedure (chunks of 50 frames overlapping by 4, frames computed from padding dropped)
without running the overlapping frames twice, and gives every clip exactly one row per frame
whatever its length.

Per-frame outputs are the ``deca`` backend's (``flame_expression`` (T, 50) and ``flame_jaw_pose``
(T, 3) with SPECTRE's residuals added, as its demo does), with ``flame_shape_clip`` per clip.
"""

from __future__ import annotations

from typing import ClassVar, cast

import torch

from pseudo3d.config import BuildConfig
from pseudo3d.reconstruction.asset_files import asset_option
from pseudo3d.reconstruction.deca_backend import DecaBackend
from pseudo3d.reconstruction.device import split_like
from pseudo3d.reconstruction.spectre import SpectreEncoder


class SpectreBackend(DecaBackend):
    name: ClassVar[str] = "spectre"

    def _load_encoder(self, config: BuildConfig) -> torch.nn.Module:
        return SpectreEncoder.from_checkpoint(asset_option(config.reconstruct.spectre_checkpoint,
                                                           "spectre_checkpoint"), self.device)

    def _encode_frames(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        raw, features = cast(SpectreEncoder, self.encoder).frame_codes(images)
        return {"raw": raw, "features": features}

    def _codes(self, frames: dict[str, torch.Tensor], lengths: list[int]) -> dict[str, torch.Tensor]:
        """Each clip's temporal head over its whole sequence (edges repeated), clip after clip."""
        encoder = cast(SpectreEncoder, self.encoder)
        per_clip = [encoder.sequence_codes(raw[None], features[None], edges="repeat")
                    for raw, features in zip(split_like(frames["raw"], lengths), split_like(frames["features"], lengths))]
        return {name: torch.cat([codes[name][0] for codes in per_clip]) for name in per_clip[0]}
