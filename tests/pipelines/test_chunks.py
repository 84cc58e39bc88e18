"""Long sources built in chunks (``decode.chunk_s``): the cut, the keys, the rows, the shards."""

from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq

from pseudo3d.config import DecodeConfig, ShardConfig
from pseudo3d.pipelines.plan import plan_units
from pseudo3d.pipelines.process import chunk_pieces
from pseudo3d.pipelines.shard_writer import write_unit
from pseudo3d.schemas.index import read_parts
from pseudo3d.schemas.records import Chunk, EncodedSample, Failure, ProbeInfo, Source, SourceOutcome, clip_key, clip_label
from pseudo3d.schemas.sample import encode_sample
from pseudo3d.storage import Storage

SOURCE = Source(uri="/v/long.mp4", identity="v/long.mp4", source_id="long-0000000000000000")


def _probe(duration_s: float) -> ProbeInfo:
    return ProbeInfo(container="mp4", size_bytes=1, duration_s=duration_s, video_codec="h264", width=64, height=64,
                     fps=25.0, rotation=0, n_video_streams=1, n_audio_streams=1)


def test_a_source_of_one_and_a_half_chunks_or_more_is_cut_and_the_last_chunk_takes_the_rest():
    decode = DecodeConfig(chunk_s=600.0)
    assert chunk_pieces(SOURCE, _probe(899.0), decode) is None  # under 1.5 chunks: whole
    assert chunk_pieces(SOURCE, _probe(float("nan")), decode) is None  # no declared duration: whole
    pieces = chunk_pieces(SOURCE, _probe(1850.0), decode).pieces  # 3.08 chunks: 3, the last 650 s long
    assert [piece.chunk for piece in pieces] == [Chunk(0, 3, 0, 15000, 25.0), Chunk(1, 3, 15000, 30000, 25.0),
                                                 Chunk(2, 3, 30000, None, 25.0)]
    assert all(piece.source_id == SOURCE.source_id and piece.whole == SOURCE for piece in pieces)
    assert [piece.completes for piece in pieces] == [False, False, True]
    assert chunk_pieces(pieces[1], _probe(1850.0), decode) is None  # a chunk is never cut again
    assert [piece.chunk.span for piece in pieces] == ["0.00-600.00s", "600.00-1200.00s", "1200.00s-end"]


def test_keys_of_a_chunked_source_carry_the_chunk_and_sort_in_time_order():
    chunk = Chunk(2, 3, 30000, None, 25.0)
    keys = [clip_key("s", 3), clip_key("s", 2 * 10_000 + 5, chunk), clip_key("s", 10_000 + 12, chunk),
            clip_key("s", 7, chunk)]
    assert keys == ["s_003", "s_00020005", "s_00010012", "s_00000007"]
    assert sorted(keys[1:]) == [keys[3], keys[2], keys[1]]
    # how the QA report's gallery names them
    assert [clip_label(key) for key in keys] == ["clip 3", "chunk 2 · clip 5", "chunk 1 · clip 12", "chunk 0 · clip 7"]
    piece = replace(SOURCE, chunk=Chunk(1, 3, 15000, 30000, 25.0))
    assert Failure.of(piece, "track", "no_face", "no face").clip == "600.00-1200.00s"
    assert Failure.of(piece, "track", "clip_too_short", "short", clip="610.00-610.50s").clip == "610.00-610.50s"


def _piece_outcome(index: int, n_clips: int, status: str = "ok") -> SourceOutcome:
    piece = replace(SOURCE, chunk=Chunk(index, 3, index * 100, None if index == 2 else (index + 1) * 100, 25.0))
    samples = []
    for clip in range(n_clips):
        key = clip_key(SOURCE.source_id, index * 10_000 + clip, piece.chunk)
        members = encode_sample({"x": np.full(100, clip, np.uint8)}, np.zeros(160, np.float32), 16000, {"key": key})
        samples.append(EncodedSample(key, members, {"key": key, "source_id": SOURCE.source_id, "n_frames": 10,
                                                    "duration_s": 0.4, "fps": 25.0, "clip_index": clip}))
    failures = [] if n_clips else [Failure.of(piece, "track", "no_face", "no face found")]
    return SourceOutcome(piece, status if n_clips else "failed", samples=samples, failures=failures,
                         probe=_probe(10.0), reason="" if n_clips else "no_face: no face found", n_frames_decoded=100)


def test_a_chunked_source_is_one_source_row_and_its_clips_may_go_on_in_the_next_shard(tmp_path):
    other = SourceOutcome(Source(uri="/v/a.mp4", identity="v/a.mp4", source_id="a-0000000000000000"), "failed",
                          failures=[Failure.of(Source(uri="/v/a.mp4", identity="v/a.mp4", source_id="a-0000000000000000"),
                                               "probe", "missing", "gone")])
    outcomes = [other, _piece_outcome(0, 3), _piece_outcome(1, 0), _piece_outcome(2, 2)]
    [unit] = plan_units([other.source, SOURCE], 2, "fp")
    commit = write_unit(Storage(tmp_path), unit, outcomes, ShardConfig(max_samples=4), "fp")
    assert [shard.n_samples for shard in commit.shards] == [3, 2]  # the source's last chunk opened the next shard
    rows = read_parts(Storage(tmp_path), commit.parts("sources"), "sources").to_pylist()
    assert len(rows) == 2
    row = rows[1]
    assert (row["source_id"], row["status"], row["reason"], row["n_clips"], row["n_failures"]) == (
        SOURCE.source_id, "ok", "", 5, 1)
    assert row["clip_seconds"] == 5 * 0.4 and row["shard"] == commit.shards[0].name and row["duration_s"] == 10.0
    failures = read_parts(Storage(tmp_path), commit.parts("failures"), "failures").to_pylist()
    assert [(failure["clip"], failure["error"]) for failure in failures] == [
        (None, "missing"), ("4.00-8.00s", "no_face")]


def test_a_chunked_source_whose_every_chunk_failed_is_one_failed_row(tmp_path):
    outcomes = [_piece_outcome(index, 0) for index in range(3)]
    [unit] = plan_units([SOURCE], 1, "fp")
    commit = write_unit(Storage(tmp_path), unit, outcomes, ShardConfig(), "fp")
    [row] = read_parts(Storage(tmp_path), commit.parts("sources"), "sources").to_pylist()
    assert row["status"] == "failed" and row["shard"] is None and row["n_failures"] == 3
    assert row["reason"] == "each of its 3 chunks failed (see the failure rows); the first: no_face: no face found"


def test_the_runner_corpus_is_built_in_chunks(runner_local_build):
    """The runner tests' reference build (every runner must equal it byte for byte) cuts its 4.4 to
    8 s videos into chunks of 2 s (2 to 4 each), so every runner is checked on chunked sources."""
    out, report = runner_local_build
    manifest = pq.read_table(out / "manifest").to_pylist()
    sources = pq.read_table(out / "sources").to_pylist()
    rejected = [row for row in pq.read_table(out / "failures").to_pylist() if row["stage"] == "qa"]
    assert len(sources) == report.inputs == 7 and report.ok == 4 and len(rejected) == 3
    for row in sources:
        clips = [clip for clip in manifest if clip["source_id"] == row["source_id"]]
        assert row["n_clips"] == len(clips)
        assert all(clip["key"][-9] == "_" and clip["clip_index"] == int(clip["key"][-8:]) for clip in clips)
        if row["status"] == "ok":  # the chunks of every clip found, kept or rejected by QA
            found = {key[-8:-4] for key in [clip["key"] for clip in clips]
                     + [failure["clip"] for failure in rejected if failure["source_id"] == row["source_id"]]}
            count = round(row["duration_s"] / 2.0)
            assert count >= 2 and {"0000", f"{count - 1:04d}"} <= found <= {f"{chunk:04d}" for chunk in range(count)}


def test_a_chunk_length_that_cannot_hold_the_clip_grid_is_refused_naming_the_options():
    import pytest

    from pseudo3d.config import BuildConfig
    from pseudo3d.errors import ConfigError

    with pytest.raises(ConfigError, match=r"decode\.chunk_s \(30\) must be >= track\.max_clip_s \(60\)"):
        BuildConfig.from_dict({"decode": {"chunk_s": 30}})
    with pytest.raises(ConfigError, match=r"1\.5 x decode\.chunk_s / track\.min_clip_s must be < 10000"):
        BuildConfig.from_dict({"decode": {"chunk_s": 7200}, "track": {"min_clip_s": 1.0}})
    # as long as the longest input (limits.max_duration_s), no source is ever cut: any clip length goes
    assert BuildConfig.from_dict({"decode": {"chunk_s": 14400}, "track": {"min_clip_s": 0.5}}).decode.chunk_s == 14400
    with pytest.raises(ConfigError, match=r"decode\.chunk_s must be > 0"):
        BuildConfig.from_dict({"decode": {"chunk_s": -1}})
