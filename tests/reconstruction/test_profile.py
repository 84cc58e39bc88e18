"""The FLAME description and TFHP's arrays (pure numpy/scipy; the build test checks them in samples)."""

import numpy as np
import pytest
from scipy.signal import savgol_filter

from pseudo3d.config import BuildConfig
from pseudo3d.reconstruction.profile import flame_description, flame_variant, tfhp_arrays


@pytest.mark.parametrize("name, variant", [("generic_model.pkl", "FLAME 2020"), ("FLAME2023.pkl", "FLAME 2023"),
                                           ("flame2023_Open.pkl", "FLAME 2023 Open"), ("my_head.pkl", "unknown")])
def test_the_variant_comes_from_the_official_file_names(name, variant):
    assert flame_variant(f"/assets/{name}") == variant


def test_the_description_names_model_components_rotations_camera_and_profile():
    config = BuildConfig().with_overrides(backend="flame-fit", reconstruct={
        "flame_model": "/a/flame2023_Open.pkl", "landmark_embedding": "/a/e.npz", "n_expression": 100})
    described = flame_description(config, {"flame_model": "ab" * 32})
    assert described["model"] == {"name": "flame2023_Open.pkl", "sha256": "ab" * 32, "variant": "FLAME 2023 Open"}
    assert (described["n_shape"], described["n_expression"], described["profile"]) == (100, 100, "standard")
    assert set(described["rotations"]) == {"flame_global_pose", "flame_jaw_pose"}
    assert "weak perspective" in described["camera"]


def test_tfhp_arrays_follow_the_recipe_and_refuse_a_clip_shorter_than_the_window():
    rng = np.random.default_rng(0)
    n = 30
    outputs = {"flame_expression": rng.normal(0, 0.5, (n, 50)).astype(np.float32),
               "flame_jaw_pose": np.stack([rng.uniform(0, 0.3, n), np.zeros(n), np.zeros(n)], 1).astype(np.float32),
               "flame_global_pose": rng.normal(0, 0.1, (n, 3)).astype(np.float32),
               "flame_shape_clip": rng.normal(0, 1, 100).astype(np.float32)}
    arrays = tfhp_arrays(outputs)
    assert {name: value.shape for name, value in arrays.items()} == {
        "tfhp_shape": (n, 100), "tfhp_exp": (n, 50), "tfhp_pose": (n, 6)}
    # a jaw turned about x only keeps its x angle: smoothed as it is, y and z stay 0
    np.testing.assert_allclose(arrays["tfhp_pose"][:, 3], savgol_filter(outputs["flame_jaw_pose"][:, 0].astype(np.float64),
                                                                        5, 2), atol=1e-6, rtol=0)
    assert not arrays["tfhp_pose"][:, 4:].any()
    with pytest.raises(ValueError, match="over 7 frames; this clip has 6"):
        tfhp_arrays({name: value[:6] if value.ndim == 2 else value for name, value in outputs.items()})
