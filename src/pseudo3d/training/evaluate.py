"""``pseudo3d eval``: a trained run's predictions against held-out data, with the field's metrics.

Vertex targets (pseudo-3D MediaPipe meshes, VOCASET-layout captures): LVE (CodeTalker's: per
frame the largest squared lip-vertex error, averaged over frames) and its square-root variant,
FDD (upper-face dynamics deviation), MVE, in the data's units (cm for MediaPipe meshes, metres
for FLAME/VOCASET). Lip and upper-face vertices come from a ``FLAME_masks.pkl``-layout file or,
on the 478-point MediaPipe topology, from MediaPipe's own landmark sets. For pseudo-3D data, also
how well the predicted and the reconstructed lip opening follow each other and the speech envelope.
Blendshape targets: per-weight error and the jawOpen correlation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from pseudo3d.errors import Pseudo3DError


def _regions(n_vertices: int, masks: str | Path | None):
    from pseudo3d.training.masks import load_flame_masks, regions_from_flame_masks, synthetic_regions_mediapipe

    if masks is not None:
        return regions_from_flame_masks(load_flame_masks(masks))
    if n_vertices == 478:
        return synthetic_regions_mediapipe()
    return None


def _windows(run_config: dict[str, Any], data: str, data_format: str, split: str):
    from pseudo3d.training.data import FinetuneWindows, ShardWindows, TargetSpec

    target = TargetSpec.from_dict(run_config["target"])
    frames, fps = int(run_config["window_frames"]), float(run_config["fps"])
    if data_format == "shards":
        return ShardWindows([(data, 1.0)], target, frames, fps=fps, stride_frames=frames, shuffle_buffer=1), target
    windows = FinetuneWindows(data, data_format, frames, fps=fps, split=split)
    if (windows.target.kind, windows.target.dim) != (target.kind, target.dim):
        raise Pseudo3DError(f"the run predicts {target.kind} ({target.dim} values) but {data} holds "
                            f"{windows.target.kind} ({windows.target.dim})")
    return windows, target


def evaluate(run: str | Path, data: str, data_format: str = "shards", *, masks: str | Path | None = None,
             split: str = "val", batch_size: int = 16) -> dict[str, Any]:
    """Metrics over every window of ``data`` (``split`` of a finetune dataset)."""
    from pseudo3d.training import metrics as m
    from pseudo3d.training.data import collate_windows
    from pseudo3d.training.runs import _load_run

    model, mean, std, run_config = _load_run(Path(run))
    model.eval()
    windows, target = _windows(run_config, data, data_format, split)
    predictions, targets, audio_envelopes = [], [], []
    with torch.no_grad():
        for batch in DataLoader(windows, batch_size=batch_size, collate_fn=collate_windows):
            fps = float(batch["fps"][0])
            output = model(batch["audio"], n_frames=batch["target"].shape[1], fps=fps)
            predictions.append((output * std + mean).numpy())
            targets.append(batch["target"].numpy())
            audio_envelopes.extend(_envelopes(batch["audio"].numpy(), fps, batch["target"].shape[1]))
    if not predictions:
        raise Pseudo3DError(f"{data}: no evaluation windows (clips shorter than the run's window?)")
    prediction, truth = np.concatenate(predictions), np.concatenate(targets)
    result: dict[str, Any] = {"windows": int(prediction.shape[0]), "frames_per_window": int(prediction.shape[1]),
                              "target": target.kind, "mse": float(np.mean((prediction - truth) ** 2))}
    if target.kind == "mesh_offsets":
        result.update(_vertex_metrics(prediction, truth, target.n_vertices, masks, audio_envelopes, m))
    elif target.kind == "blendshapes":
        names = list(target.names)
        jaw = names.index("jawOpen")
        result["jawOpen_r"] = float(np.corrcoef(prediction[..., jaw].ravel(), truth[..., jaw].ravel())[0, 1])
    return result


def _envelopes(audio: np.ndarray, fps: float, n_frames: int) -> list[np.ndarray]:
    from pseudo3d.qa.audio import frame_envelope

    return [frame_envelope(clip, 16000, fps, n_frames) for clip in audio]


def _vertex_metrics(prediction, truth, n_vertices, masks, envelopes, m) -> dict[str, Any]:
    windows, frames = prediction.shape[:2]
    pred = prediction.reshape(windows, frames, n_vertices, 3)
    true = truth.reshape(windows, frames, n_vertices, 3)
    zero = np.zeros((n_vertices, 3))  # offsets are already relative to the template
    result: dict[str, Any] = {"mve": float(np.mean([m.mean_vertex_error(p, t) for p, t in zip(pred, true)]))}
    regions = _regions(n_vertices, masks)
    if regions is not None:
        result["lve"] = float(np.mean([m.lip_vertex_error(p, t, regions.lips) for p, t in zip(pred, true)]))
        result["lve_sqrt"] = float(np.mean([m.lip_vertex_error_sqrt(p, t, regions.lips) for p, t in zip(pred, true)]))
        result["fdd"] = float(np.mean([m.upper_face_dynamics_deviation(p, t, regions.upper_face, zero)
                                       for p, t in zip(pred, true)]))
    if n_vertices == 478:
        from pseudo3d.reconstruction.template import mediapipe_template

        template = mediapipe_template().vertices
        lips_pred = [m.mediapipe_lip_opening(template + p) for p in pred]
        lips_true = [m.mediapipe_lip_opening(template + t) for t in true]
        result["lip_opening_r"] = float(np.corrcoef(np.concatenate(lips_pred), np.concatenate(lips_true))[0, 1])
        result["lip_audio_r_predicted"] = float(np.nanmean([m.lip_audio_correlation(lips, env) for lips, env in zip(lips_pred, envelopes)]))
        result["lip_audio_r_reference"] = float(np.nanmean([m.lip_audio_correlation(lips, env) for lips, env in zip(lips_true, envelopes)]))
    return result
