"""The ``deca`` backend: DECA's coarse encoder on the 224×224 face crops, in large batches.

Frames of all the clips handed over (several sources, when the runner batches on a GPU) are cut
into ``reconstruct.batch_size`` batches; uint8 crops travel to the device through reusable pinned
buffers, run channels-last at ``reconstruct.precision`` on CUDA (IEEE fp32 by default, or bf16
autocast; fp32 on CPU), and the codes come back per clip, with a single device-to-host copy at the
end. FLAME (with the MediaPipe landmark embedding, when given) turns each frame's
codes into landmarks, projected with DECA's camera for the reprojection error.

Per-frame outputs: ``flame_expression`` (T, 50), ``flame_jaw_pose`` (T, 3) and
``flame_global_pose`` (T, 3) axis-angle radians, ``flame_camera`` (T, 3) DECA's (s, tx, ty) in
crop space, ``flame_shape`` (T, 100) as predicted per frame, ``deca_tex`` (T, 50),
``deca_light`` (T, 9, 3), ``reprojection_error`` (T,) image pixels (NaN without a MediaPipe
embedding). Per clip: ``flame_shape_clip`` (100,), the median of the per-frame shapes (a robust
identity).
"""

from __future__ import annotations

from typing import ClassVar, Mapping, cast

import numpy as np
import torch

from pseudo3d.config import BuildConfig
from pseudo3d.errors import StageError
from pseudo3d.reconstruction.asset_files import asset_option
from pseudo3d.reconstruction.base import BatchReconstructor, SmoothingKind
from pseudo3d.reconstruction.camera import crop_to_image, project_to_crop, reprojection_error
from pseudo3d.reconstruction.deca import CODE_SHAPES, DecaEncoder, split_codes
from pseudo3d.reconstruction.device import (CropUploader, batch_pieces, concatenate_clips, inference_context,
                                            inference_precision, iter_batches, numerics, resolve_device, split_like)
from pseudo3d.reconstruction.flame import FlameModel
from pseudo3d.schemas.records import Clip

FLAME_SMOOTHED: Mapping[str, SmoothingKind] = {
    "flame_expression": "linear",
    "flame_jaw_pose": "rotation",
    "flame_global_pose": "rotation",
    "flame_camera": "linear",
}


class DecaBackend(BatchReconstructor):
    name: ClassVar[str] = "deca"
    smoothed: ClassVar[Mapping[str, SmoothingKind]] = FLAME_SMOOTHED
    per_clip: ClassVar[frozenset[str]] = frozenset({"flame_shape_clip"})

    def __init__(self, config: BuildConfig):
        options = config.reconstruct
        self.device = resolve_device(options.device)
        self.batch_size = options.batch_size
        self.precision = options.precision
        self.crop_size = config.track.crop_size  # 224: BuildConfig checks it for this backend
        self.encoder = self._load_encoder(config)
        self.flame = FlameModel.from_file(asset_option(options.flame_model, "flame_model"),
                                          n_shape=CODE_SHAPES["shape"][-1], n_expression=CODE_SHAPES["exp"][-1],
                                          landmark_embedding=options.landmark_embedding).to(self.device)
        self.mediapipe_indices = (self.flame.landmark_indices.cpu().numpy()  # a MediaPipe embedding's, only
                                  if self.flame.landmark_indices is not None else None)
        self.upload = CropUploader(self.device, self.batch_size, self.crop_size)

    def _load_encoder(self, config: BuildConfig) -> torch.nn.Module:
        return DecaEncoder.from_checkpoint(asset_option(config.reconstruct.deca_checkpoint, "deca_checkpoint"),
                                           self.device)

    def _encode_frames(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """A batch of crops (N, 3, 224, 224) in [0, 1] → per-frame tensors (N, ...) on the device:
        here DECA's raw codes."""
        return {"raw": cast(DecaEncoder, self.encoder).raw_codes(images)}

    def _codes(self, frames: dict[str, torch.Tensor], lengths: list[int]) -> dict[str, torch.Tensor]:
        """Every frame's :meth:`_encode_frames` tensors, clip after clip (``lengths`` frames each)
        → float32 DECA codes of every frame (``shape`` (N, 100), ``exp`` (N, 50), ``pose`` (N, 6),
        ...). DECA's frames are independent."""
        return split_codes(frames["raw"].float())

    def asset_hashes(self) -> dict[str, str]:
        encoder_hashes = cast("dict[str, str]", self.encoder.asset_hashes)  # DecaEncoder's, SpectreEncoder's
        return {**encoder_hashes, **self.flame.asset_hashes}

    def numerics(self) -> dict[str, str]:
        """Also the frames per batch: a convolution's result depends on its batch's size, so the
        bytes depend on ``reconstruct.batch_size`` (and change if out of memory halves it)."""
        return {**numerics(self.device, inference_precision(self.device, self.precision)), "batch_size": str(self.batch_size)}

    def reconstruct_batch(self, clips: list[Clip]) -> list[dict[str, np.ndarray] | StageError]:
        """All frames of ``clips`` in ``batch_size`` batches. Results stay on the device until the
        last batch is queued, so on CUDA the host gathers batch k+1 while the GPU runs batch k."""
        lengths = [clip.n_frames for clip in clips]
        device_array = lambda arrays: torch.as_tensor(concatenate_clips(arrays), dtype=torch.float32,  # noqa: E731
                                                      device=self.device)
        transforms = device_array([clip.crop_transforms for clip in clips])
        tracked = (device_array([clip.landmarks[:, self.mediapipe_indices, :2] for clip in clips])
                   if self.mediapipe_indices is not None else None)
        pieces: list[dict[str, torch.Tensor]] = []
        with inference_context(self.device, self.precision):
            for batch in iter_batches(sum(lengths), self.batch_size):
                # the pipeline cuts crops for a backend that needs_crops, so every clip here has them
                parts = [cast(np.ndarray, clips[index].crops)[start:stop]
                         for index, start, stop in batch_pieces(lengths, batch)]
                pieces.append(self._encode_frames(self.upload(parts)))
                self.progress()
            codes = self._codes({name: torch.cat([piece[name] for piece in pieces]) for name in pieces[0]}, lengths)
            errors = [self._reprojection({name: code[batch] for name, code in codes.items()}, transforms[batch],
                                         tracked[batch]) if tracked is not None
                      else torch.full((batch.stop - batch.start,), float("nan"), device=self.device)
                      for batch in iter_batches(sum(lengths), self.batch_size)]
            outputs = {
                "flame_expression": codes["exp"], "flame_jaw_pose": codes["pose"][:, 3:],
                "flame_global_pose": codes["pose"][:, :3], "flame_camera": codes["cam"],
                "flame_shape": codes["shape"], "deca_tex": codes["tex"], "deca_light": codes["light"],
                "reprojection_error": torch.cat(errors),
            }
            merged = {name: value.float().cpu().numpy() for name, value in outputs.items()}
        results = split_like(merged, lengths)
        for arrays in results:
            arrays["flame_shape_clip"] = np.median(arrays["flame_shape"], axis=0).astype(np.float32)
        return results

    def _reprojection(self, codes: dict[str, torch.Tensor], transforms: torch.Tensor, tracked: torch.Tensor) -> torch.Tensor:
        """Per-frame mean distance (image pixels) between FLAME's embedded landmarks, projected with
        the predicted camera, and the tracked MediaPipe landmarks they correspond to. FLAME runs in
        float32 even under the encoder's bf16 autocast (millimetres matter here)."""
        with torch.autocast(device_type=self.device.type, enabled=False):
            return self._reprojection_fp32(codes, transforms, tracked)

    def _reprojection_fp32(self, codes, transforms, tracked) -> torch.Tensor:
        output = self.flame(shape=codes["shape"].float(), expression=codes["exp"].float(),
                            global_pose=codes["pose"][:, :3].float(), jaw_pose=codes["pose"][:, 3:].float())
        in_crop = project_to_crop(output.landmarks.float(), codes["cam"].float(), self.crop_size)
        return reprojection_error(crop_to_image(in_crop, transforms), tracked)
