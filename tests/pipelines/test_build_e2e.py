"""End-to-end: the synthetic corpus through the real decode, tracking, smoothing and sharding."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import dataset_digests, truth_for_clip

from pseudo3d.pipelines.runners.local import build_local
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.qa.metrics import jitter
from pseudo3d.schemas.commits import read_commits
from pseudo3d.schemas.shard_reader import iter_samples
from pseudo3d.storage import Storage

pytestmark = pytest.mark.slow


def _samples(dataset: Path):
    for shard in sorted((dataset / "shards").glob("*.tar")):
        yield from iter_samples(shard)


def _digests(dataset: Path) -> dict[str, str]:
    return dataset_digests(dataset)


def _mouth(mesh: np.ndarray) -> np.ndarray:
    return np.linalg.norm(mesh[:, 13] - mesh[:, 14], axis=1)


def test_every_input_is_accounted_for(built_dataset):
    dataset, report = built_dataset
    sources = pq.read_table(dataset / "sources").to_pylist()
    assert len(sources) == report.inputs == 9
    status = {Path(row["source"]).name: row["status"] for row in sources}
    assert sum(s == "ok" for s in status.values()) + sum(s == "failed" for s in status.values()) == 9
    failures = {(Path(row["source"]).name, row["stage"], row["error"])
                for row in pq.read_table(dataset / "failures").to_pylist()}
    assert ("bad_not_a_video.mp4", "probe", "not_a_video") in failures
    assert ("bad_truncated.mp4", "probe", "not_a_video") in failures
    assert ("bad_no_face.mp4", "track", "no_face") in failures
    assert ("04_talk_noaudio.mp4", "probe", "no_audio_stream") in failures
    for name in ("bad_not_a_video.mp4", "bad_truncated.mp4", "bad_no_face.mp4", "04_talk_noaudio.mp4"):
        assert status[name] == "failed"
    card = json.loads((dataset / "dataset.json").read_text())
    assert card["counts"]["ok"] + card["counts"]["failed"] == card["counts"]["inputs"] == 9
    manifest = pq.read_table(dataset / "manifest")
    assert manifest.num_rows == card["counts"]["clips"] == report.clips
    assert len(set(manifest.column("key").to_pylist())) == manifest.num_rows
    # The workers spooled their samples into the output directory; the spool is gone with the build.
    assert sorted(path.name for path in dataset.iterdir()) == [
        "_commits", "dataset.json", "failures", "logs", "manifest", "qa", "shards", "sources"]
    assert card["counts"]["units"] == 3  # 9 inputs, shards.max_sources 4


def test_audio_and_per_frame_arrays_match_the_frame_count(built_dataset):
    dataset, _ = built_dataset
    n = 0
    for sample in _samples(dataset):
        meta = sample["meta.json"]
        audio, rate = sample["audio.flac"]
        expected = meta["n_frames"] / meta["fps"] * 16000
        assert rate == 16000 and abs(audio.shape[0] - expected) <= 16000 / meta["fps"]
        for name, value in sample.items():
            if name.endswith(".npy") and meta["arrays"][name[:-4]]["per_frame"]:
                assert value.shape[0] == meta["n_frames"], name
        assert meta["backend"] == "mediapipe" and meta["assets"]["mediapipe"] == "0.10.21"
        assert meta["smoothing"]["mesh"]["window_frames"] == 7
        n += 1
    assert n >= 6


def test_shards_read_with_plain_webdataset_and_tarfile(built_dataset):
    dataset, report = built_dataset
    script = f"""
import json, sys, tarfile, glob, io
import numpy as np, webdataset as wds
shards = sorted(glob.glob({str(dataset / 'shards')!r} + '/*.tar'))
keys = [s['__key__'] for s in wds.WebDataset(shards, shardshuffle=False)]
for s in wds.WebDataset(shards, shardshuffle=False).decode():
    assert s['mesh_smooth.npy'].shape[1:] == (478, 3), s['mesh_smooth.npy'].shape
    assert s['meta.json']['n_frames'] == s['mesh_smooth.npy'].shape[0]
names = [m.name for path in shards for m in tarfile.open(path).getmembers()]
json.dump({{"keys": keys, "members": len(names), "pseudo3d": "pseudo3d" in sys.modules}}, sys.stdout)
"""
    out = json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                                    text=True).stdout)
    assert out["pseudo3d"] is False
    manifest_keys = pq.read_table(dataset / "manifest").column("key").to_pylist()
    assert sorted(out["keys"]) == sorted(manifest_keys)


def test_mouth_opening_tracks_ground_truth(built_dataset, synthetic_corpus):
    dataset, _ = built_dataset
    per_video: dict[str, list[float]] = {}
    for sample in _samples(dataset):
        truth, index = truth_for_clip(synthetic_corpus, sample["meta.json"])
        opening = np.asarray(truth["mouth_open"])[index]
        r_raw = np.corrcoef(_mouth(sample["mesh_raw.npy"]), opening)[0, 1]
        r_smooth = np.corrcoef(_mouth(sample["mesh_smooth.npy"]), opening)[0, 1]
        per_video.setdefault(truth["name"], []).extend([r_raw, r_smooth])
    print("mouth r (raw, smooth) per clip:", {k: np.round(v, 3).tolist() for k, v in per_video.items()})
    assert {"00_talk_25fps", "01_talk_30fps_portrait", "02_talk_2997fps_offset", "03_talk_face_leaves",
            "05_talk_cut"} <= set(per_video)
    assert min(min(v) for v in per_video.values()) >= 0.9


def test_smoothing_halves_jitter(built_dataset):
    dataset, _ = built_dataset
    raw = smooth = 0.0
    ratios = []
    for sample in _samples(dataset):
        j_raw, j_smooth = jitter(sample["mesh_raw.npy"]), jitter(sample["mesh_smooth.npy"])
        frames = sample["meta.json"]["n_frames"] - 2
        raw += j_raw ** 2 * frames
        smooth += j_smooth ** 2 * frames
        ratios.append(j_smooth / j_raw)
    corpus_ratio = np.sqrt(smooth / raw)
    print(f"jitter smooth/raw: corpus {corpus_ratio:.3f}, per clip {np.round(ratios, 3).tolist()}")
    assert corpus_ratio <= 0.5
    assert max(ratios) < 0.6


def test_face_leaving_the_frame_splits_the_clip(built_dataset, synthetic_corpus):
    dataset, _ = built_dataset
    clips = [s["meta.json"] for s in _samples(dataset) if "face_leaves" in s["meta.json"]["source"]]
    assert len(clips) == 2
    truth = json.loads((synthetic_corpus / "03_talk_face_leaves.truth.json").read_text())
    hidden = np.flatnonzero(~np.asarray(truth["face_visible"])) / truth["fps"]
    first, second = sorted(clips, key=lambda m: m["start_s"])
    assert first["end_s"] <= hidden.min() + 0.1 and second["start_s"] >= hidden.max() - 0.1


def test_shot_cut_splits_the_clip(built_dataset, synthetic_corpus):
    dataset, _ = built_dataset
    clips = sorted((s["meta.json"] for s in _samples(dataset) if "talk_cut" in s["meta.json"]["source"]),
                   key=lambda m: m["start_s"])
    truth = json.loads((synthetic_corpus / "05_talk_cut.truth.json").read_text())
    cut_s = truth["cuts"][0] / truth["fps"]
    assert len(clips) == 2
    assert abs(clips[0]["end_s"] - cut_s) <= 1 / 25 + 1e-6 and clips[1]["start_s"] == clips[0]["end_s"]


def test_rerun_resumes_and_rebuild_is_byte_identical(built_dataset, synthetic_corpus, e2e_config, tmp_path):
    dataset, _ = built_dataset
    sources = resolve_sources([str(synthetic_corpus)])
    before = _digests(dataset)

    resumed = build_local(sources, dataset, e2e_config, workers=2, progress=False)
    assert resumed.processed == 0 and resumed.skipped == 9 and _digests(dataset) == before

    # A unit whose marker is deleted is rebuilt byte for byte, here by one worker where two built it first.
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    [commit] = [commit for commit in read_commits(Storage(copy)) if commit.unit == 1]
    (copy / commit.path).unlink()
    partial = build_local(sources, copy, e2e_config, workers=1, progress=False)
    assert partial.processed == commit.counts["sources"] and partial.units == 1
    assert [name.rsplit("-", 1)[0] for name in partial.shards_written] == [s.name.rsplit("-", 1)[0] for s in commit.shards]
    assert _digests(copy) == before


def test_video_without_audio_is_kept_when_audio_is_optional(synthetic_corpus, e2e_config, tmp_path):
    config = e2e_config.with_overrides(decode={"require_audio": False})
    source = resolve_sources([str(synthetic_corpus / "04_talk_noaudio.mp4")])
    report = build_local(source, tmp_path / "ds", config, workers=1, progress=False)
    assert report.ok == 1 and report.clips >= 1
    for sample in _samples(tmp_path / "ds"):
        meta = sample["meta.json"]
        audio, _ = sample["audio.flac"]
        assert abs(audio.shape[0] - meta["n_frames"] / meta["fps"] * 16000) <= 16000 / meta["fps"]
        assert not audio.any()  # silence stands in for the missing track
        truth, index = truth_for_clip(synthetic_corpus, meta)
        r = np.corrcoef(_mouth(sample["mesh_raw.npy"]), np.asarray(truth["mouth_open"])[index])[0, 1]
        assert r >= 0.9
