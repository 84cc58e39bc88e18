"""Vertex regions for the evaluation metrics: the lips (LVE) and the upper face (FDD).

FLAME meshes take them from FLAME's ``FLAME_masks.pkl``: a pickled dict mapping a region name
to a 1-D array of vertex indices into the 5023-vertex mesh. Its 14 regions are
``eye_region``, ``left_eye_region``, ``right_eye_region``, ``left_eyeball``, ``right_eyeball``,
``forehead``, ``nose``, ``lips``, ``face``, ``scalp``, ``neck``, ``boundary``, ``left_ear`` and
``right_ear``; the file was written by Python 2 (pickle protocol 2, byte strings decoded as
latin1), and is read here only through the restricted unpickler of
:mod:`pseudo3d.reconstruction.safe_pickle`. As in CodeTalker's evaluation, the lips are ``lips``
and the upper face is ``forehead`` ∪ ``eye_region``.

MediaPipe's 478-landmark mesh has no such file, so :func:`synthetic_regions_mediapipe` derives
the regions from MediaPipe's own connection sets and the canonical template of
:mod:`pseudo3d.reconstruction.template` (head frame, y up, ≈ cm). The synthetic FLAME head of
:mod:`pseudo3d.testing.flame_assets` has the same vertices (its vertex i is landmark i), so it
shares them, and :func:`write_synthetic_flame_masks` writes them in ``FLAME_masks.pkl``'s layout.
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np

from pseudo3d.errors import AssetError
from pseudo3d.storage import write_bytes
from pseudo3d.reconstruction.assets import N_MEDIAPIPE
from pseudo3d.reconstruction.safe_pickle import safe_unpickle
from pseudo3d.training.metrics import vertex_indices

FLAME_MASK_REGIONS = ("eye_region", "left_eye_region", "right_eye_region", "left_eyeball", "right_eyeball",
                      "forehead", "nose", "lips", "face", "scalp", "neck", "boundary", "left_ear", "right_ear")
"""The regions of FLAME's ``FLAME_masks.pkl``."""
LIP_REGION = "lips"
UPPER_FACE_REGIONS = ("forehead", "eye_region")
_WHAT = "FLAME masks (FLAME_masks.pkl)"

MEDIAPIPE_IRISES = tuple(range(468, 478))
"""Iris landmarks (refined mesh): they move with the gaze, like FLAME's eyeballs, so they are in
no face region."""


@dataclass(frozen=True, eq=False)  # array fields: no element-wise ==
class Regions:
    """Vertex indices of the metric regions; each a sorted, duplicate-free 1-D int64 array."""

    lips: np.ndarray
    """(L,) vertices whose error LVE measures."""
    upper_face: np.ndarray
    """(U,) vertices whose motion FDD compares: forehead ∪ eye region."""

    def __post_init__(self) -> None:
        for name in ("lips", "upper_face"):
            object.__setattr__(self, name, _index_set(getattr(self, name), f"Regions.{name}"))

    def check_vertex_count(self, n_vertices: int) -> None:
        """Raise ValueError if an index is not a vertex of an ``n_vertices``-vertex mesh."""
        for name in ("lips", "upper_face"):
            indices = getattr(self, name)
            if indices[-1] >= n_vertices:
                raise ValueError(f"Regions.{name} holds vertex {int(indices[-1])}, but the mesh has "
                                 f"{n_vertices} vertices; the regions belong to another topology")


def _index_set(values, what: str) -> np.ndarray:
    unique = vertex_indices(values, what)
    unique.setflags(write=False)
    return unique


# --------------------------------------------------------------------------------------------
# FLAME_masks.pkl


def load_flame_masks(path: str | Path) -> dict[str, np.ndarray]:
    """Region name → (N,) int64 vertex indices, read from a ``FLAME_masks.pkl``-layout file with
    the restricted unpickler (nothing in the file is imported or run). Raises
    :class:`~pseudo3d.errors.AssetError` naming the file if it is missing or is not a dict of
    1-D integer arrays."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AssetError(f"{_WHAT} {path}: cannot be read ({error.strerror or error}); FLAME_masks.pkl "
                         f"comes with FLAME from https://flame.is.tue.mpg.de") from None
    content = safe_unpickle(data, source=path, what=_WHAT)
    if not isinstance(content, dict):
        raise AssetError(f"{_WHAT} {path}: holds a {type(content).__name__}, expected a dict of region "
                         f"name → vertex indices")
    masks = {}
    for key, value in content.items():
        array = np.asarray(value)
        if not isinstance(key, str) or array.ndim != 1 or not (
                array.size == 0 or np.issubdtype(array.dtype, np.integer)):
            raise AssetError(f"{_WHAT} {path}: entry {key!r} is not a 1-D array of vertex indices "
                             f"(shape {array.shape}, dtype {array.dtype})")
        masks[key] = array.astype(np.int64)
    return masks


def regions_from_flame_masks(masks: Mapping[str, np.ndarray], source: str | Path = "FLAME masks") -> Regions:
    """:class:`Regions` from FLAME's masks: lips = ``lips``; upper face = ``forehead`` ∪
    ``eye_region``. ``source`` names the masks in errors (the file, usually)."""
    needed = (LIP_REGION, *UPPER_FACE_REGIONS)
    missing = [name for name in needed if name not in masks]
    if missing:
        raise AssetError(f"{source}: region(s) {', '.join(missing)} missing; the metrics need "
                         f"{', '.join(needed)} (found: {', '.join(sorted(masks)) or 'none'})")
    empty = [name for name in needed if np.asarray(masks[name]).size == 0]
    if empty:
        raise AssetError(f"{source}: region(s) {', '.join(empty)} hold no vertices")
    upper = np.concatenate([np.asarray(masks[name]).ravel() for name in UPPER_FACE_REGIONS])
    return Regions(lips=np.asarray(masks[LIP_REGION]), upper_face=upper)


def load_flame_regions(path: str | Path) -> Regions:
    """:func:`regions_from_flame_masks` of :func:`load_flame_masks`, errors naming ``path``."""
    return regions_from_flame_masks(load_flame_masks(path), source=f"{_WHAT} {Path(path)}")


# --------------------------------------------------------------------------------------------
# MediaPipe's mesh and the synthetic FLAME head


@lru_cache(maxsize=1)
def mediapipe_region_masks() -> dict[str, np.ndarray]:
    """``FLAME_masks.pkl``'s regions for MediaPipe's 478 landmarks (template: head frame, y up):

    * ``lips``: ``FACEMESH_LIPS`` (outer and inner lip contours, 40 landmarks);
    * ``eye_region``: the eye and brow contours and every landmark in the horizontal band from
      the lowest eye-contour landmark up to the highest brow landmark (temples and the bridge of
      the nose included); ``left_``/``right_eye_region`` its halves (x > 0 is the subject's left);
    * ``forehead``: landmarks above the brows (MediaPipe's mesh ends near the hairline);
    * ``left_``/``right_eyeball``: the iris landmarks 473–477 and 468–472;
    * ``nose``: ``FACEMESH_NOSE``; ``face``: every landmark except the irises;
    * ``scalp``, ``neck``, ``boundary``, ``left_ear``, ``right_ear``: empty (a face-only mesh).

    Computed once per process; the arrays are read-only int64.
    """
    from mediapipe.python.solutions import face_mesh_connections as connections

    from pseudo3d.reconstruction.template import mediapipe_template

    def landmarks(*edge_sets) -> np.ndarray:
        return np.array(sorted({i for edges in edge_sets for edge in edges for i in edge}), np.int64)

    template = mediapipe_template().vertices
    x, y = template[:, 0], template[:, 1]
    eyes = landmarks(connections.FACEMESH_LEFT_EYE, connections.FACEMESH_RIGHT_EYE)
    brows = landmarks(connections.FACEMESH_LEFT_EYEBROW, connections.FACEMESH_RIGHT_EYEBROW)
    not_iris = np.ones(N_MEDIAPIPE, bool)
    not_iris[list(MEDIAPIPE_IRISES)] = False
    band_bottom, brow_top = y[eyes].min(), y[brows].max()
    eye_region = np.flatnonzero(not_iris & (y >= band_bottom) & (y <= brow_top))
    empty = np.zeros(0, np.int64)
    masks = {
        "eye_region": eye_region,
        "left_eye_region": eye_region[x[eye_region] > 1e-6],
        "right_eye_region": eye_region[x[eye_region] < -1e-6],
        "left_eyeball": np.arange(473, 478),
        "right_eyeball": np.arange(468, 473),
        "forehead": np.flatnonzero(not_iris & (y > brow_top)),
        "nose": landmarks(connections.FACEMESH_NOSE),
        "lips": landmarks(connections.FACEMESH_LIPS),
        "face": np.flatnonzero(not_iris),
        "scalp": empty, "neck": empty, "boundary": empty, "left_ear": empty, "right_ear": empty,
    }
    for name, indices in masks.items():
        masks[name] = np.asarray(indices, np.int64).copy()
        masks[name].setflags(write=False)
    return masks


def synthetic_regions_mediapipe() -> Regions:
    """Lips and upper face (forehead ∪ eye region, 128 landmarks) of MediaPipe's 478-landmark
    mesh; see :func:`mediapipe_region_masks`."""
    return regions_from_flame_masks(mediapipe_region_masks(), source="MediaPipe regions")


def synthetic_regions_for_flame_head() -> Regions:
    """The regions of :mod:`pseudo3d.testing.flame_assets`' 478-vertex head, whose vertex i is
    MediaPipe landmark i: the same sets as :func:`synthetic_regions_mediapipe`."""
    return synthetic_regions_mediapipe()


def write_synthetic_flame_masks(path: str | Path) -> Path:
    """Write :func:`mediapipe_region_masks` (the synthetic FLAME head's regions) as a
    ``FLAME_masks.pkl``-layout file: a dict of region name → int64 index array, pickled with
    protocol 2 the way Python 2 wrote the real file (byte strings as Python 2 ``str`` opcodes,
    which Python 3 decodes as latin1). Written to a temporary name, then renamed."""
    buffer = io.BytesIO()
    _Python2StylePickler(buffer, protocol=2).dump({name: np.array(indices) for name, indices
                                                   in mediapipe_region_masks().items()})
    write_bytes(Path(path), buffer.getvalue())
    return Path(path)


class _Python2StylePickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can change
    """Protocol 2 with ``bytes`` written as Python 2 wrote ``str`` (SHORT_BINSTRING / BINSTRING)
    instead of Python 3's ``_codecs.encode(…, 'latin1')`` call, so the file reads like one made
    by Python 2's cPickle: numpy arrays' raw data arrives as a latin1-decoded ``str``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_python2_str(self, data: bytes) -> None:
        # write and memoize: the pure-Python pickler's undocumented internals, which typeshed leaves out
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)  # type: ignore[attr-defined]
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)  # type: ignore[attr-defined]
        self.memoize(data)  # type: ignore[attr-defined]

    dispatch[bytes] = _save_python2_str  # type: ignore[assignment]  # typeshed types _Pickler's table with Unpickler
