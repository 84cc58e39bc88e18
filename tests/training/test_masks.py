"""Metric regions: FLAME_masks.pkl through the restricted unpickler, and the MediaPipe sets."""

from __future__ import annotations

import os
import pickle
import pickletools

import numpy as np
import pytest

from pseudo3d.errors import AssetError
from pseudo3d.testing.flame_assets import INNER_LIP_MIDDLES, LEFT_IRIS, RIGHT_IRIS, synthetic_head
from pseudo3d.training.masks import (
    FLAME_MASK_REGIONS, Regions, load_flame_masks, load_flame_regions, regions_from_flame_masks,
    synthetic_regions_for_flame_head, synthetic_regions_mediapipe, write_synthetic_flame_masks)


@pytest.fixture(scope="module")
def masks_path(tmp_path_factory):
    return write_synthetic_flame_masks(tmp_path_factory.mktemp("flame") / "FLAME_masks.pkl")


def test_synthetic_file_is_written_like_python2(masks_path):
    data = masks_path.read_bytes()
    opcodes = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]
    assert opcodes[0] == ("PROTO", 2)
    names = {name for name, _ in opcodes}
    assert "SHORT_BINSTRING" in names or "BINSTRING" in names  # Python 2 str, not _codecs.encode
    assert not any(name == "GLOBAL" and arg.startswith("_codecs") for name, arg in opcodes)
    assert not masks_path.with_name(masks_path.name + ".partial").exists()


def test_load_flame_masks_reads_the_layout(masks_path):
    masks = load_flame_masks(masks_path)
    assert set(masks) == set(FLAME_MASK_REGIONS)
    assert all(indices.dtype == np.int64 and indices.ndim == 1 for indices in masks.values())
    with open(masks_path, "rb") as handle:  # our own file: trusted, compare with plain pickle
        plain = pickle.load(handle, encoding="latin1")
    assert all(np.array_equal(plain[name], masks[name]) for name in FLAME_MASK_REGIONS)


def test_regions_from_the_file_match_the_mediapipe_sets(masks_path):
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_LIPS

    regions = load_flame_regions(masks_path)
    expected = synthetic_regions_mediapipe()
    assert np.array_equal(regions.lips, expected.lips) and np.array_equal(regions.upper_face, expected.upper_face)
    assert regions.lips.tolist() == sorted({i for edge in FACEMESH_LIPS for i in edge})
    masks = load_flame_masks(masks_path)
    union = np.union1d(masks["forehead"], masks["eye_region"])
    assert regions.upper_face.tolist() == union.tolist()  # sorted, deduplicated


def test_synthetic_flame_head_regions_are_where_they_belong():
    head = synthetic_head()
    regions = synthetic_regions_for_flame_head()
    regions.check_vertex_count(len(head.vertices))
    y = head.vertices[:, 1]
    assert set(INNER_LIP_MIDDLES) <= set(regions.lips.tolist())
    assert y[regions.upper_face].min() > y[regions.lips].max()
    assert not set(regions.upper_face.tolist()) & set(LEFT_IRIS + RIGHT_IRIS)
    assert not set(regions.upper_face.tolist()) & set(regions.lips.tolist())
    with pytest.raises(ValueError, match="5023 vertices"):
        Regions(lips=[5023, 1], upper_face=[2]).check_vertex_count(5023)


def test_missing_regions_name_the_file_and_the_regions(tmp_path):
    path = tmp_path / "FLAME_masks.pkl"
    path.write_bytes(pickle.dumps({"lips": np.arange(3), "nose": np.arange(2)}, protocol=2))
    with pytest.raises(AssetError, match=r"FLAME_masks\.pkl.*forehead, eye_region missing.*found: lips, nose"):
        load_flame_regions(path)
    with pytest.raises(AssetError, match="eye_region"):
        regions_from_flame_masks({"lips": np.arange(2), "forehead": np.arange(2)}, source="x")
    with pytest.raises(AssetError, match="lips hold no vertices"):
        regions_from_flame_masks({"lips": np.zeros(0, int), "forehead": [1], "eye_region": [2]})


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_untrusted_or_wrong_files_are_refused(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"lips": _Exploit()}, protocol=2))
    with pytest.raises(AssetError, match=r"evil\.pkl: refused to unpickle .*system"):
        load_flame_masks(evil)
    listed = tmp_path / "list.pkl"
    listed.write_bytes(pickle.dumps([np.arange(3)], protocol=2))
    with pytest.raises(AssetError, match=r"list\.pkl: holds a list"):
        load_flame_masks(listed)
    matrix = tmp_path / "matrix.pkl"
    matrix.write_bytes(pickle.dumps({"lips": np.zeros((2, 2), np.int64)}, protocol=2))
    with pytest.raises(AssetError, match=r"entry 'lips' is not a 1-D array"):
        load_flame_masks(matrix)
    with pytest.raises(AssetError, match=r"missing\.pkl: cannot be read"):
        load_flame_masks(tmp_path / "missing.pkl")


def test_regions_are_sorted_unique_and_non_empty():
    regions = Regions(lips=[5, 3, 3], upper_face=np.array([9, 1, 9]))
    assert regions.lips.tolist() == [3, 5] and regions.upper_face.tolist() == [1, 9]
    assert regions.lips.dtype == np.int64
    with pytest.raises(ValueError, match="Regions.upper_face is empty"):
        Regions(lips=[1], upper_face=[])
