"""Shared fixtures: small generated media files (no downloads, no committed binaries), and the
test-only fault injection (``tests/faults``)."""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

# Fault injection lives with the tests (tests/faults), never in the package: this process installs
# it, and every process the tests start (spawned workers, Ray workers, CLI runs) loads it through
# sitecustomize on PYTHONPATH when PSEUDO3D_FAULTS is set.
FAULTS = str(Path(__file__).resolve().parent / "faults")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [FAULTS, os.environ.get("PYTHONPATH")]))
sys.path.insert(0, FAULTS)
import pseudo3d_faults  # noqa: E402

pseudo3d_faults.install()


def write_test_video(path: Path, *, n_frames: int = 50, fps: Fraction | int = 25, size=(96, 64),
                     timestamps_s: list[float] | None = None, audio_s: float | None = None,
                     audio_start_s: float = 0.0, rotation: int = 0, audio_rate: int = 48000) -> Path:
    """An H.264 MP4 whose frame ``i`` is a flat grey of level ``min(255, i * 4)`` (so a decoded frame
    tells its source index), optionally with a 440 Hz AAC tone starting at ``audio_start_s``.
    ``timestamps_s`` gives explicit (variable) presentation times."""
    fps = Fraction(fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "g": "12"}
        if timestamps_s is not None:
            stream.codec_context.time_base = Fraction(1, 90000)
        if rotation:
            stream.set_display_rotation(rotation)
        audio = None
        if audio_s is not None:
            audio = container.add_stream("aac", rate=audio_rate)
            audio.layout = "mono"
        for i in range(n_frames):
            image = np.full((size[1], size[0], 3), min(255, i * 4), np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if timestamps_s is not None:
                frame.pts = round(timestamps_s[i] * 90000)
                frame.time_base = Fraction(1, 90000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio is not None:
            t = np.arange(int(audio_s * audio_rate)) / audio_rate
            samples = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            offset = round(audio_start_s * audio_rate)
            for start in range(0, samples.size, 1024):
                chunk = samples[start:start + 1024][None, :]
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
                frame.sample_rate = audio_rate
                frame.pts = offset + start
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


@pytest.fixture
def make_video(tmp_path):
    def make(name: str = "clip.mp4", **kwargs) -> Path:
        return write_test_video(tmp_path / name, **kwargs)

    return make


# --- An end-to-end build of the synthetic corpus, shared by the tests that read it --------------

E2E_VIDEOS = 6
E2E_SECONDS = 6.0


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    from pseudo3d.logs import native_stderr_silenced
    from pseudo3d.synth.corpus import make_corpus

    corpus = tmp_path_factory.mktemp("corpus")
    with native_stderr_silenced():
        make_corpus(corpus, n_videos=E2E_VIDEOS, seconds=E2E_SECONDS, seed=0, bad_inputs=True, workers=0)
    return corpus


@pytest.fixture(scope="session")
def framing_corpus(tmp_path_factory) -> Path:
    """The synthetic framings (tight 224 crop, medium shots, heads turned 90 and 180 degrees; see
    pseudo3d.synth.corpus.FRAMING_SCENARIOS), 3 s each, with one plain video."""
    from pseudo3d.logs import native_stderr_silenced
    from pseudo3d.synth.corpus import make_corpus

    folder = tmp_path_factory.mktemp("framing_corpus")
    with native_stderr_silenced():
        make_corpus(folder, n_videos=1, seconds=3.0, seed=1, framings=True, workers=0)
    return folder


@pytest.fixture(scope="session")
def bad_corpus(tmp_path_factory):
    """The bad-input corpus, written once for the session through the command line
    (``pseudo3d synth DIR --bad-corpus``, seed 0): (folder, kind → path, what the command
    printed). Tests must not add files to the folder."""
    import contextlib
    import io

    from pseudo3d.cli import main
    from pseudo3d.logs import native_stderr_silenced
    from pseudo3d.synth.bad_corpus import BAD_KINDS, bad_file_name

    folder = tmp_path_factory.mktemp("bad_corpus")
    printed = io.StringIO()
    with native_stderr_silenced(), contextlib.redirect_stdout(printed):
        assert main(["synth", str(folder / "bad"), "--bad-corpus", "-q"]) == 0
    folder = folder / "bad"
    return folder, {kind: folder / bad_file_name(kind) for kind in BAD_KINDS}, printed.getvalue()


@pytest.fixture(scope="session")
def runner_corpus(tmp_path_factory) -> Path:
    """A small corpus (4 videos of 4 s and 3 bad inputs) the runner tests build on every runner."""
    from pseudo3d.logs import native_stderr_silenced
    from pseudo3d.synth.corpus import make_corpus

    folder = tmp_path_factory.mktemp("runner_corpus")
    with native_stderr_silenced():
        make_corpus(folder, n_videos=4, seconds=4.0, seed=5, bad_inputs=True, workers=0)
    return folder


RUNNER_CONFIG_YAML = ("shards:\n  max_sources: 3\n  max_samples: 2\n"
                      "decode:\n  chunk_s: 2.0\n  fps: 10\ntrack:\n  min_clip_s: 0.5\n  max_clip_s: 2.0\n"
                      "qa:\n  min_confidence_mean: 0.9\n")
"""The runner tests' configuration: several units, some of several shards, from the small corpus, its
videos (4.4 to 8 s) built in chunks (``decode.chunk_s`` 2 s, the last one running to the end), at
10 fps (the plumbing is what these tests check); the confidence threshold rejects 3 of the 13 clips
(0.88 to 0.89 against 0.90 to 0.95 for the rest), so every runner also writes clip-level ``qa`` rows."""


@pytest.fixture(scope="session")
def runner_local_build(runner_corpus, tmp_path_factory):
    """(dataset, BuildReport) of the local runner on ``runner_corpus`` with :data:`RUNNER_CONFIG_YAML`:
    the reference every other runner's build must equal byte for byte."""
    import yaml

    from pseudo3d.config import BuildConfig
    from pseudo3d.pipelines.runners.local import build_local
    from pseudo3d.pipelines.sources import resolve_sources

    out = tmp_path_factory.mktemp("runner_local") / "ds"
    config = BuildConfig.from_dict(yaml.safe_load(RUNNER_CONFIG_YAML))
    report = build_local(resolve_sources([str(runner_corpus)]), out, config, workers=2, progress=False,
                         qa_report=False)
    return out, report


def dataset_digests(out) -> dict[str, str]:
    """SHA-256 of every committed tar, and of every committed index part's rows, by relative path
    with the writer's attempt left out of shard and part names (the one thing that differs between
    two builds of the same units); ``out`` is a local path or a URL. Anything in ``shards/`` or an
    index table's folder that no marker names counts as a file of its own, so debris shows."""
    import hashlib
    import io
    import re

    import pyarrow.parquet as pq

    from pseudo3d.schemas.commits import read_commits
    from pseudo3d.schemas.layout import INDEX_TABLES
    from pseudo3d.storage import Storage

    storage = Storage(out)
    attempt = re.compile(r"(shard-\d{6}-\d{2}|part-\d{6})-[0-9a-f]{8}")
    named = {name for commit in read_commits(storage) for name in commit.files()}
    files = sorted(named | {f"{folder}/{name}" for folder in ("shards", *INDEX_TABLES) for name in storage.list(folder)})
    digests = {}
    for name in files:
        data = storage.read_bytes(name)
        if name.endswith(".parquet"):
            data = attempt.sub(r"\1", repr(pq.read_table(io.BytesIO(data)).to_pylist())).encode()
        digests[attempt.sub(r"\1", name) if name in named else name] = hashlib.sha256(data).hexdigest()
    return digests


@pytest.fixture(scope="session")
def e2e_config():
    from pseudo3d.config import BuildConfig

    # The QA filters stay on, but the sync threshold lets the deliberately shifted video (0.1 s)
    # through so every synthetic video with a face can be checked here; tests/qa checks the filter.
    return BuildConfig().with_overrides(shards={"max_sources": 4, "max_samples": 3}, qa={"max_abs_av_offset_s": 0.15})


@pytest.fixture(scope="session")
def built_dataset(synthetic_corpus, e2e_config, tmp_path_factory):
    """(dataset directory, BuildReport) of a 2-worker local build of the synthetic corpus."""
    from pseudo3d.pipelines.runners.local import build_local
    from pseudo3d.pipelines.sources import resolve_sources

    out = tmp_path_factory.mktemp("dataset") / "ds"
    report = build_local(resolve_sources([str(synthetic_corpus)]), out, e2e_config, workers=2, progress=False)
    return out, report


def truth_for_clip(corpus: Path, meta: dict) -> tuple[dict, np.ndarray]:
    """The clip's truth sidecar and, per clip frame, the index of the source frame it shows."""
    import json

    name = Path(meta["source"]).stem
    truth = json.loads((corpus / f"{name}.truth.json").read_text())
    times = meta["start_s"] + np.arange(meta["n_frames"]) / meta["fps"]
    return truth, np.minimum(np.round(times * truth["fps"]).astype(int), truth["n_frames"] - 1)


@pytest.fixture(scope="session")
def flame_assets(tmp_path_factory) -> dict[str, Path]:
    """Synthetic FLAME model, both landmark embeddings and a DECA checkpoint (no licensed files)."""
    pytest.importorskip("torch")
    from pseudo3d.testing.deca_assets import write_synthetic_deca_checkpoint
    from pseudo3d.testing.flame_assets import (write_synthetic_flame_model, write_synthetic_landmark_embedding,
                                             write_synthetic_mediapipe_embedding)

    folder = tmp_path_factory.mktemp("assets")
    return {
        "flame_model": write_synthetic_flame_model(folder / "generic_model.pkl"),
        "mediapipe_embedding": write_synthetic_mediapipe_embedding(folder / "mediapipe_landmark_embedding.npz"),
        "flame68_embedding": write_synthetic_landmark_embedding(folder / "landmark_embedding.npy"),
        "deca_checkpoint": write_synthetic_deca_checkpoint(folder / "deca_model.tar"),
    }


@pytest.fixture(scope="session")
def spectre_encoder_files(tmp_path_factory):
    """(the synthetic SPECTRE encoder, {layout: its checkpoint in that layout})."""
    pytest.importorskip("torch")
    from pseudo3d.testing.spectre_assets import LAYOUTS, save_spectre_checkpoint, synthetic_spectre_encoder

    encoder = synthetic_spectre_encoder(seed=0)
    folder = tmp_path_factory.mktemp("spectre")
    return encoder, {layout: save_spectre_checkpoint(encoder, folder / f"{layout}.tar", layout) for layout in LAYOUTS}


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible server on 127.0.0.1 (tests/storage/s3_server.py), with the standard AWS
    variables pointing at it for this process and every process it starts."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    sys.path.insert(0, str(Path(__file__).resolve().parent / "storage"))
    import s3_server

    with s3_server.s3_server() as endpoint:
        saved = {key: os.environ.get(key) for key in s3_server.environment(endpoint)}
        os.environ.update(s3_server.environment(endpoint))
        try:
            yield endpoint
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_endpoint):
    """``s3://BUCKET``: a fresh, empty bucket on the test server."""
    import s3_server

    return f"s3://{s3_server.new_bucket(s3_endpoint)}"
