"""Reading what a dataset committed: data contract 3's unit markers, and data contract 2's shard
JSON files, which inspect, qa and training still read."""

import json
import shutil

import numpy as np

from pseudo3d.config import ShardConfig
from pseudo3d.pipelines.plan import plan_units
from pseudo3d.pipelines.shard_writer import write_unit
from pseudo3d.schemas.commits import committed_shards, current_sources, find_shard, list_markers, read_commits
from pseudo3d.schemas.records import EncodedSample, Source, SourceOutcome
from pseudo3d.schemas.sample import encode_sample
from pseudo3d.storage import Storage
from pseudo3d.training.data.shards import resolve_shards


def _outcome(index: int) -> SourceOutcome:
    source = Source(uri=f"/v/{index}.mp4", identity=f"v/{index}.mp4", source_id=f"v{index}-00000000")
    key = f"{source.source_id}_000"
    members = encode_sample({"x": np.zeros(10, np.uint8)}, np.zeros(1600, np.float32), 16000, {"key": key})
    sample = EncodedSample(key, members, {"key": key, "source_id": source.source_id, "n_frames": 10,
                                          "duration_s": 0.4, "fps": 25.0, "clip_index": 0})
    return SourceOutcome(source, "ok", samples=[sample])


def _dataset(root, n_units=2):
    outcomes = [_outcome(index) for index in range(2 * n_units)]
    for unit in plan_units([outcome.source for outcome in outcomes], 2, "fp"):
        write_unit(Storage(root), unit, outcomes[2 * unit.index:2 * unit.index + 2], ShardConfig(), "fp")
    return outcomes


def _as_contract_2(root):
    """Rewrite a dataset of one-shard units into data contract 2's layout."""
    for commit in read_commits(Storage(root)):
        [shard] = commit.shards
        legacy = f"shard-{commit.unit:06d}"
        for suffix in ("tar", "parquet"):
            shutil.move(root / "shards" / f"{shard.name}.{suffix}", root / "shards" / f"{legacy}.{suffix}")
        stats = {**commit.stats, **json.loads(json.dumps(commit.stats["shards"][0])), "index": commit.unit,
                 "shard": legacy, "schema_version": 2}
        (root / "shards" / f"{legacy}.json").write_text(json.dumps(stats))
    shutil.rmtree(root / "_commits")


def test_markers_name_the_committed_shards_and_sources(tmp_path):
    outcomes = _dataset(tmp_path)
    storage = Storage(tmp_path)
    assert [marker.unit for marker in list_markers(storage)] == [0, 1]
    commits = read_commits(storage)
    shards = committed_shards(commits)
    assert [shard.n_samples for shard in shards] == [2, 2]
    assert sorted(current_sources(commits)) == sorted(outcome.source.source_id for outcome in outcomes)
    (tmp_path / "shards" / "shard-000001-00-0badf00d.tar").write_bytes(b"a loser's")
    resolved = resolve_shards(str(tmp_path))
    assert resolved == tuple(str(tmp_path / shard.tar) for shard in shards)
    assert resolve_shards(str(tmp_path / "shards" / "*.tar")) == resolved  # a glob keeps only committed shards
    assert find_shard(Storage(tmp_path / "shards"), "shard-000001-00-0badf00d.tar") is None


def test_a_data_contract_2_dataset_reads_as_units_of_one_shard(tmp_path):
    _dataset(tmp_path)
    before = committed_shards(read_commits(Storage(tmp_path)))
    _as_contract_2(tmp_path)
    (tmp_path / "shards" / "shard-000002.tar").write_bytes(b"uncommitted: no JSON")
    commits = read_commits(Storage(tmp_path))
    assert [commit.unit for commit in commits] == [0, 1] and [commit.schema_version for commit in commits] == [2, 2]
    shards = committed_shards(commits)
    assert [(shard.name, shard.sha256) for shard in shards] == [(f"shard-00000{i}", before[i].sha256) for i in (0, 1)]
    assert len(current_sources(commits)) == 4
    assert find_shard(Storage(tmp_path / "shards"), "shard-000001.tar") == shards[1]
    assert find_shard(Storage(tmp_path / "shards"), "shard-000002.tar") is None
    assert resolve_shards(str(tmp_path)) == tuple(str(tmp_path / shard.tar) for shard in shards)


def test_shards_copied_out_of_their_dataset_are_read_as_they_are(tmp_path):
    _dataset(tmp_path / "ds")
    shards = committed_shards(read_commits(Storage(tmp_path / "ds")))
    (tmp_path / "flat").mkdir()
    for shard in shards:
        shutil.copy(tmp_path / "ds" / shard.tar, tmp_path / "flat")
    assert [path.rsplit("/", 1)[1] for path in resolve_shards(str(tmp_path / "flat"))] == \
        [f"{shard.name}.tar" for shard in shards]
    assert len(resolve_shards(str(tmp_path / "flat" / f"{shards[0].name}.tar"))) == 1


def test_inspect_says_when_it_cannot_tell_whether_a_shard_is_committed(tmp_path):
    from pseudo3d.qa.report.summary import describe_shard

    _dataset(tmp_path / "ds")
    [shard, *_] = committed_shards(read_commits(Storage(tmp_path / "ds")))
    (tmp_path / "flat" / "shards").mkdir(parents=True)
    shutil.copy(tmp_path / "ds" / shard.tar, tmp_path / "flat" / "shards")
    assert "committed yes" in describe_shard(Storage(tmp_path / "ds" / "shards"), f"{shard.name}.tar")
    assert "committed unknown (no commit markers beside it" in \
        describe_shard(Storage(tmp_path / "flat" / "shards"), f"{shard.name}.tar")
