"""Synthetic FLAME assets in the real files' formats, made by project code from no licensed data.

The "head" is a face-only mesh whose vertex i IS MediaPipe landmark i: the canonical template of
:mod:`pseudo3d.reconstruction.template` (478 vertices), converted from centimetres to metres and
triangulated as a height field (Delaunay over x, y). Around it sit FLAME's five joints (root and
neck below and behind the chin, jaw behind the mouth at the level of its corners, the eyes at the
iris centres), skinning weights (lower lip, chin and jaw to the jaw with a smooth blend, irises
to the eyes, the rest to the neck) and bases: 300 shape components (width, length, nose, jaw
width, forehead slope, then smooth random deformations), 100 expression components (mouth
stretch, lip rounding, smile, brow raise, lower lip down, upper lip raise, frown, cheek puff,
then small smooth random lower-face deformations) and small smooth pose correctives.

Writers:

* :func:`write_synthetic_flame_model` — ``generic_model.pkl`` layout (optionally with chumpy
  ``Ch`` objects, pickled without chumpy installed);
* :func:`write_synthetic_landmark_embedding` — DECA's ``landmark_embedding.npy`` (68 iBUG
  points, a 79-bin yaw-dependent jaw contour, the dynamic tables as torch tensors like the real
  file);
* :func:`write_synthetic_mediapipe_embedding` — ``mediapipe_landmark_embedding.npz``;
* :func:`write_smplx_flame_folder` — the folder ``smplx.FLAME`` reads.

Everything is deterministic for a seed.
"""

from __future__ import annotations

import copyreg
import pickle
import sys
import types
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, SupportsIndex

import numpy as np
from numpy.typing import ArrayLike
import scipy.sparse
from scipy.spatial import Delaunay

from pseudo3d.reconstruction.template import mediapipe_template

METRES_PER_TEMPLATE_UNIT = 0.01
"""The template is in centimetres; FLAME in metres."""
N_SHAPE, N_EXPRESSION, N_POSE_FEATURES = 300, 100, 36
ROOT_PARENT = 4294967295
"""How FLAME files mark the root's parent in ``kintree_table`` (2³² − 1)."""

RIGHT_IRIS = tuple(range(468, 473))  # subject's right (−x); 468 is the centre
LEFT_IRIS = tuple(range(473, 478))  # subject's left (+x); 473 is the centre
MOUTH_CORNERS = (61, 291)
INNER_LIP_MIDDLES = (13, 14)  # upper, lower
CHIN, NOSE_TIP = 152, 4
BROW_MIDDLES = (105, 334)

# iBUG 68 landmarks 17–67 as MediaPipe vertices (the synthetic mesh's vertices ARE those).
STATIC_68 = (
    70, 63, 105, 66, 107,                         # 17–21 right brow, outer → inner
    336, 296, 334, 293, 300,                      # 22–26 left brow, inner → outer
    168, 197, 5, 4,                               # 27–30 nose bridge, top → tip
    98, 97, 2, 326, 327,                          # 31–35 nostrils, right → left
    33, 160, 158, 133, 153, 144,                  # 36–41 right eye, outer corner, clockwise in the image
    362, 385, 387, 263, 373, 380,                 # 42–47 left eye, inner corner, clockwise in the image
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,   # 48–59 outer lips from the right corner
    78, 81, 13, 311, 308, 402, 14, 178,           # 60–67 inner lips from the right corner
)
N_CONTOUR, N_CONTOUR_BINS, MAX_YAW_DEGREES = 17, 79, 39
CONTOUR_TOP_BELOW_EYE_CORNERS = 1.0
"""The jaw contour (iBUG 0 and 16) starts this far (template cm) below the outer eye corners."""
CONTOUR_INSET = 0.03
"""Contour points are pulled this fraction towards the midline so they lie inside the mesh."""
CONTOUR_MAX_PULL = 0.5
"""At 90° of yaw the far side's contour would move this fraction towards the midline (×sin yaw)."""


@dataclass(frozen=True)
class SyntheticHead:
    """The arrays of the synthetic model (metres)."""

    vertices: np.ndarray
    """(478, 3) float64; vertex i is MediaPipe landmark i."""
    faces: np.ndarray
    """(F, 3) int64, counter-clockwise seen from +z (the viewer)."""
    joints: np.ndarray
    """(5, 3) rest joints: root, neck, jaw, left eye, right eye."""
    J_regressor: np.ndarray
    """(5, 478) dense; J_regressor @ vertices == joints."""
    weights: np.ndarray
    """(478, 5) skinning weights, rows sum to 1."""
    shapedirs: np.ndarray
    """(478, 3, 400): 300 shape then 100 expression components."""
    posedirs: np.ndarray
    """(478, 3, 36)."""


# --------------------------------------------------------------------------------------------
# Writers


def write_synthetic_flame_model(path: str | Path, *, chumpy_style: bool = False, seed: int = 0,
                                pickle_protocol: int = 2) -> Path:
    """Write a FLAME-layout pickle (``generic_model.pkl``'s keys) of the synthetic head.

    ``chumpy_style`` stores the float arrays as chumpy ``Ch`` objects carrying the state a real
    pickled ``Ch`` carries, as SMPL/FLAME's ``save_model`` leaves ``shapedirs``. Protocol 2 is
    what Python 2's ``cPickle.dump(..., -1)`` wrote; 0 exercises ``copy_reg._reconstructor``.
    """
    head = synthetic_head(seed)
    content: dict[str, object] = {
        "v_template": head.vertices.copy(),
        "f": head.faces.astype(np.uint32),
        "shapedirs": head.shapedirs.copy(),
        "posedirs": head.posedirs.copy(),
        "J_regressor": scipy.sparse.csc_matrix(head.J_regressor),
        "weights": head.weights.copy(),
        "kintree_table": np.array([[ROOT_PARENT, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        "J": head.joints.copy(),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not chumpy_style:
        with open(path, "wb") as handle:
            pickle.dump(content, handle, protocol=pickle_protocol)
        return path
    with _chumpy_importable() as chumpy_class:
        for key in ("v_template", "shapedirs", "posedirs", "weights", "J"):
            content[key] = chumpy_class(content[key])
        with open(path, "wb") as handle:
            pickle.dump(content, handle, protocol=pickle_protocol)
    return path


def write_synthetic_landmark_embedding(path: str | Path, *, seed: int = 0, torch_tensors: bool = True) -> Path:
    """Write DECA's ``landmark_embedding.npy`` layout for the synthetic head: a pickled dict in a
    0-d object ``.npy`` with ``static_lmk_faces_idx`` (51,), ``static_lmk_bary_coords`` (51, 3),
    ``dynamic_lmk_faces_idx`` (79, 17), ``dynamic_lmk_bary_coords`` (79, 17, 3),
    ``full_lmk_faces_idx`` (1, 68) and ``full_lmk_bary_coords`` (1, 68, 3). Like the real file,
    the two dynamic entries are torch tensors (``torch_tensors=False`` writes numpy arrays).

    Contour row r holds the jaw contour for a yaw of r° (r ≤ 39) or −(r − 39)° (r ≥ 40); the
    side turning away from the camera (+x for positive yaw) slides towards the midline, as a
    silhouette does.
    """
    static_faces, static_bary = _vertex_embedding(STATIC_68, seed)
    contour_faces, contour_bary = contour_table(seed)
    content = {
        "static_lmk_faces_idx": static_faces,
        "static_lmk_bary_coords": static_bary,
        "dynamic_lmk_faces_idx": contour_faces,
        "dynamic_lmk_bary_coords": contour_bary.astype(np.float32),
        "full_lmk_faces_idx": np.concatenate([contour_faces[0], static_faces])[None],
        "full_lmk_bary_coords": np.concatenate([contour_bary[0], static_bary])[None],
    }
    if torch_tensors:
        try:
            import torch
        except ImportError:
            raise ImportError("writing torch tensors like DECA's file needs PyTorch (pip install 'pseudo3d[train]'); "
                              "or pass torch_tensors=False") from None

        for key in ("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords"):
            content[key] = torch.from_numpy(np.ascontiguousarray(content[key]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:  # np.save appends ".npy" to names without it; write the name given
        np.save(handle, np.array(content, dtype=object), allow_pickle=True)
    return path


def write_synthetic_mediapipe_embedding(path: str | Path, *, seed: int = 0) -> Path:
    """Write ``mediapipe_landmark_embedding.npz`` for the synthetic head: 105 points (lips, eyes,
    brows, nose), each exactly on its MediaPipe vertex; ``landmark_indices`` are those vertices."""
    from mediapipe.python.solutions import face_mesh_connections as connections

    def vertices_of(edges: frozenset) -> list[int]:
        return sorted({i for edge in edges for i in edge})

    indices = (vertices_of(connections.FACEMESH_LIPS) + vertices_of(connections.FACEMESH_LEFT_EYE)
               + vertices_of(connections.FACEMESH_RIGHT_EYE) + vertices_of(connections.FACEMESH_LEFT_EYEBROW)
               + vertices_of(connections.FACEMESH_RIGHT_EYEBROW) + vertices_of(connections.FACEMESH_NOSE)[:13])
    faces, bary = _vertex_embedding(indices, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez(handle, lmk_face_idx=faces, lmk_b_coords=bary, landmark_indices=np.array(indices, np.int64))
    return path


def write_smplx_flame_folder(folder: str | Path, *, seed: int = 0) -> Path:
    """The folder ``smplx.FLAME(model_path=folder)`` reads: ``FLAME_NEUTRAL.pkl`` (plain numpy,
    no chumpy), ``flame_static_embedding.pkl`` (the 51 static landmarks) and
    ``flame_dynamic_embedding.npy`` (the contour table, rows in DECA's yaw convention; smplx reads
    the yaw with the opposite sign and from the global rotation only)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_synthetic_flame_model(folder / "FLAME_NEUTRAL.pkl", seed=seed)
    static_faces, static_bary = _vertex_embedding(STATIC_68, seed)
    with open(folder / "flame_static_embedding.pkl", "wb") as handle:
        pickle.dump({"lmk_face_idx": static_faces.astype(np.uint32), "lmk_b_coords": static_bary}, handle, protocol=2)
    contour_faces, contour_bary = contour_table(seed)
    with open(folder / "flame_dynamic_embedding.npy", "wb") as handle:
        np.save(handle, np.array({"lmk_face_idx": contour_faces, "lmk_b_coords": contour_bary}, dtype=object),
                allow_pickle=True)
    return folder


# --------------------------------------------------------------------------------------------
# The head


@lru_cache(maxsize=4)
def synthetic_head(seed: int = 0) -> SyntheticHead:
    """The synthetic model's arrays (cached; the arrays are read-only)."""
    template = mediapipe_template().vertices  # cm
    rng = np.random.default_rng(seed)
    vertices = template * METRES_PER_TEMPLATE_UNIT
    faces = _triangulate(vertices)
    jaw = _jaw_weights(template)
    weights = np.zeros((len(vertices), 5))
    weights[:, 1], weights[:, 2] = 1.0 - jaw, jaw
    weights[list(LEFT_IRIS)] = [0, 0, 0, 1, 0]
    weights[list(RIGHT_IRIS)] = [0, 0, 0, 0, 1]
    joints = _rest_joints(vertices)
    regressor = _joint_regressor(vertices, joints, jaw)
    shapedirs = np.concatenate([_shape_basis(template, rng), _expression_basis(template, jaw, rng)], axis=2)
    posedirs = _smooth_random_fields(template, N_POSE_FEATURES, rng, amplitude_m=0.0005, decay=np.inf)
    head = SyntheticHead(vertices=vertices, faces=faces, joints=regressor @ vertices, J_regressor=regressor,
                         weights=weights, shapedirs=shapedirs, posedirs=posedirs)
    for array in (head.vertices, head.faces, head.joints, head.J_regressor, head.weights, head.shapedirs,
                  head.posedirs):
        array.setflags(write=False)
    return head


def _triangulate(vertices: np.ndarray) -> np.ndarray:
    """Delaunay over (x, y) — the face is a height field seen from +z — oriented counter-clockwise."""
    triangulation = Delaunay(vertices[:, :2])
    if len(triangulation.coplanar):
        raise RuntimeError(f"template vertices {triangulation.coplanar[:, 0].tolist()} coincide in (x, y)")
    faces = triangulation.simplices.astype(np.int64)
    corners = vertices[faces, :2]
    edge_a, edge_b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    clockwise = edge_a[:, 0] * edge_b[:, 1] - edge_a[:, 1] * edge_b[:, 0] < 0
    faces[clockwise] = faces[clockwise][:, [0, 2, 1]]
    return faces


def _mouth_line_y(template: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Height (cm) of the parting between the lips at x: a parabola through the mouth corners and
    the middle of the inner lips, rising on towards the jaw angles."""
    corner_x = abs(template[MOUTH_CORNERS[1], 0])
    corner_y = template[list(MOUTH_CORNERS), 1].mean()
    middle_y = template[list(INNER_LIP_MIDDLES), 1].mean()
    return middle_y + (corner_y - middle_y) * (x / corner_x) ** 2


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _jaw_weights(template: np.ndarray, band_cm: float = 1.0) -> np.ndarray:
    """(V,) jaw skinning weight: 1 below the lip parting (lower lip, chin, jaw), 0 above, blended
    smoothly over ``band_cm``."""
    below = (_mouth_line_y(template, template[:, 0]) - template[:, 1]) / band_cm
    weights = _smoothstep(below + 0.5)
    weights[list(LEFT_IRIS + RIGHT_IRIS)] = 0.0
    return weights


def _rest_joints(vertices: np.ndarray) -> np.ndarray:
    """(5, 3) metres: root and neck below and behind the chin, jaw behind the mouth at the height
    of its corners, eyes at the iris centres."""
    chin = vertices[CHIN]
    corners = vertices[list(MOUTH_CORNERS)].mean(axis=0)
    neck = np.array([0.0, chin[1] - 0.01, chin[2] - 0.08])
    root = neck + np.array([0.0, -0.02, -0.005])
    jaw = np.array([0.0, corners[1], corners[2] - 0.06])
    return np.stack([root, neck, jaw, vertices[list(LEFT_IRIS)].mean(axis=0),
                     vertices[list(RIGHT_IRIS)].mean(axis=0)])


def _joint_regressor(vertices: np.ndarray, joints: np.ndarray, jaw: np.ndarray) -> np.ndarray:
    """(5, V): each joint an affine combination of a vertex group that reproduces it exactly at
    rest (the smallest change to uniform weights that does), so joints follow the shape."""
    from mediapipe.python.solutions import face_mesh_connections as connections

    oval = sorted({i for edge in connections.FACEMESH_FACE_OVAL for i in edge})
    lower_face = np.flatnonzero(jaw > 0.5).tolist()
    groups = [oval, oval, lower_face, list(LEFT_IRIS), list(RIGHT_IRIS)]
    regressor = np.zeros((len(joints), len(vertices)))
    for j, group in enumerate(groups):
        points = vertices[group]
        system = np.vstack([points.T, np.ones(len(group))])  # 4 × n
        uniform = np.full(len(group), 1.0 / len(group))
        residual = np.append(joints[j], 1.0) - system @ uniform
        regressor[j, group] = uniform + system.T @ np.linalg.solve(system @ system.T, residual)
    return regressor


def _gaussian(template: np.ndarray, centre: np.ndarray, sigma_cm: np.ndarray | float) -> np.ndarray:
    """(V,) Gaussian bump around ``centre`` (cm), per-axis ``sigma_cm``."""
    return np.exp(-0.5 * (((template - centre) / sigma_cm) ** 2).sum(axis=1))


def _shape_basis(template: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 300) metres per unit coefficient: five named components, then smooth random ones."""
    x, y, z = template.T
    centre = template.mean(axis=0)
    below_mouth = _smoothstep((_mouth_line_y(template, x) - y) / 3.0 + 0.5)
    above_eyes = np.clip(y - template[33, 1], 0.0, None)
    named = np.stack([
        np.stack([0.07 * x, 0 * x, 0 * x], axis=1),                                   # width
        np.stack([0 * y, 0.06 * (y - centre[1]), 0 * y], axis=1),                     # length
        _gaussian(template, template[NOSE_TIP], 1.5)[:, None] * [0.0, -0.04, 0.4],  # nose
        np.stack([0.06 * x * below_mouth, 0 * x, 0 * x], axis=1),                     # jaw width
        np.stack([0 * z, 0 * z, -0.08 * above_eyes], axis=1),                          # forehead slope
    ], axis=2) * METRES_PER_TEMPLATE_UNIT
    random = _smooth_random_fields(template, N_SHAPE - named.shape[2], rng, amplitude_m=0.004, decay=15.0)
    return np.concatenate([named, random], axis=2)


def _expression_basis(template: np.ndarray, jaw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 100) metres per unit coefficient: eight named lower-face/brow movements, then small
    smooth random lower-face ones."""
    x = template[:, 0]
    corner_x = abs(template[MOUTH_CORNERS[1], 0])
    mouth_centre = template[list(MOUTH_CORNERS + INNER_LIP_MIDDLES)].mean(axis=0)
    mouth = _gaussian(template, mouth_centre, np.array([3.5, 2.0, 10.0]))
    lips = _gaussian(template, mouth_centre, np.array([2.5, 1.2, 10.0]))
    side = np.clip(x / corner_x, -1.5, 1.5)
    corners = sum(_gaussian(template, template[i], 1.2) for i in MOUTH_CORNERS)
    brows = sum(_gaussian(template, template[i], np.array([2.0, 1.0, 10.0])) for i in BROW_MIDDLES)
    inner_brows = sum(_gaussian(template, template[i], 0.8) for i in (107, 336))
    upper_lip = lips * (1.0 - jaw)
    cheeks = sum(_gaussian(template, template[MOUTH_CORNERS[k]] + [(-2.0, 2.0)[k], 1.0, 0.0], 1.5) for k in (0, 1))
    zero = np.zeros_like(x)

    def field(dx: ArrayLike, dy: ArrayLike, dz: ArrayLike) -> np.ndarray:
        return np.stack([dx, dy, dz], axis=1)

    named = np.stack([
        field(0.4 * side * mouth, zero, -0.1 * mouth),                 # mouth stretch
        field(-0.3 * side * lips, zero, 0.4 * lips),                   # lip rounding
        field(0.1 * np.sign(x) * corners, 0.4 * corners, -0.2 * corners),  # smile
        field(zero, 0.4 * brows, zero),                                # brow raise
        field(zero, -0.5 * jaw * lips, 0.05 * jaw * lips),             # lower lip down
        field(zero, 0.3 * upper_lip, 0.1 * upper_lip),                 # upper lip raise
        field(-0.2 * np.sign(x) * inner_brows, -0.3 * inner_brows, zero),  # frown
        field(0.2 * np.sign(x) * cheeks, zero, 0.2 * cheeks),          # cheek puff
    ], axis=2) * METRES_PER_TEMPLATE_UNIT
    lower_face = _smoothstep((template[NOSE_TIP, 1] - template[:, 1]) / 4.0 + 0.5)
    random = _smooth_random_fields(template, N_EXPRESSION - named.shape[2], rng, amplitude_m=0.002, decay=10.0)
    return np.concatenate([named, random * lower_face[:, None, None]], axis=2)


def _smooth_random_fields(template: np.ndarray, count: int, rng: np.random.Generator, *,
                          amplitude_m: float, decay: float) -> np.ndarray:
    """(V, 3, count) smooth displacement fields: each a sum of three Gaussian bumps (σ 2.5–5 cm)
    at random vertices with random directions, scaled so component k peaks at
    ``amplitude_m / (1 + k / decay)`` metres."""
    n_bumps = 3
    centres = template[rng.integers(0, len(template), size=(count, n_bumps))]  # count × bumps × 3
    sigmas = rng.uniform(2.5, 5.0, size=(count, n_bumps))
    directions = rng.normal(size=(count, n_bumps, 3))
    distance_sq = ((template[None, None] - centres[:, :, None]) ** 2).sum(-1)  # count × bumps × V
    bumps = np.exp(-0.5 * distance_sq / sigmas[..., None] ** 2)
    fields = np.einsum("kbv,kbc->vck", bumps, directions)
    peaks = np.linalg.norm(fields, axis=1).max(axis=0)
    scale = amplitude_m / (1.0 + np.arange(count) / decay)
    return fields * (scale / peaks)


# --------------------------------------------------------------------------------------------
# Embeddings


def _vertex_embedding(vertex_ids: tuple[int, ...] | list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(faces (L,), bary (L, 3)) putting each point exactly on its vertex: a face that uses it,
    with barycentric weight 1 on that corner."""
    faces = synthetic_head(seed).faces
    face_ids = np.empty(len(vertex_ids), np.int64)
    bary = np.zeros((len(vertex_ids), 3))
    for n, vertex in enumerate(vertex_ids):
        rows, corners = np.nonzero(faces == vertex)
        if len(rows) == 0:
            raise RuntimeError(f"vertex {vertex} is in no face of the synthetic mesh")
        face_ids[n], bary[n, corners[0]] = rows[0], 1.0
    return face_ids, bary


@lru_cache(maxsize=4)
def _triangulation(seed: int) -> Delaunay:
    """The Delaunay triangulation behind ``synthetic_head(seed).faces`` (same simplices, same order)."""
    faces = synthetic_head(seed).faces
    triangulation = Delaunay(synthetic_head(seed).vertices[:, :2])
    if not np.array_equal(np.sort(triangulation.simplices, axis=1), np.sort(faces, axis=1)):
        raise RuntimeError("the Delaunay triangulation is not reproducible")
    return triangulation


def _embed_xy(points_xy: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(faces (N,), bary (N, 3)) of the mesh point above each (x, y) (metres)."""
    head = synthetic_head(seed)
    face_ids = _triangulation(seed).find_simplex(points_xy)
    if np.any(face_ids < 0):
        raise RuntimeError(f"points {points_xy[face_ids < 0].tolist()} are outside the synthetic mesh")
    corners = head.vertices[head.faces[face_ids], :2]  # N × 3 × 2
    edges = np.stack([corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]], axis=2)  # N × 2 × 2
    uv = np.linalg.solve(edges, (points_xy - corners[:, 0])[..., None])[..., 0]
    return face_ids.astype(np.int64), np.column_stack([1.0 - uv.sum(axis=1), uv])


def _jaw_contour(seed: int) -> np.ndarray:
    """(17, 2) (x, y) metres of iBUG 0–16 at zero yaw: evenly spaced along the lower face oval
    from the subject's right, at a little below eye level, round the chin to the left."""
    from mediapipe.python.solutions import face_mesh_connections as connections

    vertices = synthetic_head(seed).vertices
    neighbours: dict[int, list[int]] = {}
    for a, b in connections.FACEMESH_FACE_OVAL:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    loop = [CHIN]
    while len(loop) < len(neighbours):
        options = [n for n in neighbours[loop[-1]] if n not in loop]
        loop.append(min(options, key=lambda n: vertices[n, 0]) if len(loop) == 1 else options[0])
    # loop starts at the chin, walks towards −x, round the top, and comes back along +x
    top = vertices[33, 1] - CONTOUR_TOP_BELOW_EYE_CORNERS * METRES_PER_TEMPLATE_UNIT
    points = vertices[loop + [CHIN], :2]
    right = _polyline_until(points, top)
    left = _polyline_until(points[::-1], top)
    polyline = np.concatenate([right[::-1], left[1:]])
    lengths = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(polyline, axis=0), axis=1))])
    stations = np.linspace(0.0, lengths[-1], N_CONTOUR)
    contour = np.column_stack([np.interp(stations, lengths, polyline[:, k]) for k in range(2)])
    contour[:, 0] *= 1.0 - CONTOUR_INSET
    contour[:, 1] += CONTOUR_INSET * (vertices[:, 1].mean() - contour[:, 1])
    return contour


def _polyline_until(points: np.ndarray, top_y: float) -> np.ndarray:
    """The start of a polyline up to where it first rises to ``top_y`` (that point interpolated)."""
    for n in range(1, len(points)):
        if points[n, 1] >= top_y:
            t = (top_y - points[n - 1, 1]) / (points[n, 1] - points[n - 1, 1])
            return np.vstack([points[:n], points[n - 1] + t * (points[n] - points[n - 1])])
    raise RuntimeError("the face oval never reaches the contour's top")


def contour_table(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(faces (79, 17), bary (79, 17, 3)): the jaw contour per yaw bin (see
    :func:`write_synthetic_landmark_embedding`)."""
    base = _jaw_contour(seed)
    height = np.abs(np.arange(N_CONTOUR) - N_CONTOUR // 2) / (N_CONTOUR // 2)  # 0 at the chin, 1 at the ends
    faces = np.empty((N_CONTOUR_BINS, N_CONTOUR), np.int64)
    bary = np.empty((N_CONTOUR_BINS, N_CONTOUR, 3))
    for row in range(N_CONTOUR_BINS):
        yaw = np.radians(row if row <= MAX_YAW_DEGREES else MAX_YAW_DEGREES - row)
        away_side = np.sign(base[:, 0]) == np.sign(yaw)
        pull = np.where(away_side, CONTOUR_MAX_PULL * abs(np.sin(yaw)) * height, 0.0)
        points = base * np.column_stack([1.0 - pull, np.ones(N_CONTOUR)])
        faces[row], bary[row] = _embed_xy(points, seed)
    return faces, bary


# --------------------------------------------------------------------------------------------
# Pickling like chumpy without chumpy


class _ChumpyLike:
    """Pickles as its subclass registered under ``chumpy.ch.Ch``, with the state a real ``Ch``
    pickles: its ``__dict__`` minus the weak-reference caches ``_parents`` and ``_cache``."""

    def __init__(self, x: np.ndarray):
        self.state = {"x": np.asarray(x, np.float64), "_dirty_vars": {"x"}, "_itr": None,
                      "_depends_on_deps": {}, "_make_dense": False, "_make_sparse": False}

    def __reduce_ex__(self, protocol: SupportsIndex):
        if int(protocol) >= 2:
            return copyreg.__newobj__, (type(self),), self.state  # type: ignore[attr-defined]
        return copyreg._reconstructor, (type(self), object, None), self.state  # type: ignore[attr-defined]


@contextmanager
def _chumpy_importable() -> Iterator[type]:
    """Temporarily register stand-in ``chumpy`` / ``chumpy.ch`` modules whose ``Ch`` the pickler
    can name; yields that class (construct it from an array)."""
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    stand_in = type("Ch", (_ChumpyLike,), {"__module__": "chumpy.ch", "__qualname__": "Ch"})
    module.Ch = stand_in  # type: ignore[attr-defined]
    package.ch = module  # type: ignore[attr-defined]
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = package, module
    try:
        yield stand_in
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
