"""Per-clip quality metrics (pure functions over arrays).

Units: ``jitter_*`` is the RMS of the second difference along time, in the array's own units per
frame² (centimetres for the mesh, pixels for 2D landmarks); ``face_size_px`` is the square root of
the landmark bounding-box area in source pixels; head-pose ranges are in degrees.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from pseudo3d.geometry.rotations import axis_angle_to_matrix, matrix_to_euler_yxz
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


def clip_metrics(clip: Clip, arrays: Mapping[str, np.ndarray],
                 jitter_groups: tuple[str, ...] = ("mesh", "landmarks_2d")) -> dict[str, float]:
    """The manifest's QA columns for one clip. ``arrays`` holds the ``NAME_raw`` and
    ``NAME_smooth`` arrays written for the clip."""
    metrics = {
        "confidence_mean": float(np.mean(clip.confidence)),
        "confidence_min": float(np.min(clip.confidence)),
        "interpolated_fraction": float(np.mean(clip.interpolated)),
        "face_size_px": face_size_px(clip.landmarks),
    }
    for group in jitter_groups:
        if f"{group}_raw" in arrays:
            metrics[f"jitter_{group}_raw"] = jitter(arrays[f"{group}_raw"])
            metrics[f"jitter_{group}_smooth"] = jitter(arrays[f"{group}_smooth"])
    if "head_rotation_smooth" in arrays:
        metrics.update(head_pose_ranges_deg(arrays["head_rotation_smooth"]))
    if "reprojection_error" in arrays:
        error = np.asarray(arrays["reprojection_error"], np.float64)
        finite = error[np.isfinite(error)]
        metrics["reprojection_error_px"] = float(finite.mean()) if finite.size else float("nan")
        metrics["reprojection_error_p95_px"] = float(np.percentile(finite, 95)) if finite.size else float("nan")
    if "flame_expression_raw" in arrays:
        metrics["jitter_flame_expression_raw"] = jitter(arrays["flame_expression_raw"])
        metrics["jitter_flame_expression_smooth"] = jitter(arrays["flame_expression_smooth"])
    return metrics
