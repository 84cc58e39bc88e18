"""Evaluation metrics for speech-driven face animation (pure numpy).

Vertex sequences are ``(T, V, 3)`` arrays: T frames, V vertices, xyz in one length unit (metres
for FLAME, ≈ cm for MediaPipe's template frame); every metric states its unit in terms of that
input unit. Predicted and ground-truth sequences must already be aligned frame for frame (same
shape); trim them first if the model's output is longer.

Definitions (as the published evaluation code computes them):

* **LVE**, lip vertex error (MeshTalk; CodeTalker ``main/cal_metric.py``, also FaceFormer,
  FaceDiffuser): per frame, the maximum over the lip vertices of the *squared* L2 distance
  between predicted and true positions; averaged over frames. Unit: input unit². CodeTalker pools
  all test frames before averaging, so a dataset's LVE is the mean of the concatenated
  :func:`lip_max_errors`, not the mean of per-sequence LVEs.
* **LVE (sqrt)**: the same with the L2 distance itself (max distance per frame, averaged), in
  the input unit, which is easier to read.
* **FDD**, upper-face dynamics deviation (CodeTalker ``main/cal_metric.py``): for each
  upper-face vertex v, the motion is its squared distance from the template,
  m_t(v) = ‖x_t(v) − template(v)‖²; its dynamics is the population standard deviation of m over
  time. FDD = mean_v std_t m^gt(v) − mean_v std_t m^pred(v): ground truth minus prediction,
  signed (positive: the prediction's upper face moves less than the truth). Unit: input unit².
  A dataset's FDD is the mean of the per-sequence values.
* **MVE**, mean vertex error (FaceDiffuser ``evaluation/compute_objective_metrics.py``): the L2
  distance (not squared) averaged over all vertices and frames, in the input unit.
* **Lip–audio correlation**: the Pearson correlation of the lip opening with the audio
  envelope over frames; needs no vertex ground truth, so it also scores pseudo-3D data.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from pseudo3d.reconstruction.assets import N_MEDIAPIPE

UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
"""MediaPipe landmarks in the middle of the inner upper and lower lip."""


def _sequences(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 (T, V, 3) arrays of the same shape, or ValueError naming both shapes."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape (T, V, 3), got pred {pred.shape} "
                         f"and gt {gt.shape}")
    if pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"pred and gt must have shape (T, V, 3), got {pred.shape}")
    if pred.shape[0] == 0 or pred.shape[1] == 0:
        raise ValueError(f"pred and gt hold no frames or no vertices (shape {pred.shape})")
    return pred, gt


def vertex_indices(values, what: str, n_vertices: int | None = None) -> np.ndarray:
    """(N,) sorted, deduplicated int64 vertex indices, checked (1-D, integers, not empty, not
    negative, and below ``n_vertices`` when given); errors name ``what``."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of vertex indices, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{what} is empty; a metric region needs at least one vertex")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} must hold integer vertex indices, got dtype {array.dtype}")
    if array.min() < 0 or (n_vertices is not None and array.max() >= n_vertices):
        bound = f"the mesh's 0..{n_vertices - 1}" if n_vertices is not None else "0 and above"
        raise ValueError(f"{what} holds vertex indices from {int(array.min())} to {int(array.max())}, outside {bound}")
    return np.unique(array.astype(np.int64))


def lip_max_errors(pred: np.ndarray, gt: np.ndarray, lip_indices) -> np.ndarray:
    """Per frame, the largest squared L2 error over the lip vertices.

    Args:
        pred, gt: (T, V, 3) predicted and true vertices.
        lip_indices: (L,) lip vertex indices.

    Returns:
        (T,) float64, input unit². Pool these over a test set and average to get CodeTalker's
        dataset LVE.
    """
    pred, gt = _sequences(pred, gt)
    lips = vertex_indices(lip_indices, "lip_indices", pred.shape[1])
    squared = np.sum((pred[:, lips] - gt[:, lips]) ** 2, axis=-1)  # (T, L)
    return squared.max(axis=1)


def lip_vertex_error(pred: np.ndarray, gt: np.ndarray, lip_indices) -> float:
    """LVE: mean over frames of the max over lip vertices of ‖pred − gt‖² (input unit²).

    pred, gt: (T, V, 3); lip_indices: (L,) vertex indices."""
    return float(lip_max_errors(pred, gt, lip_indices).mean())


def lip_vertex_error_sqrt(pred: np.ndarray, gt: np.ndarray, lip_indices) -> float:
    """LVE's square-root variant: mean over frames of the max over lip vertices of ‖pred − gt‖
    (input unit). pred, gt: (T, V, 3); lip_indices: (L,) vertex indices."""
    return float(np.sqrt(lip_max_errors(pred, gt, lip_indices)).mean())


def upper_face_motion_std(vertices: np.ndarray, upper_indices, template: np.ndarray) -> float:
    """One side of FDD: mean over upper-face vertices v of std_t ‖x_t(v) − template(v)‖²
    (population std over the T frames; input unit²).

    vertices: (T, V, 3); upper_indices: (U,); template: (V, 3) the neutral face."""
    vertices = np.asarray(vertices, np.float64)
    template = np.asarray(template, np.float64)
    if vertices.ndim != 3 or vertices.shape[2] != 3 or vertices.shape[0] == 0:
        raise ValueError(f"vertices must have shape (T, V, 3) with T ≥ 1, got {vertices.shape}")
    if template.shape != vertices.shape[1:]:
        raise ValueError(f"template must have shape (V, 3) = {vertices.shape[1:]} to match the vertices "
                         f"{vertices.shape}, got {template.shape}")
    upper = vertex_indices(upper_indices, "upper_indices", vertices.shape[1])
    motion = np.sum((vertices[:, upper] - template[upper]) ** 2, axis=-1)  # (T, U)
    return float(motion.std(axis=0).mean())


def upper_face_dynamics_deviation(pred: np.ndarray, gt: np.ndarray, upper_indices,
                                  template: np.ndarray) -> float:
    """FDD as CodeTalker computes it, signed, in input unit²:

        FDD = mean_v std_t ‖gt_t(v) − template(v)‖² − mean_v std_t ‖pred_t(v) − template(v)‖²

    over the upper-face vertices v, with the population standard deviation over the T frames.
    Positive: the predicted upper face moves less than the truth. Take ``abs`` of the result
    for the "absolute FDD" some papers report.

    Args:
        pred, gt: (T, V, 3) predicted and true vertices.
        upper_indices: (U,) upper-face vertex indices (forehead ∪ eye region).
        template: (V, 3) the subject's neutral face.
    """
    pred, gt = _sequences(pred, gt)
    return upper_face_motion_std(gt, upper_indices, template) - upper_face_motion_std(pred, upper_indices, template)


def mean_vertex_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """MVE: ‖pred − gt‖ (L2, not squared, as FaceDiffuser reports it) averaged over all vertices
    and frames; input unit. pred, gt: (T, V, 3)."""
    pred, gt = _sequences(pred, gt)
    return float(np.linalg.norm(pred - gt, axis=-1).mean())


def pooled_vertex_metrics(sequences: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], lip_indices=None,
                            upper_indices=None) -> dict[str, float | int]:
    """The vertex metrics of a test set, pooled as the published evaluation code pools them.

    Args:
        sequences: (pred, gt, template) per whole test sequence: pred, gt (T_i, V, 3) aligned
            frame for frame, template (V, 3) the subject's neutral face.
        lip_indices, upper_indices: the lip and upper-face regions (None: LVE, resp. FDD, not
            computed).

    Returns:
        ``sequences``, ``frames`` (Σ T_i); ``mve`` (L2 over every vertex of every frame of every
        sequence, averaged; input unit); ``lve`` (per frame the largest squared lip-vertex error,
        averaged over every frame of the test set, as CodeTalker's ``cal_metric.py`` pools them;
        input unit²) and ``lve_sqrt`` (the same with distances; input unit); ``fdd`` (each
        sequence's :func:`upper_face_dynamics_deviation` against its template, averaged over
        sequences, as CodeTalker averages them; input unit²).
    """
    lip_errors: list[np.ndarray] = []
    deviations: list[float] = []
    distance_sum, distances, n_sequences, frames = 0.0, 0, 0, 0
    for pred, gt, template in sequences:
        pred, gt = _sequences(pred, gt)
        n_sequences, frames = n_sequences + 1, frames + pred.shape[0]
        distance = np.linalg.norm(pred - gt, axis=-1)
        distance_sum, distances = distance_sum + float(distance.sum()), distances + distance.size
        if lip_indices is not None:
            lip_errors.append(lip_max_errors(pred, gt, lip_indices))
        if upper_indices is not None:
            deviations.append(upper_face_dynamics_deviation(pred, gt, upper_indices, template))
    if not n_sequences:
        raise ValueError("no test sequences")
    result: dict[str, float | int] = {"sequences": n_sequences, "frames": frames, "mve": distance_sum / distances}
    if lip_errors:
        pooled = np.concatenate(lip_errors)
        result.update(lve=float(pooled.mean()), lve_sqrt=float(np.sqrt(pooled).mean()))
    if deviations:
        result["fdd"] = float(np.mean(deviations))
    return result


def mediapipe_lip_opening(mesh: np.ndarray) -> np.ndarray:
    """(T,) float64 distance between the inner-lip middles (MediaPipe landmarks 13 and 14) of a
    (T, 478, 3) MediaPipe mesh, in the mesh's unit (≈ cm in the template's head frame)."""
    mesh = np.asarray(mesh, np.float64)
    if mesh.ndim != 3 or mesh.shape[1:] != (N_MEDIAPIPE, 3):
        raise ValueError(f"mesh must have shape (T, {N_MEDIAPIPE}, 3) (MediaPipe landmarks), "
                         f"got {mesh.shape}")
    return np.linalg.norm(mesh[:, UPPER_INNER_LIP] - mesh[:, LOWER_INNER_LIP], axis=-1)


def lip_audio_correlation(lip_opening: np.ndarray, audio_envelope: np.ndarray) -> float:
    """Pearson r between the lip opening and the audio envelope at the same frames.

    Args:
        lip_opening: (T,) any unit (e.g. :func:`mediapipe_lip_opening`).
        audio_envelope: (T,) any unit, e.g. the per-frame RMS of
            :func:`pseudo3d.qa.audio.frame_envelope`.

    Returns:
        r in [−1, 1]; NaN when either series is constant (silence, a frozen mouth), where the
        correlation is undefined.
    """
    mouth = np.asarray(lip_opening, np.float64)
    envelope = np.asarray(audio_envelope, np.float64)
    if mouth.ndim != 1 or envelope.ndim != 1 or mouth.shape != envelope.shape:
        raise ValueError(f"lip_opening and audio_envelope must be (T,) series of the same length, got "
                         f"lip_opening {mouth.shape} and audio_envelope {envelope.shape}")
    if mouth.size < 2:
        raise ValueError(f"a correlation needs at least 2 frames, got {mouth.size}")
    if not (np.isfinite(mouth).all() and np.isfinite(envelope).all()):
        raise ValueError("lip_opening and audio_envelope must be finite (found NaN or inf)")
    if np.ptp(mouth) == 0 or np.ptp(envelope) == 0:
        return float("nan")
    mouth, envelope = mouth - mouth.mean(), envelope - envelope.mean()
    r = np.sum(mouth * envelope) / np.sqrt(np.sum(mouth ** 2) * np.sum(envelope ** 2))
    return float(np.clip(r, -1.0, 1.0))
