"""``pseudo3d eval``: a trained run's predictions against held-out data, with the field's metrics.

The model predicts each **whole test sequence** (a clip of a pseudo3d dataset, a take of a
finetune dataset) from its audio, and the metrics are pooled over the test set as the published
evaluation code pools them (FaceFormer/CodeTalker tables on VOCASET and BIWI;
:func:`pseudo3d.training.metrics.pooled_vertex_metrics`):

* vertex targets: LVE (per frame the largest squared lip-vertex error, averaged over every frame
  of the test set) and its square-root variant, FDD (upper-face dynamics deviation per sequence
  against the sequence's template, averaged over sequences), MVE. The template is the subject's
  neutral face for VOCASET (targets are offsets from it); for pseudo-3D MediaPipe meshes it is the
  clip's mean mesh (their targets are offsets from it: no neutral face is known), so FDD there
  measures motion about the clip's mean. Units: cm for MediaPipe meshes, m for VOCASET (squared
  for LVE and FDD). Lip and upper-face vertices come from a ``FLAME_masks.pkl``-layout file or,
  on the 478-point MediaPipe topology, from MediaPipe's own landmark sets. For pseudo-3D data,
  also how well the predicted and the reconstructed lip opening follow each other and the
  speech envelope.
* blendshape targets: the jawOpen correlation over every frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from pseudo3d.errors import Pseudo3DError

UNITS = {"shards": "cm", "vocaset": "m"}
"""The length unit of each data format's vertices (MediaPipe's template frame is about cm)."""


def _regions(n_vertices: int, masks: str | Path | None):
    from pseudo3d.training.masks import load_flame_masks, regions_from_flame_masks, synthetic_regions_mediapipe

    if masks is not None:
        return regions_from_flame_masks(load_flame_masks(masks))
    if n_vertices == 478:
        return synthetic_regions_mediapipe()
    return None


def evaluation_sequences(run_config: dict[str, Any], data: str, data_format: str, split: str) -> Iterator[
        tuple[str, np.ndarray, np.ndarray]]:
    """(key, audio (L,) float32 at 16 kHz covering exactly the frames, target (T, D)) of every
    whole sequence of ``data``: every clip of a pseudo3d dataset (``split`` is not used), or the
    ``split`` takes of a finetune dataset. Raises :class:`Pseudo3DError` where the data's target
    is not the run's."""
    from pseudo3d.training.data import FinetuneWindows, TargetSpec
    from pseudo3d.training.data.shard_windows import clip_target
    from pseudo3d.training.data.shards import iter_clips, resolve_shards
    from pseudo3d.training.data.windows import cut_window

    target = TargetSpec.from_dict(run_config["target"])
    fps = float(run_config["fps"])
    if data_format == "shards":
        for shard in resolve_shards(data):
            for clip in iter_clips(shard, target.members):
                motion = clip_target(clip, target, fps)
                audio, motion = cut_window(clip.audio, motion, 0, motion.shape[0], fps)
                yield clip.key, audio, motion
        return
    takes = FinetuneWindows(data, data_format, int(run_config["window_frames"]), fps=fps, split=split)
    if (takes.target.kind, takes.target.dim) != (target.kind, target.dim):
        raise Pseudo3DError(f"the run predicts {target.kind} ({target.dim} values) but {data} holds "
                            f"{takes.target.kind} ({takes.target.dim})")
    for info in takes.sequences:
        loaded = takes.reader.load(info)
        audio, motion = cut_window(loaded.audio, loaded.target, 0, info.n_frames, fps)
        yield info.id, audio, motion


def evaluate(run: str | Path, data: str, data_format: str = "shards", *, masks: str | Path | None = None,
             split: str = "val") -> dict[str, Any]:
    """Metrics over every whole sequence of ``data`` (the ``split`` of a finetune dataset)."""
    from pseudo3d.training import metrics as m
    from pseudo3d.training.data import TargetSpec
    from pseudo3d.training.runs import _load_run

    model, mean, std, run_config = _load_run(Path(run))
    model.eval()
    target = TargetSpec.from_dict(run_config["target"])
    fps = float(run_config["fps"])
    predictions, truths, envelopes = [], [], []
    with torch.no_grad():
        for _, audio, motion in evaluation_sequences(run_config, data, data_format, split):
            output = model(torch.from_numpy(np.ascontiguousarray(audio))[None], n_frames=motion.shape[0], fps=fps)
            predictions.append((output[0] * std + mean).numpy().astype(np.float64))
            truths.append(np.asarray(motion, np.float64))
            envelopes.append(_envelope(audio, fps, motion.shape[0]))
    if not predictions:
        raise Pseudo3DError(f"{data}: no evaluation sequences")
    frames = sum(len(truth) for truth in truths)
    squared = sum(float(((p - t) ** 2).sum()) for p, t in zip(predictions, truths))
    result: dict[str, Any] = {"split": split if data_format != "shards" else "all", "sequences": len(truths),
                              "frames": frames, "target": target.kind,
                              "mse": squared / (frames * truths[0].shape[1])}
    if target.kind == "mesh_offsets":
        result.update(_vertex_metrics(predictions, truths, target.n_vertices, masks, envelopes, data_format, m))
    elif target.kind == "blendshapes":
        jaw = list(target.names or ()).index("jawOpen")
        result["jawOpen_r"] = float(np.corrcoef(np.concatenate([p[:, jaw] for p in predictions]),
                                                np.concatenate([t[:, jaw] for t in truths]))[0, 1])
    return result


def _envelope(audio: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    from pseudo3d.qa.audio import frame_envelope

    return frame_envelope(audio, 16000, fps, n_frames)


def _vertex_metrics(predictions, truths, n_vertices, masks, envelopes, data_format, m) -> dict[str, Any]:
    pred = [p.reshape(len(p), n_vertices, 3) for p in predictions]
    true = [t.reshape(len(t), n_vertices, 3) for t in truths]
    template = np.zeros((n_vertices, 3))  # targets are offsets from the template (subject's, or the clip mean)
    regions = _regions(n_vertices, masks)
    pooled = m.pooled_vertex_metrics(((p, t, template) for p, t in zip(pred, true)),
                                     lip_indices=None if regions is None else regions.lips,
                                     upper_indices=None if regions is None else regions.upper_face)
    unit = UNITS.get(data_format, "data unit")
    result: dict[str, Any] = {name: value for name, value in pooled.items() if name not in ("sequences", "frames")}
    result["template"] = "subject" if data_format == "vocaset" else "clip_mean"
    result["units"] = {name: unit + ("^2" if name in ("lve", "fdd") else "") for name in ("mve", "lve", "lve_sqrt", "fdd")
                       if name in result}
    if n_vertices == 478:
        from pseudo3d.reconstruction.template import mediapipe_template

        face = mediapipe_template().vertices
        lips_pred = [m.mediapipe_lip_opening(face + p) for p in pred]
        lips_true = [m.mediapipe_lip_opening(face + t) for t in true]
        result["lip_opening_r"] = float(np.corrcoef(np.concatenate(lips_pred), np.concatenate(lips_true))[0, 1])
        result["lip_audio_r_predicted"] = float(np.nanmean([m.lip_audio_correlation(lips, env)
                                                           for lips, env in zip(lips_pred, envelopes)]))
        result["lip_audio_r_reference"] = float(np.nanmean([m.lip_audio_correlation(lips, env)
                                                           for lips, env in zip(lips_true, envelopes)]))
    return result
