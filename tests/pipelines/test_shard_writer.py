import hashlib
import json
import tarfile
import threading

import numpy as np
import pyarrow.parquet as pq
import pytest

from pseudo3d.config import ShardConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.plan import plan_units
from pseudo3d.pipelines.shard_writer import UnitWriter, remove_uncommitted, write_unit
from pseudo3d.schemas.commits import find_shard, list_markers, read_commits
from pseudo3d.schemas.index import read_parts
from pseudo3d.schemas.layout import parse_shard_name
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


def _unit(outcomes, index=0):
    [unit] = plan_units([outcome.source for outcome in outcomes], len(outcomes), "fp", first=index)
    return unit


def _write(root, outcomes, index=0, **config):
    return write_unit(Storage(root), _unit(outcomes, index), outcomes, ShardConfig(**config), "fp")


def _rows(root, commit, table):
    """The rows of ``commit``'s parts of index table ``table``."""
    return read_parts(Storage(root), commit.parts(table), table).to_pylist()


def _contents(root):
    """SHA-256 of each committed tar, by its name without the attempt."""
    storage = Storage(root)
    return {shard.name.rsplit("-", 1)[0]: hashlib.sha256(storage.read_bytes(shard.tar)).hexdigest()
            for commit in read_commits(storage) for shard in commit.shards}


def test_sources_are_never_split_and_limits_hold(tmp_path):
    commit = _write(tmp_path, [_outcome(i, n) for i, n in enumerate([2, 2, 0, 3, 1, 5])], max_samples=4)
    assert [shard.n_samples for shard in commit.shards] == [4, 4, 5]  # a source bigger than the limit stays whole
    assert [parse_shard_name(shard.name)[:2] for shard in commit.shards] == [(0, 0), (0, 1), (0, 2)]
    assert len({parse_shard_name(shard.name)[2] for shard in commit.shards}) == 1  # one attempt
    rows = _rows(tmp_path, commit, "sources")
    assert [row["shard"] for row in rows] == [commit.shards[0].name] * 2 + [None] + [commit.shards[1].name] * 2 + \
        [commit.shards[2].name]
    assert [row["source_id"] for row in _rows(tmp_path, commit, "failures")] == ["v2-00000000"]
    manifest = pq.read_table(tmp_path / "manifest")
    assert manifest.column("shard").to_pylist() == [shard.name for shard in commit.shards
                                                    for _ in range(shard.n_samples)]
    assert commit.counts == {"sources": 6, "ok": 5, "failed": 1, "failures": 1, "failures_by_stage": {"probe": 1},
                             "failures_by_error": {"missing": 1}, "input_seconds": 0.0}
    assert read_commits(Storage(tmp_path)) == [commit]


def test_the_same_unit_gives_the_same_tars_whatever_the_attempt(tmp_path):
    _write(tmp_path / "a", [_outcome(i, 2) for i in range(3)], max_samples=4)
    _write(tmp_path / "b", [_outcome(i, 2) for i in range(3)], max_samples=4)
    assert _contents(tmp_path / "a") == _contents(tmp_path / "b") and len(_contents(tmp_path / "a")) == 2
    [commit] = read_commits(Storage(tmp_path / "a"))
    with tarfile.open(tmp_path / "a" / commit.shards[0].tar) as tar:
        members = tar.getmembers()
    assert {m.mtime for m in members} == {0} and {m.uname for m in members} == {""}
    assert members[0].name == "v0-00000000_000.audio.flac"
    tar_bytes = (tmp_path / "a" / commit.shards[0].tar).read_bytes()
    shard = commit.shards[0]
    assert (shard.sha256, shard.n_bytes) == (hashlib.sha256(tar_bytes).hexdigest(), len(tar_bytes))
    assert find_shard(Storage(tmp_path / "a" / "shards"), f"{shard.name}.tar") == shard


def test_byte_limit_closes_shards(tmp_path):
    commit = _write(tmp_path, [_outcome(i, 1, payload=600_000) for i in range(3)], max_bytes=1_000_000)
    assert len(commit.shards) == 3


def test_a_unit_of_failed_sources_is_committed_without_shards(tmp_path):
    commit = _write(tmp_path, [_outcome(0, 0), _outcome(1, 0)])
    assert commit.shards == () and [row["status"] for row in _rows(tmp_path, commit, "sources")] == ["failed", "failed"]
    assert commit.parts("manifest") == () and len(_rows(tmp_path, commit, "failures")) == 2
    assert Storage(tmp_path).list("shards") == [] and len(list_markers(Storage(tmp_path))) == 1


def test_abort_publishes_nothing_and_debris_is_removed(tmp_path):
    outcomes = [_outcome(0, 2), _outcome(1, 1)]
    writer = UnitWriter(Storage(tmp_path), _unit(outcomes), ShardConfig(max_samples=2), "fp")
    for outcome in outcomes:
        writer.add(outcome)  # the first shard is published when the second opens
    writer.abort()
    assert list_markers(Storage(tmp_path)) == [] and Storage(tmp_path).list("shards") == []

    committed = _write(tmp_path, outcomes, max_samples=2)  # unit 0, committed
    debris = ["shards/shard-000000-00-0badf00d.tar", "manifest/part-000000-0badf00d.parquet",  # a loser of unit 0
              "sources/part-000000-0badf00d.parquet", "shards/shard-000007-00-12345678.tar",  # no marker
              "failures/part-000007-12345678.parquet", "shards/.shard-000008-00-12345678.tar.tmp",  # a temporary
              "_commits/.unit-000009-0123456789ab.json.0123.tmp"]
    for name in debris:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"partial")
    removed = remove_uncommitted(Storage(tmp_path))
    assert sorted(removed) == sorted(debris)
    assert Storage(tmp_path).list("shards") == sorted(f"{shard.name}.tar" for shard in committed.shards)
    assert [f"{table}/{name}" for table in ("manifest", "sources", "failures") for name in Storage(tmp_path).list(table)] \
        == [*committed.parts("manifest"), *committed.parts("sources")]
    assert read_commits(Storage(tmp_path)) == [committed]


def test_exception_inside_writer_commits_nothing(tmp_path):
    outcomes = [_outcome(0, 1), _outcome(1, 1)]
    outcomes[1].samples[0].members["x.npy"] = None  # not bytes: tarfile fails mid-shard
    with pytest.raises(TypeError):
        _write(tmp_path, outcomes)
    assert list_markers(Storage(tmp_path)) == [] and Storage(tmp_path).list("shards") == []


CPU = {"reconstruct": {"device": "cpu", "precision": "fp32", "torch": "2.13.0", "cuda": "", "cudnn": ""}}
CUDA = {"reconstruct": {"device": "cuda", "precision": "bf16", "torch": "2.13.0", "cuda": "12.8", "cudnn": "91002"}}


def test_outputs_of_another_device_or_precision_are_refused(tmp_path):
    first, second = _outcome(0, 1), _outcome(1, 1)
    first.numerics, second.numerics = CPU, CUDA
    writer = UnitWriter(Storage(tmp_path), _unit([first, second]), ShardConfig(), "fp")
    writer.add(first)
    with pytest.raises(Pseudo3DError, match="this build computes reconstruct on cuda in bf16, but the dataset was "
                                            "built with reconstruct on cpu in fp32"):
        writer.add(second)
    writer.abort()
    newer = _outcome(2, 1)
    newer.numerics = {"reconstruct": {**CPU["reconstruct"], "torch": "2.14.0"}}  # versions are recorded, not checked
    commit = write_unit(Storage(tmp_path), _unit([newer]), [newer], ShardConfig(), "fp", numerics=CPU)
    assert commit.stats["numerics"] == CPU
    with pytest.raises(Pseudo3DError, match="built with reconstruct on cpu in fp32"):
        write_unit(Storage(tmp_path), _unit([second], 1), [second], ShardConfig(), "fp", numerics=CPU)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_writers_racing_to_commit_one_unit_exactly_one_wins(tmp_path, where, request):
    """Four writers of the same unit at once (a retried task, a speculative copy): each writes its
    own shards, exactly one creates the marker, the others delete theirs; nothing is lost or
    doubled (on S3 through If-None-Match: *)."""
    root = tmp_path if where == "local" else request.getfixturevalue("s3_bucket") + "/ds"
    outcomes = [_outcome(i, 2) for i in range(3)]
    unit = _unit(outcomes)
    start, results = threading.Barrier(4), [None] * 4

    def race(slot):
        writer = UnitWriter(Storage(root), unit, ShardConfig(max_samples=4), "fp")
        for outcome in outcomes:
            writer.add(outcome)
        start.wait()
        results[slot] = writer.commit()

    threads = [threading.Thread(target=race, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [commit for commit in results if commit is not None]
    assert len(winners) == 1
    storage = Storage(root)
    [commit] = read_commits(storage)
    assert json.loads(storage.read_bytes(commit.path))["attempt"] == winners[0].stats["attempt"]
    assert storage.list("shards") == sorted(f"{shard.name}.tar" for shard in winners[0].shards)
    assert [f"sources/{name}" for name in storage.list("sources")] == list(commit.parts("sources"))
    keys = read_parts(storage, commit.parts("manifest"), "manifest")["key"].to_pylist()
    assert keys == [sample.key for outcome in outcomes for sample in outcome.samples]
