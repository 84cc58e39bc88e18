"""TargetSpec, shard targets and the ARKit / Live Link Face name tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from pseudo3d.training.data import ARKIT_BLENDSHAPES, LIVE_LINK_FACE_COLUMNS, TargetSpec, arkit_index  # noqa: E402
from pseudo3d.training.data.targets import shard_targets  # noqa: E402


def test_arkit_names_are_apples_52_in_order():
    assert len(ARKIT_BLENDSHAPES) == 52 and len(set(ARKIT_BLENDSHAPES)) == 52
    assert ARKIT_BLENDSHAPES[:3] == ("eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft")
    assert ARKIT_BLENDSHAPES[14:18] == ("jawForward", "jawLeft", "jawRight", "jawOpen")
    assert ARKIT_BLENDSHAPES[-1] == "tongueOut"
    assert arkit_index("JawOpen") == arkit_index("jawopen") == 17 and arkit_index("smirk") is None


def test_live_link_face_columns():
    assert len(LIVE_LINK_FACE_COLUMNS) == 63
    assert LIVE_LINK_FACE_COLUMNS[:3] == ("Timecode", "BlendShapeCount", "EyeBlinkLeft")
    assert LIVE_LINK_FACE_COLUMNS[16:20] == ("JawForward", "JawRight", "JawLeft", "JawOpen")
    assert LIVE_LINK_FACE_COLUMNS[-9:-6] == ("HeadYaw", "HeadPitch", "HeadRoll")
    assert LIVE_LINK_FACE_COLUMNS[-1] == "RightEyeRoll"
    shapes = LIVE_LINK_FACE_COLUMNS[2:54]
    assert sorted(arkit_index(name) for name in shapes) == list(range(52))


def test_for_shards_picks_the_target_by_backend():
    mesh = TargetSpec.for_shards({"meta.json": {"backend": "mediapipe",
                                                "arrays": {"mesh_smooth": {"shape": [90, 478, 3]}}}})
    assert (mesh.kind, mesh.dim, mesh.n_vertices, mesh.members, mesh.template) == (
        "mesh_offsets", 1434, 478, ("mesh_smooth",), "clip_mean")
    for backend in ("deca", "spectre", "flame-fit"):  # every FLAME backend
        flame = TargetSpec.for_shards({"backend": backend, "key": "k",
                                       "arrays": {"flame_expression_smooth": {"shape": [90, 50]}}})
        assert (flame.kind, flame.dim, flame.members) == ("flame", 53, ("flame_expression_smooth",
                                                                         "flame_jaw_pose_smooth"))
        assert flame.names[0] == "exp_000" and len(flame.names) == 53
    with pytest.raises(ValueError, match="backend 'opencv'"):
        TargetSpec.for_shards({"backend": "opencv", "key": "k"})
    with pytest.raises(ValueError, match="flame_expression_smooth"):
        TargetSpec.for_shards({"backend": "deca", "key": "k", "arrays": {}})


@pytest.mark.parametrize("spec", [TargetSpec.mesh(478), TargetSpec.mesh(5023, template="subject"),
                                  TargetSpec.flame(50), TargetSpec.blendshapes()])
def test_spec_round_trips_through_json(spec):
    assert TargetSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_spec_checks_itself():
    with pytest.raises(ValueError, match="kind"):
        TargetSpec("vertices", 3)
    with pytest.raises(ValueError, match="dim == 3 \\* n_vertices"):
        TargetSpec("mesh_offsets", 10, n_vertices=4, template="clip_mean")
    with pytest.raises(ValueError, match="names has 2 entries"):
        TargetSpec("blendshapes", 3, names=("a", "b"))
    with pytest.raises(ValueError, match="unknown fields"):
        TargetSpec.from_dict({"kind": "blendshapes", "dim": 52, "colour": "red"})


def test_shard_targets():
    rng = np.random.default_rng(0)
    mesh = rng.normal(5.0, 1.0, (20, 4, 3)).astype(np.float32)
    offsets = shard_targets(TargetSpec.mesh(4, members=("mesh_smooth",)), {"mesh_smooth": mesh}, "clip")
    assert offsets.shape == (20, 12) and offsets.dtype == np.float32
    np.testing.assert_allclose(offsets.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(offsets.reshape(20, 4, 3) + mesh.mean(axis=0), mesh, atol=1e-5)
    with pytest.raises(ValueError, match=r"clip: mesh_smooth has shape \(20, 4, 3\), expected \(T, 5, 3\)"):
        shard_targets(TargetSpec.mesh(5, members=("mesh_smooth",)), {"mesh_smooth": mesh}, "clip")
    flame = {"flame_expression_smooth": np.ones((7, 5), np.float32),
             "flame_jaw_pose_smooth": np.zeros((7, 3), np.float32)}
    target = shard_targets(TargetSpec.flame(5), flame, "clip")
    assert target.shape == (7, 8) and target[:, :5].min() == 1 and target[:, 5:].max() == 0
    with pytest.raises(ValueError, match="clip: flame target has 8 values per frame"):
        shard_targets(TargetSpec.flame(6), flame, "clip")
    with pytest.raises(ValueError, match="no shard members"):
        shard_targets(TargetSpec.blendshapes(), flame, "clip")
