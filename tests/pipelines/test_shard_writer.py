import hashlib
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from pseudo3d.config import ShardConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.shard_writer import (ShardBuilder, ShardPacker, ShardWriter, committed_shards, outcome_size,
                                             publish_shard, remove_uncommitted, shard_name)
from pseudo3d.schemas.records import EncodedSample, Failure, Source, SourceOutcome
from pseudo3d.schemas.sample import encode_sample
from pseudo3d.storage import Storage


def _outcome(index: int, n_clips: int, payload: int = 1000) -> SourceOutcome:
    source = Source(uri=f"/v/{index}.mp4", identity=f"v/{index}.mp4", source_id=f"v{index}-00000000")
    samples = []
    for clip in range(n_clips):
        key = f"{source.source_id}_{clip:03d}"
        members = encode_sample({"x": np.full(payload, clip, np.uint8)}, np.zeros(1600, np.float32), 16000,
                                {"key": key})
        samples.append(EncodedSample(key, members, {"key": key, "source_id": source.source_id, "n_frames": 10,
                                                    "duration_s": 0.4, "fps": 25.0, "clip_index": clip}))
    if n_clips == 0:
        return SourceOutcome(source, "failed", failures=[Failure(source.source_id, source.uri, "probe", "missing", "y")])
    return SourceOutcome(source, "ok", samples=samples)


def _write(directory, outcomes, taken=(), **config):
    writer = ShardWriter(Storage(directory), ShardConfig(**config), "fp", taken=taken, folder="")
    for outcome in outcomes:
        writer.add(outcome)
    writer.close()
    return writer.committed


def _here(directory):
    """``committed_shards``' arguments for shards written straight into ``directory``."""
    return Storage(directory), ""


def _digests(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_sources_are_never_split_and_limits_hold(tmp_path):
    names = _write(tmp_path, [_outcome(i, n) for i, n in enumerate([2, 2, 0, 3, 1, 5])], max_samples=4)
    assert names == ["shard-000000", "shard-000001", "shard-000002"]
    shards = committed_shards(*_here(tmp_path))
    assert [s.stats["n_samples"] for s in shards] == [4, 4, 5]  # a source bigger than the limit stays whole
    assert [len(s.stats["sources"]) for s in shards] == [3, 2, 1]
    assert shards[0].stats["failures"][0]["source_id"] == "v2-00000000"
    table = pq.read_table(tmp_path / "shard-000001.parquet")
    assert table.column("shard").to_pylist() == ["shard-000001"] * 4


def test_byte_identical_and_plain_tar(tmp_path):
    outcomes = [_outcome(i, 2) for i in range(3)]
    _write(tmp_path / "a", outcomes)
    _write(tmp_path / "b", [_outcome(i, 2) for i in range(3)])
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    with tarfile.open(tmp_path / "a" / "shard-000000.tar") as tar:
        members = tar.getmembers()
    assert {m.mtime for m in members} == {0} and {m.uname for m in members} == {""}
    assert members[0].name == "v0-00000000_000.audio.flac"
    tar_bytes = (tmp_path / "a" / "shard-000000.tar").read_bytes()
    stats = committed_shards(*_here(tmp_path / "a"))[0].stats
    assert (stats["sha256"], stats["n_bytes"]) == (hashlib.sha256(tar_bytes).hexdigest(), len(tar_bytes))


def test_resume_fills_the_lowest_free_index_identically(tmp_path):
    outcomes = [_outcome(i, n) for i, n in enumerate([2, 2, 1, 3])]
    _write(tmp_path, outcomes, max_samples=3)
    before = _digests(tmp_path)
    shard = committed_shards(*_here(tmp_path))[1]
    lost = [row["source_id"] for row in shard.stats["sources"]]
    for suffix in (".tar", ".parquet", ".json"):
        (tmp_path / f"{shard.name}{suffix}").unlink()
    remaining = {s.index for s in committed_shards(*_here(tmp_path))}
    _write(tmp_path, [o for o in outcomes if o.source.source_id in lost], taken=remaining, max_samples=3)
    assert _digests(tmp_path) == before


def test_byte_limit_closes_shards(tmp_path):
    _write(tmp_path, [_outcome(i, 1, payload=600_000) for i in range(3)], max_bytes=1_000_000)
    assert len(committed_shards(*_here(tmp_path))) == 3


def test_abort_publishes_nothing_and_debris_is_removed(tmp_path):
    writer = ShardWriter(Storage(tmp_path), ShardConfig(), "fp", folder="")
    writer.add(_outcome(0, 2))
    writer.abort()
    assert committed_shards(*_here(tmp_path)) == [] and list(tmp_path.iterdir()) == []
    (tmp_path / "shard-000004.tar").write_bytes(b"partial")
    (tmp_path / ".shard-000005.json.tmp").write_bytes(b"{")
    removed = remove_uncommitted(*_here(tmp_path))
    assert removed == [".shard-000005.json.tmp", "shard-000004.tar"] and list(tmp_path.iterdir()) == []


def test_exception_inside_writer_publishes_nothing(tmp_path):
    writer = ShardWriter(Storage(tmp_path), ShardConfig(), "fp", folder="")
    writer.add(_outcome(0, 1))
    bad = _outcome(1, 1)
    bad.samples[0].members["x.npy"] = None  # not bytes: tarfile fails mid-shard
    with pytest.raises(TypeError):
        writer.add(bad)
    writer.abort()
    assert committed_shards(*_here(tmp_path)) == []


def test_staged_shards_published_later_equal_the_writer_s(tmp_path):
    """The Beam runner's path: the packing rule over sizes, each shard built unpublished in a
    staging directory, then published; the same files as the streaming writer."""
    outcomes = [_outcome(i, n) for i, n in enumerate([0, 2, 2, 0, 3, 1, 5])]
    streamed = _write(tmp_path / "streamed", outcomes, taken=[1], max_samples=4)
    packer = ShardPacker(ShardConfig(max_samples=4), taken=[1])
    shard_of = [packer.place(*outcome_size(outcome))[0] for outcome in outcomes]
    assert [shard_name(index) for index in sorted(set(shard_of))] == streamed
    storage, published = Storage(tmp_path), tmp_path / "published"
    published.mkdir()
    for index in sorted(set(shard_of)):
        builder = ShardBuilder(storage, f"staged/{index}", index, "fp")
        for outcome, shard in zip(outcomes, shard_of):
            if shard == index:
                builder.add(outcome)
        builder.finish()
        assert not list(published.glob(f"{shard_name(index)}.*"))  # nothing visible before publishing
        publish_shard(storage, f"staged/{index}", index, folder="published")
        publish_shard(storage, f"staged/{index}", index, folder="published")  # repeating a finished publish is harmless
    assert _digests(published) == _digests(tmp_path / "streamed")
    builder = ShardBuilder(storage, "staged/again", 0, "fp")  # another build's shard 0, staged meanwhile
    builder.add(outcomes[1])
    builder.finish()
    with pytest.raises(Pseudo3DError, match="shard-000000.tar was published by another build"):
        publish_shard(storage, "staged/again", 0, folder="published")
    assert _digests(published) == _digests(tmp_path / "streamed")


def test_a_runner_s_leftover_staging_directory_is_debris(tmp_path):
    _write(tmp_path, [_outcome(0, 1)])
    staging = tmp_path / ".beam-0123abcd.tmp" / "attempt"
    staging.mkdir(parents=True)
    (staging / ".shard-000001.tar.tmp").write_bytes(b"partial")
    assert remove_uncommitted(*_here(tmp_path)) == [".beam-0123abcd.tmp"]
    assert not (tmp_path / ".beam-0123abcd.tmp").exists() and len(committed_shards(*_here(tmp_path))) == 1


CPU = {"reconstruct": {"device": "cpu", "precision": "fp32", "torch": "2.13.0", "cuda": "", "cudnn": ""}}
CUDA = {"reconstruct": {"device": "cuda", "precision": "bf16", "torch": "2.13.0", "cuda": "12.8", "cudnn": "91002"}}


def test_outputs_of_another_device_or_precision_are_refused(tmp_path):
    first, second = _outcome(0, 1), _outcome(1, 1)
    first.numerics, second.numerics = CPU, CUDA
    writer = ShardWriter(Storage(tmp_path), ShardConfig(), "fp", folder="")
    writer.add(first)
    with pytest.raises(Pseudo3DError, match="this build computes reconstruct on cuda in bf16, but the dataset was "
                                            "built with reconstruct on cpu in fp32"):
        writer.add(second)
    writer.close()
    assert committed_shards(*_here(tmp_path))[0].stats["numerics"] == CPU
    newer = _outcome(2, 1)
    newer.numerics = {"reconstruct": {**CPU["reconstruct"], "torch": "2.14.0"}}  # versions are recorded, not checked
    writer = ShardWriter(Storage(tmp_path), ShardConfig(), "fp", taken=[0], numerics=CPU, folder="")
    writer.add(newer)
    with pytest.raises(Pseudo3DError, match="built with reconstruct on cpu in fp32"):
        writer.add(second)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_second_build_writing_the_same_shard_fails_and_the_first_stays_whole(tmp_path, where, request):
    """Two builds into one dataset both take the lowest free index: the second to publish gets an
    error saying so and publishes nothing; the first's shard is whole (on S3 too, where a plain
    PUT would have replaced it)."""
    root = tmp_path if where == "local" else request.getfixturevalue("s3_bucket") + "/ds"
    first, second = (ShardWriter(Storage(root), ShardConfig(), "fp") for _ in range(2))
    first.add(_outcome(0, 2))
    second.add(_outcome(1, 3))
    first.close()
    with pytest.raises(Pseudo3DError, match="shard-000000.tar was published by another build while this one was "
                                            "writing it: only one build may write into a dataset at a time"):
        second.close()
    [shard] = committed_shards(Storage(root))
    assert [row["source_id"] for row in shard.stats["sources"]] == ["v0-00000000"] and shard.stats["n_samples"] == 2
    assert Storage(root).list("shards") == ["shard-000000.json", "shard-000000.parquet", "shard-000000.tar"]
