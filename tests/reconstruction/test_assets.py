"""Safe loading of FLAME model pickles and landmark embeddings."""

from __future__ import annotations

import io
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from pseudo3d.errors import AssetError
from pseudo3d.reconstruction.assets import (
    Flame68Embedding, MediaPipeEmbedding, load_flame_model, load_landmark_embedding)
from pseudo3d.reconstruction.safe_pickle import safe_unpickle
from pseudo3d.files import file_sha256
from pseudo3d.testing.flame_assets import (
    synthetic_head, write_synthetic_flame_model, write_synthetic_landmark_embedding,
    write_synthetic_mediapipe_embedding)


class RunsCode:
    """Pickles as a call to ``os.system`` — what a malicious asset would carry."""

    def __init__(self, marker: Path):
        self.command = f"touch {marker}"

    def __reduce__(self):
        return os.system, (self.command,)


class PicklesAs:
    """Pickles as ``function(*args)`` with a given state: builds pickles like other writers'."""

    def __init__(self, function, args, state=None):
        self.reduced = (function, args) if state is None else (function, args, state)

    def __reduce__(self):
        return self.reduced


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return write_synthetic_flame_model(tmp_path_factory.mktemp("model") / "generic_model.pkl")


def model_content() -> dict:
    head = synthetic_head(0)
    return {"v_template": head.vertices, "f": head.faces, "shapedirs": head.shapedirs, "posedirs": head.posedirs,
            "J_regressor": head.J_regressor, "weights": head.weights,
            "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]])}


def dump(path: Path, content) -> Path:
    path.write_bytes(pickle.dumps(content, protocol=2))
    return path


@pytest.mark.parametrize("chumpy_style", [False, True])
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_model_loads_to_the_written_arrays(tmp_path, chumpy_style, protocol):
    path = write_synthetic_flame_model(tmp_path / "generic_model.pkl", chumpy_style=chumpy_style,
                                       pickle_protocol=protocol)
    if chumpy_style:
        assert b"chumpy.ch" in path.read_bytes() and "chumpy" not in sys.modules
    assets = load_flame_model(path)
    head = synthetic_head(0)
    np.testing.assert_array_equal(assets.v_template, head.vertices)
    np.testing.assert_array_equal(assets.shapedirs, head.shapedirs)
    np.testing.assert_array_equal(assets.posedirs, head.posedirs)
    np.testing.assert_array_equal(assets.weights, head.weights)
    np.testing.assert_array_equal(assets.faces, head.faces)
    np.testing.assert_allclose(assets.J_regressor, head.J_regressor, atol=0)
    assert assets.faces.dtype == np.int64 and assets.J_regressor.shape == (5, 478)
    assert assets.parents == (-1, 0, 1, 1, 1)
    assert (assets.n_shape_available, assets.n_expression_available) == (300, 100)
    assert assets.sha256 == file_sha256(path)


def test_python2_style_array_state_loads(tmp_path):
    """Python 2 pickles keep an array's bytes in a ``str``; with latin1 they arrive as text."""
    try:
        from numpy.core.multiarray import _reconstruct
    except ImportError:  # numpy 2
        from numpy._core.multiarray import _reconstruct
    array = np.arange(12, dtype=np.float64).reshape(4, 3)
    as_python2 = PicklesAs(_reconstruct, (np.ndarray, (0,), "b"),
                           (1, array.shape, array.dtype, False, array.tobytes().decode("latin1")))
    np.testing.assert_array_equal(safe_unpickle(pickle.dumps({"a": as_python2}, protocol=2),
                                                source="py2.pkl", what="test")["a"], array)


def test_code_in_a_model_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker"
    path = dump(tmp_path / "generic_model.pkl", {**model_content(), "evil": RunsCode(marker)})
    with pytest.raises(AssetError, match=r"generic_model\.pkl: refused to unpickle (posix|os|nt)\.system"):
        load_flame_model(path)
    assert not marker.exists()
    # the same object run through plain pickle would have created the marker: the test is real
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_code_in_a_deca_embedding_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "landmark_embedding.npy"
    with open(path, "wb") as handle:
        np.save(handle, np.array({"static_lmk_faces_idx": RunsCode(marker)}, dtype=object), allow_pickle=True)
    with pytest.raises(AssetError, match=r"landmark_embedding\.npy: refused to unpickle (posix|os|nt)\.system"):
        load_landmark_embedding(path)
    assert not marker.exists()


def test_code_inside_a_nested_torch_blob_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "marker"
    blob = pickle.dumps(RunsCode(marker), protocol=2)
    with pytest.raises(AssetError, match=r"refused to unpickle (posix|os|nt)\.system"):
        safe_unpickle(pickle.dumps(PicklesAs(torch.storage._load_from_bytes, (blob,))), source="x.npy", what="test")
    assert not marker.exists()


def test_missing_directory_and_wrong_kind_of_file(tmp_path, model_path):
    with pytest.raises(AssetError, match=r"FLAME model .* not found: .*nowhere\.pkl"):
        load_flame_model(tmp_path / "nowhere.pkl")
    with pytest.raises(AssetError, match="must be a file, got a directory"):
        load_flame_model(tmp_path)
    text = tmp_path / "notes.pkl"
    text.write_text("not a pickle\n")
    with pytest.raises(AssetError, match=r"notes\.pkl: not a readable pickle"):
        load_flame_model(text)
    npz = write_synthetic_mediapipe_embedding(tmp_path / "embedding.npz")
    with pytest.raises(AssetError, match=r"embedding\.npz: expected a pickle, got a \.npz/\.npy file"):
        load_flame_model(npz)
    with pytest.raises(AssetError, match="expected a pickled dict of arrays, got list"):
        load_flame_model(dump(tmp_path / "list.pkl", [1, 2]))
    with pytest.raises(AssetError, match=r"landmark embedding .*generic_model\.pkl: not a \.npy or \.npz file"):
        load_landmark_embedding(model_path)


@pytest.mark.parametrize("field, value, message", [
    ("shapedirs", np.zeros((478, 2, 400)), r"'shapedirs' must have shape \(478, 3, N\), got \(478, 2, 400\)"),
    ("posedirs", np.zeros((478, 3, 35)), r"'posedirs' must have shape \(478, 3, 36\)"),
    ("J_regressor", np.zeros((4, 478)), r"'J_regressor' must have shape \(5, 478\)"),
    ("weights", None, r"field 'weights' is missing \(fields present: J_regressor, f, "),
    ("f", np.array([[0, 1, 478]]), r"'f' holds indices outside 0\.\.477"),
    ("v_template", np.full((478, 3), np.nan), "'v_template' holds NaN"),
    ("kintree_table", np.array([[-1, 0, 1, 4, 1], [0, 1, 2, 3, 4]]), "gives joint 3 the parent 4"),
    ("shapedirs", "text", "'shapedirs' is not a numeric array"),
])
def test_wrong_fields_are_named(tmp_path, field, value, message):
    content = model_content()
    if value is None:
        del content[field]
    else:
        content[field] = value
    path = dump(tmp_path / "bad_model.pkl", content)
    with pytest.raises(AssetError, match=r"bad_model\.pkl: .*" + message):
        load_flame_model(path)


def test_deca_embedding_with_torch_tensors_loads_without_torch_unpickling(tmp_path):
    pytest.importorskip("torch")
    with_tensors = load_landmark_embedding(write_synthetic_landmark_embedding(tmp_path / "a.npy"))
    plain = load_landmark_embedding(write_synthetic_landmark_embedding(tmp_path / "b.npy", torch_tensors=False))
    assert b"torch._utils" in (tmp_path / "a.npy").read_bytes()
    assert isinstance(with_tensors, Flame68Embedding)
    for name in ("static_faces", "static_bary", "contour_faces", "contour_bary", "full_faces", "full_bary"):
        np.testing.assert_allclose(getattr(with_tensors, name), getattr(plain, name), atol=1e-7, err_msg=name)
    assert with_tensors.contour_faces.shape == (79, 17) and with_tensors.full_faces.shape == (68,)


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")
def test_torch_tensors_views_and_zip_storages_unpickle_to_numpy():
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32).view(4, 6)
    views = {"transposed": base.t(), "sliced": base[1:, ::2], "long": torch.arange(5), "bool": base > 3,
             "empty": torch.zeros(0, 3)}
    loaded = safe_unpickle(pickle.dumps(views), source="tensors.pkl", what="test")
    for name, tensor in views.items():
        np.testing.assert_array_equal(loaded[name], tensor.numpy(), err_msg=name)
        assert loaded[name].dtype == tensor.numpy().dtype
    buffer = io.BytesIO()
    torch.save(torch.arange(7, dtype=torch.float64).storage(), buffer)  # zip format, as torch ≥ 1.6 writes
    storage = safe_unpickle(pickle.dumps(PicklesAs(torch.storage._load_from_bytes, (buffer.getvalue(),))),
                            source="zip.pkl", what="test")
    np.testing.assert_array_equal(storage, np.arange(7, dtype=np.float64))


def test_mediapipe_embedding_loads_with_plain_arrays_only(tmp_path):
    embedding = load_landmark_embedding(write_synthetic_mediapipe_embedding(tmp_path / "m.npz"))
    assert isinstance(embedding, MediaPipeEmbedding)
    assert embedding.faces.shape == (105,) and embedding.bary.shape == (105, 3)
    with_object = tmp_path / "object.npz"
    np.savez(with_object, lmk_face_idx=np.array([1, 2]), lmk_b_coords=np.zeros((2, 3)),
             landmark_indices=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(AssetError, match=r"object\.npz: not a readable \.npz of plain arrays"):
        load_landmark_embedding(with_object)
    short = tmp_path / "short.npz"
    np.savez(short, lmk_face_idx=np.array([1, 2]), lmk_b_coords=np.zeros((3, 3)), landmark_indices=np.array([1, 2]))
    with pytest.raises(AssetError, match=r"short\.npz: field 'lmk_b_coords' must have shape \(2, 3\)"):
        load_landmark_embedding(short)
    beyond = tmp_path / "beyond.npz"
    np.savez(beyond, lmk_face_idx=np.array([1]), lmk_b_coords=np.zeros((1, 3)), landmark_indices=np.array([478]))
    with pytest.raises(AssetError, match=r"'landmark_indices' holds indices outside 0\.\.477"):
        load_landmark_embedding(beyond)


def test_deca_embedding_with_wrong_shapes_is_named(tmp_path):
    path = write_synthetic_landmark_embedding(tmp_path / "landmark_embedding.npy", torch_tensors=False)
    content = np.load(path, allow_pickle=True).item()  # our own file: trusted
    content["dynamic_lmk_bary_coords"] = content["dynamic_lmk_bary_coords"][:, :16]
    bad = tmp_path / "bad_embedding.npy"
    with open(bad, "wb") as handle:
        np.save(handle, np.array(content, dtype=object), allow_pickle=True)
    with pytest.raises(AssetError, match=r"bad_embedding\.npy: field 'dynamic_lmk_bary_coords' must have "
                                         r"shape \(79, 17, 3\), got \(79, 16, 3\)"):
        load_landmark_embedding(bad)
    numbers = tmp_path / "numbers.npy"
    np.save(numbers, np.zeros(3))
    with pytest.raises(AssetError, match=r"numbers\.npy: expected DECA's pickled dict in the \.npy, got ndarray"):
        load_landmark_embedding(numbers)
