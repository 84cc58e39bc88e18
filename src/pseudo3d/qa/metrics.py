"""Per-clip quality metrics (pure functions over arrays).

Units: ``jitter_*`` is the RMS of the second difference along time, in the array's own units per
frame² (centimetres for the mesh, pixels for 2D landmarks, radians for rotations, coefficients for
FLAME expression); ``face_size_px`` is the square root of the landmark bounding-box area in source
pixels; head-pose ranges are in degrees. Audio metrics: :mod:`.audio`; sync: :mod:`.sync`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from pseudo3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_euler_yxz
from pseudo3d.qa.audio import audio_metrics
from pseudo3d.qa.sync import av_sync, not_measured
from pseudo3d.schemas.records import Clip


def jitter(values: np.ndarray) -> float:
    """RMS of second differences along axis 0 of a (T, ...) array; 0.0 for T < 3."""
    values = np.asarray(values, np.float64)
    if values.shape[0] < 3:
        return 0.0
    return float(np.sqrt(np.mean(np.diff(values, n=2, axis=0) ** 2)))


def face_size_px(landmarks: np.ndarray) -> float:
    """Median over frames of sqrt(bounding-box area) of (T, N, 2+) pixel landmarks."""
    low = landmarks[..., :2].min(axis=1)
    high = landmarks[..., :2].max(axis=1)
    return float(np.median(np.sqrt(np.prod(high - low, axis=-1))))


def head_pose_ranges_deg(rotvec: np.ndarray) -> dict[str, float]:
    """Peak-to-peak yaw, pitch and roll of (T, 3) axis-angle head rotations, in degrees."""
    angles = np.degrees(matrix_to_euler_yxz(axis_angle_to_matrix(rotvec)))
    spans = np.ptp(angles, axis=0)
    return {"yaw_range_deg": float(spans[0]), "pitch_range_deg": float(spans[1]),
            "roll_range_deg": float(spans[2])}


def smoothed_groups(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Groups written both raw and smoothed (``NAME_raw`` and ``NAME_smooth``), sorted."""
    return sorted(name[:-4] for name in arrays if name.endswith("_raw") and f"{name[:-4]}_smooth" in arrays)


def head_rotation_camera(arrays: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """(T, 3) smoothed head rotation in camera axes (x right, y down, z away), whichever backend
    wrote it: the ``mediapipe`` head rotation as is, FLAME's global pose turned from FLAME's camera
    axes (y up, z to the viewer)."""
    if "head_rotation_smooth" in arrays:
        return arrays["head_rotation_smooth"]
    if "flame_global_pose_smooth" in arrays:
        flip = np.diag([1.0, -1.0, -1.0])
        return matrix_to_axis_angle(flip @ axis_angle_to_matrix(arrays["flame_global_pose_smooth"]) @ flip)
    return None


def clip_metrics(clip: Clip, arrays: Mapping[str, np.ndarray], av_max_lag_s: float) -> dict[str, float]:
    """The manifest's QA columns for one clip (see docs/qa.md). ``arrays`` holds everything
    written for the clip, including ``audio_envelope``; the audio-visual sync columns come from
    the clip's tracked landmarks and audio (:func:`pseudo3d.qa.sync.av_sync`), searched over
    ``±av_max_lag_s`` seconds."""
    metrics = {
        "confidence_mean": float(np.mean(clip.confidence)),
        "confidence_min": float(np.min(clip.confidence)),
        "interpolated_fraction": float(np.mean(clip.interpolated)),
        "face_size_px": face_size_px(clip.landmarks),
    }
    for group in smoothed_groups(arrays):
        metrics[f"jitter_{group}_raw"] = jitter(arrays[f"{group}_raw"])
        metrics[f"jitter_{group}_smooth"] = jitter(arrays[f"{group}_smooth"])
    rotation = head_rotation_camera(arrays)
    if rotation is not None:
        metrics.update(head_pose_ranges_deg(rotation))
    if "reprojection_error" in arrays:
        error = np.asarray(arrays["reprojection_error"], np.float64)
        finite = error[np.isfinite(error)]
        metrics["reprojection_error_px"] = float(finite.mean()) if finite.size else float("nan")
        metrics["reprojection_error_p95_px"] = float(np.percentile(finite, 95)) if finite.size else float("nan")
    audio = audio_metrics(clip.audio, arrays["audio_envelope"])
    if clip.has_audio:
        sync = av_sync(clip.landmarks, clip.audio, clip.sample_rate, clip.fps, av_max_lag_s).as_metrics()
    else:  # silence stands in for the missing track: nothing to measure
        audio = dict.fromkeys(audio, float("nan"))
        sync = not_measured().as_metrics()
    return {**metrics, **audio, **sync}
