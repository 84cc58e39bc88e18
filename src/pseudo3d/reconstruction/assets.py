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

Both go through :class:`_RestrictedUnpickler`: its ``find_class`` admits only an explicit
allow-list (numpy array reconstruction, ``scipy.sparse`` matrices, chumpy ``Ch``, torch tensors and
storages, a few builtins), and every admitted name maps to a small stand-in written here that
produces plain numpy arrays. Nothing named in the file is imported or run, so chumpy and torch
are not needed to read them, and a pickle that names anything else (``os.system``, ...) is
refused with an :class:`~pseudo3d.errors.AssetError` naming the file and the refused name.

MediaPipe's ``mediapipe_landmark_embedding.npz`` holds plain arrays and loads with
``allow_pickle=False``.

Units and frames are the file's: FLAME's are metres, head frame x to the subject's left, y up,
z out of the face.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

import numpy as np
import scipy.sparse

from pseudo3d.errors import AssetError
from pseudo3d.reconstruction.asset_files import file_sha256, require_file

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
        content = _plain(_unpickle(handle, path, MODEL_WHAT), path, MODEL_WHAT)
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


def safe_unpickle(data: bytes | BinaryIO, *, source: str | Path, what: str) -> Any:
    """Unpickle untrusted data with the allow-list, returning plain Python/numpy objects (chumpy
    arrays as ndarrays, sparse matrices as dense ndarrays, torch tensors as ndarrays).
    ``source`` and ``what`` name the data in errors."""
    handle = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    return _plain(_unpickle(handle, Path(source), what), Path(source), what)


# --------------------------------------------------------------------------------------------
# Embeddings


def _load_flame68_embedding(path: Path) -> Flame68Embedding:
    content = _read_pickled_npy(path, EMBEDDING_WHAT)
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


def _read_pickled_npy(path: Path, what: str) -> Any:
    """The object a ``.npy`` holds, its pickled payload (object dtype) unpickled with the
    allow-list instead of ``allow_pickle=True``."""
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except ValueError as error:
            raise AssetError(f"{what} {path}: not a readable .npy file ({error})") from None
        if dtype.hasobject:
            return _plain(_unpickle(handle, path, what), path, what)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        raise AssetError(f"{what} {path}: not a readable .npy file ({error})") from None


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


# --------------------------------------------------------------------------------------------
# The restricted unpickler and its stand-ins


class _ChumpyArray:
    """What a pickled ``chumpy.ch.Ch`` becomes: its state dict, whose ``x`` is the array."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _SparseMatrix:
    """What a pickled ``scipy.sparse`` matrix becomes: its state dict, turned into a dense array
    by :func:`_plain` (``layout`` is csc, csr or coo)."""

    layout = ""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _CscMatrix(_SparseMatrix):
    layout = "csc"


class _CsrMatrix(_SparseMatrix):
    layout = "csr"


class _CooMatrix(_SparseMatrix):
    layout = "coo"


_STAND_INS = (_ChumpyArray, _CscMatrix, _CsrMatrix, _CooMatrix)


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocol 0/1 pickles of plain classes), for stand-ins only."""
    if cls not in _STAND_INS or base is not object or state is not None:
        raise pickle.UnpicklingError(f"copyreg._reconstructor is only allowed for arrays, got {cls!r}")
    return object.__new__(cls)


def _latin1_bytes(text: Any, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 uses it in protocol 0–2 pickles of ``bytes``."""
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError("_codecs.encode is only allowed as encode(str, 'latin1')")
    return text.encode("latin1")


def _tensor_from_storage(storage: Any, offset: int, size: Any, stride: Any, *_ignored: Any) -> np.ndarray:
    """``torch._utils._rebuild_tensor(_v2)``: a strided view of a flat storage, as an ndarray copy."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise pickle.UnpicklingError("a pickled tensor must be built from a tensor storage")
    size = tuple(int(n) for n in size)
    stride = tuple(int(s) for s in stride)
    offset = int(offset)
    if len(size) != len(stride) or any(n < 0 for n in size) or any(s < 0 for s in stride) or offset < 0:
        raise pickle.UnpicklingError(f"invalid tensor layout: size {size}, stride {stride}, offset {offset}")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.shape[0]:
        raise pickle.UnpicklingError(f"tensor of size {size} reaches past its storage of {storage.shape[0]} elements")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=tuple(s * storage.itemsize for s in stride))
    return view.copy()


_TORCH_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_TORCH_NUMPY_DTYPES = frozenset(np.dtype(dtype) for dtype in _TORCH_STORAGE_DTYPES.values())
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_TORCH_PROTOCOL = 1001


@dataclass(frozen=True)
class _StorageType:
    """What ``torch.FloatStorage`` etc. become inside a nested ``torch.save`` blob."""

    dtype: np.dtype


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int
    view: tuple[int, int] | None
    """(offset, size) of a legacy storage view, None for the whole storage."""


def _storage_ref(pid: Any) -> _StorageRef:
    """A ``torch.save`` persistent id ``('storage', type, key, location, numel[, view])``."""
    if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage" \
            or not isinstance(pid[1], _StorageType):
        raise pickle.UnpicklingError(f"unsupported persistent reference {pid!r:.80}")
    if np.dtype(pid[1].dtype) not in _TORCH_NUMPY_DTYPES:
        raise pickle.UnpicklingError(f"unsupported storage type {pid[1]!r}")
    view = pid[5] if len(pid) == 6 else None
    if view is not None:
        view = (int(view[1]), int(view[2]))
    return _StorageRef(key=str(pid[2]), dtype=np.dtype(pid[1].dtype), numel=int(pid[4]), view=view)


def _load_torch_storage(blob: Any, source: Path, what: str) -> np.ndarray:
    """``torch.storage._load_from_bytes``: a storage that ``torch.save`` wrote into ``blob``
    (legacy stream or zip archive), as a flat ndarray; read without torch."""
    if not isinstance(blob, (bytes, bytearray)):
        raise pickle.UnpicklingError("torch.storage._load_from_bytes needs bytes")
    allowed = {("torch", name): _StorageType(np.dtype(dtype)) for name, dtype in _TORCH_STORAGE_DTYPES.items()}
    refs: list[_StorageRef] = []

    def remember(pid: Any) -> _StorageRef:
        refs.append(_storage_ref(pid))
        return refs[-1]

    if bytes(blob[:4]) == _ZIP_MAGIC:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise pickle.UnpicklingError("nested torch archive has no single data.pkl")
            prefix = pickles[0][: -len("data.pkl")]
            if f"{prefix}byteorder" in archive.namelist() and archive.read(f"{prefix}byteorder") != b"little":
                raise pickle.UnpicklingError("big-endian torch storages are not supported")
            root = _unpickle(io.BytesIO(archive.read(pickles[0])), source, what, allowed, remember)
            data = {ref.key: np.frombuffer(archive.read(f"{prefix}data/{ref.key}"), ref.dtype) for ref in refs}
    else:
        stream = io.BytesIO(blob)
        magic = _unpickle(stream, source, what, {})
        protocol = _unpickle(stream, source, what, {})
        sys_info = _unpickle(stream, source, what, {})
        if magic != _LEGACY_TORCH_MAGIC or protocol != _LEGACY_TORCH_PROTOCOL:
            raise pickle.UnpicklingError("nested torch storage is not in a known torch.save format")
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise pickle.UnpicklingError("big-endian torch storages are not supported")
        root = _unpickle(stream, source, what, allowed, remember)
        keys = _unpickle(stream, source, what, {})
        dtypes = {ref.key: ref.dtype for ref in refs}
        data = {}
        for key in keys:
            if key not in dtypes:
                raise pickle.UnpicklingError(f"storage {key!r} is listed but never referenced")
            numel = int.from_bytes(stream.read(8), "little", signed=True)
            raw = stream.read(numel * dtypes[key].itemsize)
            if numel < 0 or len(raw) != numel * dtypes[key].itemsize:
                raise pickle.UnpicklingError(f"storage {key!r} is truncated")
            data[key] = np.frombuffer(raw, dtypes[key])
    if not isinstance(root, _StorageRef) or root.key not in data:
        raise pickle.UnpicklingError("nested torch blob does not hold a single storage")
    array = data[root.key]
    if root.view is not None:
        start, length = root.view
        array = array[start:start + length]
    return array.copy()


def _numpy_allowed() -> dict[tuple[str, str], Any]:
    try:  # numpy ≥ 2 keeps the implementation in numpy._core; 1.x in numpy.core
        from numpy._core import multiarray, numeric  # type: ignore[import-not-found]
    except ImportError:
        from numpy.core import multiarray, numeric
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{module}.multiarray", "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):
            allowed[(f"{module}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


def _base_allowed(source: Path, what: str) -> dict[tuple[str, str], Any]:
    allowed = _numpy_allowed()
    allowed.update({
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "object"): object,
        ("collections", "OrderedDict"): OrderedDict,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("_codecs", "encode"): _latin1_bytes,
        ("chumpy.ch", "Ch"): _ChumpyArray, ("chumpy", "Ch"): _ChumpyArray,
        ("torch._utils", "_rebuild_tensor"): _tensor_from_storage,
        ("torch._utils", "_rebuild_tensor_v2"): _tensor_from_storage,
        ("torch.storage", "_load_from_bytes"): lambda blob: _load_torch_storage(blob, source, what),
    })
    for module in ("scipy.sparse", "scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr",
                   "scipy.sparse._csr", "scipy.sparse.coo", "scipy.sparse._coo"):
        for stand_in in (_CscMatrix, _CsrMatrix, _CooMatrix):
            allowed[(module, f"{stand_in.layout}_matrix")] = stand_in
            allowed[(module, f"{stand_in.layout}_array")] = stand_in
    return allowed


_PYTHON2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose globals come only from ``allowed`` ((module, name) → object); anything
    else raises :class:`AssetError` naming the file and the refused ``module.name``."""

    def __init__(self, file: BinaryIO, source: Path, what: str, allowed: Mapping[tuple[str, str], Any],
                 persistent: Callable[[Any], Any] | None):
        super().__init__(file, encoding="latin1")
        self._source, self._what, self._allowed, self._persistent = source, what, allowed, persistent

    def find_class(self, module: str, name: str) -> Any:
        key = (_PYTHON2_MODULES.get(module, module), name)
        if key not in self._allowed:
            raise AssetError(
                f"{self._what} {self._source}: refused to unpickle {module}.{name}; only numpy arrays, "
                f"scipy sparse matrices, chumpy arrays and torch tensors are allowed, so the file is "
                f"not the expected asset (or was tampered with)")
        return self._allowed[key]

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise pickle.UnpicklingError("persistent references are not allowed here")
        return self._persistent(pid)


def _unpickle(handle: BinaryIO, source: Path, what: str,
              allowed: Mapping[tuple[str, str], Any] | None = None,
              persistent: Callable[[Any], Any] | None = None) -> Any:
    """One pickle from ``handle``; every failure becomes an :class:`AssetError` naming ``source``."""
    if allowed is None:
        allowed = _base_allowed(source, what)
    try:
        return _RestrictedUnpickler(handle, source, what, allowed, persistent).load()
    except AssetError:
        raise
    except Exception as error:  # a malformed pickle can raise almost anything; all mean "bad file"
        raise AssetError(f"{what} {source}: not a readable pickle of the expected arrays "
                         f"({type(error).__name__}: {error})") from None


def _plain(obj: Any, source: Path, what: str) -> Any:
    """Replace stand-ins by ndarrays, recursively through dicts, lists and tuples."""
    if isinstance(obj, _ChumpyArray):
        state = getattr(obj, "state", None)
        if not isinstance(state, dict) or "x" not in state:
            raise AssetError(f"{what} {source}: a pickled chumpy array has no 'x' (its value); only "
                             f"plain chumpy arrays (Ch), not chumpy expressions, are supported")
        return np.asarray(_plain(state["x"], source, what))
    if isinstance(obj, _SparseMatrix):
        return _dense(obj, source, what)
    if isinstance(obj, dict):
        return {key: _plain(value, source, what) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(value, source, what) for value in obj)
    return obj


def _dense(matrix: _SparseMatrix, source: Path, what: str) -> np.ndarray:
    state = getattr(matrix, "state", None)
    if not isinstance(state, dict):
        raise AssetError(f"{what} {source}: a pickled sparse matrix has no state")
    shape = state.get("_shape", state.get("shape"))
    try:
        shape = (int(shape[0]), int(shape[1]))
        if matrix.layout == "coo":
            built = scipy.sparse.coo_matrix((state["data"], (state["row"], state["col"])), shape=shape)
        else:
            factory = scipy.sparse.csc_matrix if matrix.layout == "csc" else scipy.sparse.csr_matrix
            built = factory((state["data"], state["indices"], state["indptr"]), shape=shape)
            built.check_format(full_check=True)
        return np.asarray(built.toarray(), dtype=np.float64)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise AssetError(f"{what} {source}: a pickled {matrix.layout} sparse matrix is malformed ({error})") from None
