import dataclasses
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.lease import BuildLease
from pseudo3d.pipelines.output_dir import plan_build, prepare_output
from pseudo3d.pipelines.plan import plan_units
from pseudo3d.pipelines.dataset_files import write_dataset_files
from pseudo3d.pipelines.shard_writer import write_unit
from pseudo3d.qa.report.data import load_dataset
from pseudo3d.schemas.commits import list_markers, live_markers
from pseudo3d.schemas.sample import encode_sample
from pseudo3d.schemas.records import EncodedSample, Failure, Source, SourceOutcome
from pseudo3d.schemas.version import SCHEMA_VERSION
from pseudo3d.storage import Storage


def _source(name):
    return Source(uri=f"/v/{name}.mp4", identity=f"v/{name}.mp4", source_id=f"v-{name}-0000000000000000")


def _failed(source, numerics=None):
    return SourceOutcome(source, "failed", numerics=numerics or {},
                         failures=[Failure(source.source_id, source.uri, "worker", "crashed", "y")])


def _commit(out, sources, config, first=0, numerics=None):
    """Commit ``sources`` (all failed) as the units a build plans for them, numbered from ``first``."""
    for unit in plan_units(sources, config.shards.max_sources, config.fingerprint(), first=first):
        write_unit(Storage(out), unit, [_failed(source, numerics) for source in unit.sources], config.shards,
                   config.fingerprint())


CONFIG = BuildConfig().with_overrides(shards={"max_sources": 2})


def test_a_resume_with_the_same_inputs_skips_committed_units_from_a_listing_alone(tmp_path):
    sources = [_source(name) for name in "abcde"]
    _commit(tmp_path, sources[:4], CONFIG, numerics={"reconstruct": {"device": "cpu", "precision": "fp32"}})  # units 0, 1
    later = Storage(tmp_path).list("_commits")[1]
    (tmp_path / "_commits" / later).write_text("not read")  # only the first marker is read (numerics)
    plan = plan_build(Storage(tmp_path), sources, CONFIG)
    assert [unit.index for unit in plan.units] == [2] and list(plan.sources()) == sources[4:] and plan.skipped == 4


def test_units_are_cut_by_input_bytes_and_a_resume_plans_the_same_ones(tmp_path):
    config = BuildConfig().with_overrides(shards={"max_sources": 4, "max_unit_bytes": 10_000_000})
    sources = [dataclasses.replace(_source(name), size_bytes=4_000_000) for name in "abcde"]
    plan = plan_build(Storage(tmp_path), sources, config)
    assert [len(unit.sources) for unit in plan.units] == [2, 2, 1]
    for unit in plan.units[:2]:
        write_unit(Storage(tmp_path), unit, [_failed(source, {"reconstruct": {"device": "cpu"}}) for source in unit.sources],
                   config.shards, config.fingerprint())
    (tmp_path / "_commits" / Storage(tmp_path).list("_commits")[1]).write_text("not read")  # a listing alone
    resumed = plan_build(Storage(tmp_path), sources, config)
    assert [unit.index for unit in resumed.units] == [2] and list(resumed.sources()) == sources[4:] and resumed.skipped == 4


def test_a_resume_with_other_inputs_reads_the_markers_it_did_not_plan(tmp_path):
    sources = [_source(name) for name in "abcde"]
    _commit(tmp_path, sources[1:3], CONFIG)  # unit 0 = b, c: not a unit of the plan of a..e
    plan = plan_build(Storage(tmp_path), sources, CONFIG)
    assert list(plan.sources()) == [sources[0], *sources[3:]] and plan.skipped == 2
    assert [unit.index for unit in plan.units] == [1, 2]  # after the highest committed unit
    _commit(tmp_path, list(plan.sources()), CONFIG, first=1)
    assert plan_build(Storage(tmp_path), sources, CONFIG).units == []


def test_retry_failed_commits_a_unit_again_with_its_failed_sources_next_attempt(tmp_path):
    sources = [_source(name) for name in "abc"]
    _commit(tmp_path, sources[:1], CONFIG)  # unit 0: a failed
    outcomes = [_ok(sources[1]), _failed(sources[2])]
    [unit] = plan_units(sources[1:], 2, CONFIG.fingerprint(), first=1)
    write_unit(Storage(tmp_path), unit, outcomes, CONFIG.shards, CONFIG.fingerprint())  # unit 1: b ok, c failed
    before = {marker.unit: marker for marker in list_markers(Storage(tmp_path))}
    assert plan_build(Storage(tmp_path), sources, CONFIG).units == []
    plan = plan_build(Storage(tmp_path), sources, CONFIG, retry_failed="transient")
    assert [(unit.index, [(source.source_id, source.attempt) for source in unit.sources]) for unit in plan.units] == \
        [(0, [(sources[0].source_id, 2)]), (1, [(sources[2].source_id, 2)])]
    assert plan.skipped == 1 and plan.units[1].base.replaces == before[1].path
    assert [row["source_id"] for row in plan.units[1].base.sources] == [s.source_id for s in sources[1:]]
    assert plan.units[1].digest != before[1].digest

    retried = plan.units[1]
    commit = write_unit(Storage(tmp_path), retried, [_ok(source) for source in retried.sources], CONFIG.shards,
                        CONFIG.fingerprint())
    assert [marker.unit for marker in list_markers(Storage(tmp_path))] == [0, 1]  # the old version's marker is gone
    assert commit.replaces == before[1].path and len(commit.shards) == 2  # b's shard kept, c's added
    write_dataset_files(Storage(tmp_path), CONFIG)
    sources_table = pq.read_table(tmp_path / "sources").to_pylist()
    assert [(row["source_id"], row["attempt"], row["status"]) for row in sources_table] == \
        [(sources[0].source_id, 1, "failed"), (sources[1].source_id, 1, "ok"), (sources[2].source_id, 2, "ok")]
    assert pq.read_table(tmp_path / "failures")["source_id"].to_pylist() == [sources[0].source_id]
    assert sorted(pq.read_table(tmp_path / "manifest")["source_id"].to_pylist()) == \
        sorted(source.source_id for source in sources[1:])
    assert len(list((tmp_path / "sources").iterdir())) == 2  # one part per live unit: the replaced one is deleted


def test_units_of_another_data_contract_version_or_configuration_are_refused(tmp_path):
    sources = [_source("a")]
    _commit(tmp_path / "ds", sources, BuildConfig())
    with pytest.raises(Pseudo3DError, match="different configuration .fingerprint"):
        plan_build(Storage(tmp_path / "ds"), sources, CONFIG)
    [name] = Storage(tmp_path / "ds").list("_commits")
    marker = tmp_path / "ds" / "_commits" / name
    stats = json.loads(marker.read_text())
    assert stats["schema_version"] == SCHEMA_VERSION == 4
    marker.write_text(json.dumps({**stats, "schema_version": 5}))
    with pytest.raises(Pseudo3DError, match="holds units of data contract version 5; this pseudo3d writes "
                                            "version 4.*--overwrite"):
        plan_build(Storage(tmp_path / "ds"), [_source("b")], BuildConfig())


def test_a_data_contract_3_dataset_is_refused_before_anything_is_removed(tmp_path):
    _commit(tmp_path, [_source("a")], BuildConfig())
    [marker] = (tmp_path / "_commits").iterdir()
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "schema_version": 3, "parts": {}}))
    (tmp_path / "shards").mkdir()  # all failed: no shard
    (tmp_path / "shards" / "shard-000000-00-0badf00d.parquet").write_text("a version 3 sidecar no marker names")
    files = sorted(path for path in tmp_path.rglob("*") if path.is_file())
    lease = BuildLease(Storage(tmp_path))
    with pytest.raises(Pseudo3DError, match="holds units of data contract version 3.*--overwrite.*still read it"):
        prepare_output(Storage(tmp_path), BuildConfig(), lease)
    lease.release()
    assert sorted(path for path in tmp_path.rglob("*") if path.is_file() and path.name != ".lease") == files


def test_a_data_contract_2_dataset_is_refused_before_anything_is_removed(tmp_path):
    (tmp_path / "shards").mkdir()
    for suffix in ("tar", "parquet", "json"):
        (tmp_path / "shards" / f"shard-000000.{suffix}").write_text("{}")
    lease = BuildLease(Storage(tmp_path))
    with pytest.raises(Pseudo3DError, match="holds shards of an older data contract .shards/shard-000000.json.*"
                                            "--overwrite.*still read it"):
        prepare_output(Storage(tmp_path), BuildConfig(), lease)
    lease.release()
    assert len(list((tmp_path / "shards").iterdir())) == 3
    lease = BuildLease(Storage(tmp_path))
    assert prepare_output(Storage(tmp_path), BuildConfig(), lease, overwrite=True) == []
    lease.release()
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_a_resume_knows_what_the_committed_outputs_were_computed_with(tmp_path):
    numerics = {"reconstruct": {"device": "cpu", "precision": "fp32"}}
    _commit(tmp_path, [_source("a")], BuildConfig(), numerics=numerics)
    assert plan_build(Storage(tmp_path), [_source("a"), _source("b")], BuildConfig()).numerics == numerics


def test_a_remote_dataset_s_scratch_folder_falls_back_to_the_temporary_folder(tmp_path, monkeypatch):
    from pseudo3d.pipelines.output_dir import scratch_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    storage = Storage("memory://bucket/ds")
    assert scratch_dir(storage).parent == tmp_path / "cache" / "pseudo3d" / "builds"
    (tmp_path / "blocked").write_text("a file, not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocked"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    assert scratch_dir(storage) == tmp_path / "tmp" / "pseudo3d-builds" / scratch_dir(storage).name


def test_numerics_come_from_the_first_unit_that_records_them(tmp_path):
    numerics = {"reconstruct": {"device": "cpu", "precision": "fp32"}}
    _commit(tmp_path, [_source("a"), _source("b")], CONFIG)  # unit 0: failed before any model ran
    _commit(tmp_path, [_source("c")], CONFIG, first=1, numerics=numerics)
    assert plan_build(Storage(tmp_path), [_source(name) for name in "abcd"], CONFIG).numerics == numerics


def test_a_unit_that_lost_a_shard_is_dropped_and_rebuilt_by_the_next_build(tmp_path):
    sources = [_source(name) for name in "abcd"]
    outcomes = [_ok(source) for source in sources]
    for unit in plan_units(sources, 2, CONFIG.fingerprint()):
        write_unit(Storage(tmp_path), unit, outcomes[2 * unit.index:2 * unit.index + 2], CONFIG.shards,
                   CONFIG.fingerprint())
    [lost] = (tmp_path / "shards").glob("shard-000001-00-*.tar")
    lost.unlink()
    with pytest.raises(Pseudo3DError, match="1 unit.s. of .* had lost files .unit 1 first.*run the same command again"):
        write_dataset_files(Storage(tmp_path), CONFIG)
    assert [marker.unit for marker in list_markers(Storage(tmp_path))] == [0]
    assert [path.name.split("-")[1] for path in (tmp_path / "shards").iterdir()] == ["000000"]
    assert [path.name.split("-")[1] for path in (tmp_path / "manifest").iterdir()] == ["000000"]
    card = json.loads((tmp_path / "dataset.json").read_text())
    assert card["counts"]["inputs"] == 2 and card["counts"]["units"] == 1
    assert list(plan_build(Storage(tmp_path), sources, CONFIG).sources()) == sources[2:]


def test_a_retried_unit_that_lost_a_shard_is_built_again_whole(tmp_path):
    """A unit committed again by --retry-failed replaced its first version; when it loses a shard,
    it is dropped, and the next build builds the unit from its first attempt again."""
    sources = [_source(name) for name in "ab"]
    _commit(tmp_path, sources, CONFIG)  # unit 0: both failed
    [retry] = plan_build(Storage(tmp_path), sources, CONFIG, retry_failed="transient").units
    write_unit(Storage(tmp_path), retry, [_ok(source) for source in retry.sources], CONFIG.shards, CONFIG.fingerprint())
    write_dataset_files(Storage(tmp_path), CONFIG)
    assert [(row["attempt"], row["status"]) for row in pq.read_table(tmp_path / "sources").to_pylist()] == \
        [(2, "ok"), (2, "ok")]
    for shard in (tmp_path / "shards").glob("shard-000000-*.tar"):
        shard.unlink()
    with pytest.raises(Pseudo3DError, match="had lost files"):
        write_dataset_files(Storage(tmp_path), CONFIG)
    card = json.loads((tmp_path / "dataset.json").read_text())
    assert card["counts"]["inputs"] == 0 and list_markers(Storage(tmp_path)) == []
    [unit] = plan_build(Storage(tmp_path), sources, CONFIG).units
    assert unit.base is None and [source.attempt for source in unit.sources] == [1, 1]


def test_a_retry_whose_old_version_could_not_be_deleted_keeps_its_commit_and_the_next_build_cleans_up(
        tmp_path, monkeypatch):
    """After the new version's marker is created, nothing of it is deleted: an error (or a kill)
    deleting the replaced version leaves a replaced marker, which readers skip and the next build
    removes, and a card that lists gone parts, which readers get past."""
    sources = [_source(name) for name in "ab"]
    _commit(tmp_path, sources, CONFIG)  # unit 0: both failed
    write_dataset_files(Storage(tmp_path), CONFIG)
    [old] = list_markers(Storage(tmp_path))
    [retry] = plan_build(Storage(tmp_path), sources, CONFIG, retry_failed="transient").units
    deleted = []

    def delete(self, relative):
        if relative == retry.base.replaces:
            raise OSError("access denied")
        deleted.append(relative)

    with monkeypatch.context() as patched:
        patched.setattr(Storage, "delete", delete)
        commit = write_unit(Storage(tmp_path), retry, [_ok(source) for source in retry.sources], CONFIG.shards,
                            CONFIG.fingerprint())
    assert commit is not None and deleted == []  # nothing of the commit; the old version stays, whole
    assert all((tmp_path / path).is_file() for path in commit.files())
    assert [row["status"] for row in load_dataset(tmp_path).sources.to_pylist()] == ["failed"] * 2  # as the card lists it
    [live] = live_markers(Storage(tmp_path))
    assert live.path == commit.path

    (tmp_path / retry.base.dropped[0]).unlink()  # as if killed half-way through the deletes
    rows = load_dataset(tmp_path).sources.to_pylist()  # the card lists a gone part: read from the markers
    assert [(row["source_id"], row["status"]) for row in rows] == [(s.source_id, "ok") for s in sources]
    lease = BuildLease(Storage(tmp_path))
    markers = prepare_output(Storage(tmp_path), CONFIG, lease)
    lease.release()
    assert markers == [live] and not (tmp_path / old.path).exists()
    assert plan_build(Storage(tmp_path), sources, CONFIG, markers=markers).units == []
    assert sorted(path.name for path in (tmp_path / "sources").iterdir()) == [commit.parts("sources")[0][8:]]


def test_a_writer_whose_create_answer_was_lost_keeps_its_commit(tmp_path):
    """S3 may answer a create sent again after a lost response with "precondition failed": the
    marker is the writer's own, so the writer committed."""
    from pseudo3d.pipelines.shard_writer import UnitWriter

    [unit] = plan_units([_source("a")], 2, CONFIG.fingerprint())
    writer = UnitWriter(Storage(tmp_path), unit, CONFIG.shards, CONFIG.fingerprint(), attempt="0123abcd")
    writer.add(_ok(_source("a")))
    (tmp_path / "_commits").mkdir()
    (tmp_path / unit.marker.path).write_text(json.dumps({"attempt": "0123abcd"}))  # the first, answered create
    commit = writer.commit()
    assert commit is not None and all((tmp_path / path).is_file() for path in commit.files())


def test_a_unit_committed_twice_is_refused(tmp_path):
    _commit(tmp_path, [_source("a")], CONFIG)
    _commit(tmp_path, [_source("b")], CONFIG)  # a second build numbering its units from the same place
    with pytest.raises(Pseudo3DError, match="unit 0 is committed twice .*two builds wrote into this dataset at once.*"
                                            "--overwrite"):
        write_dataset_files(Storage(tmp_path), CONFIG)


def test_a_unit_that_lost_a_part_is_built_again_by_a_retry(tmp_path):
    sources = [_source(name) for name in "ab"]
    _commit(tmp_path, sources, CONFIG)
    [part] = (tmp_path / "failures").iterdir()
    part.unlink()
    plan = plan_build(Storage(tmp_path), sources, CONFIG, retry_failed="transient")
    assert [(unit.index, unit.base, [source.attempt for source in unit.sources]) for unit in plan.units] == \
        [(1, None, [1, 1])]
    assert list_markers(Storage(tmp_path)) == []


def test_a_marker_of_another_data_contract_among_the_units_is_refused_not_removed(tmp_path):
    _commit(tmp_path, [_source(name) for name in "abc"], CONFIG)  # units 0 and 1
    later = sorted((tmp_path / "_commits").iterdir())[1]
    later.write_text(json.dumps({**json.loads(later.read_text()), "schema_version": 3}))
    with pytest.raises(Pseudo3DError, match=f"{later.name} is a commit marker of data contract version 3.*--overwrite"):
        write_dataset_files(Storage(tmp_path), CONFIG)
    assert later.exists() and len(list((tmp_path / "sources").iterdir())) == 2


def test_a_marker_that_is_not_one_is_named(tmp_path):
    _commit(tmp_path, [_source("a")], CONFIG)
    [marker] = (tmp_path / "_commits").iterdir()
    marker.write_text("")
    with pytest.raises(Pseudo3DError, match=f"{marker.name} is not a commit marker .JSONDecodeError.*delete it"):
        plan_build(Storage(tmp_path), [_source("a"), _source("b")], BuildConfig())


def _ok(source):
    key = f"{source.source_id}_000"
    members = encode_sample({"x": np.zeros(4, np.uint8)}, np.zeros(160, np.float32), 16000, {"key": key})
    return SourceOutcome(source, "ok", samples=[EncodedSample(key, members, {
        "key": key, "source_id": source.source_id, "n_frames": 1, "duration_s": 0.04, "fps": 25.0, "clip_index": 0})])
