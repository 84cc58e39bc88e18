"""Reading what a dataset committed: data contract 4's unit markers and index parts, and the
layouts of data contracts 3 (markers with their rows, shard sidecars, one file per index table) and
2 (shard JSON files), which inspect, qa and training still read."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pseudo3d.config import BuildConfig
from pseudo3d.pipelines.dataset_files import write_dataset_files
from pseudo3d.pipelines.plan import plan_units
from pseudo3d.pipelines.shard_writer import write_unit
from pseudo3d.qa.report.data import load_dataset
from pseudo3d.schemas.commits import committed_shards, find_shard, list_markers, read_commits
from pseudo3d.schemas.index import read_parts
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


CONFIG = BuildConfig()


def _dataset(root, n_units=2):
    outcomes = [_outcome(index) for index in range(2 * n_units)]
    for unit in plan_units([outcome.source for outcome in outcomes], 2, CONFIG.fingerprint()):
        write_unit(Storage(root), unit, outcomes[2 * unit.index:2 * unit.index + 2], CONFIG.shards,
                   CONFIG.fingerprint())
    write_dataset_files(Storage(root), CONFIG)
    return outcomes


def _as_contract_3(root):
    """Rewrite a data contract 4 dataset into data contract 3's layout: each marker carries its
    source and failure rows, each shard has a sidecar parquet, each index table is one file."""
    storage = Storage(root)
    card = json.loads((root / "dataset.json").read_text())
    for commit in read_commits(storage):
        rows = {table: read_parts(storage, commit.parts(table), table) for table in ("manifest", "sources", "failures")}
        for shard in commit.shards:
            clips = rows["manifest"].filter(pa.compute.equal(rows["manifest"]["shard"], shard.name))
            pq.write_table(clips, root / shard.sidecar)
        stats = {name: value for name, value in commit.stats.items() if name not in ("parts", "counts", "replaces")}
        stats.update(schema_version=3, sources=rows["sources"].to_pylist(), failures=rows["failures"].to_pylist())
        (root / commit.path).write_text(json.dumps(stats))
    for table in ("manifest", "sources", "failures"):
        pq.write_table(read_parts(storage, card["files"][table], table), root / f"{table}.parquet")
        shutil.rmtree(root / table, ignore_errors=True)
        card["files"][table] = f"{table}.parquet"
    (root / "dataset.json").write_text(json.dumps({**card, "schema_version": 3}))


def _as_contract_2(root):
    """Rewrite a data contract 3 dataset of one-shard units into data contract 2's layout."""
    for commit in read_commits(Storage(root)):
        [shard] = commit.shards
        legacy = f"shard-{commit.unit:06d}"
        for suffix in ("tar", "parquet"):
            shutil.move(root / "shards" / f"{shard.name}.{suffix}", root / "shards" / f"{legacy}.{suffix}")
        stats = {**commit.stats, **json.loads(json.dumps(commit.stats["shards"][0])), "index": commit.unit,
                 "shard": legacy, "schema_version": 2}
        (root / "shards" / f"{legacy}.json").write_text(json.dumps(stats))
    shutil.rmtree(root / "_commits")


def test_markers_name_the_committed_shards_and_index_parts(tmp_path):
    outcomes = _dataset(tmp_path)
    storage = Storage(tmp_path)
    assert [marker.unit for marker in list_markers(storage)] == [0, 1]
    commits = read_commits(storage)
    shards = committed_shards(commits)
    assert [shard.n_samples for shard in shards] == [2, 2]
    sources = read_parts(storage, [path for commit in commits for path in commit.parts("sources")], "sources")
    assert sources["source_id"].to_pylist() == [outcome.source.source_id for outcome in outcomes]
    assert [commit.parts("failures") for commit in commits] == [(), ()]  # no failures: no part
    manifest = pq.read_table(tmp_path / "manifest")  # a plain Parquet dataset
    assert manifest["key"].to_pylist() == [outcome.samples[0].key for outcome in outcomes]
    assert manifest["shard"].to_pylist() == [shard.name for shard in shards for _ in range(2)]
    (tmp_path / "shards" / "shard-000001-00-0badf00d.tar").write_bytes(b"a loser's")
    resolved = resolve_shards(str(tmp_path))
    assert resolved == tuple(str(tmp_path / shard.tar) for shard in shards)
    assert resolve_shards(str(tmp_path / "shards" / "*.tar")) == resolved  # a glob keeps only committed shards
    assert find_shard(Storage(tmp_path / "shards"), "shard-000001-00-0badf00d.tar") is None


def test_a_data_contract_3_dataset_reads_as_it_did(tmp_path):
    _dataset(tmp_path)
    before = load_dataset(tmp_path)
    shards = committed_shards(read_commits(Storage(tmp_path)))
    _as_contract_3(tmp_path)
    after = load_dataset(tmp_path)
    assert after.manifest.equals(before.manifest)
    assert after.sources.equals(before.sources) and after.failures.equals(before.failures)
    assert committed_shards(read_commits(Storage(tmp_path))) == shards
    assert resolve_shards(str(tmp_path)) == tuple(str(tmp_path / shard.tar) for shard in shards)


def test_a_data_contract_2_dataset_reads_as_units_of_one_shard(tmp_path):
    _dataset(tmp_path)
    before = committed_shards(read_commits(Storage(tmp_path)))
    _as_contract_3(tmp_path)
    _as_contract_2(tmp_path)
    (tmp_path / "shards" / "shard-000002.tar").write_bytes(b"uncommitted: no JSON")
    commits = read_commits(Storage(tmp_path))
    assert [commit.unit for commit in commits] == [0, 1] and [commit.schema_version for commit in commits] == [2, 2]
    shards = committed_shards(commits)
    assert [(shard.name, shard.sha256) for shard in shards] == [(f"shard-00000{i}", before[i].sha256) for i in (0, 1)]
    assert sum(len(commit.stats["sources"]) for commit in commits) == 4
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


def test_a_marker_or_card_naming_files_outside_its_unit_or_table_is_refused(tmp_path):
    """Nothing is ever read or deleted on a damaged marker's or card's word outside its own files."""
    import pytest

    from pseudo3d.errors import Pseudo3DError

    _dataset(tmp_path)
    storage = Storage(tmp_path)
    first = read_commits(storage)[0]
    for damage in ({"parts": {"sources": ["../outside.parquet"]}}, {"parts": {"sources": ["sources/part-000001-0badf00d.parquet"]}},
                   {"parts": None}, {"counts": "x"}):
        (tmp_path / first.path).write_text(json.dumps({**first.stats, **damage}))
        with pytest.raises(Pseudo3DError, match=f"{first.path.split('/')[1]} is not a commit marker .*delete it"):
            read_commits(storage)
    card = json.loads((tmp_path / "dataset.json").read_text())
    (tmp_path / "dataset.json").write_text(json.dumps({**card, "files": {**card["files"], "sources": ["../outside.parquet"]}}))
    with pytest.raises(Pseudo3DError, match="dataset.json lists '../outside.parquet' as a file of the sources table"):
        load_dataset(tmp_path)


def test_a_corrupt_index_part_is_named(tmp_path):
    import pytest

    from pseudo3d.errors import Pseudo3DError

    _dataset(tmp_path)
    part = sorted((tmp_path / "manifest").iterdir())[1]
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(Pseudo3DError, match=f"{part.name} is not a readable Parquet file .*delete the commit marker"):
        load_dataset(tmp_path)
