"""Weighted similarity Procrustes (Umeyama): the scale, rotation and translation that best align
one 3D point set onto another.

A similarity maps a point ``p`` to ``scale * R @ p + t``. All functions are pure float64 numpy.
The rotation is always proper (``det R = +1``): a mirrored face is never explained by a reflection.

The closed form, with weights normalised to sum to one:

* centroids ``mu_s = sum_i w_i s_i`` and ``mu_t = sum_i w_i t_i``;
* cross-covariance ``C = sum_i w_i (t_i - mu_t)(s_i - mu_s)^T`` with SVD ``C = U diag(d) V^T``;
* ``D = diag(1, 1, sign(det U det V))`` forbids reflections; ``R = U D V^T``;
* ``scale = trace(diag(d) D) / sum_i w_i |s_i - mu_s|^2`` and ``t = mu_t - scale R mu_s``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _validated_weights(weights: ArrayLike | None, shape: tuple[int, ...]) -> NDArray[np.float64]:
    """Weights broadcast to ``shape`` (``(N,)`` or ``(T, N)``), checked and normalised per set."""
    n_points = shape[-1]
    if weights is None:
        return np.full(shape, 1.0 / n_points)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_points,) and weights.shape != shape:
        allowed = f"({n_points},)" if len(shape) == 1 else f"({n_points},) or {shape}"
        raise ValueError(f"weights must have shape {allowed}, got {weights.shape}")
    if not np.all(np.isfinite(weights)):
        raise ValueError("weights must be finite")
    if np.any(weights < 0.0):
        raise ValueError("weights must be >= 0")
    weights = np.broadcast_to(weights, shape)
    n_weighted = np.count_nonzero(weights, axis=-1)
    if np.any(n_weighted == 0):
        raise ValueError("weights must not be all zero")
    if np.any(n_weighted < 3):
        raise ValueError(f"weights must give at least 3 points a positive weight, got {int(n_weighted.min())}")
    return weights / np.sum(weights, axis=-1, keepdims=True)


def _validated_points(points: ArrayLike, name: str, leading: int) -> NDArray[np.float64]:
    """``points`` as float64 with shape ``(N, 3)`` (``leading=0``) or ``(T, N, 3)`` (``leading=1``)."""
    points = np.asarray(points, dtype=np.float64)
    expected = "(T, N, 3)" if leading else "(N, 3)"
    if points.ndim != 2 + leading or points.shape[-1] != 3:
        raise ValueError(f"{name} must have shape {expected}, got {points.shape}")
    if points.shape[-2] < 3:
        raise ValueError(f"{name} must hold at least 3 points, got {points.shape[-2]}")
    if not np.all(np.isfinite(points)):
        bad = np.unique(np.nonzero(~np.isfinite(points))[0])
        where = f" (frames {bad[:10].tolist()})" if leading else ""
        raise ValueError(f"{name} must be finite; found NaN or inf{where}")
    return points


def _fit(
    source: NDArray[np.float64], targets: NDArray[np.float64], weights: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Closed-form fit for sources/targets ``(..., N, 3)`` and normalised weights ``(..., N)``."""
    source_mean = np.einsum("...n,...nk->...k", weights, source)
    target_mean = np.einsum("...n,...nk->...k", weights, targets)
    source_centered = source - source_mean[..., None, :]
    target_centered = targets - target_mean[..., None, :]
    source_variance = np.einsum("...n,...nk,...nk->...", weights, source_centered, source_centered)
    if np.any(source_variance <= 0.0):
        raise ValueError("source points must not all coincide (weighted spread is zero)")
    covariance = np.einsum("...n,...ni,...nj->...ij", weights, target_centered, source_centered)
    u, singular_values, vt = np.linalg.svd(covariance)
    reflection = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    # det(U V^T) is +-1 up to rounding; a singular covariance can give 0, which means "no flip".
    reflection = np.where(reflection == 0.0, 1.0, reflection)
    correction = np.ones(singular_values.shape)
    correction[..., 2] = reflection
    rotation = (u * correction[..., None, :]) @ vt
    scale = np.sum(singular_values * correction, axis=-1) / source_variance
    translation = target_mean - scale[..., None] * np.einsum("...ij,...j->...i", rotation, source_mean)
    return scale, rotation, translation


def similarity_procrustes(
    source: ArrayLike, target: ArrayLike, weights: ArrayLike | None = None
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Best similarity taking ``source`` onto ``target`` in the weighted least-squares sense.

    Minimises ``sum_i w_i |scale * R @ source_i + t - target_i|^2`` over ``scale >= 0``, proper
    rotations ``R`` and translations ``t``.

    Args:
        source: ``(N, 3)`` points, ``N >= 3``, not all coincident.
        target: ``(N, 3)`` corresponding points, in any units (the translation comes out in them).
        weights: ``(N,)`` non-negative per-point weights, or ``None`` for equal weights. Only
            ratios matter. At least 3 points need a positive weight.

    Returns:
        ``(scale, R, t)``: a float, a ``(3, 3)`` rotation with ``det R = +1``, and a ``(3,)``
        translation. Collinear points leave the rotation about their line undetermined; a
        valid rotation is still returned.

    Raises:
        ValueError: on mismatched shapes, fewer than 3 points, NaN/inf input, negative or
            all-zero weights, or a source with no spread.
    """
    source = _validated_points(source, "source", leading=0)
    target = _validated_points(target, "target", leading=0)
    if source.shape != target.shape:
        raise ValueError(f"source and target must have the same shape, got {source.shape} and {target.shape}")
    normalised = _validated_weights(weights, (source.shape[0],))
    scale, rotation, translation = _fit(source, target, normalised)
    return float(scale), rotation, translation


def similarity_procrustes_batch(
    source: ArrayLike, targets: ArrayLike, weights: ArrayLike | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Align one template to every frame of a clip at once; :func:`similarity_procrustes` per frame.

    Args:
        source: ``(N, 3)`` template points.
        targets: ``(T, N, 3)`` per-frame points (e.g. tracked landmarks), all finite.
        weights: ``(N,)`` weights shared by all frames, ``(T, N)`` per-frame weights, or ``None``.

    Returns:
        ``(scale (T,), R (T, 3, 3), t (T, 3))`` such that ``scale[f] * R[f] @ source_i + t[f]``
        approximates ``targets[f, i]``. Vectorised over frames (one batched SVD).

    Raises:
        ValueError: as :func:`similarity_procrustes`; a non-finite target names its frames.
    """
    source = _validated_points(source, "source", leading=0)
    targets = _validated_points(targets, "targets", leading=1)
    if targets.shape[1:] != source.shape:
        raise ValueError(f"targets must have shape (T, {source.shape[0]}, 3) to match source, got {targets.shape}")
    normalised = _validated_weights(weights, targets.shape[:2])
    return _fit(np.broadcast_to(source, targets.shape), targets, normalised)


def _validated_transform(
    scale: ArrayLike, rotation: ArrayLike, translation: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    scale = np.asarray(scale, dtype=np.float64)
    rotation = np.asarray(rotation, dtype=np.float64)
    translation = np.asarray(translation, dtype=np.float64)
    if rotation.shape[-2:] != (3, 3) or rotation.shape[:-2] != scale.shape:
        raise ValueError(f"R must have shape {scale.shape + (3, 3)} to match scale, got {rotation.shape}")
    if translation.shape != scale.shape + (3,):
        raise ValueError(f"t must have shape {scale.shape + (3,)} to match scale, got {translation.shape}")
    return scale, rotation, translation


def apply_similarity(
    points: ArrayLike, scale: ArrayLike, rotation: ArrayLike, translation: ArrayLike
) -> NDArray[np.float64]:
    """Map points by ``scale * R @ p + t``.

    ``points`` is ``(..., N, 3)``; the transform is one similarity (``scale`` a scalar, ``R``
    ``(3, 3)``, ``t`` ``(3,)``) or a batch (``scale (B...)``, ``R (B..., 3, 3)``,
    ``t (B..., 3)``) that broadcasts against the point sets' leading axes. For example
    ``(N, 3)`` template points with a ``(T,)`` batch give ``(T, N, 3)``.
    """
    scale, rotation, translation = _validated_transform(scale, rotation, translation)
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 2 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., N, 3), got {points.shape}")
    return scale[..., None, None] * (points @ np.swapaxes(rotation, -1, -2)) + translation[..., None, :]


def invert_similarity(
    points: ArrayLike, scale: ArrayLike, rotation: ArrayLike, translation: ArrayLike
) -> NDArray[np.float64]:
    """Map target-space points back into source space: ``R^T @ (p - t) / scale``.

    Shapes as :func:`apply_similarity`; ``invert_similarity(apply_similarity(p, ...), ...)``
    returns ``p``. Raises ``ValueError`` if any scale is zero (the map is not invertible).
    """
    scale, rotation, translation = _validated_transform(scale, rotation, translation)
    if np.any(scale == 0.0):
        raise ValueError("scale must be non-zero to invert a similarity")
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 2 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., N, 3), got {points.shape}")
    # Row vectors times R equal R^T applied to column vectors.
    return ((points - translation[..., None, :]) @ rotation) / scale[..., None, None]
