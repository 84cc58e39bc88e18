"""End-to-end builds with the FLAME backends on the synthetic corpus and synthetic assets."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pseudo3d.cli import main
from pseudo3d.files import file_sha256
from pseudo3d.schemas.shard_reader import iter_samples

pytestmark = pytest.mark.slow

FLAME_ARRAYS = {"flame_expression", "flame_jaw_pose", "flame_global_pose", "flame_camera"}


def _samples(dataset):
    for shard in sorted((dataset / "shards").glob("*.tar")):
        yield from iter_samples(shard)


def _check_contract(dataset, n_expression):
    samples = list(_samples(dataset))
    assert samples
    for sample in samples:
        meta = sample["meta.json"]
        n = meta["n_frames"]
        for name in FLAME_ARRAYS:
            assert sample[f"{name}_raw.npy"].shape[0] == n and sample[f"{name}_smooth.npy"].shape[0] == n
        assert sample["flame_expression_smooth.npy"].shape == (n, n_expression)
        assert sample["flame_jaw_pose_raw.npy"].shape == (n, 3)
        assert sample["reprojection_error.npy"].shape == (n,)
        assert sample["landmarks_2d_smooth.npy"].shape == (n, 478, 2)  # tracking arrays, whatever the backend
        assert np.isfinite(sample["reprojection_error.npy"]).all()
        assert meta["arrays"]["flame_shape_clip"]["per_frame"] is False
        for name, info in meta["arrays"].items():
            if info["per_frame"]:
                assert sample[f"{name}.npy"].shape[0] == n, name
    return samples


def test_deca_build_follows_the_contract(synthetic_corpus, flame_assets, tmp_path, capsys):
    out = tmp_path / "deca"
    video = synthetic_corpus / "00_talk_25fps.mp4"
    # Random DECA weights give a meaningless FLAME fit that the reprojection filter would reject
    # (rightly); the contract is what is checked here, so the QA filters are off.
    config = tmp_path / "build.yaml"
    config.write_text("qa:\n  enabled: false\n")
    code = main(["build", str(video), str(synthetic_corpus / "bad_not_a_video.mp4"), "--out", str(out), "-q",
                 "--config", str(config),
                 "--backend", "deca", "--fps", "5", "--workers", "1",
                 "--flame-model", str(flame_assets["flame_model"]),
                 "--landmark-embedding", str(flame_assets["mediapipe_embedding"]),
                 "--deca-checkpoint", str(flame_assets["deca_checkpoint"])])
    assert code == 0, capsys.readouterr().err
    samples = _check_contract(out, 50)
    sample = samples[0]
    assert sample["flame_shape_clip.npy"].shape == (100,)
    assert sample["deca_light.npy"].shape[1:] == (9, 3)
    assets = sample["meta.json"]["assets"]
    assert assets["deca_checkpoint"] == file_sha256(flame_assets["deca_checkpoint"])
    assert assets["flame_model"] == file_sha256(flame_assets["flame_model"])
    card = json.loads((out / "dataset.json").read_text())
    assert card["assets"]["landmark_embedding"] == file_sha256(flame_assets["mediapipe_embedding"])
    assert card["counts"]["ok"] == 1 and card["counts"]["failed"] == 1
    manifest = pq.read_table(out / "manifest").to_pylist()
    assert all(np.isfinite(row["reprojection_error_px"]) for row in manifest)
    import torch

    from pseudo3d.pipelines.runners.local import default_workers

    threads = str(default_workers())  # one worker: it has every core
    assert card["numerics"] == [{"reconstruct": {"device": "cpu", "precision": "fp32", "torch": torch.__version__,
                                                 "cuda": "", "cudnn": "", "threads": threads, "batch_size": "256"}}]


def test_spectre_build_with_the_tfhp_profile(flame_assets, spectre_encoder_files, tmp_path, capsys):
    """A spectre build at TFHP's settings: the contract, SPECTRE's crops, the ``flame`` meta entry and
    TFHP's arrays, smoothed as scipy's Savitzky-Golay filter does with TFHP's windows."""
    from scipy.signal import savgol_filter
    from scipy.spatial.transform import Rotation

    from pseudo3d.logs import native_stderr_silenced
    from pseudo3d.pipelines.crops import SPECTRE_SCALE, crop_square, crop_transform
    from pseudo3d.synth.corpus import make_corpus

    with native_stderr_silenced():
        [video] = make_corpus(tmp_path / "corpus", n_videos=1, seconds=3.0, seed=4)
    checkpoint = spectre_encoder_files[1]["trainer"]
    out = tmp_path / "spectre"
    config = tmp_path / "build.yaml"
    config.write_text("qa:\n  enabled: false\nshards:\n  write_crops: true\n")  # random weights: QA off, as for deca
    code = main(["build", str(video), "--out", str(out), "-q", "--config", str(config),
                 "--backend", "spectre", "--flame-profile", "tfhp", "--workers", "1", "--min-clip-s", "1",
                 "--flame-model", str(flame_assets["flame_model"]),
                 "--landmark-embedding", str(flame_assets["mediapipe_embedding"]),
                 "--spectre-checkpoint", str(checkpoint)])
    assert code == 0, capsys.readouterr().err
    samples = _check_contract(out, 50)
    for sample in samples:
        meta = sample["meta.json"]
        n = meta["n_frames"]
        assert meta["backend"] == "spectre" and meta["fps"] == 25.0
        assert meta["crop"] == {"size": 224, "scale": SPECTRE_SCALE, "convention": "spectre"}
        assert meta["assets"]["spectre_checkpoint"] == file_sha256(checkpoint)
        assert meta["flame"]["model"] == {"name": "generic_model.pkl", "sha256": file_sha256(flame_assets["flame_model"]),
                                          "variant": "FLAME 2020"}
        assert (meta["flame"]["n_shape"], meta["flame"]["n_expression"], meta["flame"]["profile"]) == (100, 50, "tfhp")
        assert sample["crops.npy"].shape == (n, 224, 224, 3)
        # The crops are SPECTRE's: 1.6 x the box of the 68 points mapped from the tracked mesh.
        landmarks = sample["landmarks_2d_raw.npy"]
        for frame in (0, n - 1):
            expected = crop_transform(*crop_square(landmarks[frame], "spectre", 1.25), size=224)
            np.testing.assert_allclose(sample["crop_transform.npy"][frame], expected, rtol=1e-5, atol=1e-3)
        # TFHP's arrays: its smoothing of the raw (unsmoothed) outputs, the jaw turned about x only.
        expression, jaw, head = (sample[f"flame_{name}_raw.npy"].astype(np.float64)
                                 for name in ("expression", "jaw_pose", "global_pose"))
        matrices = Rotation.from_rotvec(jaw).as_matrix()
        jaw_x = np.zeros_like(jaw)
        jaw_x[:, 0] = np.arctan2(-matrices[:, 1, 2], matrices[:, 2, 2])  # R = Rx Ry Rz: the x angle
        np.testing.assert_allclose(sample["tfhp_exp.npy"], savgol_filter(expression, 5, 2, axis=0), atol=1e-6, rtol=0)
        np.testing.assert_allclose(sample["tfhp_pose.npy"][:, :3], savgol_filter(head, 7, 2, axis=0), atol=1e-6, rtol=0)
        np.testing.assert_allclose(sample["tfhp_pose.npy"][:, 3:], savgol_filter(jaw_x, 5, 2, axis=0), atol=1e-6, rtol=0)
        assert sample["tfhp_shape.npy"].shape == (n, 100)
        assert (sample["tfhp_shape.npy"] == sample["flame_shape_clip.npy"]).all()
        assert sample["tfhp_exp.npy"].dtype == sample["tfhp_pose.npy"].dtype == np.float32
    card = json.loads((out / "dataset.json").read_text())
    assert card["counts"]["ok"] == 1 and card["config"]["reconstruct"]["flame_profile"] == "tfhp"
    from pseudo3d.training.data.targets import TargetSpec

    assert TargetSpec.for_shards(samples[0]).kind == "flame"  # training reads a spectre dataset


def test_deca_in_the_parent_matches_deca_in_workers(synthetic_corpus, flame_assets, tmp_path):
    from pseudo3d.config import BuildConfig
    from pseudo3d.pipelines.runners.local import build_local
    from pseudo3d.pipelines.sources import resolve_sources

    config = BuildConfig().with_overrides(
        backend="deca", decode={"fps": 5.0}, qa={"enabled": False},
        reconstruct={"flame_model": str(flame_assets["flame_model"]), "deca_checkpoint": str(flame_assets["deca_checkpoint"]),
                     "landmark_embedding": str(flame_assets["mediapipe_embedding"]), "batch_size": 16})
    sources = resolve_sources([str(synthetic_corpus / "05_talk_cut.mp4")])  # two clips, batched together in the parent
    in_workers = build_local(sources, tmp_path / "w", config, workers=1, progress=False, reconstruct_in_parent=False,
                             qa_report=False)
    in_parent = build_local(sources, tmp_path / "p", config, workers=1, progress=False, reconstruct_in_parent=True,
                            qa_report=False)
    assert in_workers.clips == in_parent.clips == 2
    # Equal within float32 noise, not byte for byte: a CPU convolution's last bits depend on its
    # batch's size and its thread count, and both differ between the parent and the workers
    # (docs/data-contract.md, Determinism).
    for a, b in zip(_samples(tmp_path / "w"), _samples(tmp_path / "p")):
        assert a["__key__"] == b["__key__"]
        np.testing.assert_allclose(a["flame_expression_raw.npy"], b["flame_expression_raw.npy"], atol=1e-4)


def test_missing_asset_is_named_before_any_work(synthetic_corpus, flame_assets, tmp_path, capsys):
    code = main(["build", str(synthetic_corpus / "00_talk_25fps.mp4"), "--out", str(tmp_path / "x"), "-q",
                 "--backend", "deca", "--flame-model", str(flame_assets["flame_model"]),
                 "--deca-checkpoint", str(tmp_path / "absent.tar")])
    err = capsys.readouterr().err
    assert code == 2 and "absent.tar" in err
    assert not (tmp_path / "x").exists()


def test_backend_without_its_assets_names_the_flag(synthetic_corpus, tmp_path, capsys):
    code = main(["build", str(synthetic_corpus / "00_talk_25fps.mp4"), "--out", str(tmp_path / "x"), "--backend", "deca"])
    assert code == 2 and "--flame-model" in capsys.readouterr().err


def test_flame_fit_build_follows_the_contract(synthetic_corpus, flame_assets, tmp_path, capsys):
    out = tmp_path / "fit"
    code = main(["build", str(synthetic_corpus / "00_talk_25fps.mp4"), "--out", str(out), "-q",
                 "--backend", "flame-fit", "--fps", "10", "--workers", "1",
                 "--flame-model", str(flame_assets["flame_model"]),
                 "--landmark-embedding", str(flame_assets["mediapipe_embedding"])])
    assert code == 0, capsys.readouterr().err
    samples = _check_contract(out, 50)
    sample = samples[0]
    assert "deca_tex.npy" not in sample and sample["flame_shape_clip.npy"].shape == (100,)
    # The synthetic FLAME head is the MediaPipe template, so fitting the tracked landmarks of the
    # synthetic videos lands close to them (a few pixels on a ~200-pixel face).
    assert np.median(sample["reprojection_error.npy"]) < 5.0
    card = json.loads((out / "dataset.json").read_text())
    assert "deca_checkpoint" not in card["assets"] and card["config"]["backend"] == "flame-fit"


def test_flame_fit_refuses_the_68_point_embedding(synthetic_corpus, flame_assets, tmp_path, capsys):
    code = main(["build", str(synthetic_corpus / "00_talk_25fps.mp4"), "--out", str(tmp_path / "x"), "-q",
                 "--backend", "flame-fit", "--flame-model", str(flame_assets["flame_model"]),
                 "--landmark-embedding", str(flame_assets["flame68_embedding"])])
    assert code == 2 and "MediaPipe layout" in capsys.readouterr().err
