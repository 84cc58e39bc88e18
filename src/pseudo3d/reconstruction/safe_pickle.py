"""Unpickling untrusted asset files without running them.

:class:`RestrictedUnpickler`'s ``find_class`` admits only an explicit allow-list (numpy array
reconstruction, ``scipy.sparse`` matrices, chumpy ``Ch``, torch tensors and storages, a few
builtins), and every admitted name maps to a small stand-in written here that produces plain
numpy arrays. Nothing named in the file is imported or run, so chumpy and torch are not needed to
read FLAME pickles or DECA's landmark embedding, and a pickle that names anything else
(``os.system``, ...) is refused with an :class:`~pseudo3d.errors.AssetError` naming the file and
the refused name. :func:`safe_unpickle` is the entry point; :func:`read_pickled_npy` reads a
``.npy`` whose payload is a pickle.
"""

from __future__ import annotations

import importlib
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

_ZIP_MAGIC = b"PK\x03\x04"


def safe_unpickle(data: bytes | BinaryIO, *, source: str | Path, what: str) -> Any:
    """Unpickle untrusted data with the allow-list, returning plain Python/numpy objects (chumpy
    arrays as ndarrays, sparse matrices as dense ndarrays, torch tensors as ndarrays).
    ``source`` and ``what`` name the data in errors."""
    handle = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    return _plain(_unpickle(handle, Path(source), what), Path(source), what)


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
    # numpy ≥ 2 keeps the implementation in numpy._core; 1.x in numpy.core (imported by name: each
    # numpy's stubs know only one of them)
    try:
        multiarray, numeric = (importlib.import_module(f"numpy._core.{name}") for name in ("multiarray", "numeric"))
    except ImportError:
        multiarray, numeric = (importlib.import_module(f"numpy.core.{name}") for name in ("multiarray", "numeric"))
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
    shape: Any = state.get("_shape", state.get("shape"))  # None (neither key) is refused below, as a TypeError
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


def read_pickled_npy(path: Path, what: str) -> Any:
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
            return safe_unpickle(handle, source=path, what=what)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        raise AssetError(f"{what} {path}: not a readable .npy file ({error})") from None
