"""Safe loaders for the FLAME assets a user passes by path: the FLAME model and a landmark embedding.

None of these files is trusted, and two of them are pickles:

* FLAME 2020 ``generic_model.pkl`` (and FLAME 2023 Open ``flame2023_Open.pkl``) is a pickled dict
  of numpy arrays, a ``scipy.sparse`` joint regressor and, in files written with SMPL's
  ``save_model``, ``chumpy.ch.Ch`` objects (``shapedirs``). A pickled ``Ch`` carries its
  ``__dict__`` minus the two weak-reference caches: ``x`` (the float64 array it wraps) plus
  bookkeeping (``_dirty_vars``, ``_itr``, ``_depends_on_deps``, ``_make_dense``, ``_make_sparse``).
* DECA's ``landmark_embedding.npy`` is a ``.npy`` whose payload is a pickled dict; two of its
  entries are pickled PyTorch tensors (``torch._utils._rebuild_tensor_v2`` over a storage that
  ``torch.storage._load_from_bytes`` rebuilds from a nested ``torch.save`` blob).

Both go through :mod:`pseudo3d.reconstruction.safe_pickle`'s restricted unpickler: an explicit
allow-list of names, each mapped to a stand-in that produces plain numpy arrays, so nothing named
in the file is imported or run; anything else is refused with an
:class:`~pseudo3d.errors.AssetError` naming the file and the refused name.

MediaPipe's ``mediapipe_landmark_embedding.npz`` holds plain arrays and loads with
``allow_pickle=False``.

Units and frames are the file's: FLAME's are metres, head frame x to the subject's left, y up,
z out of the face.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pseudo3d.errors import AssetError
from pseudo3d.files import file_sha256
from pseudo3d.reconstruction.asset_files import require_file
from pseudo3d.reconstruction.safe_pickle import read_pickled_npy, safe_unpickle

MODEL_WHAT = "FLAME model (generic_model.pkl or flame2023_Open.pkl)"
EMBEDDING_WHAT = "landmark embedding (DECA's landmark_embedding.npy or mediapipe_landmark_embedding.npz)"

N_JOINTS = 5
"""FLAME's joints: global (root), neck, jaw, left eye, right eye."""
N_POSE_FEATURES = 9 * (N_JOINTS - 1)
"""Pose-corrective features: the entries of (R_j − I) for joints 1..4."""
SHAPE_SPACE = 300
"""FLAME files hold their shape components first (300 of them), then the expression components."""
N_CONTOUR_BINS = 79
"""DECA's dynamic contour: one row per whole degree of yaw from −39° to +39°."""
N_CONTOUR = 17
"""Jaw-contour landmarks (iBUG 0–16)."""
N_STATIC = 51
"""Static landmarks (iBUG 17–67: brows, nose, eyes, mouth)."""
N_MEDIAPIPE = 478
"""Landmarks of MediaPipe Face Mesh with iris refinement."""

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


# --------------------------------------------------------------------------------------------
# Typed records


@dataclass(frozen=True)
class FlameAssets:
    """A FLAME model file's arrays, checked for shapes and consistency. Lengths in metres."""

    path: Path
    sha256: str
    v_template: np.ndarray
    """(V, 3) float64, the mean head."""
    faces: np.ndarray
    """(F, 3) int64 vertex indices, counter-clockwise seen from outside."""
    shapedirs: np.ndarray
    """(V, 3, K) float64: K ≤ 300 shape components, then (K − 300) expression components."""
    posedirs: np.ndarray
    """(V, 3, 36) float64 pose correctives, one per entry of (R_j − I), j = 1..4, row-major."""
    J_regressor: np.ndarray
    """(5, V) float64, dense: joints = J_regressor · vertices."""
    weights: np.ndarray
    """(V, 5) float64 skinning weights."""
    kintree_table: np.ndarray
    """(2, 5) int64: row 0 each joint's parent (the root's is anything outside 0..4), row 1 its id."""

    @property
    def n_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def parents(self) -> tuple[int, ...]:
        """Each joint's parent, −1 for the root."""
        return tuple(-1 if i == 0 else int(p) for i, p in enumerate(self.kintree_table[0]))

    @property
    def n_shape_available(self) -> int:
        return min(self.shapedirs.shape[2], SHAPE_SPACE)

    @property
    def n_expression_available(self) -> int:
        return max(self.shapedirs.shape[2] - SHAPE_SPACE, 0)


@dataclass(frozen=True)
class Flame68Embedding:
    """DECA's 68-point embedding (iBUG order): 17 yaw-dependent contour points, then 51 static."""

    path: Path
    sha256: str
    static_faces: np.ndarray
    """(51,) int64 face index of iBUG landmarks 17–67."""
    static_bary: np.ndarray
    """(51, 3) float64 barycentric coordinates in those faces."""
    contour_faces: np.ndarray
    """(79, 17) int64: per yaw bin, the faces of iBUG landmarks 0–16."""
    contour_bary: np.ndarray
    """(79, 17, 3) float64."""
    full_faces: np.ndarray
    """(68,) int64: DECA's fixed (yaw-independent) embedding of all 68 landmarks."""
    full_bary: np.ndarray
    """(68, 3) float64."""

    def max_face_index(self) -> int:
        return int(max(self.static_faces.max(), self.contour_faces.max(), self.full_faces.max()))


@dataclass(frozen=True)
class MediaPipeEmbedding:
    """Embedded points that are MediaPipe Face Mesh landmarks."""

    path: Path
    sha256: str
    faces: np.ndarray
    """(L,) int64 face index of each embedded point."""
    bary: np.ndarray
    """(L, 3) float64 barycentric coordinates."""
    landmark_indices: np.ndarray
    """(L,) int64: which of MediaPipe's 478 landmarks each embedded point is."""

    def max_face_index(self) -> int:
        return int(self.faces.max())


LandmarkEmbedding = Flame68Embedding | MediaPipeEmbedding


# --------------------------------------------------------------------------------------------
# Public loaders


def load_flame_model(path: str | Path) -> FlameAssets:
    """The arrays of a FLAME model pickle, without chumpy and without running pickled code.

    Raises :class:`AssetError` naming the file when it is missing, is not a pickle, names a
    Python object outside the allow-list, or lacks a field or has one of the wrong shape.
    """
    path = require_file(path, MODEL_WHAT)
    with open(path, "rb") as handle:
        if handle.read(4) in (_ZIP_MAGIC, _NPY_MAGIC[:4]):
            raise AssetError(f"{MODEL_WHAT} {path}: expected a pickle, got a .npz/.npy file")
        handle.seek(0)
        content = safe_unpickle(handle, source=path, what=MODEL_WHAT)
    if not isinstance(content, dict):
        raise AssetError(f"{MODEL_WHAT} {path}: expected a pickled dict of arrays, got {type(content).__name__}")
    check = _FieldChecker(path, MODEL_WHAT, content)
    v_template = check.floats("v_template", (None, 3))
    n_vertices = v_template.shape[0]
    if n_vertices < 3:
        raise AssetError(f"{MODEL_WHAT} {path}: field 'v_template' has {n_vertices} vertices; a mesh needs at least 3")
    faces = check.indices("f", (None, 3), limit=n_vertices)
    shapedirs = check.floats("shapedirs", (n_vertices, 3, None))
    posedirs = check.floats("posedirs", (n_vertices, 3, N_POSE_FEATURES))
    j_regressor = check.floats("J_regressor", (N_JOINTS, n_vertices))
    weights = check.floats("weights", (n_vertices, N_JOINTS))
    kintree_table = check.integers("kintree_table", (2, N_JOINTS))
    for joint in range(1, N_JOINTS):
        if not 0 <= kintree_table[0, joint] < joint:
            raise AssetError(
                f"{MODEL_WHAT} {path}: field 'kintree_table' gives joint {joint} the parent "
                f"{kintree_table[0, joint]}; every non-root joint's parent must be an earlier joint")
    return FlameAssets(path=path, sha256=file_sha256(path), v_template=v_template, faces=faces,
                       shapedirs=shapedirs, posedirs=posedirs, J_regressor=j_regressor,
                       weights=weights, kintree_table=kintree_table)


def load_landmark_embedding(path: str | Path) -> LandmarkEmbedding:
    """DECA's ``landmark_embedding.npy`` (→ :class:`Flame68Embedding`) or MediaPipe's
    ``mediapipe_landmark_embedding.npz`` (→ :class:`MediaPipeEmbedding`), told apart by content.

    Face indices are checked against a model later (:func:`check_embedding_fits`), as the
    embedding does not know which model it belongs to.
    """
    path = require_file(path, EMBEDDING_WHAT)
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic.startswith(_ZIP_MAGIC):
        return _load_mediapipe_embedding(path)
    if magic == _NPY_MAGIC:
        return _load_flame68_embedding(path)
    raise AssetError(f"{EMBEDDING_WHAT} {path}: not a .npy or .npz file")


def check_embedding_fits(embedding: LandmarkEmbedding, assets: FlameAssets) -> None:
    """Raise :class:`AssetError` naming both files when the embedding refers to faces the model
    does not have."""
    n_faces = assets.faces.shape[0]
    if embedding.max_face_index() >= n_faces:
        raise AssetError(
            f"{EMBEDDING_WHAT} {embedding.path} refers to face {embedding.max_face_index()}, but "
            f"{MODEL_WHAT} {assets.path} has only {n_faces} faces; are they for the same mesh?")


# --------------------------------------------------------------------------------------------
# Embeddings


def _load_flame68_embedding(path: Path) -> Flame68Embedding:
    content = read_pickled_npy(path, EMBEDDING_WHAT)
    if isinstance(content, np.ndarray) and content.dtype == object and content.shape == ():
        content = content.item()
    if not isinstance(content, dict):
        raise AssetError(f"{EMBEDDING_WHAT} {path}: expected DECA's pickled dict in the .npy, "
                         f"got {type(content).__name__}")
    check = _FieldChecker(path, EMBEDDING_WHAT, content)
    n_full = N_CONTOUR + N_STATIC
    full_faces = check.indices("full_lmk_faces_idx", None)  # DECA stores (1, 68); (68,) is accepted
    full_bary = check.floats("full_lmk_bary_coords", None)
    if full_faces.shape not in ((n_full,), (1, n_full)) or full_bary.shape not in ((n_full, 3), (1, n_full, 3)):
        raise AssetError(
            f"{EMBEDDING_WHAT} {path}: fields 'full_lmk_faces_idx' and 'full_lmk_bary_coords' must have "
            f"shapes (1, 68) and (1, 68, 3), got {full_faces.shape} and {full_bary.shape}")
    return Flame68Embedding(
        path=path, sha256=file_sha256(path),
        static_faces=check.indices("static_lmk_faces_idx", (N_STATIC,)),
        static_bary=check.floats("static_lmk_bary_coords", (N_STATIC, 3)),
        contour_faces=check.indices("dynamic_lmk_faces_idx", (N_CONTOUR_BINS, N_CONTOUR)),
        contour_bary=check.floats("dynamic_lmk_bary_coords", (N_CONTOUR_BINS, N_CONTOUR, 3)),
        full_faces=full_faces.reshape(n_full), full_bary=full_bary.reshape(n_full, 3))


def _load_mediapipe_embedding(path: Path) -> MediaPipeEmbedding:
    try:
        with np.load(path, allow_pickle=False) as archive:
            content = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise AssetError(f"{EMBEDDING_WHAT} {path}: not a readable .npz of plain arrays ({error})") from None
    check = _FieldChecker(path, EMBEDDING_WHAT, content)
    faces = check.indices("lmk_face_idx", (None,))
    bary = check.floats("lmk_b_coords", (faces.shape[0], 3))
    landmark_indices = check.indices("landmark_indices", (faces.shape[0],), limit=N_MEDIAPIPE)
    if faces.shape[0] == 0:
        raise AssetError(f"{EMBEDDING_WHAT} {path}: field 'lmk_face_idx' is empty")
    return MediaPipeEmbedding(path=path, sha256=file_sha256(path), faces=faces, bary=bary,
                              landmark_indices=landmark_indices)


# --------------------------------------------------------------------------------------------
# Field checks


class _FieldChecker:
    """Fetches fields of a loaded dict as arrays of an expected shape, with errors that name the
    file and the field. ``None`` in an expected shape means any length."""

    def __init__(self, path: Path, what: str, content: Mapping[str, Any]):
        self.path, self.what, self.content = path, what, content

    def _fetch(self, field: str, dtype: type) -> np.ndarray:
        if field not in self.content:
            present = ", ".join(sorted(map(str, self.content))) or "none"
            raise AssetError(f"{self.what} {self.path}: field {field!r} is missing (fields present: {present})")
        try:
            return np.array(self.content[field], dtype=dtype)
        except (TypeError, ValueError) as error:
            raise AssetError(f"{self.what} {self.path}: field {field!r} is not a numeric array ({error})") from None

    def _check_shape(self, field: str, array: np.ndarray, shape: tuple[int | None, ...] | None) -> None:
        if shape is None:
            return
        if array.ndim != len(shape) or any(want is not None and got != want
                                           for got, want in zip(array.shape, shape)):
            wanted = "(" + ", ".join("N" if n is None else str(n) for n in shape) + ")"
            raise AssetError(f"{self.what} {self.path}: field {field!r} must have shape {wanted}, "
                             f"got {tuple(array.shape)}")

    def floats(self, field: str, shape: tuple[int | None, ...] | None) -> np.ndarray:
        array = self._fetch(field, np.float64)
        self._check_shape(field, array, shape)
        if not np.all(np.isfinite(array)):
            raise AssetError(f"{self.what} {self.path}: field {field!r} holds NaN or infinite values")
        return array

    def integers(self, field: str, shape: tuple[int | None, ...] | None) -> np.ndarray:
        raw = self._fetch(field, np.float64)
        self._check_shape(field, raw, shape)
        if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
            raise AssetError(f"{self.what} {self.path}: field {field!r} must hold whole numbers")
        return raw.astype(np.int64)

    def indices(self, field: str, shape: tuple[int | None, ...] | None, limit: int | None = None) -> np.ndarray:
        array = self.integers(field, shape)
        if array.size and (array.min() < 0 or (limit is not None and array.max() >= limit)):
            bound = f"0..{limit - 1}" if limit is not None else "≥ 0"
            raise AssetError(f"{self.what} {self.path}: field {field!r} holds indices outside {bound} "
                             f"(min {array.min()}, max {array.max()})")
        return array
